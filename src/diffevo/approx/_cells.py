"""The cut-off path for narrow kernels: cell lists, exact within the cut-off radius.

Keys are sorted into cubic cells of side >= R / REACH; a query visits every cell that
the ball of radius R around it touches, so every key within R of it is summed exactly
(keys a little further, in the visited cells, are summed too -- that only helps).

What is left out is bounded per row, not by the population's total weight: the cells
touched by a second ball of radius R_out > R but not by the first are a ring whose keys
are each further than the cell's distance from the query, so their weight is at most
``W_cell exp(-dist^2 / (2 sigma^2))``; beyond R_out the rest weighs at most
``W exp(-R_out^2 / (2 sigma^2))``. A row far from the heavy members (the tail of a
peaked fitness) thus gets a tail bound of its own neighbourhood's weight -- with the
global bound ``W exp(-R^2 / 2 sigma^2)`` such rows failed and were recomputed with a
far larger radius (alpha 0.999, N = 65,536: 59 % of the rows for a two-peak fitness).
Coordinates are padded to 3 (a missing axis has one cell), so one kernel serves d <= 3.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from ..backends._fastexp import EXP2_COARSE_RTOL, FASTMATH, LOG2E
from ..backends._fastexp import exp2_coarse as exp2

#: cells of side R / REACH: the cells a ball of radius R touches cover about
#: pi R^2 + 4 R^2 / REACH (d = 2) instead of the (3 R)^2 of cells of side R
REACH = 3
#: queries per parallel block (one scratch row each)
_BLOCK = 64
#: at most this many cells (times the key count): the cell table is O(N) memory
_CELLS_PER_KEY = 4
#: the ring's outer radius by default: one cell beyond the ball. A wider ring bounds
#: rows whose own weight is tiny beside the population's (the far tail of a peaked
#: fitness) but costs every row its cells (N = 65,536, alpha 0.999: +50 % of the sums
#: for a ring to 9 sigma), so only the rescue pass uses one (``outer=``)
OUTER_CELLS = 1.0


class Cells:
    """Keys sorted into cells with their weights and values: built once per call,
    queried by :meth:`sums`.

    Args:
        y: (Nk, d) keys; radius: the cut-off radius (cells of side radius / REACH);
        lw: (Nk,) log-weights (already shifted to <= 0); v: (Nk, Dv) values; float64.
    """

    def __init__(self, y: np.ndarray, radius: float, lw: np.ndarray, v: np.ndarray):
        nk, d = y.shape
        self.radius = radius
        y3 = self._pad(y)
        lo, hi = _bounds(y3)
        side = radius / REACH
        extent = np.maximum(hi - lo, 0.0)[:d]
        # never more than _CELLS_PER_KEY * N cells: widen them if the keys spread far
        budget = max(_CELLS_PER_KEY * nk, 64)
        while np.prod(np.floor(extent / side) + 1) > budget:
            side *= 1.5
        self.side = side
        self.lo = lo
        ncell = np.ones(3, dtype=np.int64)
        ncell[:d] = (np.floor(extent / side) + 1).astype(np.int64)
        self.ncell = ncell
        # one pass each: the sort by cell, the permuted keys / log2-weights / values and
        # the cells' weights (ring bounds) -- numpy's passes took 10 ms at N = 65,536
        cid, self.order, self.start = _bucket(y3, lo, side, ncell)
        self.yt, self.lw2, self.vt, self.cell_w, self.total_w = _permute(
            y3, np.ascontiguousarray(lw, dtype=np.float64), np.ascontiguousarray(v, dtype=np.float64),
            self.order, cid, int(np.prod(ncell)))

    @staticmethod
    def _pad(p):
        p3 = np.zeros((p.shape[0], 3))
        p3[:, : p.shape[1]] = p
        return p3

    def sums(self, q, inv2sigma2, radius=None, outer=None):
        """(A (Nq, Dv), B (Nq,), tail (Nq,)): sums over the visited keys of
        exp(lw_j - |q - y_j|^2 inv2) (1, v_j), and a bound of B's part left out.

        radius: None (the table's) or (Nq,) per-row cut-off radii (the rescue pass).
        outer: the ring's outer radius (scalar or (Nq,); default: the radius plus
            ``OUTER_CELLS`` cells; never below the radius).
        """
        nq = q.shape[0]
        q3 = self._pad(q)
        rows = _bucket(q3, self.lo, self.side, self.ncell)[1]
        rad = (np.full(nq, self.radius) if radius is None
               else np.ascontiguousarray(radius, dtype=np.float64))
        out = np.broadcast_to(np.asarray(
            outer if outer is not None else rad + OUTER_CELLS * self.side, dtype=np.float64), (nq,))
        out = np.ascontiguousarray(np.maximum(out, rad))
        return _sums(q3, self.yt, self.lw2, self.vt, inv2sigma2 * LOG2E, self.lo, self.side,
                     self.ncell, rad, out, self.start, self.cell_w, self.total_w, rows)


@njit(cache=True)
def _bounds(p3):
    """(lo (3,), hi (3,)) of the points (zeros for none)."""
    lo = np.zeros(3)
    hi = np.zeros(3)
    if p3.shape[0]:
        lo[:] = p3[0]
        hi[:] = p3[0]
    for j in range(p3.shape[0]):
        for a in range(3):
            lo[a] = min(lo[a], p3[j, a])
            hi[a] = max(hi[a], p3[j, a])
    return lo, hi


@njit(cache=True)
def _permute(y3, lw, v, order, cid, ncells):
    """Keys (3, Nk), log2-weights (Nk,) and values (Dv, Nk) in cell order; the cells'
    weights and the total -- sums of positive terms, so their rounding is relative (the
    1 + 1e-12 makes them upper bounds)."""
    n, dv = v.shape
    yt = np.empty((3, n))
    lw2 = np.empty(n)
    vt = np.empty((dv, n))
    cell_w = np.zeros(ncells)
    total = 0.0
    for t in range(n):
        j = order[t]
        for a in range(3):
            yt[a, t] = y3[j, a]
        lw2[t] = lw[j] * LOG2E
        for c in range(dv):
            vt[c, t] = v[j, c]
        w = math.exp(lw[j])
        cell_w[cid[j]] += w
        total += w
    for c in range(ncells):
        cell_w[c] *= 1.0 + 1e-12
    return yt, lw2, vt, cell_w, total * (1.0 + 1e-12)


@njit(cache=True, nogil=True)
def counting_sort(key, nbins):
    """(order, starts): indices sorted by key in [0, nbins) (stable, O(N + nbins)) and where
    each key's run starts in order (nbins + 1 entries)."""
    n = key.shape[0]
    starts = np.zeros(nbins + 1, dtype=np.int64)
    for j in range(n):
        starts[key[j] + 1] += 1
    for r in range(nbins):
        starts[r + 1] += starts[r]
    pos = starts[:-1].copy()
    order = np.empty(n, dtype=np.int64)
    for j in range(n):
        order[pos[key[j]]] = j
        pos[key[j]] += 1
    return order, starts


