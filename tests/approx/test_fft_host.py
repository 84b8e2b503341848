"""The FFT path's host kernels (_fastbin) against the generic array code they replace."""

from __future__ import annotations

import numpy as np
import pytest

from diffevo.approx import _fastbin, _fftgrid, _paths
from diffevo.approx.grid import GridSums
from diffevo.backends import resolve


def pop_for(n, d, dv, alpha=0.8, seed=0, generic=False, monkeypatch=None):
    rng = np.random.default_rng(seed)
    k = rng.standard_normal((n, d))
    v = rng.standard_normal((n, dv)) + 1.5 if dv else np.zeros((n, 0))
    lc = np.log(rng.random(n))
    lc[::97] = -np.inf  # zero weights: skipped by the scatter, -inf log-weights
    gs = GridSums(resolve("numba", k))
    if generic:
        monkeypatch.setattr(_fftgrid, "_USE_NUMBA", [False])
    pop, _, _ = gs._prepare(np, k, k, v, lc, np.isfinite(lc), alpha ** 0.5, 0.5 / (1 - alpha))
    if generic:
        monkeypatch.setattr(_fftgrid, "_USE_NUMBA", [True])
    return pop


def bounds(pop):
    return (np.minimum(pop.q.min(axis=0), pop.y.min(axis=0)),
            np.maximum(pop.q.max(axis=0), pop.y.max(axis=0)))


@pytest.mark.parametrize("dv", [0, 2, 5])
def test_prepare_matches_numpy(dv, monkeypatch):
    fast = pop_for(3000, 2, dv)
    slow = pop_for(3000, 2, dv, generic=True, monkeypatch=monkeypatch)
    for name in ("q", "y", "w", "lw", "vc", "mean_w"):
        a, b = getattr(fast, name), getattr(slow, name)
        assert (a is None) == (b is None)
        if a is not None:
            np.testing.assert_allclose(a, b, rtol=1e-13, atol=1e-13)
    for name in ("total_w", "vmax", "target", "spread", "sigma"):
        assert getattr(fast, name) == pytest.approx(getattr(slow, name), rel=1e-12)


@pytest.mark.parametrize("threads", [1, 2, 3, 8])
@pytest.mark.parametrize(("d", "order"), [(2, 3), (2, 1), (1, 3), (3, 3), (3, 1)])
def test_banded_scatter_matches_bincount(d, order, threads):
    """Bands of rows on several threads (even ones, then odd ones) = the generic binning."""
    pop = pop_for(20000, d, 2, seed=d)
    lo, hi = bounds(pop)
    eta = 0.35 if d == 3 else 0.1
    grid = _fftgrid.FFTGrid(lo, hi, pop.sigma, eta, order)
    coarse = _fftgrid.FFTGrid(lo, hi, pop.sigma, 2 * eta, order)
    fine, env = grid.host_grids(3), coarse.host_grids(4)
    (fo, fs), (co, cs) = grid.geometry(), coarse.geometry()
    _fastbin.scatter(pop.y, pop.w, pop.vc, fo, grid.h, fs, order, _paths._as4(fine), co, coarse.h,
                     cs, _paths._as4(env), threads, 4)
    chans = np.stack([pop.w, pop.w * pop.vc[:, 0], pop.w * pop.vc[:, 1]])
    want = _fftgrid.bin_points(grid.to_grid_units(pop.y, np), chans, grid.shape, order, np)
    crop = (slice(None),) + tuple(slice(0, n) for n in grid.shape)
    np.testing.assert_allclose(fine[crop], want, rtol=0, atol=1e-12 * pop.total_w)
    assert not fine[..., grid.shape[-1]:].any()  # the FFT's padding stays zero
    env_ch = np.concatenate([chans, (pop.w * (pop.vc ** 2).sum(axis=1))[None]])
    want = _fftgrid.bin_points(coarse.to_grid_units(pop.y, np), env_ch, coarse.shape, 0, np)
    crop = (slice(None),) + tuple(slice(0, n) for n in coarse.shape)
    np.testing.assert_allclose(env[crop], want, rtol=0, atol=1e-12 * pop.total_w * (1 + pop.vmax ** 2))


