"""The CUDA backend: device arrays in, device arrays out, through ``diffevo._cuda``.

Loaded lazily (gsplat's rule): importing this module imports neither CuPy nor the
compiled CUDA module, and never initialises a GPU. The first device array that
reaches :func:`pairwise_sums` loads them.

What it accepts
---------------
* CuPy arrays, used as they are.
* Anything that speaks ``__cuda_array_interface__`` (CAI, numba.cuda, CuPy, ...) or
  ``__dlpack__`` (torch CUDA tensors, JAX, ...): :func:`as_cupy` wraps the memory
  without copying. The producer's stream is honoured without blocking the host:

  - CAI version 3 with a ``stream`` entry: an event recorded on the producer's stream
    makes CuPy's current stream wait for it (``cudaStreamWaitEvent``);
  - DLPack: ``__dlpack__(stream=<CuPy's current stream>)`` -- the producer orders its
    own stream before ours (that is DLPack's contract; torch does it with an event);
  - CAI without a stream entry: the producer declares that no synchronisation is needed.

  Results handed back by the public API (:func:`to_caller_kind`) go the other way on
  the same terms: a torch tensor in gives a torch tensor out (``torch.from_dlpack``,
  which orders torch's current stream after ours), a numba device array gives a numba
  device array (``numba.cuda.as_cuda_array``); any other producer gets CuPy arrays.

Kernels run on ``cupy.cuda.get_current_stream()`` of the arrays' device, asynchronously.

Kernel paths
------------
``"simt"``: direct differences and MUFU exp, any dtype, accurate at every alpha.
``"mma"``: tensor cores (3xTF32) on the centred dot-product form, float32 only, for
large D. ``"auto"`` (the default; :func:`use_path` overrides it) takes the compiled
module's choice (``mma`` for float32 from D = 32) unless the exponent's spread is too
large for the dot-product form to stay float32-accurate (:data:`MMA_MAX_SPREAD`, alpha
near 1), where it runs ``"simt"``; :func:`last_path` tells which one ran.
"""

from __future__ import annotations

import contextlib
import importlib.util
import sys
from dataclasses import dataclass
from typing import Any, Iterator

import numpy as np

DEVICE = "cuda"

#: kernel paths of diffevo._cuda.pairwise_sums: "simt" (direct differences, fast exp,
#: small D), "mma" (tensor cores on the centred dot-product form, large D), or "auto"
PATHS = ("auto", "simt", "mma")

#: DLPack device types that are CUDA memory (kDLCUDA, kDLCUDAHost, kDLCUDAManaged)
_DLPACK_CUDA_TYPES = (2, 3, 13)

_REBUILD = (
    "rebuild with DIFFEVO_ENABLE_CUDA=ON: "
    "DIFFEVO_ENABLE_CUDA=ON pip install --no-build-isolation -e . (needs nvcc)"
)

_state: dict[str, Any] = {"reason": None, "checked": False, "path": "auto", "last_path": None}

#: ``path="auto"`` sends float32 work to the tensor cores only while the exponent's
#: spread ``inv2sigma2 * max_i |z_i - mean(z)|^2`` stays at or below this. The tensor-core
#: path computes the exponent in dot-product form (3xTF32, centred), whose absolute
#: error grows with that spread: its x0 error was measured (host simulation of the same
#: block code, emulated TF32 mma.sync, golden and random cases) at 1e-9 to 1e-8 times
#: the spread (5e-8 for one 7-member case) -- at most 3e-5 up to a spread of 4000,
#: within the float32 tolerance (5e-5), but 1e-4 to 4e-3 at alpha = 0.999..0.9999 for
#: D = 64..300 (spreads 1e4..2e6). A unit-variance population at D = 64 stays below 4000
#: up to alpha ~ 0.97, at D = 1024 up to alpha ~ 0.8. Near the clean end of the schedule
#: the SIMT path (direct differences) is the accurate one (SPEC.md section 3).
MMA_MAX_SPREAD = 4000.0


# ---------------------------------------------------------------------------
# availability (cheap; nothing here imports CuPy or touches a GPU at import time)
# ---------------------------------------------------------------------------


def build_has_cuda() -> bool:
    """True when the compiled package was built with its CUDA module."""
    try:
        from .. import _core
    except ImportError:
        return False
    return bool(getattr(_core, "cuda_built", False))


def unavailable_reason() -> str | None:
    """Why ``backend='cuda'`` cannot run here, or None when it can. Cached.

    Checks, in order: the CUDA module was built, CuPy is installed (looked up, not
    imported), and ``diffevo._cuda.device_count() > 0`` (0, never an exception, when
    there is no driver or device).
    """
    if not _state["checked"]:
        _state["reason"] = _find_reason()
        _state["checked"] = True
    return _state["reason"]