@njit(cache=True)
def _bucket(p3, lo, side, ncell):
    """(cell id per point, the points' order by cell (stable), start (cells + 1,)):
    a counting sort, O(N + cells) (np.argsort took 3 ms per call at N = 65,536)."""
    n = p3.shape[0]
    cid = np.empty(n, dtype=np.int64)
    for j in range(n):
        c0 = min(max(math.floor((p3[j, 0] - lo[0]) / side), 0), ncell[0] - 1)
        c1 = min(max(math.floor((p3[j, 1] - lo[1]) / side), 0), ncell[1] - 1)
        c2 = min(max(math.floor((p3[j, 2] - lo[2]) / side), 0), ncell[2] - 1)
        cid[j] = (c2 * ncell[1] + c1) * ncell[0] + c0
    order, start = counting_sort(cid, ncell[0] * ncell[1] * ncell[2])
    return cid, order, start


@njit(cache=True, inline="always")
def _span(x, r, lo, side, n):
    """Cells [first, last] (clipped to [0, n)) that the interval [x - r, x + r] touches;
    first > last when it touches none (x beyond the table: callers must check)."""
    return (max(math.floor((x - r - lo) / side), 0),  # numba: floor of a float is an int64
            min(math.floor((x + r - lo) / side), n - 1))


@njit(cache=True, inline="always")
def _gap(x, c, lo, side):
    """Distance from x to cell c's slab [lo + c side, lo + (c + 1) side] (0 inside)."""
    a = lo + c * side
    return max(a - x, x - a - side, 0.0)


@njit(cache=True, inline="always")
def _ring(q0, gyz2, lo0, side, row, near, far, cell_w, inv2):
    """Bound of the weight in the cells near..far (either order) of one row of cells,
    none of them summed: the nearest cell's weight times the kernel at its distance,
    the others' total times the kernel at the second cell's (two exp2 per segment, not
    one per cell: the ring's cost stays a few percent of the sums')."""
    step = 1 if far >= near else -1
    gx = _gap(q0, near, lo0, side)
    t = cell_w[row + near] * exp2(-(gx * gx + gyz2) * inv2)
    if far == near:
        return t
    rest = 0.0
    for cx in range(near + step, far + step, step):
        rest += cell_w[row + cx]
    gx = _gap(q0, near + step, lo0, side)
    return t + rest * exp2(-(gx * gx + gyz2) * inv2)


