"""Numba kernels of the FFT path on the host: one pass over the keys (threaded) bins
both grids, one over the queries interpolates both and finishes the rows' bounds.

The generic code (:mod:`._fftgrid`, :mod:`._paths`, :mod:`._bound`) makes (p + 1)^d
passes over the points per channel and a dozen numpy passes over (N, *) arrays per row
quantity; these make one each, with the channels (w, w v, w |v|^2) formed on the fly.
Measured at N = 65,536, D = 2, alpha = 0.95 (2 shared cores, noisy): scatter of both
grids 13 ms (fine grid only) + bincount -> 4-7 ms; gather + bounds ~10 -> 2-4 ms.

Points are (N, d) in world units; every axis past d is a padded axis of one node and
stencil order 0. Grids are (C, n_0, n_1, n_2) arrays (padded axes of size 1, the last
real axis may be longer than the grid: the FFT's zero padding) indexed at nodes inside
``shape`` only.
"""

from __future__ import annotations

import math
import os
import threading

import numpy as np
from numba import njit

from ._cells import counting_sort


@njit(cache=True, inline="always")
def _cubic(t):
    """The cubic stencil's 4 weights at fraction t, as _stencil computes them."""
    tm, tp, t2 = t - 1.0, t + 1.0, t - 2.0
    return (-t * tm * t2 / 6.0, tp * tm * t2 / 2.0, -tp * t * t2 / 2.0, tp * t * tm / 6.0)


@njit(cache=True, inline="always")
def _stencil(x, order, n, idx, wts):
    """Nodes and weights of coordinate x (grid units) for one axis; returns their count."""
    if order == 0:
        i = int(math.floor(x + 0.5))  # noqa: RUF046 - numba: keep the int explicit
        idx[0] = min(max(i, 0), n - 1)
        wts[0] = 1.0
        return 1
    b = math.floor(x)
    t = x - b
    i = int(b)
    if order == 1:
        idx[0] = min(max(i, 0), n - 1)
        idx[1] = min(max(i + 1, 0), n - 1)
        wts[0] = 1.0 - t
        wts[1] = t
        return 2
    wts[0], wts[1], wts[2], wts[3] = _cubic(t)
    for o in range(4):
        idx[o] = min(max(i - 1 + o, 0), n - 1)
    return 4


@njit(cache=True, inline="always")
def _axes(p, j, origin, h, shape, order, idx, wts, cnt):
    """Point j's stencil on the 3 (padded) axes; the grid-unit coordinate is computed as
    ``(p - origin) / h``, as :meth:`FFTGrid.to_grid_units` does."""
    d = p.shape[1]
    for c in range(3):
        if c < d:
            cnt[c] = _stencil((p[j, c] - origin[c]) / h, order, shape[c], idx[c], wts[c])
        else:
            idx[c, 0] = 0
            wts[c, 0] = 1.0
            cnt[c] = 1


@njit(cache=True, nogil=True)
def row_order(p, origin0, h, n0):
    """(order, starts): point indices sorted by their node row on axis 0 (a counting sort)
    and where each row's points start in order (n0 + 1 entries): threads then own bands
    of rows (the locality alone gained little: 5.6 vs 5.8 ms, serial, 65,536 keys)."""
    n = p.shape[0]
    row = np.empty(n, dtype=np.int64)
    for j in range(n):
        row[j] = min(max(int(math.floor((p[j, 0] - origin0) / h)), 0), n0 - 1)  # noqa: RUF046
    return counting_sort(row, n0)


@njit(cache=True, nogil=True)
def _bands(starts, parts, width):
    """Cuts (rows) of about ``parts`` bands of equal point counts, each >= width rows."""
    n0 = starts.shape[0] - 1
    total = starts[n0]
    cuts, m, last = np.zeros(parts + 1, dtype=np.int64), 0, 0
    for r in range(1, n0):
        if m < parts - 1 and r - last >= width and starts[r] * parts >= (m + 1) * total \
                and n0 - r >= width:
            m += 1
            cuts[m] = r
            last = r
    cuts[m + 1] = n0
    return cuts[:m + 2]


@njit(cache=True, nogil=True, inline="always")
def _band_setup(p, order, fine):
    """What a band's loop needs: whether the d = 2 cubic fast path applies, the grid as a
    flat (C order) view with its row and plane strides, and the stencil scratch arrays."""
    flat = fine.reshape(-1)
    row = fine.shape[2] * fine.shape[3]
    return (p.shape[1] == 2 and order == 3, flat, row, fine.shape[1] * row,
            np.zeros((3, 4), dtype=np.int64), np.zeros((3, 4)), np.zeros(3, dtype=np.int64))