def _find_reason() -> str | None:
    if not build_has_cuda():
        return f"diffevo was built without CUDA ({_REBUILD})"
    if importlib.util.find_spec("cupy") is None:
        return "CuPy is not installed: pip install 'diffevo[cuda13]' (or [cuda12], matching your driver)"
    try:
        cuda = _cuda_module()
    except RuntimeError as err:
        return str(err)
    if int(cuda.device_count()) < 1:
        return "no CUDA device present (diffevo._cuda.device_count() == 0)"
    return None


def device_count() -> int:
    """CUDA devices the compiled module sees; 0 when not built or no driver (never raises)."""
    if not build_has_cuda():
        return 0
    try:
        return int(_cuda_module().device_count())
    except RuntimeError:
        return 0


def reset_availability_cache() -> None:
    """Forget the cached answer of :func:`unavailable_reason` (tests, hot-plug)."""
    _state["checked"] = False
    _state["reason"] = None


def is_available() -> bool:
    """CUDA module built, CuPy installed and at least one CUDA device present."""
    return unavailable_reason() is None


def _cuda_module():
    """``diffevo._cuda``, imported on first use."""
    mod = sys.modules.get("diffevo._cuda")
    if mod is not None:
        return mod
    if not build_has_cuda():
        raise RuntimeError(f"diffevo was built without CUDA ({_REBUILD})")
    try:
        from .. import _cuda
    except ImportError as err:  # built, but the module is missing or broken
        raise RuntimeError(f"diffevo._cuda could not be imported ({err}); {_REBUILD}") from err
    return _cuda


def _cupy(name: str = "x"):
    try:
        import cupy
    except ImportError as err:
        raise RuntimeError(
            f"{name} is a CUDA device array but CuPy is not installed: "
            "pip install 'diffevo[cuda13]' (or [cuda12])"
        ) from err
    return cupy


# ---------------------------------------------------------------------------
# kernel path selection
# ---------------------------------------------------------------------------


def _check_path(path: str) -> str:
    if path not in PATHS:
        raise ValueError(f"path must be one of {', '.join(map(repr, PATHS))}; got {path!r}")
    return path


def default_path() -> str:
    """The kernel path used when :func:`pairwise_sums` gets none (see :func:`use_path`)."""
    return _state["path"]


@contextlib.contextmanager
def use_path(path: str) -> Iterator[None]:
    """Force a kernel path ("simt" or "mma") for calls inside the block, e.g. in tests.

    >>> with use_path("mma"):
    ...     x0 = diffevo.x0_estimate(x_gpu, g_gpu, 0.5)       # doctest: +SKIP
    """
    old = _state["path"]
    _state["path"] = _check_path(path)
    try:
        yield
    finally:
        _state["path"] = old


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
    from .._array import is_gpu_array

    return is_gpu_array(obj)


def as_cupy(obj: Any, name: str = "x"):
    """A CuPy view of a device array (no copy), ordered after its producer's stream.

    Also checks that the array lives on the current CUDA device (CuPy's current
    device, ``with cupy.cuda.Device(i):``), naming ``name`` in the error otherwise.
    """
    cp = _cupy(name)
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
    cp = _cupy()
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
    cp = _cupy(name)
    cur = cp.cuda.Device().id
    if dev != cur:
        raise ValueError(
            f"{name} is on CUDA device {dev} but the current device is {cur}: call diffevo under "
            f"`with cupy.cuda.Device({dev}):` (torch: `with torch.cuda.device({dev}):`), "
            "or move the array"
        )


def to_caller_kind(out: Any, like: Any):
    """Hand a CuPy result back as the caller's kind of array (``like``'s library).

    torch -> ``torch.from_dlpack`` (zero copy; torch's current stream waits for ours);
    numba.cuda -> ``numba.cuda.as_cuda_array``; anything else -> the CuPy array.
    """
    lib = type(like).__module__.split(".")[0]
    if lib == "torch":
        import torch

        return torch.from_dlpack(out)
    if lib == "numba":
        from numba import cuda

        return cuda.as_cuda_array(out)
    return out


# ---------------------------------------------------------------------------
# the backend contract
# ---------------------------------------------------------------------------


