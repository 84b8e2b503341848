"""The CUDA backend: device arrays in, device arrays out, through ``diffevo._cuda``.

Loaded lazily (gsplat's rule): importing this module imports neither CuPy nor the
compiled CUDA module, and never initialises a GPU. The first device array that
reaches :func:`pairwise_sums` loads them. Turning torch / CAI / DLPack arrays into
CuPy views, streams and device checks live in :mod:`diffevo._device`; this module only
runs the kernels on CuPy arrays (the dispatch point has already made them batched,
contiguous and of one dtype).

Kernel paths (the names every backend shares, :data:`diffevo.backends.PATHS`)
---------------------------------------------------------------------------
``"direct"``: direct differences and MUFU exp (the compiled module's "simt" kernels),
any dtype, accurate at every alpha. ``"dot"``: tensor cores (3xTF32) on the centred
dot-product form (the "mma" kernels), float32 only, for large D. ``"auto"`` (the
default) takes the compiled module's choice (tensor cores for float32 from
``_core.kernel_configs()['tensor_core_min_d']``) unless the exponent's spread is too
large for the dot-product form to stay float32-accurate (:data:`MMA_MAX_SPREAD`, alpha
near 1), where it runs ``"direct"``; :func:`last_path` tells which one ran.
"""

from __future__ import annotations

import importlib.util
import sys
from typing import Any

import numpy as np

from .._device import cupy_module, namespace

DEVICE = "cuda"
PATHS = ("auto", "direct", "dot")

#: the shared path names -> the compiled module's kernel families
_KERNELS = {"direct": "simt", "dot": "mma"}

_REBUILD = (
    "rebuild with DIFFEVO_ENABLE_CUDA=ON: "
    "DIFFEVO_ENABLE_CUDA=ON pip install --no-build-isolation -e . (needs nvcc)"
)

_state: dict[str, Any] = {"reason": None, "checked": False, "last_path": None}

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


# ---------------------------------------------------------------------------
# kernel path selection
# ---------------------------------------------------------------------------


# ---------------------------------------------------------------------------
# the backend contract
# ---------------------------------------------------------------------------


def pairwise_sums(q, k, v, logc, s, inv2sigma2, online_max, *, path: str = "auto"):
    """The backend contract (:mod:`diffevo.backends`) on batched CuPy arrays.

    q (R, Nq, d), k (R, Nk, d), v (R, Nk, Dv), logc (R, Nk), C-contiguous, one dtype
    (the dispatch point guarantees it). ``path``: "auto", "direct" or "dot".

    Returns (A, B, M) as new CuPy arrays on q's device, in q's dtype; the kernel is
    queued on CuPy's current stream and the call returns without waiting for it (with
    ``path="auto"`` and a float32 D from the tensor-core threshold, :func:`choose_path`
    first reads one scalar, the exponent's spread, back to the host).
    """
    cuda = _cuda_module()
    cp = cupy_module("q")
    named = {"q": q, "k": k, "v": v, "logc": logc}
    for name, arr in named.items():
        if not isinstance(arr, cp.ndarray):
            raise TypeError(
                f"{name} must be a CuPy array for the cuda backend; got {type(arr).__name__} "
                "(the public API converts torch/CAI/DLPack arrays: diffevo.x0_estimate)"
            )
    dtype = q.dtype
    if path == "dot" and dtype == np.float64:
        raise ValueError("path='dot' (tensor cores, 3xTF32) runs float32 only; use path='direct' "
                         "or 'auto' for float64")
    dev = q.device.id
    for name, arr in named.items():
        if arr.device.id != dev:
            raise ValueError(f"{name} is on CUDA device {arr.device.id} but q is on device {dev}")
    batch, nq, d = q.shape
    nk, dv = k.shape[1], v.shape[2]
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
                path = choose_path(q, k, float(s), float(inv2sigma2))
            _state["last_path"] = path
            stream = cp.cuda.get_current_stream()
            cuda.pairwise_sums(q.data.ptr, k.data.ptr, v.data.ptr, logc.data.ptr,
                               a.data.ptr, b.data.ptr, m.data.ptr,
                               int(batch), int(nq), int(nk), int(d), int(dv),
                               float(s), float(inv2sigma2), bool(online_max),
                               dtype == np.float64, int(stream.ptr), _KERNELS[path])
    return a, b, m


def exponent_spread(q, k, s: float, inv2sigma2: float) -> float:
    """``inv2sigma2 * max(max_i |q_i - s mu|^2, s^2 max_j |k_j - mu|^2)``, mu the mean key
    (per batch; the maximum over batches): the scale of the exponent that the tensor-core
    path computes in dot-product form. Synchronises (one scalar comes back to the host)."""
    xp = namespace(k)
    mu = k.mean(axis=-2, keepdims=True)
    kr = ((k - mu) ** 2).sum(axis=-1).max()
    qr = ((q - s * mu) ** 2).sum(axis=-1).max()
    return float(inv2sigma2 * max(float(xp.asarray(qr)), s * s * float(xp.asarray(kr))))


def tensor_core_min_d() -> int:
    """D from which float32 work goes to the tensor cores: the one definition lives in
    the C++ headers (``detail/params.hpp``), read through ``_core.kernel_configs()``."""
    from .. import _core  # noqa: PLC0415

    return int(_core.kernel_configs()["tensor_core_min_d"])


def choose_path(q, k, s: float, inv2sigma2: float) -> str:
    """What ``path="auto"`` runs: "dot" (tensor cores) for float32 from
    :func:`tensor_core_min_d`, overruled to "direct" when the exponent's spread exceeds
    :data:`MMA_MAX_SPREAD` (alpha near 1)."""
    if q.dtype == np.float64 or int(q.shape[-1]) < tensor_core_min_d():
        return "direct"
    if exponent_spread(q, k, s, inv2sigma2) > MMA_MAX_SPREAD:
        return "direct"
    return "dot"


def last_path() -> str | None:
    """The kernel path the latest :func:`pairwise_sums` call ran ("direct" or "dot")."""
    return _state["last_path"]


def kernel_names() -> list[str]:
    """Names of the compiled kernels (``diffevo._cuda.kernel_names()``), if it says."""
    fn = getattr(_cuda_module(), "kernel_names", None)
    return list(fn()) if fn is not None else []
