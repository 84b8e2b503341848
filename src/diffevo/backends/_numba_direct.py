"""Direct-difference pair sums in Numba: the small-D path of the numba backend.

For every query row i (parallel over blocks of rows, ``prange``) one pass over
the keys in tiles of ``tile`` keys; the tile's keys, logits and values stay in
L2 while the block's rows visit it, and every pair loop runs over keys with
unit stride, so LLVM vectorises it (AVX-512 here). Work is in base 2:

    y_ij = lc2_j - inv2 * ||q_i - sk_j||^2        (lc2 = logc * log2 e, inv2 = log2 e / (2 sigma^2))
    B_i  = sum_j 2^(y_ij - m_i),   A_i = sum_j 2^(y_ij - m_i) v_j

* reference mode (``online=False``): the caller has already subtracted a per-batch
  constant from lc2 (max_j logc_j), so y <= 0 and ``m_i = 0``: no maximum at all.
  The weights keep their absolute scale, so the reference's eps floors stay exact.
* exact mode (``online=True``): ``m_i`` is the running row maximum, updated once
  per tile (online softmax: when a tile raises it, the sums so far are rescaled by
  2^(m_old - m_new)). Keys with lc2 = -inf (zero fitness) weigh exactly 0, and a
  row whose every key is -inf returns A = B = 0 with m = 0 (never 0/0 inside).

Memory: the outputs plus one scratch row of ``tile`` values per block: O(N*D + tile).
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from ._fastexp import FASTMATH, exp2, row_max, zero


# Squared distances for small d, written out so that the coordinate loop is
# unrolled inside the vector loop over keys (k* are the tile's key rows).


@njit(inline="always", fastmath=FASTMATH)
def _sq1(q0, k0, j):
    t0 = q0 - k0[j]
    return t0 * t0


@njit(inline="always", fastmath=FASTMATH)
def _sq2(q0, q1, k0, k1, j):
    t0 = q0 - k0[j]
    t1 = q1 - k1[j]
    return t0 * t0 + t1 * t1


@njit(inline="always", fastmath=FASTMATH)
def _sq4(q0, q1, q2, q3, k0, k1, k2, k3, j):
    t0 = q0 - k0[j]
    t1 = q1 - k1[j]
    t2 = q2 - k2[j]
    t3 = q3 - k3[j]
    return t0 * t0 + t1 * t1 + t2 * t2 + t3 * t3


# Logits y[:n] = lc2[j] - inv2 * ||qi - sk_j||^2 of the keys j0 .. j0+n-1, one
# function per small d and a generic one: qi (d,) query, skt (d, Nk) scaled keys
# (row slices keep a unit stride LLVM can see: no gathers), lc2 (Nk,), y scratch.


@njit(fastmath=FASTMATH)
def _logits1(qi, skt, lc2, inv2, j0, n, y):
    lc, k0, q0 = lc2[j0 : j0 + n], skt[0, j0 : j0 + n], qi[0]
    for j in range(n):
        y[j] = lc[j] - inv2 * _sq1(q0, k0, j)


@njit(fastmath=FASTMATH)
def _logits2(qi, skt, lc2, inv2, j0, n, y):
    lc, j1 = lc2[j0 : j0 + n], j0 + n
    k0, k1 = skt[0, j0:j1], skt[1, j0:j1]
    q0, q1 = qi[0], qi[1]
    for j in range(n):
        y[j] = lc[j] - inv2 * _sq2(q0, q1, k0, k1, j)


@njit(fastmath=FASTMATH)
def _logits_n(qi, skt, lc2, inv2, j0, n, y):
    """Any d: the squared distance accumulates four coordinates per pass over y."""
    d = qi.shape[0]
    lc, j1 = lc2[j0 : j0 + n], j0 + n
    for j in range(n):
        y[j] = 0.0
    c = 0
    while c + 4 <= d:
        k0, k1, k2, k3 = skt[c, j0:j1], skt[c + 1, j0:j1], skt[c + 2, j0:j1], skt[c + 3, j0:j1]
        q0, q1, q2, q3 = qi[c], qi[c + 1], qi[c + 2], qi[c + 3]
        for j in range(n):
            y[j] += _sq4(q0, q1, q2, q3, k0, k1, k2, k3, j)
        c += 4
    while c < d:
        k0, q0 = skt[c, j0:j1], qi[c]
        for j in range(n):
            y[j] += _sq1(q0, k0, j)
        c += 1
    for j in range(n):
        y[j] = lc[j] - inv2 * y[j]


# B and A of the keys j0 .. j0+n-1 in one vector loop, for d == Dv <= 2 in
# reference mode -- the population itself (or its projection) as keys and values,
# every weight used straight from its register. Return the tile's B; add its A
# into a (Dv,).


@njit(inline="always", fastmath=FASTMATH)
def _wacc1(qi, skt, lc2, inv2, j0, n, vt, a):
    lc, k0, v0, q0 = lc2[j0 : j0 + n], skt[0, j0 : j0 + n], vt[0, j0 : j0 + n], qi[0]
    b = s0 = zero(a)
    for j in range(n):
        w = exp2(lc[j] - inv2 * _sq1(q0, k0, j))
        b += w
        s0 += w * v0[j]
    a[0] += s0
    return b


@njit(inline="always", fastmath=FASTMATH)
def _wacc2(qi, skt, lc2, inv2, j0, n, vt, a):
    lc, j1 = lc2[j0 : j0 + n], j0 + n
    k0, k1 = skt[0, j0:j1], skt[1, j0:j1]
    v0, v1 = vt[0, j0:j1], vt[1, j0:j1]
    q0, q1 = qi[0], qi[1]
    b = s0 = s1 = zero(a)
    for j in range(n):
        w = exp2(lc[j] - inv2 * _sq2(q0, q1, k0, k1, j))
        b += w
        s0 += w * v0[j]
        s1 += w * v1[j]
    a[0] += s0
    a[1] += s1
    return b


@njit(fastmath=FASTMATH)
def _exp_sum(y, n, m):
    """y[:n] <- 2^(y - m) in place; returns their sum.

    Two loops, not one: a loop that both stores and sums (``y[j] = w; b += w``) was
    vectorised differently by the Numba compile that runs in the process that compiles it
    and by the machine code that later processes load from the on-disk cache, so a seed
    gave other bits in the first process than in every later one (rosenbrock 10-D,
    ``minimize(seed=0, maxfev=60000)``: 5.4e-11 against 1.3e-11). A loop that only stores
    and one that only sums compile to the same code either way (a test in
    tests/kernels/test_numba_backend.py runs both processes)."""
    for j in range(n):
        y[j] = exp2(y[j] - m)
    b = zero(y)
    for j in range(n):
        b += y[j]
    return b


@njit(fastmath=FASTMATH)
def _accumulate(w, n, vt, j0, a):
    """a[c] += sum_j w[j] * vt[c, j0 + j] for every value column c.

    Four columns per pass, so each weight is loaded once per four products.
    """
    dv = vt.shape[0]
    j1 = j0 + n
    c = 0
    while c + 4 <= dv:
        v0, v1, v2, v3 = vt[c, j0:j1], vt[c + 1, j0:j1], vt[c + 2, j0:j1], vt[c + 3, j0:j1]
        s0 = s1 = s2 = s3 = zero(w)
        for j in range(n):
            wj = w[j]
            s0 += wj * v0[j]
            s1 += wj * v1[j]
            s2 += wj * v2[j]
            s3 += wj * v3[j]
        a[c] += s0
        a[c + 1] += s1
        a[c + 2] += s2
        a[c + 3] += s3
        c += 4
    while c < dv:
        v0 = vt[c, j0:j1]
        s0 = zero(w)
        for j in range(n):
            s0 += w[j] * v0[j]
        a[c] += s0
        c += 1


def _make_kernel(dclass: int, fused: bool, online: bool):
    """The kernel of one variant. ``dclass`` (1, 2; 0 = any d), ``fused`` and
    ``online`` are constants of the closure, so Numba prunes the other branches
    before compiling: each variant compiles in ~4 s, where one kernel holding them
    all took ~40 s per dtype, and only the variants in use are compiled (the
    on-disk cache keys them by these constants).

    Only the functions of the D = 1, 2 loops are inlined by Numba itself
    (``inline="always"``); the others are left to LLVM's inliner, which halves
    the compile time and costs nothing measurable at larger d."""

    @njit(parallel=True, fastmath=FASTMATH, cache=True)
    def kernel(q, skt, vt, lc2, inv2, rows, tile):
        nb, nq, _ = q.shape
        nk = skt.shape[2]
        dv = vt.shape[1]
        dt = q.dtype
        a_out = np.zeros((nb, nq, dv), dtype=dt)
        b_out = np.zeros((nb, nq), dtype=dt)
        m_out = np.zeros((nb, nq), dtype=dt)
        nblk = (nq + rows - 1) // rows
        for task in prange(nb * nblk):
            r = task // nblk
            i0 = (task % nblk) * rows
            i1 = min(nq, i0 + rows)
            y = np.empty(tile, dtype=dt)
            m_run = np.full(i1 - i0, -np.inf, dtype=dt)
            for j0 in range(0, nk, tile):
                n = min(tile, nk - j0)
                for i in range(i0, i1):
                    qi = q[r, i]
                    if fused:
                        if dclass == 1:
                            b_out[r, i] += _wacc1(qi, skt[r], lc2[r], inv2, j0, n, vt[r], a_out[r, i])
                        else:
                            b_out[r, i] += _wacc2(qi, skt[r], lc2[r], inv2, j0, n, vt[r], a_out[r, i])
                        continue
                    if dclass == 1:
                        _logits1(qi, skt[r], lc2[r], inv2, j0, n, y)
                    elif dclass == 2:
                        _logits2(qi, skt[r], lc2[r], inv2, j0, n, y)
                    else:
                        _logits_n(qi, skt[r], lc2[r], inv2, j0, n, y)
                    m = zero(y)
                    if online:
                        mt = row_max(y, n)
                        m = m_run[i - i0]
                        if mt > m:
                            if m > -np.inf:  # rescale what the earlier tiles summed
                                scale = exp2(m - mt)
                                b_out[r, i] *= scale
                                for c in range(dv):
                                    a_out[r, i, c] *= scale
                            m = mt
                            m_run[i - i0] = m
                        if m == -np.inf:  # every key so far weighs 0: nothing to add
                            continue
                    b_out[r, i] += _exp_sum(y, n, m)
                    _accumulate(y, n, vt[r], j0, a_out[r, i])
            if online:
                for i in range(i0, i1):
                    m = m_run[i - i0]
                    m_out[r, i] = m if m > -np.inf else 0.0
        return a_out, b_out, m_out

    return kernel


_KERNELS: dict = {}


def direct_sums(q, skt, vt, lc2, inv2, online, rows, tile):
    """Pair sums by direct differences, batched.

    Args:
        q: (R, Nq, d) queries.
        skt: (R, d, Nk) keys times s, transposed (one contiguous row per coordinate).
        vt: (R, Dv, Nk) values, transposed.
        lc2: (R, Nk) log-coefficients in base 2 (minus any constant the caller chose).
        inv2: log2(e) / (2 sigma^2), in q's dtype.
        online: exact mode (running row maximum) when True.
        rows: query rows per parallel block; tile: keys per tile.

    Returns:
        A (R, Nq, Dv), B (R, Nq), M2 (R, Nq): sums scaled by 2^-M2 (M2 = 0 unless
        ``online``), in q's dtype.
    """
    d, dv = q.shape[2], vt.shape[1]
    dclass = d if d <= 2 else 0
    # d = Dv <= 2 in reference mode (the D = 1, 2 populations): one loop per tile
    fused = not online and d == dv and 1 <= d <= 2
    key = (dclass, fused, bool(online))
    kernel = _KERNELS.get(key)
    if kernel is None:
        kernel = _KERNELS[key] = _make_kernel(*key)
    return kernel(q, skt, vt, lc2, inv2, rows, tile)
