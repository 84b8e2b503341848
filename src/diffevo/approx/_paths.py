"""The three ways GridSums computes rows, each with its per-row error bound.

Every path returns a :class:`Rows`: the sums over the centred values (A~ over
v - mean(v), B~), an upper bound of each row's x0 error (of B's relative error when
there are no values) and a lower bound of the true B (for the rescue's radius and the
reference floors). Inputs are float64; ``w`` are the weights exp(logc - max logc).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from . import _bound
from ._fftgrid import FFTGrid, _numba, bin_points, gather_points

#: the reference floor of diffevo.core (SPEC section 3): see :func:`floor_term`
EPS_FLOOR = 1e-9

#: the envelope grid's spacing over the interpolation grid's
ENV_COARSE = 2

#: the rescue pass sums every key with a kernel value above this (float64 underflow):
#: beyond it the cut-off is the exact sum
EPS_FLOOR_KERNEL = 1e-300


@dataclass
class Pop:
    """One population's call, prepared once (float64, on the arrays' device)."""

    q: Any            # (Nq, d) queries
    y: Any            # (Nk, d) scaled keys s * k
    w: Any            # (Nk,) weights <= 1
    lw: Any           # (Nk,) log-weights (-inf allowed)
    vc: Any           # (Nk, Dv) centred values, or None when Dv = 0
    sigma: float
    inv2sigma2: float
    total_w: float
    vmax: float       # max_j |vc_j|
    target: float     # the bound every row must meet
    mean_w: Any       # (Dv,) weighted mean of vc (the floors pull x0 towards it), or None
    spread: float = 1.0  # root of the summed variances of v (the grid spacing's rule)


@dataclass
class Rows:
    a: Any            # (Nq, Dv) sums over the centred values
    b: Any            # (Nq,)
    err: Any          # (Nq,) error bound (x0, or B's relative error when Dv = 0)
    b_err: Any        # (Nq,) bound of |B~ - B|


def _finish(xp, pop: Pop, a, b, tail_w, p0=None, p1=None, p2=None) -> Rows:
    """Rows from the sums and bounds (:func:`_bound.row_errors`); +inf where B~ <= its error.

    tail_w: per-pair bound of the pairs the sums leave out, times sum_j w_j (scalar or
    per row); p0, p1, p2: the envelope sums of the FFT path (None: the sums are exact
    within the cut-off).
    """
    if xp is np and p0 is None and _numba():  # the cut-off path's rows: one pass
        from ._fastbin import finish_rows

        tail = np.ascontiguousarray(np.broadcast_to(np.asarray(tail_w, dtype=np.float64), b.shape))
        vv = a if pop.vc is not None else np.zeros((b.shape[0], 0))
        err, b_err = finish_rows(vv, b, tail, float(pop.vmax), pop.vc is not None)
        return Rows(a, b, err, b_err)
    b_err = tail_w + (0.0 if p0 is None else p0) + xp.zeros_like(b)
    if pop.vc is None:
        den = b - b_err
        with np.errstate(divide="ignore", invalid="ignore"):
            err = xp.where(den > 0, b_err / den, xp.inf)
        return Rows(a, b, err, b_err)
    x0c = a / xp.where(b > 0, b, 1.0)[:, None]
    zero = xp.zeros_like(b)
    err = _bound.row_errors(b, zero if p0 is None else p0, xp.zeros_like(a) if p1 is None else p1,
                            zero if p2 is None else p2, x0c, pop.vmax, tail_w)
    return Rows(a, b, err, b_err)


def floor_term(xp, pop: Pop, rows: Rows):
    """The extra x0 error the reference floors can add, per row.

    core adds b_f = EPS sum_j w_j to B (and EPS sum_j w_j v_j to A), so its x0 is
    lam x0 + (1 - lam) F with lam = B / (B + b_f) and F the weighted mean; lam~ - lam =
    (dB / B) lam (1 - lam~), so the floors add at most |dB| / B * min(1, b_f / B) * |x0 - F|.
    (core's density term EPS (p + EPS) / c_max is left out: it matters only when every
    fitness is ~0, and then b_f / B is ~1e-9 anyway.)
    """
    if xp is np and _numba():
        from ._fastbin import floor_rows

        return floor_rows(rows.a, rows.b, rows.b_err, np.asarray(pop.mean_w, dtype=np.float64),
                          float(pop.target), EPS_FLOOR * pop.total_w)
    b_low = xp.maximum(rows.b - rows.b_err, 1e-300)
    x0c = rows.a / xp.where(rows.b > 0, rows.b, 1.0)[:, None]
    dist = xp.sqrt(((x0c - pop.mean_w) ** 2).sum(axis=1)) + pop.target
    return rows.b_err / b_low * xp.minimum(1.0, EPS_FLOOR * pop.total_w / b_low) * dist


def fft_rows(xp, pop: Pop, lo, hi, eta: float, order: int) -> Rows:
    """The FFT path: interpolated sums and the envelope sums that bound their error."""
    grid = FFTGrid(lo, hi, pop.sigma, eta, order)
    # the bound's sums: nearest nodes of a grid ENV_COARSE times coarser, beta widened by
    # one of its cells -- upper bounds, at a quarter of the FFT work (d = 2)
    coarse = FFTGrid(lo, hi, pop.sigma, ENV_COARSE * eta, order)
    # pairs past the kernel's cut (the FFT's rounding is added once the grid is binned)
    tail = _bound.tail_bound(order, pop.q.shape[1], eta) * pop.total_w
    if xp is np and _numba():
        return _fft_rows_host(pop, grid, coarse, eta, order, tail)
    qg, yg = grid.to_grid_units(pop.q, xp), grid.to_grid_units(pop.y, xp)
    w, vc = pop.w, pop.vc
    chans = xp.stack([w] + ([] if vc is None else [w * vc[:, c] for c in range(vc.shape[1])]))
    binned = bin_points(yg, chans, grid.shape, order, xp)
    noise = fft_noise(xp, binned, grid, pop.vmax)
    tail = tail + noise
    sums = gather_points(grid.convolve(binned, grid.kernel_spectrum(xp), xp), qg, order, xp)
    env_ch = chans[:1] if vc is None else xp.concatenate([chans, (w * (vc * vc).sum(axis=1))[None]])
    cq, cy = coarse.to_grid_units(pop.q, xp), coarse.to_grid_units(pop.y, xp)
    env = gather_points(coarse.convolve(bin_points(cy, env_ch, coarse.shape, 0, xp),
                                        coarse.envelope_spectrum(xp, eta), xp), cq, 0, xp)
    b, a = sums[0], sums[1:].T
    p0 = xp.maximum(env[0], 0.0) + noise
    if vc is None:
        return _finish(xp, pop, a, b, tail, p0)
    p2 = xp.maximum(env[-1], 0.0) + noise * pop.vmax ** 2
    return _finish(xp, pop, a, b, tail, p0, env[1:-1].T, p2)


#: the FFT convolution's rounding, per node: FFT_NOISE eps log2(L) ||g||_2 max|K^| for a
#: binned grid g (the form of the FFT's normwise error bounds, Higham ch. 24). Measured
#: against a direct (separable) convolution, 600 x 600 nodes, two peaks on a 1e-9 floor:
#: the largest error was 0.0027 of this with FFT_NOISE = 1 (1.9e-16 of the total weight;
#: the fixed 1e-12 W this replaces was 5,000x the error and failed every row with
#: B < 1e-8 W, the outskirts of a peaked fitness)
FFT_NOISE = 1.0


def fft_noise(xp, binned, grid, vmax: float) -> float:
    """The absolute rounding bound of the convolved B channel (and of each value channel
    over vmax): binned is (C, *shape), channel 0 the weights."""
    flat = binned.reshape(binned.shape[0], -1)
    norms = xp.sqrt((flat * flat).sum(axis=1))
    norm = float(norms[0])
    if flat.shape[0] > 1:
        norm = max(norm, float(norms[1:].max()) / max(vmax, 1e-300))
    length = float(np.prod(grid.fft_shape))
    kmax = float(grid.kernel_spectrum(np, real=True).max())  # K >= 0: its sum, at frequency 0
    return FFT_NOISE * float(np.finfo(np.float64).eps) * max(math.log2(length), 1.0) * kmax * norm + 1e-300


def _fft_rows_host(pop: Pop, grid, coarse, eta, order, tail) -> Rows:
    """fft_rows with the kernels of :mod:`._fastbin`: one pass over the keys bins both
    grids, the FFTs skip the padding (:meth:`FFTGrid.convolve_host`), one pass over the
    queries interpolates both and finishes the bound -- the same sums and bounds as the
    generic code, to rounding (tests/approx/test_fft_host.py). The whole call at N = 65,536,
    D = 2 (2 shared cores, before/after in one run): alpha 0.05 and 0.5 65-70 -> 25-30 ms,
    alpha 0.95 85-92 -> 42-47 ms; of the 45 ms, FFTs ~13, scatter 4-7, gather 3-5."""
    import numba

    from . import _fastbin

    vc = pop.vc if pop.vc is not None else np.zeros((pop.w.shape[0], 0))
    dv = vc.shape[1]
    fine = grid.host_grids(dv + 1)
    env = coarse.host_grids(1 if pop.vc is None else dv + 2)
    (fo, fs), (co, cs) = grid.geometry(), coarse.geometry()
    threads = numba.get_num_threads()
    # bands of rows two apart share no node if the band between them is >= 3 rows (the
    # cubic stencil reaches 1 row below and 2 above) and wider than one coarse cell
    width = max(4, math.ceil(coarse.h / grid.h) + 1)
    _fastbin.scatter(pop.y, pop.w, vc, fo, grid.h, fs, order, _as4(fine), co, coarse.h, cs,
                     _as4(env), threads, width)
    noise = fft_noise(np, fine, grid, pop.vmax)  # (the padding is zeros)
    tail = tail + noise
    fine = grid.convolve_host(fine, grid.kernel_spectrum(np, real=True))
    env = coarse.convolve_host(env, coarse.envelope_spectrum(np, eta, real=True))
    a, b, err, b_err = _fastbin.gather_rows(pop.q, fo, grid.h, fs, order, _as4(fine), co, coarse.h,
                                            cs, _as4(env), tail, noise, float(pop.vmax), threads)
    return Rows(a, b, err, b_err)


def _as4(g):
    """A (C, *grid) array as the (C, n_0, n_1, n_2) view the kernels index."""
    return g.reshape(g.shape + (1,) * (4 - g.ndim))


def cells_rows(pop: Pop, cells, rows=None, radius=None, outer=None) -> Rows:
    """The cut-off path on the host, for all queries or only ``rows`` (radius and ring's
    outer radius per row); the part left out is bounded per row by the ring of cells
    around the ball (:mod:`._cells`)."""
    q = pop.q if rows is None else pop.q[rows]
    a, b, tail = cells.sums(q, pop.inv2sigma2, radius, outer)
    return _finish(np, pop, a, b, tail)


def cells_for(pop: Pop, radius: float):
    """The cell table of the call's keys, weights and values (host arrays)."""
    from ._cells import Cells

    vv = pop.vc if pop.vc is not None else np.zeros((pop.w.shape[0], 0))
    return Cells(np.asarray(pop.y), radius, np.asarray(pop.lw), np.asarray(vv))


