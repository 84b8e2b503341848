"""The nearest better member of every member, for many populations in one Numba kernel.

Each population's points are sorted best first, so the members better than the one at
position i are exactly positions 0 .. i-1: its nearest better member is the nearest of
those (exact brute force, ties in distance to the lowest position, squared distances
summed coordinate by coordinate in order, no fused multiply-adds: ``fastmath=False``).
That is O(m^2 D / 2) per population of m members: with m <= N (and <= ``modes.MAX_POINTS``)
at most half the N^2 D of one generation's own pair sums over a population of N.

One parallel task per block of ``ROWS`` consecutive rows of one population: for each
better point j (ascending) one pass over the block's rows, unit stride, an elementwise
compare-and-keep that LLVM vectorises (AVX2 / AVX-512: 100 populations of 512 2-D members
in ~3 ms on one core, against ~14 ms for a scalar loop over j per row). A population's
blocks are queued big and small alternately, so equal shares of the tasks are about equal
work.
"""

from __future__ import annotations

import contextlib

import numba
import numpy as np
from numba import njit, prange, uintp

from .backends.numba_backend import _entry_guard

#: rows per task: the rows, their best squared distances and targets stay in L1
ROWS = 128

#: below this many pair-coordinates (sum of m (m - 1) / 2 * D) one thread does it all
SERIAL_WORK = 1 << 16


@njit(parallel=True, cache=True, fastmath=False)
def _kernel(ut, tasks, starts):  # pragma: no cover - compiled
    """ut (D, M) the points' coordinates; task t: rows [tasks[t, 0], tasks[t, 1]) of the
    population starting at starts[t]. Returns target (M,) (absolute index, -1 for a
    population's first row) and the squared distance (M,) (NaN there)."""
    d, m_total = ut.shape
    target = np.full(m_total, -1, np.int64)
    dist2 = np.full(m_total, np.nan)
    for t in prange(tasks.shape[0]):
        r0 = tasks[t, 0]
        r1 = tasks[t, 1]
        a = starts[t]
        w = r1 - r0
        best = np.full(w, np.inf)  # overflowing distances (inf) leave the first point
        idx = np.full(w, a, np.int64)
        if d == 2:
            x0 = ut[0, r0:r1]
            x1 = ut[1, r0:r1]
            for j in range(a, r1 - 1):
                y0 = ut[0, j]
                y1 = ut[1, j]
                for rr in range(max(j + 1 - r0, 0), w):
                    r = uintp(rr)  # unsigned: no negative-index wraparound, so LLVM vectorises
                    e0 = x0[r] - y0
                    e1 = x1[r] - y1
                    q = e0 * e0 + e1 * e1
                    old = best[r]
                    closer = q < old  # strict: the lower index keeps a tie
                    best[r] = q if closer else old
                    idx[r] = j if closer else idx[r]
        else:
            s = np.empty(w)
            for j in range(a, r1 - 1):
                lo = max(j + 1 - r0, 0)
                for rr in range(lo, w):
                    s[uintp(rr)] = 0.0
                for k in range(d):
                    y = ut[k, j]
                    xk = ut[k, r0:r1]
                    for rr in range(lo, w):
                        r = uintp(rr)
                        e = xk[r] - y
                        s[r] += e * e
                for rr in range(lo, w):
                    r = uintp(rr)
                    q = s[r]
                    old = best[r]
                    closer = q < old
                    best[r] = q if closer else old
                    idx[r] = j if closer else idx[r]
        for r in range(w):
            if r0 + r > a:
                target[r0 + r] = idx[r]
                dist2[r0 + r] = best[r]
    return target, dist2


def _tasks(offsets: np.ndarray, rows: int) -> tuple[np.ndarray, np.ndarray]:
    """(T, 2) row ranges and (T,) population starts of the blocks of every population of
    at least 2 members, each population's blocks ordered last, first, second last, ..."""
    start, size = offsets[:-1], np.diff(offsets)
    keep = size > 1
    start, size = start[keep], size[keep]
    nblk = -(-size // rows)
    pop = np.repeat(np.arange(start.shape[0]), nblk)
    q = np.arange(pop.shape[0]) - np.repeat(np.cumsum(nblk) - nblk, nblk)  # position in its pop
    k = nblk[pop]
    blk = np.where(q % 2 == 0, k - 1 - q // 2, q // 2)  # zig-zag: big and small blocks alternate
    r0 = start[pop] + blk * rows
    r1 = np.minimum(r0 + rows, start[pop] + size[pop])
    return (np.ascontiguousarray(np.stack([r0, r1], axis=1), dtype=np.int64),
            np.ascontiguousarray(start[pop], dtype=np.int64))


def nearest_better(u: np.ndarray, offsets: np.ndarray, *,
                   rows: int = ROWS) -> tuple[np.ndarray, np.ndarray]:
    """The nearest better point of every point of several populations.

    Args:
        u: (M, D) the populations' points one after another, each sorted best first.
        offsets: (P + 1,) population p is ``u[offsets[p]:offsets[p + 1]]`` (non-decreasing,
            from 0 to M; empty populations allowed).
        rows: rows per parallel task (any positive number gives the same answer).

    Returns:
        ``target`` (M,) int64, the position within its population of each point's nearest
        better point (-1 for each population's first point), and ``length`` (M,) float64,
        the Euclidean distance to it (NaN there). Among equally near better points the one
        of the lowest position wins.
    """
    u = np.asarray(u, dtype=np.float64)
    offsets = np.asarray(offsets, dtype=np.int64).reshape(-1)
    if u.ndim != 2:
        raise ValueError(f"u must be (M, D); got shape {u.shape}")
    m_total, d = u.shape
    if (offsets.shape[0] < 1 or offsets[0] != 0 or offsets[-1] != m_total
            or (np.diff(offsets) < 0).any()):
        raise ValueError(f"offsets must rise from 0 to {m_total}; got {offsets!r}")
    if int(rows) < 1:
        raise ValueError(f"rows must be positive; got {rows!r}")
    if m_total == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0)
    tasks, starts = _tasks(offsets, int(rows))
    size = np.diff(offsets).astype(np.float64)
    serial = float((size * (size - 1) / 2).sum()) * d < SERIAL_WORK
    with _numba_threads(1 if serial else None):
        target, dist2 = _kernel(np.ascontiguousarray(u.T), tasks, starts)
    local = target - np.repeat(offsets[:-1], np.diff(offsets))
    return np.where(target < 0, -1, local), np.sqrt(dist2)


@contextlib.contextmanager
def _numba_threads(threads: int | None):
    """The numba backend's entry lock (the workqueue layer aborts on concurrent launches),
    with Numba's thread-local thread count set to ``threads`` (None: as it is)."""
    with _entry_guard():
        if threads is None:
            yield
            return
        old = numba.get_num_threads()
        numba.set_num_threads(min(threads, old))
        try:
            yield
        finally:
            numba.set_num_threads(old)
