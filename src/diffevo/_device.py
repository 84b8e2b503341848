"""Device interop, in one place: which arrays live on a GPU, how to view them as CuPy
arrays without a copy, how to order work after their producer's stream, and how to
hand results back as the caller's own kind of array.

Imports no backend and never touches a GPU at import time (gsplat's rule): CuPy is
imported only when an array that is not a NumPy array arrives.

What it accepts
---------------
* NumPy arrays (host) and CuPy arrays (device), used as they are.
* Anything that speaks ``__cuda_array_interface__`` (CAI, numba.cuda, CuPy, ...) or
  ``__dlpack__`` (torch CUDA tensors, JAX, ...): :func:`as_cupy` wraps the memory
  without copying. The producer's stream is honoured without blocking the host:

  - CAI version 3 with a ``stream`` entry: an event recorded on the producer's stream
    makes CuPy's current stream wait for it (``cudaStreamWaitEvent``);
  - DLPack: ``__dlpack__(stream=<CuPy's current stream>)`` -- the producer orders its
    own stream before ours (that is DLPack's contract; torch does it with an event);
  - CAI without a stream entry: the producer declares that no synchronisation is needed.

  Results handed back by the public API (:func:`caller_kind`) go the other way on the
  same terms: a torch tensor in gives a torch tensor out (``torch.from_dlpack``, which
  orders torch's current stream after ours), a numba device array gives a numba device
  array (``numba.cuda.as_cuda_array``); any other producer gets CuPy arrays.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any

import numpy as np

#: DLPack device types that are CUDA memory (kDLCUDA, kDLCUDAHost, kDLCUDAManaged)
_DLPACK_CUDA_TYPES = (2, 3, 13)


# ---------------------------------------------------------------------------
# array kinds
# ---------------------------------------------------------------------------


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
        return int(kind) in _DLPACK_CUDA_TYPES
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


def cupy_module(name: str = "x"):
    """CuPy, imported on first use; a clear error naming ``name`` when it is missing."""
    try:
        import cupy
    except ImportError as err:
        raise RuntimeError(
            f"{name} is a CUDA device array but CuPy is not installed: "
            "pip install 'diffevo[cuda13]' (or [cuda12])"
        ) from err
    return cupy


# ---------------------------------------------------------------------------
# placing arrays beside a population
# ---------------------------------------------------------------------------


def device_view(a: Any, name: str):
    """torch / CAI / DLPack device arrays -> CuPy views (no copy), checked for the current device."""
    if is_gpu_array(a):
        return as_cupy(a, name)
    return a


def on_device_of(a: Any, like: Any, name: str):
    """Put ``a`` beside the population ``like``: host data joins a device population (one
    upload); a device array beside a host population is refused, naming the argument."""
    if like is None:
        return a
    if namespace(like) is np:
        if is_gpu_array(a):
            raise ValueError(f"{name} is a GPU array but the population is a host (NumPy) array: "
                             "pass both on the same device")
        return a
    return namespace(like).asarray(device_view(a, name))


# ---------------------------------------------------------------------------
# __cuda_array_interface__ parsing (pure Python: testable without a GPU)
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class CudaArrayInfo:
    """A parsed ``__cuda_array_interface__`` (versions 0 to 3).

    ``strides`` are in bytes, always explicit (C order filled in when the producer
    gave None); ``stream`` is None when the producer asks for no synchronisation.
    ``lo``/``hi`` are the byte offsets from ``ptr`` of the lowest and one past the
    highest byte an element occupies (``lo < 0`` only with negative strides).
    """

    ptr: int
    shape: tuple[int, ...]
    strides: tuple[int, ...]
    dtype: np.dtype
    readonly: bool
    stream: int | None
    version: int
    c_contiguous: bool
    lo: int
    hi: int

    @property
    def size(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64)) if self.shape else 1


def parse_cai(cai: Any, name: str = "x") -> CudaArrayInfo:
    """Check and parse a ``__cuda_array_interface__`` dict; errors name the argument.

    Follows the Numba specification of the interface (version 3): ``shape``,
    ``typestr``, ``data = (ptr, readonly)`` and ``version`` are required; ``strides``
    (None = C-contiguous), ``descr``, ``mask`` (must be None) and ``stream`` (None,
    or an int that is not 0; 1 = legacy default stream, 2 = per-thread default) are
    optional.
    """
    where = f"{name}.__cuda_array_interface__"
    if not isinstance(cai, dict):
        raise TypeError(f"{where} must be a dict; got {type(cai).__name__}")
    for key in ("shape", "typestr", "data", "version"):
        if key not in cai:
            raise ValueError(f"{where} lacks the required entry {key!r}")
    try:
        shape = tuple(_as_int(n) for n in cai["shape"])
    except (TypeError, ValueError):
        raise ValueError(f"{where}['shape'] must be a tuple of ints; got {cai['shape']!r}") from None
    if any(n < 0 for n in shape):
        raise ValueError(f"{where}['shape'] has a negative extent: {shape}")
    try:
        dtype = np.dtype(cai["typestr"])
    except TypeError:
        raise ValueError(f"{where}['typestr'] {cai['typestr']!r} is not a NumPy type string") from None
    if dtype.byteorder == ("<" if sys.byteorder == "big" else ">"):
        raise ValueError(f"{name} has non-native byte order ({cai['typestr']!r})")
    data = cai["data"]
    if not (isinstance(data, tuple) and len(data) == 2):
        raise ValueError(f"{where}['data'] must be a tuple (pointer, read_only); got {data!r}")
    try:
        ptr = _as_int(data[0])
    except (TypeError, ValueError):
        raise ValueError(f"{where}['data'][0] must be an integer pointer; got {data[0]!r}") from None
    if ptr < 0:
        raise ValueError(f"{where}['data'][0] must be a non-negative pointer; got {ptr}")
    version = _as_int(cai["version"])
    if cai.get("mask") is not None:
        raise ValueError(f"{name} is a masked array (__cuda_array_interface__['mask']); not supported")
    stream = cai.get("stream")
    if stream is not None:
        stream = _as_int(stream)
        if stream == 0:
            raise ValueError(
                f"{where}['stream'] is 0, which the interface forbids (ambiguous between the "
                "legacy and per-thread default streams: use 1 or 2)"
            )
    item = dtype.itemsize
    c_strides = []
    acc = item
    for n in reversed(shape):
        c_strides.append(acc)
        acc *= max(n, 1)
    c_strides = tuple(reversed(c_strides))
    strides = cai.get("strides")
    if strides is None:
        strides = c_strides
    else:
        try:
            strides = tuple(_as_int(st) for st in strides)
        except (TypeError, ValueError):
            raise ValueError(f"{where}['strides'] must be None or a tuple of ints; got {strides!r}") from None
        if len(strides) != len(shape):
            raise ValueError(f"{where}['strides'] has {len(strides)} entries for {len(shape)} axes")
    size = int(np.prod(shape, dtype=np.int64)) if shape else 1
    if size == 0:
        lo = hi = 0
    else:
        lo = sum(st * (n - 1) for st, n in zip(strides, shape) if st < 0)
        hi = sum(st * (n - 1) for st, n in zip(strides, shape) if st > 0) + item
    if size > 0 and ptr == 0:
        raise ValueError(f"{where}['data'][0] is a null pointer for a non-empty array")
    # C-contiguous: strides of axes with more than one element match C order
    c_contiguous = all(st == cst for st, cst, n in zip(strides, c_strides, shape) if n > 1)
    return CudaArrayInfo(ptr=ptr, shape=shape, strides=strides, dtype=dtype,
                         readonly=bool(data[1]), stream=stream, version=version,
                         c_contiguous=c_contiguous, lo=int(lo), hi=int(hi))


def _as_int(v: Any) -> int:
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
        raise TypeError(f"not an integer: {v!r}")
    return int(v)


# ---------------------------------------------------------------------------
# conversions
# ---------------------------------------------------------------------------


def is_foreign_device_array(obj: Any) -> bool:
    """A device array that is not a CuPy array (torch, numba, JAX, a raw CAI object)."""
    if isinstance(obj, np.ndarray):
        return False
    if type(obj).__module__.split(".")[0] == "cupy":
        return False
    return is_gpu_array(obj)


def as_cupy(obj: Any, name: str = "x"):
    """A CuPy view of a device array (no copy), ordered after its producer's stream.

    Also checks that the array lives on the current CUDA device (CuPy's current
    device, ``with cupy.cuda.Device(i):``), naming ``name`` in the error otherwise.
    """
    cp = cupy_module(name)
    if isinstance(obj, cp.ndarray):
        _check_current_device(obj.device.id, name)
        return obj
    try:
        cp.cuda.runtime.getDeviceCount()
    except Exception as err:  # no driver / no device: say so before touching the pointer
        raise RuntimeError(
            f"{name} is a CUDA device array but CUDA is not usable here: {err}"
        ) from err
    cai = _get_cai(obj, name)
    if cai is not None and cai.get("stream") is not None:
        arr = _wrap_cai(cp, obj, parse_cai(cai, name), name)
    elif hasattr(obj, "__dlpack__"):
        arr = _from_dlpack(cp, obj, name)
    elif cai is not None:
        arr = _wrap_cai(cp, obj, parse_cai(cai, name), name)
    else:
        raise TypeError(
            f"{name} ({type(obj).__name__}) has neither __cuda_array_interface__ nor __dlpack__"
        )
    return arr


def _get_cai(obj, name):
    try:
        return obj.__cuda_array_interface__
    except AttributeError:
        return None
    except Exception as err:  # e.g. torch: a tensor that requires grad refuses
        raise TypeError(f"{name} refused to export __cuda_array_interface__: {err}") from err


def _from_dlpack(cp, obj, name):
    try:
        dev_type, dev_id = obj.__dlpack_device__()
    except Exception as err:
        raise TypeError(f"{name}.__dlpack_device__() failed: {err}") from err
    if int(dev_type) not in _DLPACK_CUDA_TYPES:
        raise ValueError(f"{name} is not CUDA memory (DLPack device type {int(dev_type)})")
    if int(dev_type) == 2:
        _check_current_device(int(dev_id), name)
    try:
        return cp.from_dlpack(obj)
    except Exception as err:
        raise TypeError(f"{name} could not be imported through DLPack: {err}") from err


def _wrap_cai(cp, obj, info: CudaArrayInfo, name: str):
    if info.size == 0:
        return cp.empty(info.shape, dtype=info.dtype)
    try:
        attrs = cp.cuda.runtime.pointerGetAttributes(info.ptr)
        dev = int(attrs.device)
    except Exception as err:
        raise ValueError(f"{name}'s data pointer {info.ptr:#x} is not CUDA memory: {err}") from err
    _check_current_device(dev, name)
    mem = cp.cuda.UnownedMemory(info.ptr + info.lo, info.hi - info.lo, obj, dev)
    arr = cp.ndarray(info.shape, dtype=info.dtype, memptr=cp.cuda.MemoryPointer(mem, -info.lo),
                     strides=info.strides)
    if info.stream is not None:
        wait_for_stream(info.stream)
    return arr


def wait_for_stream(producer: int) -> None:
    """Make CuPy's current stream wait for the work queued so far on ``producer``.

    Non-blocking for the host: ``cudaEventRecord`` on the producer's stream, then
    ``cudaStreamWaitEvent`` on ours. 1 and 2 are the legacy and per-thread default
    streams (the interface's and the runtime's handles agree).
    """
    cp = cupy_module()
    rt = cp.cuda.runtime
    consumer = cp.cuda.get_current_stream().ptr
    if int(producer) == int(consumer):
        return
    event = rt.eventCreateWithFlags(rt.eventDisableTiming)
    try:
        rt.eventRecord(event, int(producer))
        rt.streamWaitEvent(consumer, event, 0)
    finally:
        rt.eventDestroy(event)  # released once the wait is satisfied


def _check_current_device(dev: int, name: str) -> None:
    cp = cupy_module(name)
    cur = cp.cuda.Device().id
    if dev != cur:
        raise ValueError(
            f"{name} is on CUDA device {dev} but the current device is {cur}: call diffevo under "
            f"`with cupy.cuda.Device({dev}):` (torch: `with torch.cuda.device({dev}):`), "
            "or move the array"
        )


def caller_kind(out: Any, like: Any):
    """Hand a result back as the caller's kind of array (``like``'s library).

    NumPy and CuPy results pass through; for a foreign device array in, torch ->
    ``torch.from_dlpack`` (zero copy; torch's current stream waits for ours),
    numba.cuda -> ``numba.cuda.as_cuda_array``; anything else -> the CuPy array.
    """
    if not is_foreign_device_array(like):
        return out
    lib = type(like).__module__.split(".")[0]
    if lib == "torch":
        import torch  # noqa: PLC0415

        return torch.from_dlpack(out)
    if lib == "numba":
        from numba import cuda  # noqa: PLC0415

        return cuda.as_cuda_array(out)
    return out
