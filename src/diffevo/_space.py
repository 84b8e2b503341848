"""The search space: bounds parsing and the box-normalised coordinates of a run.

:func:`search_space` works out the dimension, ``center`` and ``scale`` from
``x0``, ``ndim``, ``sigma0`` and ``bounds``; the choices, and why:

* **Coordinates.** The diffusion runs in normalised coordinates ``u``; the
  objective sees ``x = center + scale * u``. ``center`` is x0 (default: the box's
  mid-point, or 0 without bounds); ``scale`` is sigma0 (default: the box's standard
  deviation width / sqrt(12) per coordinate, or 1 without bounds). With bounds and
  no x0 the first population is uniform in the box -- unit variance in u, like the
  Gaussian the schedule assumes, so the kernel widths of the x0 estimate mean the
  same thing on every problem (half the width instead lost two of Himmelblau's
  four minima in 6 of 6 seeds); otherwise it is ``N(x0, scale^2)``.
* **Bounds** are handled by evaluating on *clipped* points: the population itself
  moves freely (the diffusion's dynamics are not distorted), but ``ask`` returns
  ``clip(x, low, high)``, so the objective is only ever called inside the box and
  every reported point (``result.x``, ``result.population``) is feasible.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from ._device import to_numpy
from ._settings import check_int

__all__ = ["Box", "parse_bounds", "search_space"]


def parse_bounds(bounds: Any, ndim: int | None) -> tuple[np.ndarray, np.ndarray] | None:
    """Normalise ``bounds`` to ``(low (D,), high (D,))`` float64 arrays.

    Accepted forms: ``(low, high)`` scalars applied to every coordinate; a
    sequence of D ``(low, high)`` pairs (scipy's convention; shape (D, 2));
    an object with ``lb`` and ``ub`` attributes (``scipy.optimize.Bounds``).

    Raises:
        ValueError: naming ``bounds`` for a wrong shape, non-finite values, a
            dimension that disagrees with ``ndim``, or any ``low >= high``.
    """
    if bounds is None:
        return None
    if hasattr(bounds, "lb") and hasattr(bounds, "ub"):
        low = np.asarray(to_numpy(bounds.lb), dtype=np.float64)
        high = np.asarray(to_numpy(bounds.ub), dtype=np.float64)
    else:
        try:
            arr = np.asarray(to_numpy(bounds) if hasattr(bounds, "shape") else bounds,
                             dtype=np.float64)
        except (TypeError, ValueError):
            raise TypeError(
                f"bounds must be (low, high) or a sequence of (low, high) pairs; got {bounds!r}"
            ) from None
        if arr.shape == (2,):
            low, high = arr[:1], arr[1:]
        elif arr.ndim == 2 and arr.shape[1] == 2 and arr.shape[0] >= 1:
            low, high = arr[:, 0], arr[:, 1]
        else:
            raise ValueError(
                "bounds must be (low, high) or a sequence of D (low, high) pairs "
                f"(shape (D, 2)); got shape {arr.shape}")
    low, high = np.atleast_1d(low), np.atleast_1d(high)
    if low.shape != high.shape or low.ndim != 1:
        raise ValueError(f"bounds: low and high must have the same length; got {low.shape}, {high.shape}")
    if ndim is not None:
        if low.shape[0] == 1:
            low, high = np.repeat(low, ndim), np.repeat(high, ndim)
        elif low.shape[0] != ndim:
            raise ValueError(f"bounds has {low.shape[0]} (low, high) pairs but the problem has "
                             f"ndim={ndim} coordinates")
    if not (np.isfinite(low).all() and np.isfinite(high).all()):
        raise ValueError("bounds must be finite (the first population is drawn uniformly in them)")
    bad = np.flatnonzero(~(low < high))
    if bad.size:
        i = int(bad[0])
        raise ValueError(f"bounds must have low < high in every coordinate; coordinate {i} has "
                         f"low={low[i]!r} >= high={high[i]!r}")
    return low, high


def _bounds_per_coordinate(bounds: Any) -> bool:
    """Whether ``bounds`` lists one (low, high) pair per coordinate (so it gives D)."""
    if hasattr(bounds, "lb") and hasattr(bounds, "ub"):
        return np.ndim(to_numpy(bounds.lb)) == 1
    try:
        return len(np.shape(to_numpy(bounds) if hasattr(bounds, "shape") else bounds)) == 2
    except ValueError:
        return False


@dataclass(frozen=True)
class Box:
    """The affine map of a run, on the host: ``x = clip(center + scale * u, low, high)``.

    Attributes:
        ndim: D.
        center, scale: (D,) float64.
        low, high: (D,) float64 bounds, or None (unbounded).
        x0_given: whether ``center`` came from a user's x0 (then the first population
            is Gaussian around it, else uniform in the bounds).
    """

    ndim: int
    center: np.ndarray
    scale: np.ndarray
    low: np.ndarray | None
    high: np.ndarray | None
    x0_given: bool

    @property
    def bounds(self) -> tuple[np.ndarray, np.ndarray] | None:
        return None if self.low is None else (self.low, self.high)

    def first_population(self, rng: Any, n: int, xp: Any, dtype: Any):
        """(n, D) first population in u coordinates: uniform in the box, else N(0, 1)."""
        if self.low is not None and not self.x0_given:
            half = xp.asarray((self.high - self.low) / 2 / self.scale, dtype=dtype)
            r = rng.random((n, self.ndim), dtype=dtype)
            return (2 * r - 1) * half
        return rng.standard_normal((n, self.ndim), dtype=dtype)

    def on(self, xp: Any, dtype: Any) -> tuple[Any, Any, Any, Any]:
        """``(center, scale, low, high)`` as ``xp`` arrays of ``dtype`` (low/high None unbounded)."""
        def put(a):
            return None if a is None else xp.asarray(a, dtype=dtype)
        return put(self.center), put(self.scale), put(self.low), put(self.high)


def search_space(x0: Any, ndim: Any, sigma0: Any, bounds: Any) -> Box:
    """The :class:`Box` of a run from its x0 / ndim / sigma0 / bounds arguments.

    Raises:
        TypeError / ValueError naming ``x0``, ``ndim``, ``sigma0`` or ``bounds``.
    """
    x0_host = None
    if x0 is not None:
        x0_host = np.asarray(to_numpy(x0), dtype=np.float64)
        if x0_host.ndim != 1 or x0_host.shape[0] < 1:
            raise ValueError(f"x0 must be a 1-D array of shape (D,); got shape {x0_host.shape}")
        if not np.isfinite(x0_host).all():
            raise ValueError("x0 contains NaN or inf")
    if ndim is not None:
        ndim = check_int(ndim, "ndim", 1)
        if x0_host is not None and x0_host.shape[0] != ndim:
            raise ValueError(f"ndim={ndim} disagrees with x0 of length {x0_host.shape[0]}")
    elif x0_host is not None:
        ndim = x0_host.shape[0]
    if ndim is None and bounds is not None and _bounds_per_coordinate(bounds):
        ndim = parse_bounds(bounds, None)[0].shape[0]
    if ndim is None:
        raise ValueError("give x0, ndim, or per-coordinate bounds: the number of "
                         "parameters D is unknown")
    box = parse_bounds(bounds, ndim)

    if sigma0 is not None:
        s0 = np.asarray(to_numpy(sigma0), dtype=np.float64)
        if s0.ndim > 1 or (s0.ndim == 1 and s0.shape[0] not in (1, ndim)):
            raise ValueError(f"sigma0 must be a scalar or shape ({ndim},); got shape {s0.shape}")
        if not (np.isfinite(s0).all() and (s0 > 0).all()):
            raise ValueError(f"sigma0 must be positive and finite; got {sigma0!r}")
        scale = np.broadcast_to(s0, (ndim,)).copy()
    elif box is not None:
        scale = (box[1] - box[0]) / math.sqrt(12.0)
    else:
        scale = np.ones(ndim)
    if x0_host is not None:
        center = x0_host
    elif box is not None:
        center = (box[0] + box[1]) / 2
    else:
        center = np.zeros(ndim)
    low, high = (None, None) if box is None else box
    return Box(int(ndim), center, scale, low, high, x0_host is not None)
