"""Array-kind helpers: tell NumPy from GPU arrays without importing CuPy.

Importing diffevo never touches a GPU (gsplat's rule): CuPy is imported only
when an array that is not a NumPy array arrives.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def is_gpu_array(a: Any) -> bool:
    """True for arrays that live on a CUDA device (CuPy, torch CUDA tensors, numba.cuda)."""
    if isinstance(a, np.ndarray):
        return False
    if hasattr(a, "__cuda_array_interface__"):
        return True
    dev = getattr(a, "__dlpack_device__", None)
    if dev is not None:
        try:
            kind, _ = dev()
        except Exception:  # pragma: no cover - producer-specific failures
            return False
        return int(kind) in (2, 3, 13)  # kDLCUDA, kDLCUDAHost, kDLCUDAManaged
    return False


def namespace(a: Any):
    """The array module (numpy or cupy) that operates on ``a``."""
    if isinstance(a, np.ndarray) or not is_gpu_array(a):
        return np
    import cupy  # noqa: PLC0415 - lazily, only when a GPU array arrives

    return cupy


def to_numpy(a: Any) -> np.ndarray:
    """A host NumPy copy of any supported array (no copy for NumPy input)."""
    if isinstance(a, np.ndarray):
        return a
    get = getattr(a, "get", None)
    if callable(get):
        return get()
    return np.asarray(a)
