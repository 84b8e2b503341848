"""Dot-product pair sums: the large-D path of the numba backend (SPEC section 3, "It is attention").

    ||q_i - s k_j||^2 = a_i + b_j - 2 s S_ij,   S = Qc Kc^T,  Qc = Q - s mu,  Kc = K - mu

with mu the keys' mean (centring keeps the norms, and so the cancellation, at the
population's spread instead of its distance from the origin). The two products
per block -- S = Qc Kc^T and A += W V -- go to BLAS (NumPy's matmul); the weights
W = 2^(y - m) in between are a serial Numba kernel. The block pairs are shared out
to worker threads (see :func:`gemm_sums`). Blocks are ``block x block``, two buffers
per worker: memory O(threads * (N*Dv + block^2)).

When queries and keys are the same points (``q is k``: every call from
:mod:`diffevo.core`), Kc Kc^T is a Gram matrix: one block product serves block
(I, J) and its mirror (J, I), which saves a quarter of the flops. Then
S_ij = G_ij + t_j with G = Kc Kc^T and t_j = (1 - s) mu . kc_j folded into b_j.

Accuracy: d2 is computed as a difference of terms of size ~R = max a + max b, so its
absolute error is ~eps * R, while the direct form's is ~eps * d2. The caller
(:mod:`diffevo.backends.numba_backend`) takes this path only where
eps * R / (2 sigma^2) is small (see :func:`dot_error_bound`); negative rounded d2 are
clamped to 0. Reference and exact mode work as in :mod:`._numba_direct`.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from numba import njit

from ._fastexp import FASTMATH, exp2, row_max, zero

#: columns per chunk of the transposed (mirror) pass
_COL_CHUNK = 64


@njit(nogil=True, fastmath=FASTMATH, cache=True)
def _rows_pass(s_blk, w_blk, a_row, b_key, lc2_key, inv2, two_s, acc_a, acc_b, acc_m, online):
    """Weights of rows I against keys J from the block product, row by row.

    s_blk (bi, bj) products (read), w_blk (bi, bj) weights (written; may be s_blk),
    a_row (bi,), b_key (bj,), lc2_key (bj,); acc_a (bi, Dv), acc_b (bi,), acc_m (bi,)
    are the rows' running sums and maxima (rescaled here when the maximum rises).
    Serial and GIL-free: the parallelism is the caller's worker threads.
    """
    bi, bj = s_blk.shape
    dv = acc_a.shape[1]
    for ii in range(bi):
        srow = s_blk[ii]
        wrow = w_blk[ii]
        ai = a_row[ii]
        m = zero(srow)
        if online:
            for jj in range(bj):
                d2 = max(ai + b_key[jj] - two_s * srow[jj], zero(srow))
                wrow[jj] = lc2_key[jj] - inv2 * d2
            mt = row_max(wrow, bj)
            m = acc_m[ii]
            if mt > m:
                if m > -np.inf:
                    scale = exp2(m - mt)
                    acc_b[ii] *= scale
                    for c in range(dv):
                        acc_a[ii, c] *= scale
                m = mt
                acc_m[ii] = m
            if m == -np.inf:
                m = zero(srow)  # every logit so far is -inf: exp2(-inf - 0) = 0, no NaN
            tot = zero(srow)
            for jj in range(bj):
                w = exp2(wrow[jj] - m)
                wrow[jj] = w
                tot += w
            acc_b[ii] += tot
        else:
            tot = zero(srow)
            for jj in range(bj):
                d2 = max(ai + b_key[jj] - two_s * srow[jj], zero(srow))
                w = exp2(lc2_key[jj] - inv2 * d2)
                wrow[jj] = w
                tot += w
            acc_b[ii] += tot


@njit(nogil=True, fastmath=FASTMATH, cache=True)
def _cols_pass(s_blk, a_col, b_row, lc2_row, inv2, two_s, acc_a, acc_b, acc_m, online):
    """Weights of the mirror block: rows J (columns of s_blk) against keys I (its rows).

    In place: s_blk (bi, bj) becomes W^T, i.e. s_blk[ii, jj] = weight of row J[jj]
    on key I[ii]. a_col (bj,), b_row (bi,), lc2_row (bi,); acc_a (bj, Dv),
    acc_b (bj,), acc_m (bj,) are the J rows' running sums and maxima. Chunks of
    columns keep the column sums and maxima in L1 while the rows stream by.
    """
    bi, bj = s_blk.shape
    dv = acc_a.shape[1]
    nchunk = (bj + _COL_CHUNK - 1) // _COL_CHUNK
    for ch in range(nchunk):
        c0 = ch * _COL_CHUNK
        c1 = min(bj, c0 + _COL_CHUNK)
        nc = c1 - c0
        ac = a_col[c0:c1]
        tot = np.zeros(nc, dtype=s_blk.dtype)
        if online:
            mt = np.full(nc, -np.inf, dtype=s_blk.dtype)
            for ii in range(bi):
                srow = s_blk[ii, c0:c1]
                bi_, li = b_row[ii], lc2_row[ii]
                for jj in range(nc):
                    d2 = max(ac[jj] + bi_ - two_s * srow[jj], zero(srow))
                    y = li - inv2 * d2
                    srow[jj] = y
                    mt[jj] = max(mt[jj], y)
            m = np.empty(nc, dtype=s_blk.dtype)
            for jj in range(nc):
                mo = acc_m[c0 + jj]
                if mt[jj] > mo:
                    if mo > -np.inf:
                        scale = exp2(mo - mt[jj])
                        acc_b[c0 + jj] *= scale
                        for c in range(dv):
                            acc_a[c0 + jj, c] *= scale
                    mo = mt[jj]
                    acc_m[c0 + jj] = mo
                m[jj] = mo if mo > -np.inf else 0.0  # all -inf so far: weights 0, no NaN
            for ii in range(bi):
                srow = s_blk[ii, c0:c1]
                for jj in range(nc):
                    w = exp2(srow[jj] - m[jj])
                    srow[jj] = w
                    tot[jj] += w
        else:
            for ii in range(bi):
                srow = s_blk[ii, c0:c1]
                bi_, li = b_row[ii], lc2_row[ii]
                for jj in range(nc):
                    d2 = max(ac[jj] + bi_ - two_s * srow[jj], zero(srow))
                    w = exp2(li - inv2 * d2)
                    srow[jj] = w
                    tot[jj] += w
        for jj in range(nc):
            acc_b[c0 + jj] += tot[jj]


def centred(q: np.ndarray, k: np.ndarray, s: float, same: bool):
    """Centred queries/keys and the per-row / per-key terms of the distance.

    Args:
        q: (Nq, d) queries; k: (Nk, d) keys; s: the key scale; same: q is k.

    Returns:
        (qc, kc, a, b): qc (Nq, d), kc (Nk, d) centred (for ``same``, qc is kc and
        the (1 - s) mu offset of the queries is folded into b), a (Nq,), b (Nk,)
        with ||q_i - s k_j||^2 = a_i + b_j - 2 s qc_i . kc_j.
    """
    dt = q.dtype
    mu = k.mean(axis=0, dtype=np.float64)
    kc = (k - mu.astype(dt)).astype(dt, copy=False)
    kn = np.einsum("ij,ij->i", kc, kc)
    if same:
        off = ((1.0 - s) * mu).astype(dt)  # q_i - s mu = kc_i + off
        qc = kc
        a = np.einsum("ij,ij->i", kc + off, kc + off)
        b = dt.type(s * s) * kn - dt.type(2.0 * s) * (kc @ off)
    else:
        qc = (q - (s * mu).astype(dt)).astype(dt, copy=False)
        a = np.einsum("ij,ij->i", qc, qc)
        b = dt.type(s * s) * kn
    return qc, kc, a.astype(dt, copy=False), b.astype(dt, copy=False)


def dot_error_bound(a: np.ndarray, b: np.ndarray, inv2sigma2: float, dtype) -> float:
    """Bound on the absolute logit error of the dot-product form (natural-log units).

    Every term of ``a_i + b_j - 2 s S_ij`` is at most ``max a + max |b|`` in size
    (Cauchy-Schwarz), and each is rounded to about one eps of its size.
    """
    if a.size == 0 or b.size == 0:
        return 0.0
    r = float(np.max(np.abs(a))) + float(np.max(np.abs(b)))
    return 4.0 * float(np.finfo(dtype).eps) * r * inv2sigma2


class _OneBlasThread:
    """Process-wide and reference-counted: the first thread in limits BLAS to one thread,
    the last one out restores the limits it found.

    threadpoolctl's own ``limit`` context restores what it saw on entry; two threads
    interleaving enter/exit (A saves 2 and sets 1, B saves 1, A restores 2, B restores
    1) left OpenBLAS at one thread for the rest of the process.
    """

    def __init__(self, controller):
        self._controller = controller
        self._lock = threading.Lock()
        self._depth = 0
        self._limiter = None

    def __enter__(self):
        with self._lock:
            if self._depth == 0:
                self._limiter = self._controller.limit(limits=1, user_api="blas")
            self._depth += 1
        return self

    def __exit__(self, *exc):
        with self._lock:
            self._depth -= 1
            if self._depth == 0:
                self._limiter.restore_original_limits()
                self._limiter = None
        return False


def blas_single_thread():
    """A context in which BLAS runs on one thread (threadpoolctl), or None without it.

    Made once, under a lock: two threads making their first dot-path calls together
    each built a limiter, and the second saved the first's limit of one thread as the
    "original" -- OpenBLAS stayed at one thread (a CI run of test_concurrency)."""
    global _LIMIT
    with _LIMIT_LOCK:
        if _LIMIT is None:
            try:
                from threadpoolctl import ThreadpoolController
            except ImportError:
                _LIMIT = False
            else:
                _LIMIT = _OneBlasThread(ThreadpoolController())
    return _LIMIT or None


_LIMIT = None
_LIMIT_LOCK = threading.Lock()


def gemm_sums(cent, v, lc2, s, inv2, online, block, same, threads):
    """Pair sums by the dot-product form for one batch (2-D arrays).

    Args:
        cent: :func:`centred` of the batch's queries (Nq, d) and keys (Nk, d);
        v: (Nk, Dv), lc2: (Nk,) base-2 log-coefficients (minus any constant the
        caller chose); s: key scale; inv2: log2(e)/(2 sigma^2); online: exact mode;
        block: rows/keys per block; same: q is k (Gram symmetry); threads: workers.

    Returns:
        A (Nq, Dv), B (Nq,), M2 (Nq,) as :func:`._numba_direct.direct_sums`.

    Threading: the block pairs are dealt round-robin to ``threads`` Python threads,
    each running single-threaded BLAS and the serial, GIL-free kernels on its own
    accumulators (merged at the end in a fixed order, so results do not depend on
    timing). Alternating a threaded BLAS with Numba's ``prange`` pool instead made
    the two pools' spinning workers fight for the 2 cores: 0.2 s became 3 to 50 s
    on a busy machine (bench/README.md). Without threadpoolctl, BLAS keeps its own
    threads and the blocks run on the calling thread.
    """
    qc, kc, a, b = cent
    dt = qc.dtype
    nq, nk = qc.shape[0], kc.shape[0]
    bq = min(block, nq)
    bk = min(block, nk)
    pairs = [(i0, j0) for i0 in range(0, nq, bq) for j0 in range(i0 if same else 0, nk, bk)]
    if blas_single_thread() is None:
        threads = 1
    args = (qc, kc, a, b, v, lc2, dt.type(inv2), dt.type(2.0 * s), online, bq, bk, same)
    if threads == 1:
        parts = [_work(pairs, *args)]
    else:
        workers = [pairs[t::threads] for t in range(threads)]
        limit = blas_single_thread()
        with limit, ThreadPoolExecutor(threads) as pool:
            parts = list(pool.map(lambda w: _work(w, *args), workers))
    return _merge(parts, online)


def _work(pairs, qc, kc, a, b, v, lc2, inv2, two_s, online, bq, bk, same):
    """One worker's share of block pairs (i0, j0), on private accumulators."""
    dt = qc.dtype
    nq, nk, dv = qc.shape[0], kc.shape[0], v.shape[1]
    acc_a = np.zeros((nq, dv), dtype=dt)
    acc_b = np.zeros(nq, dtype=dt)
    acc_m = np.full(nq, -np.inf, dtype=dt)
    # flat buffers: a partial edge block is a contiguous reshape of a prefix, so the
    # kernels always see C-contiguous blocks (strided views would compile to gathers)
    s_buf = np.empty(bq * bk, dtype=dt)
    w_buf = np.empty(bq * bk, dtype=dt) if same else None
    for i0, j0 in pairs:
        i1 = min(nq, i0 + bq)
        j1 = min(nk, j0 + bk)
        rows = slice(i0, i1)
        keys = slice(j0, j1)
        shape = (i1 - i0, j1 - j0)
        sb = s_buf[: shape[0] * shape[1]].reshape(shape)
        np.matmul(qc[rows], kc[keys].T, out=sb)
        mirror = same and j0 != i0
        wb = w_buf[: shape[0] * shape[1]].reshape(shape) if mirror else sb
        _rows_pass(sb, wb, a[rows], b[keys], lc2[keys], inv2, two_s,
                   acc_a[rows], acc_b[rows], acc_m[rows], online)
        if dv:
            acc_a[rows] += wb @ v[keys]
        if mirror:
            _cols_pass(sb, a[keys], b[rows], lc2[rows], inv2, two_s,
                       acc_a[keys], acc_b[keys], acc_m[keys], online)
            if dv:
                acc_a[keys] += sb.T @ v[rows]
    return acc_a, acc_b, acc_m


def _merge(parts, online):
    """Sum the workers' accumulators; in exact mode onto their common row maximum."""
    acc_a, acc_b, acc_m = parts[0]
    dt = acc_a.dtype
    if not online:
        for pa, pb, _ in parts[1:]:
            acc_a += pa
            acc_b += pb
        return acc_a, acc_b, np.zeros(acc_b.shape, dtype=dt)
    m = acc_m.copy()
    for _, _, pm in parts[1:]:
        np.maximum(m, pm, out=m)
    m = np.where(m > -np.inf, m, 0).astype(dt)
    a_out = np.zeros_like(acc_a)
    b_out = np.zeros_like(acc_b)
    for pa, pb, pm in parts:
        with np.errstate(invalid="ignore"):
            scale = np.where(pm > -np.inf, np.exp2(pm - m), 0).astype(dt)
        a_out += pa * scale[:, None]
        b_out += pb * scale
    return a_out, b_out, m


__all__ = ["gemm_sums", "centred", "dot_error_bound", "blas_single_thread"]