@njit(cache=True, nogil=True)
def _scatter_band(y, w, vc, order, i0, i1, fo, fh, fshape, forder, fine, co, ch, cshape, env):
    """Keys order[i0:i1] onto fine (order ``forder``: w, w v) and env (nearest node: w,
    w v, w |v|^2, as many as env has channels)."""
    dv = vc.shape[1]
    nf = fine.shape[0]
    fast, flat, row, plane, idx, wts, cnt = _band_setup(y, forder, fine)
    val = np.zeros(dv + 2)
    for i in range(i0, i1):
        j = order[i]
        wj = w[j]
        if wj == 0.0:  # adds +0.0 everywhere: skipping it is exact
            continue
        val[0] = wj
        sq = 0.0
        for c in range(dv):
            t = vc[j, c]
            val[1 + c] = wj * t
            sq += t * t
        val[dv + 1] = wj * sq
        if fast:
            o, wx, wz = _cubic2(y, j, fo, fh, fshape, row)
            if o >= 0:
                for k in range(nf):
                    vk = val[k]
                    for a in range(4):
                        wa, oa = wx[a], o + k * plane + a * row
                        flat[oa] += wa * wz[0] * vk
                        flat[oa + 1] += wa * wz[1] * vk
                        flat[oa + 2] += wa * wz[2] * vk
                        flat[oa + 3] += wa * wz[3] * vk
                _nearest_add(y, j, co, ch, cshape, env, val, idx, wts, cnt)
                continue
        _axes(y, j, fo, fh, fshape, forder, idx, wts, cnt)
        for k in range(nf):  # a channel's stencil rows are contiguous: channel outermost
            vk = val[k]
            for a in range(cnt[0]):
                i0_ = idx[0, a]
                for b in range(cnt[1]):
                    i1_ = idx[1, b]
                    wab = wts[0, a] * wts[1, b]
                    for e in range(cnt[2]):
                        fine[k, i0_, i1_, idx[2, e]] += wab * wts[2, e] * vk
        _nearest_add(y, j, co, ch, cshape, env, val, idx, wts, cnt)


@njit(cache=True, inline="always")
def _nearest_add(y, j, co, ch, cshape, env, val, idx, wts, cnt):
    _axes(y, j, co, ch, cshape, 0, idx, wts, cnt)
    for k in range(env.shape[0]):
        env[k, idx[0, 0], idx[1, 0], idx[2, 0]] += val[k]


_CUB0 = (0.0, 0.0, 0.0, 0.0)


@njit(cache=True, inline="always")
def _cubic2(p, j, fo, fh, fshape, row):
    """d = 2, cubic: (flat offset of point j's first stencil node, -1 where the stencil
    would be clipped; the weights per axis). Tuples stay in registers where the arrays of
    the generic loop are reloaded after every store to the grid: the d = 2 scatter took
    13 ms with those loops and 5.6 with these (serial, alpha 0.95, 65,536 keys)."""
    x, z = (p[j, 0] - fo[0]) / fh, (p[j, 1] - fo[1]) / fh
    bx, bz = math.floor(x), math.floor(z)
    ix, iz = int(bx) - 1, int(bz) - 1
    ok = ix >= 0 and iz >= 0 and ix + 3 < fshape[0] and iz + 3 < fshape[1]
    return (ix * row + iz if ok else -1), _cubic(x - bx), _cubic(z - bz)


def scatter(y, w, vc, fo, fh, fshape, forder, fine, co, ch, cshape, env, threads, width):
    """Bin all keys onto the zeroed grids fine and env (in place), on ``threads`` threads.

    The keys are sorted by fine row and cut into bands of rows; a band's stencils reach
    one row below and two above it, and the coarse grid's nearest rows about as far, so
    bands two apart never touch one node when the band between is ``width`` >= 3 rows and
    >= one coarse cell wide (:func:`._paths._fft_rows_host`): the even bands run in
    parallel, then the odd ones, with no private grids and no atomics."""
    order, starts = row_order(y, fo[0], fh, fshape[0])
    n = y.shape[0]
    if threads <= 1 or n < _MIN_SPLIT:
        _scatter_band(y, w, vc, order, 0, n, fo, fh, fshape, forder, fine, co, ch, cshape, env)
        return
    cuts = _bands(starts, 2 * threads, width)
    for phase in (0, 1):
        _run([(_scatter_band, (y, w, vc, order, starts[cuts[b]], starts[cuts[b + 1]], fo, fh,
                               fshape, forder, fine, co, ch, cshape, env))
              for b in range(phase, cuts.shape[0] - 1, 2)], threads)


