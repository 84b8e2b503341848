"""``GridSums``: the pairwise sums in O(N + M log M), with a per-row error bound.

A backend object (the contract of :mod:`diffevo.backends`) that wraps an exact one.
For every call it picks, by estimated cost, one of

* ``'fft'``: bin the weighted keys onto a grid (interpolation weights of order 1 or 3),
  convolve with the Gaussian by FFT, interpolate at the queries (:mod:`._fftgrid`);
* ``'cells'``: a cut-off sum over neighbouring cells, exact within the cut-off
  (:mod:`._cells`; alpha near 1, where the kernel is narrow; host only);
* ``'exact'``: the wrapped backend, when neither is cheaper;

then bounds the x0 error of every row from the grid's own sums (:mod:`._bound`) and
recomputes the rows whose bound exceeds the tolerance with the wrapped backend.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np

from ..backends import Backend
from . import _bound, _fftgrid, _paths
from ._cells import REACH
from ._fftgrid import FFTGrid

#: seconds per unit of work, only used to choose the path: FFT per element per transform
#: (times log2 L / 20), scatter/gather per stencil entry per channel, cut-off pairs per
#: (1 + Dv / 2) plus a fixed cost per query and per key (table, ring, bound), exact pairs
#: per (d + Dv). Checked on a quiet machine (2 cores; N = 65,536 and 262,144, D = 2,
#: uniform weights, alpha 0.05 .. 0.999): the FFT estimates within 0.86-1.02 of the
#: measured 21-321 ms, the cut-off ones within 0.95-1.2 of 50-1,700 ms (the per-row term
#: is 40 of the 50 ms at alpha 0.999), the exact sums within 1.05 of 0.93 s.
_SEC_FFT = 3e-9
_SEC_SCATTER = 3e-9
_SEC_CELL_PAIR = 1.3e-10
_SEC_CELL_ROW = 3e-7
_SEC_EXACT_PAIR = 5.4e-11
#: no FFT grid above this many nodes, nor above _MAX_FFT_BYTES for all its channels
#: (complex spectra of 2 Dv + 3 channels at 16 bytes): at d = 3 the grid the bound asks
#: for is often 10^7..10^8 nodes, where the cut-off path or the exact sums are cheaper
_MAX_FFT_NODES = 1 << 23
_MAX_FFT_BYTES = 1 << 30

METHODS = ("auto", "fft", "cells", "exact")

#: failing rows of the FFT path below this count skip the cut-off rescue (see _sums)
_RESCUE_MIN = 64


def _xp(a):
    if type(a).__module__.split(".")[0] == "cupy":
        import cupy

        return cupy
    return np


class GridSums:
    """Approximate pairwise sums for d <= 3 distance dimensions, x0 error within ``tol``.

    Guarantee (both modes, every row): ``max_c |x0~_ic - x0_ic| <= tol * scale`` for
    ``x0 = A / B`` (what :func:`diffevo.x0_estimate` returns, its reference floors
    included), where ``scale`` is ``value_scale`` or the standard deviation of all
    entries of v (= x). With no values (Dv = 0, the KDE sums) the guarantee is on B:
    ``|B~_i - B_i| <= tol / 2 * B_i``, so the normalised density is within ``tol``.

    Grid sizing: node spacing ``h = eta * sigma`` (sigma^2 = 1 / (2 inv2sigma2) = 1 - alpha),
    ``eta = min(0.5, (tol * scale / (4 * c_p * spread)) ** (1 / (p + 1)))``, where p is
    the interpolation order, ``spread`` the root of the summed variances of v and
    ``c_p = 2 C_p Lam_p^(2d-1) d I_p / sqrt(2 pi)`` the interpolation error constant
    (:func:`diffevo.approx._bound.spacing`; cubic p = 3 at tol = 1e-3, d = 2, D = 2:
    eta ~ 0.15). The grid spans the queries and the scaled keys ``sqrt(alpha) k``, so its
    node count is about ``(extent / (eta sigma))^d``: small at small alpha; at alpha
    near 1 the cut-off path is cheaper: exact sums within ``R = u sigma`` (u ~ 5 at
    tol = 1e-3: :func:`diffevo.approx._paths.cut_radius`), the weight left out bounded per
    row by the ring of cells around the ball (:mod:`diffevo.approx._cells`).

    Rows whose bound fails -- far from all weight (B too small for the grid's absolute
    error), or where the local spread of v is unusually large -- are recomputed by
    cut-off sums with a radius of their own, and what still fails by ``base``.

    Args:
        base: the exact backend (module or object) honouring the contract.
        tol: target error in units of ``scale`` (> 0).
        value_scale: the unit of ``tol``; default: std of v per call.
        order: 3 (cubic Lagrange, default) or 1 (linear binning and interpolation;
            needs a much finer grid for the same tol).
        method: ``'auto'`` (by cost), or force ``'fft'``, ``'cells'`` or ``'exact'``
            (a forced ``'fft'`` whose grid would exceed the memory cap chooses as 'auto'
            among the others).
    """

    def __init__(self, base: Any, tol: float = 1e-3, value_scale: float | None = None,
                 order: int = 3, method: str = "auto"):
        if not callable(getattr(base, "pairwise_sums", None)) or getattr(base, "DEVICE", None) not in (
                "cpu", "cuda"):
            raise TypeError("base must be a backend with DEVICE ('cpu'/'cuda') and pairwise_sums")
        # the resolved form (diffevo.backends.Backend) takes 2-D or batched inputs
        self.base = base if isinstance(base, Backend) else Backend(base, _name(base))
        self.tol = _positive(tol, "tol")
        self.value_scale = None if value_scale is None else _positive(value_scale, "value_scale")
        if order not in (1, 3):
            raise ValueError(f"order must be 1 or 3; got {order!r}")
        if method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}; got {method!r}")
        if method == "cells" and base.DEVICE != "cpu":
            raise ValueError("method='cells' runs on the host only")
        self.order = order
        self.method = method
        self.DEVICE = base.DEVICE
        self.PATHS = self.base.paths  # the path is the exact rows' (fallback) kernel path
        self.name = f"grid({self.base.name})"
        #: the last call's path and how many rows fell back (reports and tests)
        self.last: dict = {}

    def is_available(self) -> bool:
        return True

    def pairwise_sums(self, q, k, v, logc, s, inv2sigma2, online_max, *, path: str = "auto"):
        """See :mod:`diffevo.backends` (2-D or batched 3-D arrays); ``path`` is passed to
        the wrapped backend for the rows it computes.

        With ``online_max`` the rows computed on the grid return ``M_i = log`` of the
        row's total weight and ``B_i = 1`` (the exact rows: the row maximum): either way
        ``exp(M) * (A, B)`` are the sums and B never underflows, which is what callers use.
        """
        if q.shape[-1] > 3:
            raise ValueError(f"approx='grid' needs d <= 3 distance dimensions; got d = {q.shape[-1]} "
                             "(use latent= with a low-dimensional code, or approx=None)")
        if q.ndim == 3:
            xp = _xp(q)
            parts = [self._sums(*a, s, inv2sigma2, online_max, path) for a in zip(q, k, v, logc)]
            return tuple(xp.stack(p) for p in zip(*parts))
        return self._sums(q, k, v, logc, s, inv2sigma2, online_max, path)

    # ------------------------------------------------------------------ one population
    def _sums(self, q, k, v, logc, s, inv2sigma2, online_max, path):
        xp = _xp(q)
        nq, d = q.shape
        nk, dv = v.shape
        lc = logc.astype(xp.float64)
        finite = xp.isfinite(lc)
        if nk == 0 or nq == 0 or not bool(finite.any()):
            self.last = {"method": "exact", "fallback": nq}
            return self.base.pairwise_sums(q, k, v, logc, s, inv2sigma2, online_max, path=path)
        pop, shift, vbar = self._prepare(xp, q, k, v, lc, finite, s, inv2sigma2)
        spread = pop.spread
        if _same(v, k):
            # values = keys: a row's kernel covers about sigma / s of them per axis, so its
            # weighted spread is at most ~2 sqrt(d) sigma / s (alpha near 1: far below the
            # population's); rows where it is not fail their bound and are rescued
            spread = min(spread, 2.0 * math.sqrt(d) * pop.sigma / max(s, 1e-300))
        eta = _bound.spacing(self.order, d, pop.target, spread)
        lo, hi = _extent(xp, pop.q, pop.y)
        radius = _paths.cut_radius(pop)
        method = self._choose(xp, pop, lo, hi, eta, radius, d, dv, nq, nk)
        self.last = {"method": method, "eta": eta, "fallback": nq, "rescued": 0}
        if method == "exact":
            return self.base.pairwise_sums(q, k, v, logc, s, inv2sigma2, online_max, path=path)
        cells = None
        if method == "fft":
            rows = _paths.fft_rows(xp, pop, lo, hi, eta, self.order)
        else:
            cells = _paths.cells_for(pop, radius)
            rows = _paths.cells_rows(pop, cells, outer=_paths.ring_outer(pop, radius, cells.side))
        bad = self._failing(xp, pop, rows, online_max)
        nbad = int(bad.sum())
        if method == "fft" and nbad > _RESCUE_MIN and self._refine_pays(pop, lo, hi, eta, bad, radius):
            self.last["refined"] = self._refine(xp, pop, rows, bad, lo, hi, eta, online_max)
            nbad = int(bad.sum())
        if xp is np and nbad and (cells is not None or nbad > _RESCUE_MIN):
            # rows the bound rejects (a handful go to the exact sums directly: a cell
            # table costs a sort); see _rescue
            cells = cells or _paths.cells_for(pop, radius)
            self.last["rescued"] = self._rescue(pop, rows, bad, cells, online_max)
        return self._assemble(xp, rows, bad, vbar, shift, online_max, q, k, v, logc, s,
                              inv2sigma2, path)

    def _refine_pays(self, pop, lo, hi, eta, bad, radius) -> bool:
        """Whether a twice-finer grid is estimated cheaper than the failing rows' cut-off
        sums (their keys within the radius, estimated on a sample of them)."""
        d, dv = pop.q.shape[1], 0 if pop.vc is None else pop.vc.shape[1]
        nk, nbad = pop.y.shape[0], int(bad.sum())
        refine = self._fft_cost(pop, lo, hi, eta / 2.0, d, dv, nk + nbad)
        if math.isinf(refine):
            return False
        rows = _host(pop.q[bad.nonzero()[0]])
        pairs = _paths.sample_pairs(rows, _host(pop.y), radius, REACH)
        # the rescue may take two passes (the ring widened, then the radius)
        return refine < 2.0 * _cells_cost(pairs, dv, nbad)

    def _refine(self, xp, pop, rows, bad, lo, hi, eta, online_max) -> int:
        """The failing rows of the FFT path again on a grid twice as fine, in place (when
        its FFT stays under the caps); returns how many passed.

        The rows a grid's bound rejects in numbers sit in the tails of the weight (a
        peaked fitness: B made of far, heavy members' kernel tails, where the
        interpolation bound is loose); halving the spacing divides that bound by ~50
        (eta^4 and the stencil's slack) for 4^d times the FFT work, while their cut-off
        sums reach many members each (N = 65,536, alpha 0.95, two peaks of width 0.22:
        13,000 rows, 0.3 s of cut-off sums)."""
        fine = eta / 2.0
        if FFTGrid.cost(lo, hi, pop.sigma, fine, self.order)[1] > _MAX_FFT_NODES:
            return 0
        idx = xp.nonzero(bad)[0]
        part = dataclasses.replace(pop, q=pop.q[idx])  # the failing rows' queries only
        again = _paths.fft_rows(xp, part, lo, hi, fine, self.order)
        fixed = ~self._failing(xp, part, again, online_max)
        for name in ("a", "b", "err", "b_err"):
            getattr(rows, name)[idx[fixed]] = getattr(again, name)[fixed]
        bad[idx[fixed]] = False
        return int(fixed.sum())

    def _rescue(self, pop, rows, bad, cells, online_max) -> int:
        """Recompute the failing rows by cut-off sums, in place; returns how many passed.

        These rows are far from most of the weight (B small beside the grid's absolute
        error or the tail beyond one ring of cells), which is where a cut-off sum is
        cheap. The radius whose global tail W exp(-R^2 / 2 sigma^2) meets the row's
        target (:func:`._paths.rescue_radius`) first bounds only the ring (at most to
        1e-18 of the kernel), the sums stopping at the table's radius; rows that still fail
        are summed out to that radius; the rest go to the exact backend."""
        before = int(bad.sum())
        for stage in range(2):
            idx = np.nonzero(bad)[0]
            if not idx.size:
                break
            far = _paths.rescue_radius(pop, rows, bad)
            if stage == 0:  # the table's radius, the ring out to where it pays
                inner = np.minimum(far, cells.radius)
                outer = np.minimum(far, max(_paths.wide_ring(pop), cells.radius))
            else:
                inner = outer = far
            again = _paths.cells_rows(pop, cells, idx, inner, outer)
            fixed = ~self._failing(np, pop, again, online_max)
            for name in ("a", "b", "err", "b_err"):
                getattr(rows, name)[idx[fixed]] = getattr(again, name)[fixed]
            bad[idx[fixed]] = False
        return before - int(bad.sum())

    def _prepare(self, xp, q, k, v, lc, finite, s, inv2sigma2):
        """(the call's float64 Pop, the weights' shift, mean(v))."""
        if xp is np and _fftgrid._numba():  # one Numba pass: 2.4 -> 0.7 ms at N = 65k
            return self._prepare_host(q, k, v, lc, s, inv2sigma2)
        shift = float(lc[finite].max())
        lw = xp.where(finite, lc - shift, -xp.inf)
        w = xp.exp(lw)
        total_w = float(w.sum())
        v64 = v.astype(xp.float64, copy=False)
        dv = v.shape[1]
        if dv:
            vbar = v64.mean(axis=0)
            vc = v64 - vbar
            sq = (vc * vc).sum(axis=1)
            scale = self.value_scale or float(v64.std())
            target = self.tol * max(scale, 1e-12 * (float(xp.abs(v64).max()) + 1.0))
            pop = _paths.Pop(q.astype(xp.float64, copy=False), k.astype(xp.float64) * s, w, lw, vc,
                             math.sqrt(0.5 / inv2sigma2), inv2sigma2, total_w,
                             float(xp.sqrt(sq.max())), target, (w @ vc) / total_w,
                             math.sqrt(float(sq.mean())))
        else:
            vbar = None
            pop = _paths.Pop(q.astype(xp.float64, copy=False), k.astype(xp.float64) * s, w, lw, None,
                             math.sqrt(0.5 / inv2sigma2), inv2sigma2, total_w, 0.0, 0.5 * self.tol,
                             None)
        return pop, shift, vbar

    def _prepare_host(self, q, k, v, lc, s, inv2sigma2):
        from ._fastbin import prepare

        shift, lw, w, total_w, y, vbar, vc, sq_max, sq_mean, std, vabs, wvc = prepare(lc, k, v, s)
        dv = v.shape[1]
        target = self.tol * max(self.value_scale or std, 1e-12 * (vabs + 1.0)) if dv else 0.5 * self.tol
        pop = _paths.Pop(q.astype(np.float64, copy=False), y, w, lw, vc if dv else None,
                         math.sqrt(0.5 / inv2sigma2), inv2sigma2, total_w, math.sqrt(sq_max), target,
                         wvc / total_w if dv else None, math.sqrt(sq_mean) if dv else 1.0)
        return pop, shift, (vbar if dv else None)

    def _failing(self, xp, pop, rows, online_max):
        """Rows whose bound misses the target (reference mode: the floors' share included)."""
        err = rows.err
        if pop.vc is not None and not online_max:
            err = err + _paths.floor_term(xp, pop, rows)
        return ~(err <= pop.target)

    def _assemble(self, xp, rows, bad, vbar, shift, online_max, q, k, v, logc, s, inv2sigma2, path):
        """(A, B, M) in q's dtype: grid rows as the contract wants them, the rest exact."""
        a, b = rows.a, rows.b
        if vbar is not None:
            a = a + vbar * b[:, None]  # the grid summed the centred values
        m = xp.full(b.shape[0], shift, dtype=xp.float64)
        if online_max:
            good_b = xp.where(bad, 1.0, b)
            m = m + xp.log(good_b)
            a = a / good_b[:, None]
            b = xp.where(bad, b, 1.0)
        dtype = q.dtype
        a, b, m = a.astype(dtype), b.astype(dtype), m.astype(dtype)
        idx = xp.nonzero(bad)[0]
        self.last["fallback"] = int(idx.size)
        ok = rows.err[~bad]
        self.last["max_bound"] = float(ok.max()) if ok.size else 0.0
        if idx.size:
            ea, eb, em = self.base.pairwise_sums(xp.ascontiguousarray(q[idx]), k, v, logc, s,
                                                 inv2sigma2, online_max, path=path)
            a[idx], b[idx], m[idx] = ea, eb, em
        return a, b, m

    def _fft_cost(self, pop, lo, hi, eta, d, dv, points):
        """Seconds the FFT path would take (inf above the caps): the transforms, and the
        binning / interpolation of ``points`` keys and queries."""
        _, fft_len = FFTGrid.cost(lo, hi, pop.sigma, eta, self.order)
        if fft_len > min(_MAX_FFT_NODES, _MAX_FFT_BYTES // (16 * (2 * dv + 3))):
            return math.inf
        return (_SEC_FFT * fft_len * max(math.log2(fft_len), 1.0) / 20.0 * 2 * (2 * dv + 3)
                + _SEC_SCATTER * points * ((self.order + 1) ** d * (dv + 1) + dv + 2))

    def _choose(self, xp, pop, lo, hi, eta, radius, d, dv, nq, nk):
        """'fft', 'cells' or 'exact': forced, or the cheapest by the cost model."""
        if self.method == "exact":
            return "exact"
        fft_cost = self._fft_cost(pop, lo, hi, eta, d, dv, nq + nk)
        too_big = math.isinf(fft_cost)
        exact_cost = _SEC_EXACT_PAIR * nq * nk * (d + dv)
        if (self.method == "fft" and not too_big) or (self.DEVICE != "cpu" and self.method == "auto"):
            return "fft" if (self.method == "fft" or fft_cost < exact_cost) else "exact"
        if self.method == "cells":
            return "cells"
        # the cut-off path's pairs, estimated on a sample before any cell table is built
        pairs = _paths.sample_pairs(_host(pop.q), _host(pop.y), radius, REACH)
        costs = {"exact": exact_cost, "fft": fft_cost,
                 "cells": _cells_cost(pairs, dv, nq + nk)}
        return min(costs, key=costs.get)


def _cells_cost(pairs: float, dv: int, rows: int) -> float:
    """Seconds of a cut-off pass over ``pairs`` pairs and ``rows`` queries and keys."""
    return _SEC_CELL_PAIR * pairs * (1.0 + dv / 2.0) + _SEC_CELL_ROW * rows


def _extent(xp, *points):
    """(lo (d,), hi (d,)) over all the point sets, on the host: column by column, since
    numpy's min(axis=0) of an (N, 2) array is 70x slower than of its columns (1.5 ms)."""
    d = points[0].shape[1]
    lo = [min(float(p[:, c].min()) for p in points) for c in range(d)]
    hi = [max(float(p[:, c].max()) for p in points) for c in range(d)]
    return np.array(lo), np.array(hi)


def _same(a, b) -> bool:
    """Whether two arrays are views of the same memory with one shape (v is k)."""
    if a.shape != b.shape or a.dtype != b.dtype:
        return False
    ptr = (lambda x: x.__array_interface__["data"][0]) if isinstance(a, np.ndarray) else \
        (lambda x: x.data.ptr)
    return ptr(a) == ptr(b)


def _name(impl) -> str:
    name = getattr(impl, "name", None) or getattr(impl, "__name__", type(impl).__name__)
    return str(name).rsplit(".", 1)[-1].removesuffix("_backend")


def _host(a):
    get = getattr(a, "get", None)
    return np.asarray(get() if callable(get) else a, dtype=np.float64)


def _positive(value, name):
    try:
        out = float(value)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be a positive number; got {value!r}") from None
    if not math.isfinite(out) or out <= 0:
        raise ValueError(f"{name} must be a positive finite number; got {value!r}")
    return out
