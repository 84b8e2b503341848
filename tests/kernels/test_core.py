"""The functional core: exact mode, batching, the density, the step, reproducibility.

Closed forms are computed densely in float64 here (small N only), independently of
the backends' tiled code.
"""

from __future__ import annotations

import numpy as np
import pytest

import diffevo
from diffevo.core import EPS


def dense_x0(x, g, alpha, *, latent=None, p=None, eps=EPS):
    """SPEC section 3 written literally with N x N arrays (float64)."""
    z = x if latent is None else latent
    n = x.shape[0]
    d2 = ((z[:, None, :] - np.sqrt(alpha) * z[None, :, :]) ** 2).sum(-1)
    G = np.exp(-d2 / (2 * (1 - alpha)))
    p = np.full(n, 1.0 / n) if p is None else p
    w = (g[None, :] + eps) * (G + eps) / (p[:, None] + eps)
    return (w @ x) / (w.sum(1, keepdims=True) + eps)


def random_case(seed, n=40, d=3, scale=1.0):
    rng = np.random.default_rng(seed)
    return rng.normal(scale=scale, size=(n, d)), rng.random(n)


@pytest.mark.parametrize("alpha", [1e-3, 0.5, 0.999])
def test_reference_mode_equals_dense_formula(alpha, cpu_backend):
    # float64 both ways; only summation order differs: 1e-12 relative
    x, g = random_case(1)
    got = diffevo.x0_estimate(x, g, alpha, backend=cpu_backend)
    np.testing.assert_allclose(got, dense_x0(x, g, alpha), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("alpha", [1e-3, 0.5, 0.999])
def test_exact_mode_equals_eps_free_formula(alpha, cpu_backend):
    # no underflow at this scale, so the log-space sum equals the eps = 0 formula
    x, g = random_case(2, scale=0.05)
    got = diffevo.x0_estimate(x, g, alpha, mode="exact", backend=cpu_backend)
    np.testing.assert_allclose(got, dense_x0(x, g, alpha, eps=0.0), rtol=1e-10, atol=1e-12)


def test_exact_mode_survives_underflow(cpu_backend):
    # fitness spanning 1e-300..1, alpha near 1, members far apart: every Gaussian
    # factor but the member's own underflows, and the reference formula is driven by eps
    rng = np.random.default_rng(3)
    x = rng.normal(scale=50.0, size=(30, 4))
    g = np.logspace(-300, 0, 30)
    got = diffevo.x0_estimate(x, g, 0.9999, mode="exact", backend=cpu_backend)
    assert np.isfinite(got).all()
    # each member only sees itself: x0 = x / sqrt(alpha) is the exact limit here
    # (the weight of j != i is below exp(-1e5)), to float64 rounding
    np.testing.assert_allclose(got, x, rtol=1e-4)


def test_exact_mode_all_zero_fitness_is_uniform(cpu_backend):
    x, _ = random_case(4, scale=0.1)
    got = diffevo.x0_estimate(x, np.zeros(len(x)), 0.5, mode="exact", backend=cpu_backend)
    np.testing.assert_allclose(got, dense_x0(x, np.ones(len(x)), 0.5, eps=0.0), rtol=1e-10)


def test_exact_mode_zero_fitness_members_get_no_weight(cpu_backend):
    x, g = random_case(5, scale=0.1)
    g[::2] = 0.0
    got = diffevo.x0_estimate(x, g, 0.5, mode="exact", backend=cpu_backend)
    np.testing.assert_allclose(got, dense_x0(x, g, 0.5, eps=0.0), rtol=1e-10)


def test_single_member_is_shrunk_toward_origin(cpu_backend):
    # SPEC: with N = 1 the eps floors shrink the estimate; closed form for one member:
    # x0 = c (G + eps) x / (c (G + eps) + eps (1 + eps)),  c = g + eps, p = 1
    x = np.array([[2.0, -1.0]])
    g, alpha = np.array([0.0]), 0.3
    c = g[0] + EPS
    G = np.exp(-((1 - np.sqrt(alpha)) ** 2) * 5.0 / (2 * (1 - alpha)))
    expected = c * (G + EPS) * x / (c * (G + EPS) + EPS * (1 + EPS))
    np.testing.assert_allclose(diffevo.x0_estimate(x, g, alpha, backend=cpu_backend), expected,
                               rtol=1e-12)
    assert np.abs(expected).max() < np.abs(x).max()


@pytest.mark.parametrize("density", ["uniform", "kde"])
@pytest.mark.parametrize("mode", ["reference", "exact"])
def test_batched_equals_separate(density, mode, cpu_backend):
    rng = np.random.default_rng(6)
    x = rng.normal(size=(3, 37, 5))
    g = rng.random((3, 37))
    z = rng.normal(size=(3, 37, 2))
    got = diffevo.x0_estimate(x, g, 0.4, latent=z, density=density, mode=mode, backend=cpu_backend)
    for r in range(3):
        one = diffevo.x0_estimate(x[r], g[r], 0.4, latent=z[r], density=density, mode=mode,
                                  backend=cpu_backend)
        np.testing.assert_allclose(got[r], one, rtol=1e-12, atol=1e-14)


def test_kde_density_closed_form(cpu_backend):
    x, _ = random_case(7, n=25)
    h = 0.3
    K = np.exp(-((x[:, None] - x[None]) ** 2).sum(-1) / (2 * h * h)).sum(1)
    expected = len(x) * K / K.sum()
    np.testing.assert_allclose(diffevo.kde_density(x, h, backend=cpu_backend), expected, rtol=1e-12)


def test_kde_enters_the_estimate(cpu_backend):
    x, g = random_case(8, n=30)
    h = 0.2
    K = np.exp(-((x[:, None] - x[None]) ** 2).sum(-1) / (2 * h * h)).sum(1)
    p = len(x) * K / K.sum()
    got = diffevo.x0_estimate(x, g, 0.01, density="kde", bandwidth=h, backend=cpu_backend)
    np.testing.assert_allclose(got, dense_x0(x, g, 0.01, p=p), rtol=1e-12)


def test_ddim_step_noise_zero_and_one():
    rng = np.random.default_rng(9)
    xt, x0, z = rng.normal(size=(3, 10, 2))
    at, ap = 0.2, 0.5
    det = diffevo.ddim_step(xt, x0, at, ap, noise=0)
    eps_t = (xt - np.sqrt(at) * x0) / np.sqrt(1 - at)
    np.testing.assert_allclose(det, np.sqrt(ap) * x0 + np.sqrt(1 - ap) * eps_t, rtol=1e-14)
    sigma = np.sqrt((1 - ap) / (1 - at) * (1 - at / ap))
    ddpm = diffevo.ddim_step(xt, x0, at, ap, noise=1, z=z)
    expected = np.sqrt(ap) * x0 + np.sqrt(1 - ap - sigma**2) * eps_t + sigma * z
    np.testing.assert_allclose(ddpm, expected, rtol=1e-14)


def test_same_seed_same_result():
    rng = np.random.default_rng(10)
    x0 = rng.normal(size=(64, 2))
    fit = lambda x: diffevo.examples.two_peak_density(x, std=0.25)  # noqa: E731
    a = diffevo.DiffEvo(num_step=8, seed=123).optimize(fit, x0)
    b = diffevo.DiffEvo(num_step=8, seed=123).optimize(fit, x0)
    c = diffevo.DiffEvo(num_step=8, seed=124).optimize(fit, x0)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_random_projection():
    proj = diffevo.RandomProjection(10, 3, rng=0)
    np.testing.assert_allclose(np.linalg.norm(proj.weight, axis=1), 1.0, rtol=1e-12)
    x = np.random.default_rng(0).normal(size=(5, 10))
    np.testing.assert_allclose(proj(x), x @ proj.weight.T)
    raw = diffevo.RandomProjection(10, 3, normalize=False, rng=0)
    assert not np.allclose(np.linalg.norm(raw.weight, axis=1), 1.0)


def test_float32_kept(cpu_backend):
    x, g = random_case(11)
    out = diffevo.x0_estimate(x.astype(np.float32), g, 0.5, backend=cpu_backend)
    assert out.dtype == np.float32
    # float32 vs float64 of the same case: 1e-5 relative (float32 rounding x exponent size)
    np.testing.assert_allclose(out, diffevo.x0_estimate(x, g, 0.5, backend=cpu_backend),
                               rtol=1e-5, atol=1e-5)
