"""The Numba CPU backend: the default on the CPU (see :mod:`diffevo.backends`).

Two paths, chosen per call:

* direct differences (:mod:`._numba_direct`) for small d -- exp-bound, one
  vectorised pass over key tiles per query row, exact at both ends of the schedule;
* the dot-product form (:mod:`._numba_gemm`) for d >= ``DOT_MIN_D`` -- bound by two
  matrix products per block, done by BLAS -- but only where its cancellation error
  stays below ``DOT_TOL`` (alpha near 1 with a wide population falls back to the
  direct form).

Reference mode subtracts ``max_j logc_j`` (per batch) from the log-coefficients, so
every weight is <= 1, nothing overflows and the shift returned as M is that one
constant; exact mode keeps a running row maximum (online softmax) and returns it.
"""

from __future__ import annotations

import numpy as np

DEVICE = "cpu"

#: smallest latent/feature width d that may use the dot-product form. Measured
#: (bench/README.md): on 1 core at N=4096 the direct form wins up to d=16
#: (0.53 vs 0.37 G pairs/s in float32), they tie near d=24, the dot form wins from
#: d=32 (0.31 vs 0.22) and by 3-4x at d=64..256.
DOT_MIN_D = 24

#: below this many pairs per batch the dot form's per-block overhead does not pay
DOT_MIN_PAIRS = 1 << 20

#: the dot form is used only where its logit error bound (natural-log units, i.e.
#: relative error of a weight) stays below this -- about 1000 eps in float32, where
#: the direct form itself carries ~1e-7 |logit|; far below the 1e-10 golden
#: tolerance in float64
DOT_TOL = {np.dtype(np.float32): 1e-4, np.dtype(np.float64): 1e-12}

#: query rows per parallel block and keys per tile of the direct form; the tile of
#: keys, logits and values (d + Dv + 1 rows) stays in L2 while a block's rows visit it
_ROWS = 64
_TILE = 1024

#: rows and keys per block of the dot form: two 1024^2 buffers per worker thread
#: (float32: 8 MiB each), the only memory beyond O(N*D)
_BLOCK = 1024

_LOG2E = 1.4426950408889634
_LN2 = 0.6931471805599453


def is_available() -> bool:
    try:
        import numba  # noqa: F401
    except ImportError:
        return False
    return True


def pairwise_sums(q, k, v, logc, s, inv2sigma2, online_max, *, path: str = "auto"):
    """See :mod:`diffevo.backends` for the contract (2-D or batched 3-D arrays).

    ``path`` ('auto', 'direct' or 'dot') forces one form; for tests and benchmarks.
    """
    import numba

    from ._numba_direct import direct_sums
    from ._numba_gemm import centred, dot_error_bound, gemm_sums

    same = q is k  # before any reshaping: the Gram-symmetry shortcut of the dot form
    batched = q.ndim == 3
    if not batched:
        q, k, v, logc = q[None], k[None], v[None], logc[None]
    dt = q.dtype
    nb, nq, d = q.shape
    nk = k.shape[1]
    if path not in ("auto", "direct", "dot"):
        raise ValueError(f"path must be 'auto', 'direct' or 'dot'; got {path!r}")

    if online_max or nk == 0:
        shift = np.zeros(nb, dtype=dt)
    else:
        # every weight <= 1 and the absolute scale comes back through M
        shift = logc.max(axis=1)
        shift = np.where(np.isfinite(shift), shift, 0).astype(dt)
    lc2 = ((logc - shift[:, None]) * dt.type(_LOG2E)).astype(dt, copy=False)
    inv2 = inv2sigma2 * _LOG2E

    use_dot = path == "dot" or (
        path == "auto" and d >= DOT_MIN_D and nq * nk >= DOT_MIN_PAIRS
    )
    cent = []
    if use_dot:
        cent = [centred(q[r], k[r], s, same) for r in range(nb)]
        if path == "auto":
            # the cancellation bound decides; all batches share one path
            worst = max(dot_error_bound(c[2], c[3], inv2sigma2, dt) for c in cent)
            use_dot = worst <= DOT_TOL[dt]

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
        a_sum, b_sum, m2 = direct_sums(
            np.ascontiguousarray(q), skt, vt, np.ascontiguousarray(lc2),
            dt.type(inv2), bool(online_max), _ROWS, _TILE,
        )
    if online_max:
        m = m2 * dt.type(_LN2)
    else:
        m = np.broadcast_to(shift[:, None], (nb, nq)).copy()
    if not batched:
        return a_sum[0], b_sum[0], m[0]
    return a_sum, b_sum, m


__all__ = ["DEVICE", "is_available", "pairwise_sums", "DOT_MIN_D"]
