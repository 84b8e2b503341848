"""The cut-off path for narrow kernels: cell lists, exact within the cut-off radius.

Keys are sorted into cubic cells of side >= R / REACH; a query visits every cell that
the ball of radius R around it touches, so every key within R of it is summed exactly
(keys a little further, in the visited cells, are summed too -- that only helps).
A key left out is further than R, so its kernel value is below exp(-R^2 / (2 sigma^2)).
Coordinates are padded to 3 (a missing axis has one cell), so one kernel serves d <= 3.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from ..backends._fastexp import FASTMATH, LOG2E, exp2

#: cells of side R / REACH: the cells a ball of radius R touches cover about
#: pi R^2 + 4 R^2 / REACH (d = 2) instead of the (3 R)^2 of cells of side R
REACH = 3
#: queries per parallel block (one scratch row each)
_BLOCK = 64
#: at most this many cells (times the key count): the cell table is O(N) memory
_CELLS_PER_KEY = 4


class Cells:
    """Keys sorted into cells: built once per call, queried by :meth:`sums`."""

    def __init__(self, y: np.ndarray, radius: float):
        nk, d = y.shape
        self.radius = radius
        lo = y.min(axis=0) if nk else np.zeros(d)
        hi = y.max(axis=0) if nk else np.zeros(d)
        side = radius / REACH
        extent = np.maximum(hi - lo, 0.0)
        # never more than _CELLS_PER_KEY * N cells: widen them if the keys spread far
        budget = max(_CELLS_PER_KEY * nk, 64)
        while np.prod(np.floor(extent / side) + 1) > budget:
            side *= 1.5
        self.side = side
        self.lo = np.zeros(3)
        self.lo[:d] = lo
        ncell = np.ones(3, dtype=np.int64)
        ncell[:d] = (np.floor(extent / side) + 1).astype(np.int64)
        self.ncell = ncell
        y3 = np.zeros((nk, 3))
        y3[:, :d] = y
        cid = _cell_ids(y3, self.lo, side, ncell)
        self.order = np.argsort(cid, kind="stable")
        self.yt = np.ascontiguousarray(y3[self.order].T)  # (3, Nk): one row per axis
        counts = np.bincount(cid, minlength=int(np.prod(ncell)))
        self.start = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)

    def _pad(self, q):
        q3 = np.zeros((q.shape[0], 3))
        q3[:, : q.shape[1]] = q
        return q3

    def _radii(self, nq, radius):
        if radius is None:
            return np.full(nq, self.radius)
        return np.ascontiguousarray(radius, dtype=np.float64)

    def sums(self, q, lw, v, inv2sigma2, radius=None):
        """(A (Nq, Dv), B (Nq,)): sums over the visited keys of exp(lw_j - |q - y_j|^2 inv2) (1, v_j).

        lw (Nk,) are the log-weights (already shifted to <= 0), v (Nk, Dv); float64.
        radius: None (the table's) or (Nq,) per-row cut-off radii (the rescue pass).
        """
        lw2 = np.ascontiguousarray(lw[self.order] * LOG2E)
        vt = np.ascontiguousarray(v[self.order].T)
        q3 = self._pad(q)
        rows = np.argsort(_cell_ids(q3, self.lo, self.side, self.ncell), kind="stable")
        return _sums(q3, self.yt, lw2, vt, inv2sigma2 * LOG2E, self.lo, self.side,
                     self.ncell, self._radii(q.shape[0], radius), self.start, rows)


def _cell_ids(p3, lo, side, ncell):
    idx = np.clip(np.floor((p3 - lo) / side).astype(np.int64), 0, ncell - 1)
    return (idx[:, 2] * ncell[1] + idx[:, 1]) * ncell[0] + idx[:, 0]


@njit(cache=True, inline="always")
def _span(x, r, lo, side, n):
    """Cells [first, last] (clipped to [0, n)) that the interval [x - r, x + r] touches."""
    return (max(math.floor((x - r - lo) / side), 0),  # numba: floor of a float is an int64
            min(math.floor((x + r - lo) / side), n - 1))


@njit(cache=True, inline="always")
def _gap(x, c, lo, side):
    """Distance from x to cell c's slab [lo + c side, lo + (c + 1) side] (0 inside)."""
    a = lo + c * side
    return max(a - x, x - a - side, 0.0)


@njit(cache=True, parallel=True, fastmath=FASTMATH)
def _sums(q, y, lw2, vt, inv2, lo, side, ncell, radius_rows, start, rows):
    """Per query: for each visited row of cells, the weights of its contiguous key range
    into a scratch row (one vector loop: exp2 is plain arithmetic), then one reduction
    per channel. ``rows`` is the query order (sorted by cell: neighbours share keys in
    cache); queries go in blocks of _BLOCK, one scratch row per block.

    Visited: the cells that the ball of radius R around the query touches (rows of cells
    by their distance to the query, then the x-span of the ball's chord), so a key left
    out is further than R from the query."""
    nq = q.shape[0]
    dv = vt.shape[0]
    a_out = np.zeros((nq, dv))
    b_out = np.zeros(nq)
    longest = 0
    for r in range(ncell[2] * ncell[1]):
        longest = max(longest, start[(r + 1) * ncell[0]] - start[r * ncell[0]])
    nblocks = (nq + _BLOCK - 1) // _BLOCK
    for blk in prange(nblocks):
        scratch = np.empty(longest)
        for ii in range(blk * _BLOCK, min(nq, (blk + 1) * _BLOCK)):
            i = rows[ii]
            q0, q1, q2 = q[i, 0], q[i, 1], q[i, 2]
            rad = radius_rows[i]
            bsum = 0.0
            z0, z1 = _span(q2, rad, lo[2], side, ncell[2])
            for cz in range(z0, z1 + 1):
                gz = _gap(q2, cz, lo[2], side) if ncell[2] > 1 else 0.0
                ry = math.sqrt(max(rad * rad - gz * gz, 0.0))
                y0_, y1_ = _span(q1, ry, lo[1], side, ncell[1])
                for cy in range(y0_, y1_ + 1):
                    gy = _gap(q1, cy, lo[1], side) if ncell[1] > 1 else 0.0
                    rx2 = rad * rad - gz * gz - gy * gy
                    if rx2 < 0.0:
                        continue
                    x0_, x1_ = _span(q0, math.sqrt(rx2), lo[0], side, ncell[0])
                    row = (cz * ncell[1] + cy) * ncell[0]
                    first, last = start[row + x0_], start[row + x1_ + 1]
                    n = last - first
                    # slices, not first + t: an index Numba cannot prove >= 0 gets a
                    # wrap-around branch that keeps the loop scalar (4x slower)
                    y0, y1, y2 = y[0, first:last], y[1, first:last], y[2, first:last]
                    lw = lw2[first:last]
                    if dv == 2:
                        # D = 2, the common case: one fused pass, three vector reductions
                        va, vb = vt[0, first:last], vt[1, first:last]
                        s0 = s1 = s2 = 0.0
                        for t in range(n):
                            d0 = q0 - y0[t]
                            d1 = q1 - y1[t]
                            d2 = q2 - y2[t]
                            w = exp2(lw[t] - (d0 * d0 + d1 * d1 + d2 * d2) * inv2)
                            s0 += w
                            s1 += w * va[t]
                            s2 += w * vb[t]
                        bsum += s0
                        a_out[i, 0] += s1
                        a_out[i, 1] += s2
                        continue
                    for t in range(n):
                        d0 = q0 - y0[t]
                        d1 = q1 - y1[t]
                        d2 = q2 - y2[t]
                        scratch[t] = exp2(lw[t] - (d0 * d0 + d1 * d1 + d2 * d2) * inv2)
                    acc = 0.0
                    for t in range(n):
                        acc += scratch[t]
                    bsum += acc
                    for c in range(dv):
                        vc = vt[c, first:last]
                        acc = 0.0
                        for t in range(n):
                            acc += scratch[t] * vc[t]
                        a_out[i, c] += acc
            b_out[i] = bsum
    return a_out, b_out
