"""The Numba CPU backend: the default on the CPU (see :mod:`diffevo.backends`).

Two paths, chosen per call:

* direct differences (:mod:`._numba_direct`) for small d -- exp-bound, one
  vectorised pass over key tiles per query row, exact at both ends of the schedule;
* the dot-product form (:mod:`._numba_gemm`) for wide problems (d + Dv and N
  large enough, ``DOT_WIDTH``) -- bound by two matrix products per block, done by
  BLAS -- but only where its cancellation error stays below ``DOT_TOL`` (alpha
  near 1 with a wide population falls back to the direct form).

Reference mode subtracts ``max_j logc_j`` (per batch) from the log-coefficients, so
every weight is <= 1, nothing overflows and the shift returned as M is that one
constant; exact mode keeps a running row maximum (online softmax) and returns it.
"""

from __future__ import annotations

import contextlib
import threading

import numpy as np

DEVICE = "cpu"
PATHS = ("auto", "direct", "dot")

#: when the dot-product form pays: (pairs per batch at least, d + Dv at least),
#: first match wins. Both forms cost about linearly in d + Dv per pair (distances
#: and the value sums); the dot form has a larger constant (two BLAS calls and
#: Python work per 512 x 512 block pair) and a much smaller slope. Measured
#: (float32, 2 threads, ms per call; bench/README.md):
#:   N = 16384: D = 12 direct 173 / dot 157; D = 16 227 / 155
#:   N = 8192:  D = 8 38 / 47; D = 16 63 / 49; D = 48 170 / 83;
#:              d = 2, Dv = 16 92 / 81; d = 2, Dv = 64 208 / 150
#:   N = 2048:  D = 16 4 / 7; D = 32 8 / 9; D = 64 15 / 11; d = 2, Dv = 64 32 / 13
#:   N = 1024:  D = 64 4 / 5; D = 256 20 / 13
#: Below 2^20 pairs the direct form always runs.
DOT_WIDTH = ((1 << 26, 24), (1 << 22, 64), (1 << 20, 128))

#: the dot form is used only where its logit error bound (natural-log units, i.e.
#: the relative error of a weight; :func:`._numba_gemm.dot_error_bound`) stays
#: below this. The error of x0 that follows is that times the spread of the members
#: that carry the weight over the x0 scale: on clustered float32 populations at
#: alpha = 0.5 .. 0.999 a bound of 1e-3 gave x0 errors of 3e-6 and even a bound of
#: 0.1 only 2e-5 (the float32 golden tolerance is 5e-5); float64 keeps 1e-10.
DOT_TOL = {np.dtype(np.float32): 2e-3, np.dtype(np.float64): 1e-10}

#: query rows per parallel block and keys per tile of the direct form; the tile of
#: keys, logits and values (d + Dv + 1 rows) stays in L2 while a block's rows visit it
_ROWS = 64
_TILE = 1024

#: below this much work (pairs x (d + Dv + 8)) the direct form runs on one thread:
#: a parallel launch costs tens of microseconds on a quiet machine, and a whole
#: scheduler slice (24 ms measured) when another process holds the second core --
#: at N = 1024, D = 2 (0.46 ms on one thread) that was a 50x slowdown
_SERIAL_WORK = 1 << 24

#: rows and keys per block of the dot form: two 512^2 buffers per worker thread
#: (float32: 1 MiB each), the only memory beyond O(N*D). Measured at N = 8192,
#: D = 64 on 2 threads: 256 -> 156 ms (Python work per block pair contends for
#: the GIL), 512 -> 108 ms, 1024 -> ~150 ms (blocks fall out of L2)
_BLOCK = 512

_LOG2E = 1.4426950408889634
_LN2 = 0.6931471805599453


def dot_pays(d: int, dv: int, pairs: int) -> bool:
    """Whether the dot-product form is the faster one (see ``DOT_WIDTH``)."""
    for min_pairs, min_width in DOT_WIDTH:
        if pairs >= min_pairs:
            return d + dv >= min_width
    return False


def _select(q, k, v, s, inv2sigma2, same, path):
    """(use the dot form?, its centred batches) for batched q (R, Nq, d), k, v."""
    from ._numba_gemm import centred, dot_error_bound

    nb, nq, d = q.shape
    use_dot = path == "dot" or (path == "auto" and dot_pays(d, v.shape[-1], nq * k.shape[1]))
    cent = []
    if use_dot:
        cent = [centred(q[r], k[r], s, same) for r in range(nb)]
        if path == "auto":
            # the cancellation bound decides; all batches share one path
            worst = max(dot_error_bound(c[2], c[3], inv2sigma2, q.dtype) for c in cent)
            use_dot = worst <= DOT_TOL[q.dtype]
    return use_dot, cent


