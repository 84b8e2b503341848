"""The statistics of a generation, every run's in one compiled pass: the History's columns.

A generation of R runs (R = 1 for a run of its own) is summarised per run from its own
members: the best finite member, the mean / median / worst / range of the finite values,
the spread (largest per-coordinate standard deviation) and the position entropy (bits, on
cells of side ``resolution``). :func:`stats_rows` computes all of them in one Numba call
over (R, N) values and (R, N, D) members; row r reads run r's members only, with the same
arithmetic whatever R is, so a run in a batch books exactly what it books alone.

Why compiled: in NumPy these were ~15 array passes and calls per generation, 4 ms for
100 runs of 512 2-D members (the std over axis 1 of (R, N, small D) and the entropy's sort
cost most), a tenth of the whole batched optimisation; one pass here is 0.9 ms (two
threads), and 12 us for one run of 512.

The entropy counts cells in a hash table (open addressing, keys compared exactly, so a
hash collision costs a probe, never a miscount) and sums ``-p log2 p`` in the order the
cells are first met. Cells are identified by the rounded floats ``round(x / resolution)``
(half to even, as ``np.round``), not by integers, so no coordinate can overflow a cast.
"""

from __future__ import annotations

import numba
import numpy as np
from numba import njit, prange

__all__ = ["stats_rows"]

#: one output column per statistic, in this order
COLUMNS = ("best_cost", "mean", "median", "worst", "range", "spread", "entropy")


@njit(cache=True, inline="always")
def _mix(h, v):
    """splitmix64 of h xor v: the hash of a cell, one coordinate at a time."""
    z = (h ^ v) + np.uint64(0x9E3779B97F4A7C15)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


@njit(cache=True)
def _entropy(x, resolution, cells, slot_of, count, first):
    """Entropy (bits) of the members x (n, D) over cells of side ``resolution``; the
    other arguments are scratch of sizes (n, D) float64, (T,) int64 with T a power of
    two >= 2 n, (T,) int64, (n,) int64."""
    n, d = x.shape
    if n == 0:
        return 0.0
    bits = cells.view(np.uint64)  # a cell is its rounded floats, compared bit for bit
    mask = slot_of.shape[0] - 1
    slot_of[:] = -1
    kinds = 0
    for i in range(n):
        h = np.uint64(0)
        for c in range(d):
            v = np.round(x[i, c] / resolution)
            if v == 0.0:
                v = 0.0  # -0.0 and 0.0 are one cell
            cells[i, c] = v
            h = _mix(h, bits[i, c])
        s = np.int64(h & np.uint64(mask))
        while True:
            j = slot_of[s]
            if j < 0:  # a new cell: member i is its first
                slot_of[s] = i
                count[s] = 1
                first[kinds] = s
                kinds += 1
                break
            same = True
            for c in range(d):
                if bits[j, c] != bits[i, c]:
                    same = False
                    break
            if same:
                count[s] += 1
                break
            s = (s + 1) & mask
    h_bits = 0.0
    for k in range(kinds):
        p = count[first[k]] / n
        h_bits -= p * np.log2(p)
    return h_bits


@njit(cache=True)
def _row(cost, values, x, finite, maximize, resolution, out, buf, cells, slot_of, count, first):
    """Run r's statistics (see :func:`stats_rows`) into out (7,); returns the best index."""
    n, d = x.shape
    m = 0
    best = -1
    best_cost = np.inf
    total = 0.0
    lo = np.inf
    hi = -np.inf
    for i in range(n):
        if not finite[i]:
            continue
        v = values[i]
        buf[m] = v
        m += 1
        total += v
        lo = min(lo, v)
        hi = max(hi, v)
        if best < 0 or cost[i] < best_cost:  # the first of equal costs
            best, best_cost = i, cost[i]
    out[0] = best_cost
    if m == 0:
        out[1] = out[2] = out[3] = np.nan
        out[4] = np.inf
    else:
        out[1] = total / m
        k = m // 2
        part = np.partition(buf[:m], k)
        med = part[k]
        if m % 2 == 0:
            med = (part[:k].max() + med) / 2.0
        out[2] = med
        out[3] = lo if maximize else hi
        out[4] = hi - lo
    spread = 0.0
    if n >= 2:
        for c in range(d):
            s = 0.0
            for i in range(n):
                s += x[i, c]
            mean = s / n
            q = 0.0
            for i in range(n):
                t = x[i, c] - mean
                q += t * t
            spread = max(spread, np.sqrt(q / n))
    out[5] = spread
    out[6] = _entropy(x, resolution, cells, slot_of, count, first)
    return best