def pairwise_sums(q, k, v, logc, s, inv2sigma2, online_max, *, path: str | None = None):
    """See :mod:`diffevo.backends` for the contract (2-D, or batched 3-D).

    Args beyond the contract:
        path: ``"auto"``, ``"simt"`` or ``"mma"``; default :func:`default_path`.

    Returns (A, B, M) as new CuPy arrays on q's device, in q's dtype; the kernel is
    queued on CuPy's current stream and the call returns without waiting for it (with
    ``path="auto"`` and a float32 D >= 32, :func:`choose_path` first reads one scalar,
    the exponent's spread, back to the host).
    """
    path = _check_path(default_path() if path is None else path)
    cuda = _cuda_module()
    cp = _cupy("q")
    named = {"q": q, "k": k, "v": v, "logc": logc}
    for name, arr in named.items():
        if not isinstance(arr, cp.ndarray):
            raise TypeError(
                f"{name} must be a CuPy array for the cuda backend; got {type(arr).__name__} "
                "(the public API converts torch/CAI/DLPack arrays: diffevo.x0_estimate)"
            )
    batched = q.ndim == 3
    ndim = 3 if batched else 2
    for name in ("q", "k", "v"):
        if named[name].ndim != ndim:
            raise ValueError(f"{name} must be {ndim}-D like q; got shape {named[name].shape}")
    if logc.ndim != ndim - 1:
        raise ValueError(f"logc must be {ndim - 1}-D; got shape {logc.shape}")
    q3, k3, v3 = (a if batched else a[None] for a in (q, k, v))
    logc2 = logc if batched else logc[None]
    batch, nq, d = q3.shape
    nk, dv = k3.shape[1], v3.shape[2]
    if k3.shape != (batch, nk, d):
        raise ValueError(f"k must have q's batch and columns (d={d}); got shape {k.shape}")
    if v3.shape[:2] != (batch, nk):
        raise ValueError(f"v must have k's rows (and batch) {k.shape[:-1]}; got shape {v.shape}")
    if logc2.shape != (batch, nk):
        raise ValueError(f"logc must have shape {k.shape[:-1]}; got {logc.shape}")
    dtype = q.dtype
    if dtype not in (np.float32, np.float64):
        raise TypeError(f"q must be float32 or float64; got {dtype}")
    for name, arr in named.items():
        if arr.dtype != dtype:
            raise TypeError(f"{name} has dtype {arr.dtype} but q has {dtype}: one dtype for all")
        if not arr.flags.c_contiguous:
            raise ValueError(f"{name} must be C-contiguous (cupy.ascontiguousarray({name}))")
    dev = q.device.id
    for name, arr in named.items():
        if arr.device.id != dev:
            raise ValueError(f"{name} is on CUDA device {arr.device.id} but q is on device {dev}")
    with q.device:
        a = cp.empty((batch, nq, dv), dtype=dtype)
        b = cp.empty((batch, nq), dtype=dtype)
        m = cp.empty((batch, nq), dtype=dtype)
        if batch * nq == 0 or nk == 0:
            a.fill(0)
            b.fill(0)
            m.fill(0)
        else:
            if path == "auto":
                path = choose_path(q3, k3, float(s), float(inv2sigma2))
            _state["last_path"] = path
            stream = cp.cuda.get_current_stream()
            cuda.pairwise_sums(q3.data.ptr, k3.data.ptr, v3.data.ptr, logc2.data.ptr,
                               a.data.ptr, b.data.ptr, m.data.ptr,
                               int(batch), int(nq), int(nk), int(d), int(dv),
                               float(s), float(inv2sigma2), bool(online_max),
                               dtype == np.float64, int(stream.ptr), path)
    if batched:
        return a, b, m
    return a[0], b[0], m[0]


def exponent_spread(q, k, s: float, inv2sigma2: float) -> float:
    """``inv2sigma2 * max(max_i |q_i - s mu|^2, s^2 max_j |k_j - mu|^2)``, mu the mean key
    (per batch; the maximum over batches): the scale of the exponent that the tensor-core
    path computes in dot-product form. Synchronises (one scalar comes back to the host)."""
    from .._array import namespace

    xp = namespace(k)
    mu = k.mean(axis=-2, keepdims=True)
    kr = ((k - mu) ** 2).sum(axis=-1).max()
    qr = ((q - s * mu) ** 2).sum(axis=-1).max()
    return float(inv2sigma2 * max(float(xp.asarray(qr)), s * s * float(xp.asarray(kr))))


def choose_path(q, k, s: float, inv2sigma2: float) -> str:
    """What ``path="auto"`` runs: the compiled module's choice by dtype and D
    (``diffevo._cuda.choose_path``: tensor cores for float32 from D = 32), overruled to
    "simt" when the exponent's spread exceeds :data:`MMA_MAX_SPREAD` (alpha near 1)."""
    is_double = q.dtype == np.float64
    d = int(q.shape[-1])
    fn = getattr(_cuda_module(), "choose_path", None)
    path = fn(bool(is_double), d) if fn is not None else ("simt" if is_double or d < 32 else "mma")
    if path == "mma" and exponent_spread(q, k, s, inv2sigma2) > MMA_MAX_SPREAD:
        path = "simt"
    return path


def last_path() -> str | None:
    """The kernel path the latest :func:`pairwise_sums` call ran ("simt" or "mma")."""
    return _state["last_path"]


def kernel_names() -> list[str]:
    """Names of the compiled kernels (``diffevo._cuda.kernel_names()``), if it says."""
    fn = getattr(_cuda_module(), "kernel_names", None)
    return list(fn()) if fn is not None else []
