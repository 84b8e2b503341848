"""Property tests (hypothesis): every CPU backend agrees with the NumPy oracle.

Random shapes including N = 1, primes and tile tails, both dtypes, both modes,
both densities, both ends of the schedule. Tolerances: float64 1e-9 of the scale
(summation order differs between backends: a few ulps per term); float32 1e-4 of
the scale (float32 rounding times exponents up to ~50, plus fast exp polynomials).
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import diffevo
from golden_data import CPU_BACKENDS

FAST_BACKENDS = [b for b in CPU_BACKENDS if b != "numpy"]


@st.composite
def cases(draw):
    n = draw(st.integers(1, 70))
    d = draw(st.sampled_from([1, 2, 3, 7, 17, 64, 130]))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    scale = draw(st.sampled_from([0.01, 1.0, 5.0]))
    x = rng.normal(scale=scale, size=(n, d))
    g = rng.random(n) * draw(st.sampled_from([1e-6, 1.0, 100.0]))
    if draw(st.booleans()):
        g[rng.random(n) < 0.3] = 0.0
    return dict(
        x=x,
        g=g,
        alpha=draw(st.sampled_from([1e-3, 0.1, 0.5, 0.9, 0.999])),
        density=draw(st.sampled_from(["uniform", "kde"])),
        mode=draw(st.sampled_from(["reference", "exact"])),
        dtype=draw(st.sampled_from([np.float32, np.float64])),
        latent=rng.normal(scale=scale, size=(n, 2)) if draw(st.booleans()) else None,
    )


@pytest.mark.skipif(not FAST_BACKENDS, reason="no backend besides numpy is available")
@pytest.mark.parametrize("backend", FAST_BACKENDS)
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=cases())
def test_backends_agree_with_numpy(backend, case):
    dtype = case["dtype"]
    x = case["x"].astype(dtype)
    latent = None if case["latent"] is None else case["latent"].astype(dtype)
    kwargs = dict(latent=latent, density=case["density"], mode=case["mode"], bandwidth=0.3)
    want = diffevo.x0_estimate(x, case["g"], case["alpha"], backend="numpy", **kwargs)
    got = diffevo.x0_estimate(x, case["g"], case["alpha"], backend=backend, **kwargs)
    assert got.dtype == dtype and np.isfinite(got).all()
    scale = max(1.0, float(np.abs(want).max()))
    tol = 1e-9 if dtype == np.float64 else 1e-4
    np.testing.assert_allclose(got, want, rtol=0, atol=tol * scale)
