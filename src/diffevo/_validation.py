"""Argument checks shared by every public entry point.

Every error names the argument it is about, so a user sees ``fitness`` or
``alpha_t`` in the message rather than a NumPy broadcasting failure or NaN output.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ._array import namespace

DENSITIES = ("uniform", "kde")
MODES = ("reference", "exact")


def as_population(x: Any, name: str = "x"):
    """Check a population (N, D) of finite floats; keep float32/float64, promote ints."""
    xp = namespace(x)
    if not hasattr(x, "shape"):
        x = np.asarray(x)
    if x.dtype.kind in "biu":
        x = x.astype(xp.float64)
    elif x.dtype == xp.float16:
        x = x.astype(xp.float32)
    elif x.dtype not in (xp.float32, xp.float64):
        raise TypeError(f"{name} must be a float32 or float64 array; got dtype {x.dtype}")
    if x.ndim != 2:
        raise ValueError(f"{name} must be a 2-D array of shape (N, D); got shape {tuple(x.shape)}")
    if x.shape[0] < 1:
        raise ValueError(f"{name} must have at least one member (N >= 1); got shape {tuple(x.shape)}")
    if x.shape[1] < 1:
        raise ValueError(f"{name} must have at least one parameter (D >= 1); got shape {tuple(x.shape)}")
    if not bool(xp.isfinite(x).all()):
        raise ValueError(f"{name} contains NaN or inf")
    return xp.ascontiguousarray(x)


def as_vector(f: Any, n: int, dtype, name: str = "fitness", *, non_negative: bool = False):
    """Check a per-member vector of length n: finite, optionally non-negative."""
    xp = namespace(f) if hasattr(f, "shape") else np
    f = xp.asarray(f)
    if f.dtype.kind not in "biuf":
        raise TypeError(f"{name} must be a real-valued array; got dtype {f.dtype}")
    if f.ndim == 2 and f.shape[1] == 1:
        f = f[:, 0]
    if f.ndim != 1:
        raise ValueError(f"{name} must be a 1-D array of length N={n}; got shape {tuple(f.shape)}")
    if f.shape[0] != n:
        raise ValueError(f"{name} must have length N={n} to match the population; got {f.shape[0]}")
    f = xp.ascontiguousarray(f, dtype=dtype)
    if not bool(xp.isfinite(f).all()):
        raise ValueError(f"{name} contains NaN or inf")
    if non_negative and n and float(f.min()) < 0:
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


def check_noise(value: Any) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise TypeError(f"noise must be a number in [0, 1]; got {value!r}") from None
    if not (math.isfinite(v) and 0.0 <= v <= 1.0):
        raise ValueError(f"noise must be in [0, 1] (0: deterministic DDIM, 1: DDPM-like); got {value!r}")
    return v
