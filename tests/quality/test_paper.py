"""bench/paper: the batched protocol is DiffEvo's loop, and the functions' optima are right."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

import diffevo

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench" / "paper"))

from paper_functions import FUNCTIONS, best_metrics, entropy_bits
from paper_protocol import NOISE, SCALING, STEPS, N, mapped_fitness, run_reference


@pytest.mark.parametrize("name", ["himmelblau", "rastrigin"])
def test_batched_protocol_equals_diffevo_optimize(name):
    # one run of the (R, N, D) loop against the reference-compatible one-call optimiser with
    # the same generator: the same kernels in the same order, so equal to float32 rounding
    # of the batched sums (1e-5 relative: float32 accumulation order may differ per backend)
    fn, T, seed = FUNCTIONS[name], 1.0, 11
    x_batched, _ = run_reference(fn, T, 1, seed)
    rng = np.random.default_rng(seed)
    x_init = rng.standard_normal((1, N, 2), dtype=np.float32)[0]
    opt = diffevo.DiffEvo(num_step=STEPS, noise=NOISE, scaling=SCALING,
                          scheduler=diffevo.DDIMSchedulerCosine(STEPS), seed=rng)
    x_ref = opt.optimize(lambda X: mapped_fitness(fn, X / SCALING, T), x_init)
    np.testing.assert_allclose(x_batched[0], x_ref, rtol=1e-5, atol=1e-5)


def test_optima_are_stationary_and_on_target():
    for fn in FUNCTIONS.values():
        assert np.all(fn.err(fn.optima) < 1e-12)
        # a step of 1e-4 in any direction is worse (they are optima, not saddles)
        for o in fn.optima:
            for d in np.array([[1, 0], [0, 1], [1, 1], [1, -1]]) * 1e-4:
                assert fn.err(o + d) > fn.err(o) and fn.err(o - d) > fn.err(o)
    assert FUNCTIONS["ackley"].target == pytest.approx(12.5401, abs=1e-4)
    assert FUNCTIONS["rastrigin"].target == pytest.approx(64.6249, abs=1e-4)


def test_out_of_box_points_get_the_penalty_and_metrics_are_closed_form():
    fn = FUNCTIONS["himmelblau"]
    assert fn.err(np.array([[4.5, 0.0]]))[0] == fn.penalty
    assert entropy_bits(np.array([[0.0, 0.0]] * 32 + [[1.0, 1.0]] * 32)) == 1.0
    x = np.array([[3.0, 2.0], [0.0, 0.0], [10.0, 0.0]])
    err, h = best_metrics(x, fn.err(x), 2)
    assert err == pytest.approx(fn.err(x[:2]).mean()) and h == 1.0
