"""Argument checks shared by every public entry point.

Every error names the argument it is about, so a user sees ``fitness`` or
``alpha_t`` in the message rather than a NumPy broadcasting failure or NaN output.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ._array import is_gpu_array, namespace

DENSITIES = ("uniform", "kde")
MODES = ("reference", "exact")


def _device_view(a: Any, name: str):
    """torch / CAI / DLPack device arrays -> CuPy views (no copy), checked for the current device."""
    if is_gpu_array(a):
        from .backends.cuda_backend import as_cupy  # noqa: PLC0415 - only for device arrays

        return as_cupy(a, name)
    return a


def _on_device_of(a: Any, like: Any, name: str):
    """Put ``a`` beside the population ``like``: host data joins a device population (one
    upload); a device array beside a host population is refused, naming the argument."""
    if like is None:
        return a
    if namespace(like) is np:
        if is_gpu_array(a):
            raise ValueError(f"{name} is a GPU array but the population is a host (NumPy) array: "
                             "pass both on the same device")
        return a
    return namespace(like).asarray(_device_view(a, name))


def as_population(x: Any, name: str = "x", *, batched: bool = False, like: Any = None):
    """Check a population of finite floats; keep float32/float64, promote ints.

    Shape (N, D), or with ``batched`` also (R, N, D): R independent populations.
    ``like``: the population this array belongs beside (same device), if any.
    """
    x = _device_view(_on_device_of(x, like, name), name)
    xp = namespace(x)
    if not hasattr(x, "shape"):
        x = np.asarray(x)
    if x.dtype.kind in "biu":
        x = x.astype(xp.float64)
    elif x.dtype == xp.float16:
        x = x.astype(xp.float32)
    elif x.dtype not in (xp.float32, xp.float64):
        raise TypeError(f"{name} must be a float32 or float64 array; got dtype {x.dtype}")
    ndims = (2, 3) if batched else (2,)
    if x.ndim not in ndims:
        want = "(N, D) or (R, N, D)" if batched else "(N, D)"
        raise ValueError(f"{name} must be an array of shape {want}; got shape {tuple(x.shape)}")
    if min(x.shape[:-1], default=1) < 1:
        raise ValueError(f"{name} must have at least one member (N >= 1); got shape {tuple(x.shape)}")
    if x.shape[-1] < 1:
        raise ValueError(f"{name} must have at least one parameter (D >= 1); got shape {tuple(x.shape)}")
    if not bool(xp.isfinite(x).all()):
        raise ValueError(f"{name} contains NaN or inf")
    return xp.ascontiguousarray(x)


def as_vector(f: Any, shape: int | tuple, dtype, name: str = "fitness", *,
              non_negative: bool = False, like: Any = None):
    """Check a per-member vector of shape (N,) (or (R, N) for batches): finite, maybe >= 0.

    ``like``: the population the vector belongs to (it is put on the same device).
    """
    shape = (shape,) if isinstance(shape, (int, np.integer)) else tuple(shape)
    f = _device_view(_on_device_of(f, like, name), name)
    xp = namespace(f) if hasattr(f, "shape") else np
    f = xp.asarray(f)
    if f.dtype.kind not in "biuf":
        raise TypeError(f"{name} must be a real-valued array; got dtype {f.dtype}")
    if f.ndim == len(shape) + 1 and f.shape[-1] == 1:
        f = f[..., 0]
    if tuple(f.shape) != shape:
        if len(shape) == 1 and f.ndim == 1:
            raise ValueError(
                f"{name} must have length N={shape[0]} to match the population; got {f.shape[0]}")
        raise ValueError(f"{name} must have shape {shape} to match the population; "
                         f"got {tuple(f.shape)}")
    f = xp.ascontiguousarray(f, dtype=dtype)
    if not bool(xp.isfinite(f).all()):
        raise ValueError(f"{name} contains NaN or inf")
    if non_negative and f.size and float(f.min()) < 0:
        raise ValueError(
            f"{name} must be non-negative (it is a mapped fitness weight); "
            f"min is {float(f.min())!r}: use a fitness mapping such as Energy() or Power()"
        )
    return f


def check_alpha(value: Any, name: str, *, allow_one: bool) -> float:
    """alpha in (0, 1) -- or (0, 1] for the step's target alpha."""
    try:
        a = float(value)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be a real number in (0, 1); got {value!r}") from None
    upper_ok = a <= 1.0 if allow_one else a < 1.0
    if not (math.isfinite(a) and a > 0.0 and upper_ok):
        interval = "(0, 1]" if allow_one else "(0, 1)"
        raise ValueError(f"{name} must be in {interval}; got {value!r}")
    return a


def check_choice(value: Any, name: str, choices) -> str:
    if value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, choices))}; got {value!r}")
    return value


def check_positive(value: Any, name: str) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be a positive number; got {value!r}") from None
    if not (math.isfinite(v) and v > 0):
        raise ValueError(f"{name} must be a positive finite number; got {value!r}")
    return v


def check_step_noise(value: Any, alpha_t: float, alpha_prev: float) -> float:
    """The DDIM step's noise in [0, 1]; with noise the step must move toward the clean end."""
    eta = check_noise(value)
    if eta > 0 and alpha_prev < alpha_t:
        raise ValueError(
            f"alpha_prev ({alpha_prev!r}) must not be below alpha_t ({alpha_t!r}) when noise > 0: "
            "a DDIM step moves toward the clean end"
        )
    return eta


def check_noise(value: Any) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise TypeError(f"noise must be a number in [0, 1]; got {value!r}") from None
    if not (math.isfinite(v) and 0.0 <= v <= 1.0):
        raise ValueError(f"noise must be in [0, 1] (0: deterministic DDIM, 1: DDPM-like); got {value!r}")
    return v
