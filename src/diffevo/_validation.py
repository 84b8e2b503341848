"""Argument checks shared by every public entry point.

Every error names the argument it is about, so a user sees ``fitness`` or
``alpha_t`` in the message rather than a NumPy broadcasting failure or NaN output.
"""

from __future__ import annotations

import math
import numbers
from typing import Any

import numpy as np

from ._device import device_view, namespace, on_device_of

DENSITIES = ("uniform", "kde")
MODES = ("reference", "exact")


def _plain_array(a: Any, name: str):
    """Refuse what would silently compute on hidden data; native byte order."""
    if isinstance(a, np.ma.MaskedArray):
        raise TypeError(f"{name} is a masked array (numpy.ma): pass plain data, e.g. "
                        f"{name}.filled(value) or {name}.compressed()")
    dtype = getattr(a, "dtype", None)
    if isinstance(a, np.ndarray) and dtype is not None and not dtype.isnative:
        a = a.astype(dtype.newbyteorder("="))  # big-endian in, native out (x and fitness alike)
    return a


def as_population(x: Any, name: str = "x", *, batched: bool = False, like: Any = None):
    """Check a population of finite floats; keep float32/float64, promote ints.

    Shape (N, D), or with ``batched`` also (R, N, D): R independent populations.
    ``like``: the population this array belongs beside (same device), if any.
    """
    x = device_view(on_device_of(_plain_array(x, name), like, name), name)
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
    f = device_view(on_device_of(_plain_array(f, name), like, name), name)
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


def as_real(value: Any, name: str, what: str) -> float:
    """A real number (Python, NumPy scalar or 0-d array) as a float; strings and bools are
    refused, so ``"0.5"`` or ``True`` never slip through as numbers."""
    if isinstance(value, (bool, np.bool_)) or isinstance(value, (str, bytes)):
        raise TypeError(f"{name} must be {what}; got {value!r}")
    if isinstance(value, np.ndarray) and value.ndim == 0:
        value = value[()]
    if not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be {what}; got {value!r}")
    return float(value)


def check_alpha(value: Any, name: str, *, allow_one: bool) -> float:
    """alpha in (0, 1) -- or (0, 1] for the step's target alpha."""
    a = as_real(value, name, "a real number in (0, 1)")
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
    v = as_real(value, name, "a positive number")
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
    v = as_real(value, "noise", "a number in [0, 1]")
    if not (math.isfinite(v) and 0.0 <= v <= 1.0):
        raise ValueError(f"noise must be in [0, 1] (0: deterministic DDIM, 1: DDPM-like); got {value!r}")
    return v


def check_bandwidth(value: Any, dtype) -> float:
    """The KDE bandwidth h > 0 whose kernel 1 / (2 h^2) is finite in ``dtype``: below
    that the Gaussian of every member with itself is inf * 0 (NaN)."""
    h = check_positive(value, "bandwidth")
    limit = math.sqrt(0.5 / float(np.finfo(dtype).max))
    if not h > limit:
        raise ValueError(f"bandwidth must exceed {limit:.3g} in {np.dtype(dtype).name} "
                         f"(1 / (2 h^2) overflows below it); got {value!r}")
    return h


def distance_limit(dtype, d: int) -> float:
    """The largest |coordinate| for which squared distances (and the dot-product form's
    norms) stay finite in ``dtype`` at d dimensions: sqrt(max / d) / 4."""
    return math.sqrt(float(np.finfo(dtype).max) / max(int(d), 1)) / 4.0


def check_distance_range(z: Any, name: str) -> None:
    """Refuse coordinates whose squared distances would overflow (NaN from inf - inf)."""
    xp = namespace(z)
    limit = distance_limit(z.dtype, z.shape[-1])
    if z.size and float(xp.abs(z).max()) > limit:
        raise ValueError(
            f"{name} has coordinates up to {float(xp.abs(z).max()):.3g}, beyond the supported "
            f"range |{name}| <= {limit:.3g} for {np.dtype(z.dtype).name} at d={z.shape[-1]} "
            "(squared distances would overflow): rescale the problem"
        )
