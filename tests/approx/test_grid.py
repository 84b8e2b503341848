"""approx='grid' against the exact sums: within tol * std(x) for every member."""

from __future__ import annotations

import numpy as np
import pytest

import diffevo
from diffevo import backends
from diffevo.approx import GridSums, _fftgrid

ALPHAS = (0.05, 0.5, 0.95, 0.999)
TOL = 1e-3


def population(n, d=2, seed=0):
    """Two clusters of different widths: rows see very different local spreads."""
    rng = np.random.default_rng(seed)
    m = int(0.6 * n)
    x = np.concatenate([rng.standard_normal((m, d)),
                        0.3 * rng.standard_normal((n - m, d)) + np.r_[4.0, -2.0, 1.0][:d]])
    return x, rng.random(n)


def exact_backend():
    return backends.resolve("numba", np.zeros((1, 2)))


def grid(method="auto", **kw):
    return GridSums(exact_backend(), method=method, **kw)


def check(x, got, want, tol=TOL):
    err = np.abs(got - want).max() / x.std()
    assert err <= tol, err


@pytest.mark.parametrize("mode", ["reference", "exact"])
@pytest.mark.parametrize(("method", "alpha"),
                         # no FFT at 0.999: its grid would be over the cap, as 'cells' is for
                         [("fft", a) for a in ALPHAS[:-1]] + [("cells", a) for a in ALPHAS])
def test_forced_method_within_tol(method, alpha, mode):
    x, g = population(2000)
    gs = grid(method)
    got = diffevo.x0_estimate(x, g, alpha, mode=mode, backend=gs)
    assert gs.last["method"] == method
    assert gs.last["fallback"] < 0.05 * len(x)  # the grid does the work, not the fallback
    check(x, got, diffevo.x0_estimate(x, g, alpha, mode=mode, backend="numpy"))


@pytest.mark.parametrize("alpha", ALPHAS)
def test_auto_picks_a_grid_path_within_tol(alpha):
    x, g = population(16384, seed=1)
    gs = grid()
    got = diffevo.x0_estimate(x, g, alpha, backend=gs)
    assert gs.last["method"] in ("fft", "cells")
    check(x, got, diffevo.x0_estimate(x, g, alpha, backend="numba"))


def test_public_option_and_kde():
    x, g = population(3000, seed=2)
    check(x, diffevo.x0_estimate(x, g, 0.5, approx="grid", density="kde"),
          diffevo.x0_estimate(x, g, 0.5, density="kde"))
    for method in ("fft", "cells"):
        got = diffevo.kde_density(x, 0.3, backend=grid(method))
        want = diffevo.kde_density(x, 0.3)
        assert np.abs(got / want - 1).max() <= TOL
    got = diffevo.kde_density(x, 0.3, approx="grid")
    assert np.abs(got / diffevo.kde_density(x, 0.3) - 1).max() <= TOL


@pytest.mark.parametrize(("d", "method"), [(1, "fft"), (1, "cells"), (3, "cells"), (3, "fft")])
def test_one_and_three_distance_dims(d, method):
    x, g = population(1500, d=d, seed=3)
    gs = grid(method)
    check(x, diffevo.x0_estimate(x, g, 0.8, backend=gs),
          diffevo.x0_estimate(x, g, 0.8, backend="numpy"))
    # at d = 3 the FFT grid tol asks for is ~10^8 nodes: over the cap, another path runs
    if (d, method) == (3, "fft"):
        assert gs.last["method"] in ("cells", "exact")
    else:
        assert gs.last["method"] == method


@pytest.mark.parametrize("method", ["fft", "cells"])
def test_latent_path_values_in_full_width(method):
    rng = np.random.default_rng(4)
    x = rng.standard_normal((1500, 7))
    latent = x[:, :2] @ np.array([[1.0, 0.3], [-0.2, 0.8]])
    g = rng.random(1500)
    check(x, diffevo.x0_estimate(x, g, 0.9, latent=latent, backend=grid(method)),
          diffevo.x0_estimate(x, g, 0.9, latent=latent, backend="numpy"))


@pytest.mark.parametrize("mode", ["reference", "exact"])
@pytest.mark.parametrize("method", ["fft", "cells"])
def test_far_member_falls_back_to_exact(method, mode):
    x, g = population(1500, seed=5)
    x[0] = (40.0, 40.0)  # far from all weight: its grid B is pure error
    g[0] = 0.0
    gs = grid(method)
    got = diffevo.x0_estimate(x, g, 0.9, mode=mode, backend=gs)
    want = diffevo.x0_estimate(x, g, 0.9, mode=mode, backend="numpy")
    assert gs.last["fallback"] + gs.last["rescued"] >= 1  # the far row was not left to the grid
    check(x, got, want)
    assert np.all(np.isfinite(got))


def test_online_max_sums_are_consistent():
    """exp(M) * (A, B) are the sums (the contract), although M is not the row maximum."""
    x, g = population(1200, seed=6)
    be = exact_backend()
    _, b, m = be.pairwise_sums(x, x, x, np.log(g), 0.9 ** 0.5, 5.0, True)
    for method in ("fft", "cells"):
        _, gb, gm = grid(method).pairwise_sums(x[None], x[None], x[None], np.log(g)[None],
                                                0.9 ** 0.5, 5.0, True)
        ratio = np.exp(gm[0] - m) * gb[0] / b
        assert np.abs(ratio - 1).max() < 1e-2
        assert np.all(gb[0] >= 1.0 - 1e-12)  # never underflows


def test_batched_and_float32():
    x, g = population(1000, seed=7)
    xb = np.stack([x, x[::-1].copy()])
    gb = np.stack([g, g[::-1].copy()])
    got = diffevo.x0_estimate(xb, gb, 0.7, backend=grid("fft"))
    check(x, got, diffevo.x0_estimate(xb, gb, 0.7, backend="numpy"))
    x32 = x.astype(np.float32)
    got = diffevo.x0_estimate(x32, g, 0.7, backend=grid("fft"))
    assert got.dtype == np.float32
    check(x, got, diffevo.x0_estimate(x, g, 0.7, backend="numpy"), tol=TOL + 1e-5)


def test_generic_array_code_matches_numba(monkeypatch):
    """The CuPy-ready bincount/take path and the Numba scatter/gather are one algorithm."""
    x, g = population(800, seed=8)
    want = diffevo.x0_estimate(x, g, 0.6, backend=grid("fft"))
    monkeypatch.setattr(_fftgrid, "_USE_NUMBA", [False])
    got = diffevo.x0_estimate(x, g, 0.6, backend=grid("fft"))
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-11)


def test_bad_arguments_name_the_option():
    x, g = population(100)
    with pytest.raises(ValueError, match="approx"):
        diffevo.x0_estimate(x, g, 0.5, approx="fft")
    for bad in (0, -1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="tol"):
            diffevo.x0_estimate(x, g, 0.5, approx="grid", tol=bad)
    with pytest.raises(TypeError, match="tol"):
        diffevo.kde_density(x, approx="grid", tol="small")
    with pytest.raises(ValueError, match="approx"):
        diffevo.x0_estimate(np.zeros((50, 4)), np.ones(50), 0.5, approx="grid")
    with pytest.raises(ValueError, match="approx"):
        diffevo.kde_density(np.zeros((50, 4)), approx="grid")
    with pytest.raises(TypeError, match="base"):
        GridSums(object())
    with pytest.raises(ValueError, match="order"):
        grid(order=2)
    with pytest.raises(ValueError, match="method"):
        grid("fastest")
