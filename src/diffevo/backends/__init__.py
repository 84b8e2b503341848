"""The one dispatch point: every x0 estimate and KDE density goes through here.

:func:`resolve` picks a backend and returns it as a :class:`Backend`, whose
:meth:`Backend.pairwise_sums` normalises the inputs ONCE -- batched 3-D, C-contiguous,
one dtype -- and checks the kernel path, so that no backend re-does any of it.

A backend is a module (or any object: the grid approximation and the Dask sharding
are objects that wrap another backend) with

* ``DEVICE``: ``"cpu"`` (takes NumPy arrays) or ``"cuda"`` (takes CuPy arrays);
* ``is_available() -> bool`` (cheap; never initialises a GPU; optional for objects);
* ``PATHS``: the kernel paths it implements, a subset of :data:`PATHS` (optional:
  ``("auto", "direct")`` when absent);
* ``pairwise_sums(q, k, v, logc, s, inv2sigma2, online_max, *, path) -> (A, B, M)``
  on batched arrays q (R, Nq, d), k (R, Nk, d), v (R, Nk, Dv), logc (R, Nk) -> A (R, Nq, Dv),
  B (R, Nq), M (R, Nq): for every query row i of batch r, with
  ``e_ij = logc_j - ||q_i - s k_j||^2 * inv2sigma2`` (keys of batch r only),
  ``A_i = sum_j exp(e_ij - M_i) v_j`` and ``B_i = sum_j exp(e_ij - M_i)``.
  With ``online_max`` the shift ``M_i`` is the row maximum of ``e_ij`` (flash-attention
  style; exact mode); without it a backend returns ``M_i = 0`` or any shift it used,
  because callers only ever use ``exp(M_i) * (A_i, B_i)``.
  Inputs are C-contiguous and all of one dtype (float32 or float64); outputs are in that
  dtype. ``s`` and ``inv2sigma2`` are Python floats.

Kernel paths, one vocabulary on every device: ``"direct"`` (direct differences: exact
at both ends of the schedule), ``"dot"`` (the centred dot-product form: matrix products,
BLAS on the CPU, tensor cores on the GPU) and ``"auto"`` (the backend chooses).

Backends differ only in how they compute the sums; the math around them (the eps
floors, the density, the DDIM step) lives once, in :mod:`diffevo.core`.
"""

from __future__ import annotations

import importlib
import warnings
from types import ModuleType
from typing import Any

from .._device import is_gpu_array, namespace

#: backend name -> module implementing it, in order of preference on each device
_MODULES = {
    "numpy": "diffevo.backends.numpy_backend",
    "cpp": "diffevo.backends.cpp_backend",
    "numba": "diffevo.backends.numba_backend",
    "cuda": "diffevo.backends.cuda_backend",
}
_CPU_PREFERENCE = ("numba", "numpy")
BACKENDS = ("auto",) + tuple(_MODULES)

#: the kernel-path names shared by every backend
PATHS = ("auto", "direct", "dot")

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


def check_path(path: Any) -> str:
    """A kernel-path name from :data:`PATHS`; the error names ``path``."""
    if not isinstance(path, str) or path not in PATHS:
        raise ValueError(f"path must be one of {', '.join(map(repr, PATHS))}; got {path!r}")
    return path