def gather_rows(q, fo, fh, fshape, order, fine, co, ch, cshape, env, tail, noise, vmax, threads):
    """(a (N, Dv), b (N,), err (N,), b_err (N,)): the FFT path's rows in one pass.

    fine holds the convolved (b, a) channels, env the envelope sums (p0[, p1, p2]); the
    bound is :func:`._bound.row_errors`' (Dv > 0, env has Dv + 2 channels) or B's relative
    error (env has one channel), with the noise and tail terms of :func:`._paths.fft_rows`.
    Queries are visited row by row (see :func:`row_order`), one band per thread.
    """
    n = q.shape[0]
    dv = fine.shape[0] - 1
    out = (np.empty((n, dv)), np.empty(n), np.empty(n), np.empty(n))
    perm, _ = row_order(q, fo[0], fh, fshape[0])
    parts = 1 if n < _MIN_SPLIT else max(1, threads)
    _run([(_gather_band, (q, perm, n * t // parts, n * (t + 1) // parts, fo, fh, fshape, order,
                          fine, co, ch, cshape, env, tail, noise, vmax) + out)
          for t in range(parts)], threads)
    return out


#: fewer points than this run on one thread (a hand-off costs ~50 us)
_MIN_SPLIT = 8192
_POOL: list = [None, 0, 0]  # (executor, its workers, the pid that made it)
_LOCK = threading.Lock()


def _run(jobs, threads):
    """Run (kernel, args) jobs, the first on this thread, the others on a thread pool.

    Why not numba's prange: its GNU OpenMP workers spin-wait at barriers and for a while
    after each region, and on these 2 shared cores that took the core the other thread
    (or scipy's FFT workers) needed -- a prange scatter measured 24 ms where the same
    serial code took 5.6; these kernels release the GIL and the pool's idle threads sleep.
    """
    ahead = [] if threads <= 1 else jobs[1:threads]
    if ahead:
        with _LOCK:  # a new pool for more threads, or in a forked child (no workers there)
            if _POOL[1] < len(ahead) or _POOL[2] != os.getpid():
                from concurrent.futures import ThreadPoolExecutor

                _POOL[:] = [ThreadPoolExecutor(threads - 1, thread_name_prefix="diffevo-grid"),
                            threads - 1, os.getpid()]
            pool = _POOL[0]
        ahead = [pool.submit(f, *a) for f, a in ahead]
    for f, a in jobs[:1] + jobs[1 + len(ahead):]:
        f(*a)
    for r in ahead:
        r.result()


@njit(cache=True, nogil=True)
def _gather_band(q, perm, i0, i1, fo, fh, fshape, order, fine, co, ch, cshape, env, tail, noise,
                 vmax, a_out, b_out, err, b_err):
    dv = fine.shape[0] - 1
    values = env.shape[0] > 1
    fast, flat, row, plane, idx, wts, cnt = _band_setup(q, order, fine)
    sums = np.zeros(dv + 1)
    for i in range(i0, i1):
        j = perm[i]
        o, wx, wz = _cubic2(q, j, fo, fh, fshape, row) if fast else (-1, _CUB0, _CUB0)
        if o >= 0:
            for k in range(dv + 1):
                s = 0.0
                for a in range(4):
                    wa, oa = wx[a], o + k * plane + a * row
                    s += wa * wz[0] * flat[oa]
                    s += wa * wz[1] * flat[oa + 1]
                    s += wa * wz[2] * flat[oa + 2]
                    s += wa * wz[3] * flat[oa + 3]
                sums[k] = s
        else:
            _axes(q, j, fo, fh, fshape, order, idx, wts, cnt)
            for k in range(dv + 1):
                s = 0.0
                for a in range(cnt[0]):
                    i0_ = idx[0, a]
                    for b in range(cnt[1]):
                        i1_ = idx[1, b]
                        wab = wts[0, a] * wts[1, b]
                        for e in range(cnt[2]):
                            s += wab * wts[2, e] * fine[k, i0_, i1_, idx[2, e]]
                sums[k] = s
        _axes(q, j, co, ch, cshape, 0, idx, wts, cnt)
        c0, c1, c2 = idx[0, 0], idx[1, 0], idx[2, 0]
        bj, p0 = sums[0], max(env[0, c0, c1, c2], 0.0) + noise
        be = tail + p0
        b_out[j], b_err[j] = bj, be
        if not values:
            den = bj - be
            err[j] = be / den if den > 0 else np.inf
            continue
        bpos = bj if bj > 0 else 1.0
        x2, dot = 0.0, 0.0
        for k in range(dv):
            a_out[j, k] = sums[1 + k]
            x = sums[1 + k] / bpos
            x2 += x * x
            dot += x * env[1 + k, c0, c1, c2]
        p2 = max(env[dv + 1, c0, c1, c2], 0.0) + noise * vmax * vmax
        err[j] = _row_error(bj, p0, dot, p2, x2, vmax, tail)


