"""Finite input gives a finite, right answer -- or an error naming the argument.

Each case here failed before the overflow-safe epilogue and the range checks
(issue 12): reference-mode sums overflowing on large finite fitness, NaN from
far-apart members in both modes, NaN / ZeroDivisionError from a tiny bandwidth,
masked arrays computing on hidden data, inconsistent byte-order handling, strings
accepted as numbers. The oracle is the float64 NumPy backend on the same inputs
(rescaled where float64 itself would overflow: scaling the fitness moves x0 only
through the 1e-9 floors, by ~1e-9 relative; an overflowing sum gives NaN or 0).
"""

from __future__ import annotations

import numpy as np
import pytest

import diffevo
from golden_data import CPU_BACKENDS


def scale_err(got, want):
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    return float(np.abs(got - want).max()) / max(1.0, float(np.abs(want).max()))


@pytest.mark.parametrize("backend", CPU_BACKENDS)
@pytest.mark.parametrize("dtype, big", [(np.float32, 3e37), (np.float64, 1e307)])
def test_reference_mode_survives_fitness_whose_sum_overflows(backend, dtype, big):
    """sum_j g_j overflows the dtype (64 members of up to 3e37 in float32, 1e307 in
    float64), every g_j is finite: x0 must equal the estimate from g / max(g)."""
    rng = np.random.default_rng(1)
    x = rng.normal(size=(64, 3)).astype(dtype)
    g = (rng.random(64) * 0.5 + 0.5) * big
    got = diffevo.x0_estimate(x, g.astype(dtype), 0.5, backend=backend)
    assert np.isfinite(got).all()
    # g / max(g) in [0.5, 1]: the eps floors move x0 by ~1e-9 relative
    want = diffevo.x0_estimate(x.astype(np.float64), g / g.max(), 0.5, backend="numpy")
    assert scale_err(got, want) <= (1e-5 if dtype == np.float32 else 1e-7)


@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_reference_mode_large_fitness_with_kde_and_batches(backend):
    rng = np.random.default_rng(2)
    x = rng.normal(size=(3, 40, 2))
    g = rng.random((3, 40)) * 1e306 + 1e305
    got = diffevo.x0_estimate(x, g, 0.3, density="kde", backend=backend)
    want = diffevo.x0_estimate(x, g / g.max(axis=1, keepdims=True), 0.3, density="kde",
                               backend="numpy")
    assert scale_err(got, want) <= 1e-7


@pytest.mark.parametrize("mode", ["reference", "exact"])
@pytest.mark.parametrize("backend", CPU_BACKENDS)
@pytest.mark.parametrize("dtype, far", [(np.float32, 1e20), (np.float64, 1e155)])
def test_members_beyond_the_distance_range_are_refused_by_name(backend, mode, dtype, far):
    x = np.array([[0.0, 0.0], [far, 0.0], [0.0, -far]], dtype=dtype)
    with pytest.raises(ValueError, match=r"\bx has coordinates up to .* supported range"):
        diffevo.x0_estimate(x, np.ones(3, dtype), 0.5, mode=mode, backend=backend)
    with pytest.raises(ValueError, match=r"\blatent has coordinates"):
        diffevo.x0_estimate(np.zeros((3, 2), dtype), np.ones(3, dtype), 0.5, latent=x,
                            mode=mode, backend=backend)
    with pytest.raises(ValueError, match=r"\bz has coordinates"):
        diffevo.kde_density(x, backend=backend)