class Backend:
    """A resolved backend: the implementation plus the one input normalisation.

    Attributes:
        name: the backend's name ("numpy", "numba", ..., or the object's ``name``).
        DEVICE: "cpu" or "cuda".
        impl: the module or object computing the sums.
    """

    def __init__(self, impl: Any, name: str):
        self.impl = impl
        self.name = name
        self.DEVICE = impl.DEVICE
        self.paths = tuple(getattr(impl, "PATHS", ("auto", "direct")))

    def pairwise_sums(self, q, k, v, logc, s: float, inv2sigma2: float, online_max: bool,
                      *, path: str = "auto"):
        """The contract's sums for 2-D (Nq, d) or batched 3-D (R, Nq, d) inputs; the
        result has the inputs' rank. q may be k (the Gram-symmetry shortcut is kept)."""
        path = check_path(path)
        if path not in self.paths:
            raise ValueError(f"path={path!r} is not a kernel path of backend {self.name!r} "
                             f"(it has {', '.join(map(repr, self.paths))})")
        xp = namespace(q)
        batched = q.ndim == 3
        dtype = q.dtype

        def norm(a, rank):
            a = a if a.ndim == rank else a[None]
            return xp.ascontiguousarray(a, dtype=dtype)

        q3 = norm(q, 3)
        k3 = q3 if k is q else norm(k, 3)
        v3 = norm(v, 3)
        lc2 = norm(logc, 2)
        if not (k3.shape[0] == q3.shape[0] == v3.shape[0] == lc2.shape[0]
                and k3.shape[2] == q3.shape[2] and v3.shape[1] == k3.shape[1] == lc2.shape[1]):
            raise ValueError(f"pairwise_sums: inconsistent shapes q {q.shape}, k {k.shape}, "
                             f"v {v.shape}, logc {logc.shape}")
        a, b, m = self.impl.pairwise_sums(q3, k3, v3, lc2, float(s), float(inv2sigma2),
                                          bool(online_max), path=path)
        if batched:
            return a, b, m
        return a[0], b[0], m[0]

    def __repr__(self) -> str:
        return f"Backend({self.name!r}, device={self.DEVICE!r})"


def resolve(backend: Any, array: Any) -> Backend:
    """Pick the backend for ``array``; explain any mismatch by argument name.

    ``backend``: a name from :data:`BACKENDS`, a :class:`Backend`, or an object
    implementing the contract (``DEVICE`` and ``pairwise_sums``).
    """
    if isinstance(backend, Backend):
        mod, name = backend.impl, backend.name
    elif isinstance(backend, str):
        mod, name = None, backend
    elif hasattr(backend, "pairwise_sums") and getattr(backend, "DEVICE", None) in ("cpu", "cuda"):
        mod, name = backend, str(getattr(backend, "name", type(backend).__name__))
    else:
        raise ValueError(f"backend must be one of {', '.join(map(repr, BACKENDS))} or an object with "
                         f"DEVICE and pairwise_sums; got {backend!r}")
    on_gpu = is_gpu_array(array)
    if mod is None:
        if name not in BACKENDS:
            raise ValueError(f"backend must be one of {', '.join(map(repr, BACKENDS))}; got {name!r}")
        if name == "auto":
            name = "cuda" if on_gpu else _cpu_default()
        mod = load(name)
        if mod is None or not mod.is_available():
            hint = ""
            if name == "cuda":
                hint = (
                    " (this diffevo was built without CUDA, or no CUDA device/CuPy is present; "
                    "rebuild with DIFFEVO_ENABLE_CUDA=ON and install diffevo[cuda13])"
                )
            raise RuntimeError(f"backend {name!r} is not available on this machine{hint}")
    if on_gpu and mod.DEVICE != "cuda":
        raise ValueError(
            f"x is a GPU array but backend {name!r} runs on the CPU: "
            "use backend='cuda' (or 'auto'), or move x to the host first"
        )
    if not on_gpu and mod.DEVICE == "cuda":
        raise ValueError(
            f"x is a host (NumPy) array but backend {name!r} needs a device array: "
            "pass a CuPy array (cupy.asarray(x))"
        )
    return Backend(mod, name)


def _cpu_default() -> str:
    """numba, or numpy with a one-time warning when numba is missing."""
    global _warned_fallback
    for name in _CPU_PREFERENCE:
        mod = load(name)
        if mod is not None and mod.is_available():
            if name != _CPU_PREFERENCE[0] and not _warned_fallback:
                _warned_fallback = True
                warnings.warn(
                    f"diffevo: numba is not importable, falling back to the slow "
                    f"'{name}' backend (pip install numba)",
                    RuntimeWarning,
                    stacklevel=4,
                )
            return name
    raise RuntimeError("no CPU backend is available")  # pragma: no cover - numpy always is