@njit(cache=True, inline="always")
def _row_error(b, p0, dot, p2, x2, vmax, tail):
    """:func:`._bound.row_errors` for one row (dot = x0c . p1, x2 = |x0c|^2)."""
    q2 = max(p2 - 2.0 * dot + x2 * p0, 0.0)
    num = math.sqrt(p0 * q2) + tail * (math.sqrt(x2) + vmax)
    den = b - p0 - tail
    return num / den if den > 0 else np.inf


@njit(cache=True, nogil=True)
def finish_rows(a, b, tail, vmax, values):
    """(err, b_err) of rows whose sums are exact but for a tail (p0 = p1 = p2 = 0):
    :func:`._paths._finish` without the envelope sums; ``tail`` per row."""
    n = b.shape[0]
    err, b_err = np.empty(n), np.empty(n)
    for j in range(n):
        bj, t = b[j], tail[j]
        b_err[j] = t
        if not values:
            den = bj - t
            err[j] = t / den if den > 0 else np.inf
            continue
        bpos = bj if bj > 0 else 1.0
        x2 = 0.0
        for k in range(a.shape[1]):
            x = a[j, k] / bpos
            x2 += x * x
        err[j] = _row_error(bj, 0.0, 0.0, 0.0, x2, vmax, t)
    return err, b_err


@njit(cache=True, nogil=True)
def floor_rows(a, b, b_err, mean_w, target, floor_w):
    """:func:`._paths.floor_term` per row (floor_w = EPS_FLOOR * sum_j w_j)."""
    n = b.shape[0]
    out = np.empty(n)
    for j in range(n):
        bj = b[j]
        b_low = max(bj - b_err[j], 1e-300)
        bpos = bj if bj > 0 else 1.0
        d2 = 0.0
        for k in range(a.shape[1]):
            x = a[j, k] / bpos - mean_w[k]
            d2 += x * x
        out[j] = b_err[j] / b_low * min(1.0, floor_w / b_low) * (math.sqrt(d2) + target)
    return out


@njit(cache=True, nogil=True)
def prepare(lc, k, v, s):
    """GridSums._prepare's reductions in two passes (numpy made ~12, most over (N, 2)
    arrays along the short axis, 2.4 ms at N = 65,536; this ~0.7 ms; and w @ vc is no
    BLAS call: see core.py on spinning gemv threads). Returns (shift, lw, w, total_w,
    y = s k, vbar, vc, max |vc|^2, mean |vc|^2, std of all entries of v, max |v|,
    sum_j w_j vc_j)."""
    n, d = k.shape
    dv = v.shape[1]
    shift = -np.inf
    for j in range(n):
        if np.isfinite(lc[j]) and lc[j] > shift:
            shift = lc[j]
    lw, w, y = np.empty(n), np.empty(n), np.empty((n, d))
    vbar, vc = np.zeros(dv), np.empty((n, dv))
    total, mean_all, vabs = 0.0, 0.0, 0.0
    for j in range(n):
        if np.isfinite(lc[j]):
            lw[j] = lc[j] - shift
            w[j] = math.exp(lw[j])
        else:
            lw[j] = -np.inf
            w[j] = 0.0
        total += w[j]
        for c in range(d):
            y[j, c] = np.float64(k[j, c]) * s
        for c in range(dv):
            x = np.float64(v[j, c])
            vbar[c] += x
            mean_all += x
            vabs = max(vabs, abs(x))
    vbar /= max(n, 1)
    mean_all /= max(n * dv, 1)
    sq_max, sq_sum, var, wvc = 0.0, 0.0, 0.0, np.zeros(dv)
    for j in range(n):
        sq = 0.0
        for c in range(dv):
            x = np.float64(v[j, c])
            t = x - vbar[c]
            vc[j, c] = t
            sq += t * t
            var += (x - mean_all) ** 2
            wvc[c] += w[j] * t
        sq_max = max(sq_max, sq)
        sq_sum += sq
    return (shift, lw, w, total, y, vbar, vc, sq_max, sq_sum / max(n, 1),
            math.sqrt(var / max(n * dv, 1)), vabs, wvc)
