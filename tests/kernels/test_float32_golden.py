"""The golden cases computed in float32 on every CPU backend.

Tolerance 5e-5 of the case's scale: float32 rounds at 6e-8, the Gaussian's
exponent (up to ~100 in magnitude in these cases) multiplies that error, sums of
up to 300 terms add a little more, and a fast exp polynomial (numba) adds ~2e-7
relative. The float64 reference agrees with float32 runs of the NumPy backend to
1.4e-6 at worst, so 5e-5 leaves room without hiding a wrong formula (a missing
eps floor moves these cases by 1e-1 or more, see SPEC section 3).
"""

from __future__ import annotations

import numpy as np
import pytest

import diffevo
from golden_data import case_ids, load_golden
from test_golden import assert_close

GEN = load_golden("generator")
LAT = load_golden("latent")
RTOL32 = 5e-5


@pytest.mark.parametrize("case", case_ids(GEN))
def test_generator_float32(case, cpu_backend):
    x, f, meta = GEN[f"c{case}_x"], GEN[f"c{case}_fitness"], GEN[f"c{case}_meta"]
    alpha_t, alpha_prev, h, is_kde = meta
    gen = diffevo.BayesianGenerator(x.astype(np.float32), f.astype(np.float32), (alpha_t, alpha_prev),
                                    "kde" if is_kde else "uniform", h, backend=cpu_backend)
    x_next, x0 = gen(noise=0, return_x0=True)
    assert x0.dtype == np.float32 and x_next.dtype == np.float32  # dtype kept as given
    assert_close(x0, GEN[f"c{case}_x0"], rtol=RTOL32)
    assert_close(x_next, GEN[f"c{case}_xnext_noise0"], rtol=RTOL32)


@pytest.mark.parametrize("case", case_ids(LAT))
def test_latent_float32(case, cpu_backend):
    x, z, f = (LAT[f"c{case}_{k}"].astype(np.float32) for k in ("x", "latent", "fitness"))
    alpha_t, alpha_prev = LAT[f"c{case}_alphas"]
    x0 = diffevo.x0_estimate(x, f, alpha_t, latent=z, backend=cpu_backend)
    assert x0.dtype == np.float32
    assert_close(x0, LAT[f"c{case}_x0"], rtol=RTOL32)
