"""The NumPy reference backend: the oracle for small N.

Direct differences (no dot-product rewrite, so no cancellation at alpha near 1),
tiled over query rows so that memory stays O(tile * Nk) and never O(N^2 * D).
"""

from __future__ import annotations

import numpy as np

DEVICE = "cpu"
PATHS = ("auto", "direct")

#: elements of one (query tile x keys) block; 2**22 float64 = 32 MiB
_BLOCK_ELEMENTS = 1 << 22


def is_available() -> bool:
    return True


def pairwise_sums(q, k, v, logc, s, inv2sigma2, online_max, *, path="auto"):
    """See :mod:`diffevo.backends` for the contract (batched inputs; one path, direct)."""
    # R independent populations, one after the other
    parts = [_pairwise_sums_2d(*args, s, inv2sigma2, online_max) for args in zip(q, k, v, logc)]
    return tuple(np.stack(p) for p in zip(*parts))


def _pairwise_sums_2d(q, k, v, logc, s, inv2sigma2, online_max):
    nq, nk = q.shape[0], k.shape[0]
    dtype = q.dtype
    a = np.zeros((nq, v.shape[1]), dtype=dtype)
    b = np.zeros(nq, dtype=dtype)
    m = np.zeros(nq, dtype=dtype)
    sk = (dtype.type(s) * k).T  # (d, nk): scaled keys, one column per key
    inv = dtype.type(inv2sigma2)
    rows = max(1, _BLOCK_ELEMENTS // max(nk, 1))
    for start in range(0, nq, rows):
        qt = q[start : start + rows]
        d2 = np.zeros((qt.shape[0], nk), dtype=dtype)
        for c in range(q.shape[1]):  # one coordinate at a time: no (tile, nk, D) array
            diff = qt[:, c : c + 1] - sk[c]
            d2 += diff * diff
        with np.errstate(over="ignore"):  # a far key's exponent is -inf: weight 0, as meant
            e = logc[None, :] - d2 * inv
        if online_max:
            mt = e.max(axis=1)
            mt = np.where(np.isfinite(mt), mt, 0)  # all weights zero: sums stay 0
            e -= mt[:, None]
            m[start : start + rows] = mt
        w = np.exp(e)
        b[start : start + rows] = w.sum(axis=1)
        a[start : start + rows] = w @ v
    return a, b, m
