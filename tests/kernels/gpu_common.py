"""Shared by the CUDA tests: gating, tolerances and random cases (see test_cuda_numerics.py
for the tolerances and why)."""

from __future__ import annotations

import numpy as np
import pytest

from diffevo.backends import cuda_backend as cb

CUDA_BUILT = cb.build_has_cuda()
DEVICES = cb.device_count()
try:
    import cupy as _cupy_probe  # noqa: F401

    HAVE_CUPY = True
except ImportError:  # pragma: no cover - cupy is an optional extra
    HAVE_CUPY = False


def gpu(fn):
    """Mark a test ``gpu`` and skip it, with the reason, when it cannot run here."""
    # the first skipif applied is the first pytest evaluates: build, then device, then CuPy
    fn = pytest.mark.skipif(not CUDA_BUILT, reason="diffevo was built without CUDA")(fn)
    fn = pytest.mark.skipif(DEVICES < 1, reason="no CUDA device present")(fn)
    fn = pytest.mark.skipif(not HAVE_CUPY, reason="CuPy is not installed")(fn)
    return pytest.mark.gpu(fn)


def cuda_build(fn):
    fn = pytest.mark.skipif(not CUDA_BUILT, reason="diffevo was built without CUDA")(fn)
    return pytest.mark.cuda_build(fn)


RTOL64 = 1e-9
RTOL32 = 5e-5


def scale_err(actual, expected) -> float:
    """max |a - e| / max(1, max |e|)."""
    actual = np.asarray(actual, dtype=np.float64)
    expected = np.asarray(expected, dtype=np.float64)
    scale = max(1.0, float(np.max(np.abs(expected)))) if expected.size else 1.0
    return float(np.max(np.abs(actual - expected))) / scale if expected.size else 0.0


class FakeDeviceArray:
    """Speaks the CUDA array interface (a device pointer nobody may touch) and nothing else."""

    def __init__(self, shape=(8, 2), typestr="<f8", ptr=0xDEAD0000, stream=None):
        self.shape = shape
        self.ndim = len(shape)
        self.__cuda_array_interface__ = {"shape": shape, "typestr": typestr, "data": (ptr, False),
                                         "version": 3, "strides": None}
        if stream is not None:
            self.__cuda_array_interface__["stream"] = stream




def random_case(n, d, seed, dtype):
    rng = np.random.default_rng(seed)
    x = rng.normal(loc=0.3, size=(n, d)).astype(dtype)
    g = rng.random(n).astype(dtype)
    g[rng.random(n) < 0.1] = 0  # zero-fitness members: the eps floors matter
    return x, g