@njit(cache=True, parallel=True, fastmath=FASTMATH)
def _sums(q, y, lw2, vt, inv2, lo, side, ncell, radius_rows, outer_rows, start, cell_w,
          total_w, rows):
    """Per query: for each visited row of cells, the weights of its contiguous key range
    summed in one vector loop (exp2 is plain arithmetic), one reduction per channel; the
    ring's cells (touched by the outer ball, not the inner) add their bound to the tail.
    ``rows`` is the query order (sorted by cell: neighbours share keys in cache);
    queries go in blocks of _BLOCK, one scratch row per block.

    Visited: the cells that the ball of radius R around the query touches (rows of cells
    by their distance to the query, then the x-span of the ball's chord), so a key left
    out is further than R from the query (and than its cell's distance)."""
    nq = q.shape[0]
    dv = vt.shape[0]
    flat = ncell[2] == 1  # d <= 2: the padded coordinate is 0 for every point
    a_out = np.zeros((nq, dv))
    b_out = np.zeros(nq)
    tail_out = np.zeros(nq)
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
            rout = outer_rows[i]
            bsum = 0.0
            tail = total_w * exp2(-rout * rout * inv2)
            z0, z1 = _span(q2, rout, lo[2], side, ncell[2])
            for cz in range(z0, z1 + 1):
                gz = _gap(q2, cz, lo[2], side) if ncell[2] > 1 else 0.0
                y0_, y1_ = _span(q1, math.sqrt(max(rout * rout - gz * gz, 0.0)), lo[1], side,
                                 ncell[1])
                for cy in range(y0_, y1_ + 1):
                    gy = _gap(q1, cy, lo[1], side) if ncell[1] > 1 else 0.0
                    gyz2 = gz * gz + gy * gy
                    if rout * rout - gyz2 < 0.0:
                        continue
                    o0, o1 = _span(q0, math.sqrt(rout * rout - gyz2), lo[0], side, ncell[0])
                    if o0 > o1:  # a query beyond the table: the outer ball misses this row
                        continue
                    row = (cz * ncell[1] + cy) * ncell[0]
                    rx2 = rad * rad - gyz2
                    x0_, x1_ = 1, 0
                    if rx2 >= 0.0:
                        x0_, x1_ = _span(q0, math.sqrt(rx2), lo[0], side, ncell[0])
                    if x0_ > x1_:
                        # the whole row of cells is ring: split at the cell nearest q0
                        c = min(max(math.floor((q0 - lo[0]) / side), o0), o1)
                        tail += _ring(q0, gyz2, lo[0], side, row, c, o0, cell_w, inv2)
                        if c < o1:
                            tail += _ring(q0, gyz2, lo[0], side, row, c + 1, o1, cell_w, inv2)
                        continue
                    if x0_ > o0:
                        tail += _ring(q0, gyz2, lo[0], side, row, x0_ - 1, o0, cell_w, inv2)
                    if x1_ < o1:
                        tail += _ring(q0, gyz2, lo[0], side, row, x1_ + 1, o1, cell_w, inv2)
                    first, last = start[row + x0_], start[row + x1_ + 1]
                    n = last - first
                    # slices, not first + t: an index Numba cannot prove >= 0 gets a
                    # wrap-around branch that keeps the loop scalar (4x slower)
                    y0, y1, y2 = y[0, first:last], y[1, first:last], y[2, first:last]
                    lw = lw2[first:last]
                    if dv == 2 and flat:
                        # D = 2 in a 2-D space, the common case: one fused pass, three
                        # vector reductions
                        va, vb = vt[0, first:last], vt[1, first:last]
                        s0 = s1 = s2 = 0.0
                        for t in range(n):
                            d0 = q0 - y0[t]
                            d1 = q1 - y1[t]
                            w = exp2(lw[t] - (d0 * d0 + d1 * d1) * inv2)
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
            # exp2 is within EXP2_COARSE_RTOL of the kernel: the ring's bound grows by it,
            # and the summed terms' error counts as weight left out (2x: A's and B's)
            tail_out[i] = tail * (1.0 + 2.0 * EXP2_COARSE_RTOL) + 2.0 * EXP2_COARSE_RTOL * bsum
    return a_out, b_out, tail_out
