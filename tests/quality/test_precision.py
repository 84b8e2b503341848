"""One precise optimum in 10-D (issue 13's second target), where the box's centre is no help."""

from __future__ import annotations

import numpy as np
import pytest

import diffevo
from diffevo import problems

BOX = [(-5.0, 5.0)] * 10


def _shifted(X):  # Rastrigin with its optimum at x_i = 1.23, away from the box's centre
    return problems.rastrigin(np.asarray(X) - 1.23)


def _median(**options) -> float:
    return float(np.median([diffevo.minimize(_shifted, bounds=BOX, vectorized=True, maxfev=60_000,
                                             seed=s, **options).fun for s in range(3)]))


def test_rastrigin_10d_off_centre_reaches_ipop_cma_es_figure():
    """The defaults' weighted frame: median <= 1.0 (IPOP-CMA-ES's figure on the centred
    problem) where the origin's frame, which shrinks toward the box's centre, stays on the
    local minima between it and the optimum (measured 3.98 and 1.3e-13 over 5 seeds)."""
    assert _median() <= 1.0
    assert _median(centre="origin") > 1.0


@pytest.mark.parametrize("fun", [problems.sphere, problems.rosenbrock])
def test_smooth_10d_targets_hold_off_centre(fun):
    res = diffevo.minimize(lambda X: fun(np.asarray(X) - 1.23), bounds=BOX, vectorized=True,
                           maxfev=60_000, seed=0)
    assert res.fun <= (1e-8 if fun is problems.sphere else 1e-6) and res.nfev <= 60_000
