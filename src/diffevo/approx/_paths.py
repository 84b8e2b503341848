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
from ._fftgrid import FFTGrid, bin_points, gather_points

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
    b_low = xp.maximum(rows.b - rows.b_err, 1e-300)
    x0c = rows.a / xp.where(rows.b > 0, rows.b, 1.0)[:, None]
    dist = xp.sqrt(((x0c - pop.mean_w) ** 2).sum(axis=1)) + pop.target
    return rows.b_err / b_low * xp.minimum(1.0, EPS_FLOOR * pop.total_w / b_low) * dist


def fft_rows(xp, pop: Pop, lo, hi, eta: float, order: int) -> Rows:
    """The FFT path: interpolated sums and the envelope sums that bound their error."""
    grid = FFTGrid(lo, hi, pop.sigma, eta, order)
    qg, yg = grid.to_grid_units(pop.q, xp), grid.to_grid_units(pop.y, xp)
    w, vc = pop.w, pop.vc
    chans = xp.stack([w] + ([] if vc is None else [w * vc[:, c] for c in range(vc.shape[1])]))
    sums = gather_points(grid.convolve(bin_points(yg, chans, grid.shape, order, xp),
                                       grid.kernel_spectrum(xp), xp), qg, order, xp)
    # the bound's sums: nearest nodes of a grid ENV_COARSE times coarser, beta widened by
    # one of its cells -- upper bounds, at a quarter of the FFT work (d = 2)
    env_ch = chans[:1] if vc is None else xp.concatenate([chans, (w * (vc * vc).sum(axis=1))[None]])
    coarse = FFTGrid(lo, hi, pop.sigma, ENV_COARSE * eta, order)
    cq, cy = coarse.to_grid_units(pop.q, xp), coarse.to_grid_units(pop.y, xp)
    env = gather_points(coarse.convolve(bin_points(cy, env_ch, coarse.shape, 0, xp),
                                        coarse.envelope_spectrum(xp, eta), xp), cq, 0, xp)
    b, a = sums[0], sums[1:].T
    # FFT rounding: ~1e-13 of the largest grid value on every node; pairs past the cut
    noise = 1e-12 * pop.total_w
    tail = _bound.tail_bound(order, pop.q.shape[1], eta) * pop.total_w + noise
    p0 = xp.maximum(env[0], 0.0) + noise
    if vc is None:
        return _finish(xp, pop, a, b, tail, p0)
    p2 = xp.maximum(env[-1], 0.0) + noise * pop.vmax ** 2
    return _finish(xp, pop, a, b, tail, p0, env[1:-1].T, p2)


def cells_rows(pop: Pop, cells, rows=None, radius=None) -> Rows:
    """The cut-off path on the host, for all queries or only ``rows`` (radius per row)."""
    q = pop.q if rows is None else pop.q[rows]
    vv = pop.vc if pop.vc is not None else np.zeros((pop.w.shape[0], 0))
    a, b = cells.sums(q, pop.lw, vv, pop.inv2sigma2, radius)
    r = cells.radius if radius is None else radius
    eps = np.exp(-0.5 * (np.asarray(r) / pop.sigma) ** 2)  # kernel bound of a left-out key
    return _finish(np, pop, a, b, eps * pop.total_w)


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


def eps_cut(pop: Pop, nk: int) -> float:
    """The cut-off path's kernel bound: its tail eps W spread / B stays under a hundredth
    of the target for rows whose B is at least W / Nk (a member's own average share)."""
    spread = max(pop.vmax, 1e-300) if pop.vc is not None else 1.0
    return min(1e-6, max(0.01 * pop.target / (nk * spread), 1e-300))


def radius_for(sigma: float, eps: float) -> float:
    return sigma * math.sqrt(2.0 * math.log(1.0 / eps))