def _make(parallel: bool):
    """The kernel, compiled serial or parallel. ``parallel`` is read in the body on purpose:
    Numba's cache keys a closure by its code and its cells, so without a cell that differs
    the two variants share one cache entry and the serial one loads the parallel code."""

    @njit(cache=True, parallel=parallel)
    def kernel(cost, values, x, finite, maximize, resolution, chunks):
        r, n, d = x.shape
        out = np.empty((r, 7), dtype=np.float64)
        best = np.empty(r, dtype=np.int64)
        size = 1
        while size < 2 * n:
            size *= 2
        chunks = chunks if parallel else 1
        per = (r + chunks - 1) // chunks
        for c in prange(chunks):  # a chunk of runs: one set of scratch, each run its own members
            buf = np.empty(n, dtype=np.float64)
            cells = np.empty((n, d), dtype=np.float64)
            slot_of = np.empty(size, dtype=np.int64)
            count = np.empty(size, dtype=np.int64)
            first = np.empty(n, dtype=np.int64)
            for k in range(c * per, min(r, (c + 1) * per)):
                best[k] = _row(cost[k], values[k], x[k], finite[k], maximize, resolution, out[k],
                               buf, cells, slot_of, count, first)
        return best, out

    return kernel


_serial = _make(False)
_parallel = _make(True)


#: below this many member-coordinates one thread is faster than a parallel launch
_PARALLEL_WORK = 1 << 15


def stats_rows(cost: np.ndarray, values: np.ndarray, x: np.ndarray, finite: np.ndarray | None,
               maximize: bool, resolution: float) -> tuple[np.ndarray, np.ndarray]:
    """Every run's statistics of one generation, from its own members.

    Args:
        cost: (R, N) values, lower is better; values: (R, N) the objective's values;
        x: (R, N, D) members (any float dtype); finite: (R, N) bool, the members whose
        values count (None: all); maximize: worst is the lowest value when True;
        resolution: the entropy's cell side (> 0).

    Returns:
        ``(best (R,) int64, stats (R, 7) float64)``: best the index of the first member
        of least finite cost (-1: none finite); stats the columns of :data:`COLUMNS`
        (``best_cost`` inf, mean/median/worst NaN and range inf when no value is finite;
        spread 0 for fewer than 2 members; entropy 0 for none).
    """
    cost = np.ascontiguousarray(cost, dtype=np.float64)
    values = np.ascontiguousarray(values, dtype=np.float64)
    x = np.ascontiguousarray(x, dtype=np.float64)
    if not x.flags.writeable:  # an asked population: Numba's code for read-only arrays ran
        x = x.copy()  # 0.7 ms slower at (100, 512, 2) than this copy costs (0.05 ms)
    if finite is None:
        finite = np.ones(cost.shape, dtype=np.bool_)
    else:
        finite = np.ascontiguousarray(finite, dtype=np.bool_)
    args = (cost, values, x, finite, bool(maximize), float(resolution))
    if x.shape[0] < 2 or x.shape[0] * x.shape[1] * max(x.shape[2], 1) < _PARALLEL_WORK:
        return _serial(*args, 1)  # a launch costs more than a small batch, and leaves
        # the other workers spinning for milliseconds
    from .backends.numba_backend import _entry_guard  # noqa: PLC0415 - the numba layer's lock

    with _entry_guard():  # two parallel launches at once abort on the workqueue layer
        return _parallel(*args, 2 * numba.get_num_threads())
