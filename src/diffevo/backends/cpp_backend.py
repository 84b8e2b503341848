"""The C++ host backend: the header-only kernels of csrc/include/diffevo via diffevo._core.

``pairwise_sums`` runs the same block body as the CUDA kernel's SIMT path
(``csrc/include/diffevo/detail/simt_block.hpp``) through a one-thread host execution
context with host-sized tiles, spread over the machine's cores with std::threads
(batched inputs, one path: direct differences).
"""

from __future__ import annotations

import numpy as np

DEVICE = "cpu"
PATHS = ("auto", "direct")


def is_available() -> bool:
    try:
        from .. import _core  # noqa: F401
    except ImportError:
        return False
    return True


def pairwise_sums(q, k, v, logc, s, inv2sigma2, online_max, *, path="auto"):
    """See :mod:`diffevo.backends` for the contract."""
    from .. import _core

    fn = _core.pairwise_sums_f32 if q.dtype == np.float32 else _core.pairwise_sums_f64
    return fn(q, k, v, logc, float(s), float(inv2sigma2), bool(online_max))