@pytest.mark.parametrize("backend", CPU_BACKENDS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_far_apart_members_inside_the_range_stay_finite_in_exact_mode(backend, dtype):
    """Just inside the documented range every member keeps (at least) its own weight."""
    limit = np.sqrt(np.finfo(dtype).max / 2) / 4
    x = np.array([[0.0, 0.0], [0.9 * limit, 0.0], [0.0, -0.9 * limit], [1.0, 1.0]], dtype=dtype)
    g = np.array([1.0, 0.5, 0.25, 1.0], dtype=dtype)
    for alpha in (0.1, 0.5, 0.999):
        got = diffevo.x0_estimate(x, g, alpha, mode="exact", backend=backend)
        assert np.isfinite(got).all(), (alpha, got)
        # the far members see nobody else: their x0 is themselves
        np.testing.assert_allclose(got[1:3], x[1:3], rtol=1e-5)


@pytest.mark.parametrize("bandwidth", [1e-160, 1e-300, 1e-30])
def test_bandwidth_too_small_to_compute_is_refused(bandwidth):
    x = np.random.default_rng(0).normal(size=(8, 2))
    dtype_ok = bandwidth > np.sqrt(0.5 / np.finfo(np.float64).max)
    if dtype_ok:  # 1e-30 is computable in float64 but not in float32
        assert np.isfinite(diffevo.x0_estimate(x, np.ones(8), 0.5, density="kde",
                                               bandwidth=bandwidth)).all()
        x = x.astype(np.float32)
    with pytest.raises(ValueError, match=r"\bbandwidth must exceed"):
        diffevo.x0_estimate(x, np.ones(8), 0.5, density="kde", bandwidth=bandwidth)
    with pytest.raises(ValueError, match=r"\bbandwidth must exceed"):
        diffevo.kde_density(x, bandwidth)


def test_masked_arrays_are_refused_by_name():
    x = np.ma.masked_invalid(np.array([[0.0, 1.0], [np.nan, 2.0], [1.0, 1.0]]))
    with pytest.raises(TypeError, match=r"\bx is a masked array"):
        diffevo.x0_estimate(x, np.ones(3), 0.5)
    g = np.ma.masked_invalid(np.array([1.0, np.nan, 1.0]))
    with pytest.raises(TypeError, match=r"\bfitness is a masked array"):
        diffevo.x0_estimate(np.zeros((3, 2)), g, 0.5)
    with pytest.raises(TypeError, match=r"\bx_t is a masked array"):
        diffevo.ddim_step(x, np.zeros((3, 2)), 0.5, 0.6)


def test_big_endian_input_is_accepted_for_every_argument_alike():
    rng = np.random.default_rng(3)
    x, g = rng.normal(size=(16, 2)), rng.random(16)
    want = diffevo.x0_estimate(x, g, 0.4, backend="numpy")
    xb, gb = x.astype(">f8"), g.astype(">f8")
    for xx, gg in ((xb, g), (x, gb), (xb, gb)):
        np.testing.assert_array_equal(diffevo.x0_estimate(xx, gg, 0.4, backend="numpy"), want)
    z = rng.standard_normal((16, 2))
    np.testing.assert_array_equal(diffevo.ddim_step(xb, want, 0.4, 0.5, z=z.astype(">f8")),
                                  diffevo.ddim_step(x, want, 0.4, 0.5, z=z))


@pytest.mark.parametrize("name, kwargs", [
    ("alpha", {"alpha": "0.5"}), ("alpha", {"alpha": True}), ("bandwidth", {"bandwidth": "0.1"}),
])
def test_strings_and_bools_are_not_numbers(name, kwargs):
    args = {"alpha": 0.5} | kwargs
    with pytest.raises(TypeError, match=rf"\b{name} must be"):
        diffevo.x0_estimate(np.zeros((4, 2)), np.ones(4), **args)


def test_step_noise_and_rng_errors_name_the_argument():
    x = np.zeros((4, 2))
    with pytest.raises(TypeError, match=r"\bnoise must be"):
        diffevo.ddim_step(x, x, 0.5, 0.6, noise="1")
    for bad in ("seed", 1.5, -3, object()):
        with pytest.raises((TypeError, ValueError), match=r"\brng must be"):
            diffevo.ddim_step(x, x, 0.5, 0.6, rng=bad)


def test_numpy_zero_dim_arrays_are_numbers():
    x = np.random.default_rng(4).normal(size=(6, 2))
    np.testing.assert_array_equal(diffevo.x0_estimate(x, np.ones(6), np.array(0.5)),
                                  diffevo.x0_estimate(x, np.ones(6), 0.5))