#: the cut-off path rings every row out to 1e-18 (9.1 sigma) when more than this share of
#: the weights is below 1e-6 of the largest; else one cell beyond the ball, and the rows
#: that fail get the wide ring in the rescue (N = 65,536, alpha 0.999: uniform weights and
#: the two-peak 0.5 fitness (20 % of them light) 10-20 % faster with the narrow ring, the
#: two-peak 0.1 fitness (65 % light, as many rows failing) 3x slower)
WIDE_RING_SHARE = 0.3


def ring_outer(pop: Pop, radius: float, side: float) -> float:
    """The ring's outer radius for the cut-off path's first pass: beyond it the tail is
    bounded by W exp(-R_out^2 / 2 sigma^2), far above a light row's own weight when most
    weights are light; see WIDE_RING_SHARE."""
    w = pop.w[:: max(1, pop.w.shape[0] // 8192)]
    if float((w < 1e-6 * float(w.max())).mean()) > WIDE_RING_SHARE:
        return max(radius + side, wide_ring(pop))
    return radius + side


def wide_ring(pop: Pop) -> float:
    """Where the kernel is 1e-18 of its peak: beyond it the weight left out is < 1e-18 W."""
    return radius_for(pop.sigma, 1e-18)


def radius_for(sigma: float, eps: float) -> float:
    return sigma * math.sqrt(2.0 * math.log(1.0 / eps))


def rescue_radius(pop: Pop, rows: Rows, bad) -> np.ndarray:
    """Per failing row, the cut-off radius whose tail meets the target given B's lower bound:
    eps W spread / B_low <= target / 2, at most where the kernel underflows (exact then)."""
    b_low = np.maximum(rows.b[bad] - rows.b_err[bad], 0.0)
    if pop.vc is None:
        need = 0.25 * pop.target * b_low / pop.total_w
    else:
        x0c = rows.a[bad] / np.where(rows.b[bad] > 0, rows.b[bad], 1.0)[:, None]
        spread = np.sqrt((x0c * x0c).sum(axis=1)) + pop.vmax + 1e-300
        need = 0.5 * pop.target * b_low / (pop.total_w * spread)
    eps = np.clip(need, EPS_FLOOR_KERNEL, 1e-6)
    return pop.sigma * np.sqrt(2.0 * np.log(1.0 / eps))


def sample_pairs(q, y, radius, reach: int, sample: int = 128) -> float:
    """Estimated pairs the cut-off path visits: queries times keys within the radius and
    about half a cell more (the cells the ball touches)."""
    rng = np.random.default_rng(0)  # fixed: the path choice must not depend on a global state
    qs = q[rng.integers(0, q.shape[0], min(sample, q.shape[0]))]
    ys = y[rng.integers(0, y.shape[0], min(8 * sample, y.shape[0]))]
    reach_ = radius * (1.0 + 0.5 / reach)
    inside = (((qs[:, None, :] - ys[None, :, :]) ** 2).sum(axis=2) <= reach_ * reach_)
    return float(inside.mean()) * q.shape[0] * y.shape[0] + q.shape[0]


def cut_radius(pop: Pop) -> float:
    """The cut-off path's radius: a row's tail is about the weight of the ring of cells
    just outside its ball, ~ B u^2 / REACH times the kernel there (u = R / sigma, cells
    of side R / REACH, a smooth density), and its x0 error that times the values'
    spread (<= 2 max|v|): R is the smallest u sigma at which that is a quarter of the
    target. Rows where the weight varies faster fail their bound and are recomputed
    (:func:`rescue_radius`)."""
    spread = 2.0 * max(pop.vmax, 1e-300) if pop.vc is not None else 1.0
    need = 0.25 * pop.target / spread
    u = 2.0
    while u < 38.0 and math.exp(-0.5 * u * u) * u * u / 3.0 > need:
        u += 0.05
    return u * pop.sigma

