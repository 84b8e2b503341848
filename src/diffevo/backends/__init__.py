"""The one dispatch point: every x0 estimate and KDE density goes through here.

A backend is a module with

* ``DEVICE``: ``"cpu"`` (takes NumPy arrays) or ``"cuda"`` (takes device arrays);
* ``is_available() -> bool`` (cheap; never initialises a GPU);
* ``pairwise_sums(q, k, v, logc, s, inv2sigma2, online_max) -> (A, B, M)``:
  for every query row i, with ``e_ij = logc_j - ||q_i - s k_j||^2 * inv2sigma2``,
  ``A_i = sum_j exp(e_ij - M_i) v_j`` (Nq, Dv) and ``B_i = sum_j exp(e_ij - M_i)`` (Nq,).
  With ``online_max`` the shift ``M_i`` is the row maximum of ``e_ij`` (flash-attention
  style; exact mode); without it a backend returns ``M_i = 0`` or any shift it used,
  because callers only ever use ``exp(M_i) * (A_i, B_i)``.

  Batched form: every argument may carry one leading batch axis R --
  q (R, Nq, d), k (R, Nk, d), v (R, Nk, Dv), logc (R, Nk) -> A (R, Nq, Dv),
  B (R, Nq), M (R, Nq) -- and then the rows of batch r see only the keys of
  batch r: R independent populations advanced in one call.

  Inputs are C-contiguous and all of one dtype (float32 or float64); outputs
  are in that dtype. ``s`` and ``inv2sigma2`` are Python floats.

Backends differ only in how they compute this; the math around it (the eps
floors, the density, the DDIM step) lives once, in :mod:`diffevo.core`.
"""

from __future__ import annotations

import importlib
import warnings
from types import ModuleType
from typing import Any

from .._array import is_gpu_array

#: backend name -> module implementing it, in order of preference on each device
_MODULES = {
    "numpy": "diffevo.backends.numpy_backend",
    "cpp": "diffevo.backends.cpp_backend",
    "numba": "diffevo.backends.numba_backend",
    "cuda": "diffevo.backends.cuda_backend",
}
_CPU_PREFERENCE = ("numba", "numpy")
BACKENDS = ("auto",) + tuple(_MODULES)

_warned_fallback = False


def load(name: str) -> ModuleType | None:
    """The backend module, or None when it cannot be imported here."""
    try:
        return importlib.import_module(_MODULES[name])
    except ImportError:
        return None


def available(device: str | None = None) -> list[str]:
    """Names of the backends usable on this machine (optionally only one device's)."""
    names = []
    for name in _MODULES:
        mod = load(name)
        if mod is not None and mod.is_available() and (device is None or mod.DEVICE == device):
            names.append(name)
    return names


def resolve(backend: str, array: Any) -> ModuleType:
    """Pick the backend module for ``array``; explain any mismatch by argument name."""
    global _warned_fallback
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {', '.join(map(repr, BACKENDS))}; got {backend!r}")
    on_gpu = is_gpu_array(array)
    if backend == "auto":
        if on_gpu:
            backend = "cuda"
        else:
            for name in _CPU_PREFERENCE:
                mod = load(name)
                if mod is not None and mod.is_available():
                    if name != _CPU_PREFERENCE[0] and not _warned_fallback:
                        _warned_fallback = True
                        warnings.warn(
                            f"diffevo: numba is not importable, falling back to the slow "
                            f"'{name}' backend (pip install numba)",
                            RuntimeWarning,
                            stacklevel=3,
                        )
                    return mod
    mod = load(backend)
    if mod is None or not mod.is_available():
        hint = ""
        if backend == "cuda":
            hint = (
                " (this diffevo was built without CUDA, or no CUDA device/CuPy is present; "
                "rebuild with DIFFEVO_ENABLE_CUDA=ON and install diffevo[cuda13])"
            )
        raise RuntimeError(f"backend {backend!r} is not available on this machine{hint}")
    if on_gpu and mod.DEVICE != "cuda":
        raise ValueError(
            f"x is a GPU array but backend {backend!r} runs on the CPU: "
            "use backend='cuda' (or 'auto'), or move x to the host first"
        )
    if not on_gpu and mod.DEVICE == "cuda":
        raise ValueError(
            "x is a host (NumPy) array but backend 'cuda' needs a device array: "
            "pass a CuPy array (cupy.asarray(x))"
        )
    return mod