@pytest.mark.parametrize("d", [1, 2, 3])
def test_pruned_convolution_matches_rfftn(d):
    rng = np.random.default_rng(d)
    grid = _fftgrid.FFTGrid(np.zeros(d), np.full(d, 1.0), 1.0, 0.5 if d == 3 else 0.1, 3)
    g = rng.random((2,) + grid.shape)
    host = grid.host_grids(2)
    host[(slice(None),) + tuple(slice(0, n) for n in grid.shape)] = g
    for spec_c, spec_r in ((grid.kernel_spectrum(np), grid.kernel_spectrum(np, real=True)),
                           (grid.envelope_spectrum(np, 0.05), grid.envelope_spectrum(np, 0.05, real=True))):
        assert np.abs(spec_c.imag).max() <= 1e-12 * np.abs(spec_c.real).max()  # an even kernel
        want = grid.convolve(g, spec_c, np)
        got = grid.convolve_host(host, spec_r)
        crop = (slice(None),) + tuple(slice(0, n) for n in grid.shape)
        np.testing.assert_allclose(got[crop], want, rtol=0, atol=1e-12 * np.abs(want).max())


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize(("d", "order", "dv"), [(2, 3, 2), (2, 3, 0), (2, 1, 2), (1, 3, 3), (3, 3, 2)])
def test_host_rows_match_generic(d, order, dv, threads, monkeypatch):
    """fft_rows on the host (one pass each way) = the generic bincount/take/rfftn code."""
    pop = pop_for(12000, d, dv, seed=10 + d)
    lo, hi = bounds(pop)
    eta = 0.35 if d == 3 else 0.12
    monkeypatch.setattr(_paths, "_numba", lambda: True)
    import numba

    old = numba.get_num_threads()
    numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
    try:
        got = _paths.fft_rows(np, pop, lo, hi, eta, order)
    finally:
        numba.set_num_threads(old)
    floor = _paths.floor_term(np, pop, got) if dv else None
    monkeypatch.setattr(_paths, "_numba", lambda: False)
    want = _paths.fft_rows(np, pop, lo, hi, eta, order)
    scale = pop.total_w
    np.testing.assert_allclose(got.b, want.b, rtol=0, atol=1e-12 * scale)
    np.testing.assert_allclose(got.a, want.a, rtol=0, atol=1e-12 * scale * (1 + pop.vmax))
    np.testing.assert_allclose(got.b_err, want.b_err, rtol=1e-10, atol=0)
    finite = np.isfinite(want.err)
    assert np.array_equal(finite, np.isfinite(got.err))
    np.testing.assert_allclose(got.err[finite], want.err[finite], rtol=1e-7, atol=1e-15)
    if dv:
        np.testing.assert_allclose(floor, _paths.floor_term(np, pop, got), rtol=1e-12, atol=0)


@pytest.mark.parametrize("dv", [0, 3])
def test_cutoff_finish_matches_generic(dv, monkeypatch):
    """_finish without envelope sums (the cut-off path's rows), per-row and scalar tails."""
    pop = pop_for(500, 2, dv, seed=3)
    rng = np.random.default_rng(5)
    b = rng.random(500) * 10.0
    b[:20] = 1e-9  # B below its error: +inf
    a = rng.standard_normal((500, dv)) * b[:, None]
    for tail in (rng.random(500) * 1e-3, 2e-4):
        got = _paths._finish(np, pop, a, b, tail)
        monkeypatch.setattr(_paths, "_numba", lambda: False)
        want = _paths._finish(np, pop, a, b, tail)
        monkeypatch.setattr(_paths, "_numba", lambda: True)
        np.testing.assert_allclose(got.b_err, want.b_err, rtol=1e-15, atol=0)
        np.testing.assert_allclose(got.err, want.err, rtol=1e-13, atol=0)
        assert np.isinf(got.err[:20]).all()


def _child_rows(n):
    pop = pop_for(n, 2, 2, seed=4)
    lo, hi = bounds(pop)
    return _paths.fft_rows(np, pop, lo, hi, 0.12, 3).b


@pytest.mark.skipif(not hasattr(__import__("os"), "fork"), reason="needs fork")
def test_thread_pool_survives_fork():
    """A forked child has none of the parent's pool threads: it must not wait for them."""
    import multiprocessing

    want = _child_rows(20000)  # the parent's pool exists now
    _fastbin._run([(np.sum, (np.ones(3),))] * 2, 2)
    with multiprocessing.get_context("fork").Pool(1) as pool:
        got = pool.apply_async(_child_rows, (20000,)).get(timeout=120)
    np.testing.assert_array_equal(got, want)