def chosen_path(q, k, v, s: float, inv2sigma2: float) -> str:
    """'direct' or 'dot': the form ``pairwise_sums(q, k, v, ...)`` takes on 'auto'.

    q (Nq, d) or (R, Nq, d), k (.., Nk, d), v (.., Nk, Dv); for reports and benchmarks.
    """
    same = q is k
    if q.ndim == 2:
        q, v = q[None], v[None]
        k = q if same else k[None]
    return "dot" if _select(q, k, v, s, inv2sigma2, same, "auto")[0] else "direct"


def is_available() -> bool:
    try:
        import numba  # noqa: F401
    except ImportError:
        return False
    return True


def pairwise_sums(q, k, v, logc, s, inv2sigma2, online_max, *, path: str = "auto"):
    """See :mod:`diffevo.backends` for the contract (batched inputs).

    ``path`` ('auto', 'direct' or 'dot') forces one form; for tests and benchmarks.

    BLAS is held to one thread for the whole call: a threaded OpenBLAS call leaves its
    workers spinning for ~0.1 s afterwards, and those spinners took a third to a half
    of the 2 cores from the kernels (D = 2, N = 16384: 38 -> 65..95 ms; D = 64,
    N = 8192: 100 -> 150 ms).

    Concurrency: on Numba's ``workqueue`` threading layer (the one left where neither
    OpenMP nor TBB is installed) two threads launching parallel kernels at once abort
    the process, so calls are serialised there; OpenMP and TBB run them concurrently.
    """
    from ._numba_gemm import blas_single_thread

    limit = blas_single_thread()
    with _entry_guard(), (limit if limit is not None else contextlib.nullcontext()):
        return _pairwise_sums(q, k, v, logc, s, inv2sigma2, online_max, path)


_WORKQUEUE_LOCK = threading.Lock()
_layer: list[str] = []  # the threading layer, once Numba has chosen one


def _entry_guard():
    """The lock serialising calls on the workqueue layer (and while no layer is chosen
    yet: the first parallel launch picks it), a null context elsewhere."""
    if not _layer:
        import numba  # noqa: PLC0415

        try:
            _layer.append(numba.threading_layer())
        except ValueError:  # no parallel kernel has run yet
            return _WORKQUEUE_LOCK
    return _WORKQUEUE_LOCK if _layer[0] == "workqueue" else contextlib.nullcontext()


def _pairwise_sums(q, k, v, logc, s, inv2sigma2, online_max, path):
    import numba

    from ._numba_direct import direct_sums
    from ._numba_gemm import gemm_sums

    same = q is k  # the Gram-symmetry shortcut of the dot form
    dt = q.dtype
    nb, nq, d = q.shape
    nk = k.shape[1]

    if online_max or nk == 0:
        shift = np.zeros(nb, dtype=dt)
    else:
        # every weight <= 1 and the absolute scale comes back through M
        shift = logc.max(axis=1)
        shift = np.where(np.isfinite(shift), shift, 0).astype(dt)
    lc2 = ((logc - shift[:, None]) * dt.type(_LOG2E)).astype(dt, copy=False)
    inv2 = inv2sigma2 * _LOG2E

    use_dot, cent = _select(q, k, v, s, inv2sigma2, same, path)
    if use_dot:
        threads = numba.get_num_threads()
        out = [gemm_sums(cent[r], v[r], lc2[r], s, inv2, online_max, _BLOCK, same, threads)
               for r in range(nb)]
        a_sum = np.stack([o[0] for o in out])
        b_sum = np.stack([o[1] for o in out])
        m2 = np.stack([o[2] for o in out])
    else:
        skt = np.ascontiguousarray((k * dt.type(s)).transpose(0, 2, 1))
        vt = np.ascontiguousarray(v.transpose(0, 2, 1))
        args = (np.ascontiguousarray(q), skt, vt, np.ascontiguousarray(lc2),
                dt.type(inv2), bool(online_max), _ROWS, _TILE)
        if nb * nq * nk * (d + v.shape[-1] + 8) < _SERIAL_WORK:
            # small problem: one thread (Numba's setting is thread-local; restored)
            threads = numba.get_num_threads()
            numba.set_num_threads(1)
            try:
                a_sum, b_sum, m2 = direct_sums(*args)
            finally:
                numba.set_num_threads(threads)
        else:
            a_sum, b_sum, m2 = direct_sums(*args)
    if online_max:
        m = m2 * dt.type(_LN2)
    else:
        m = np.broadcast_to(shift[:, None], (nb, nq)).copy()
    return a_sum, b_sum, m


__all__ = ["DEVICE", "is_available", "pairwise_sums", "dot_pays", "chosen_path"]
