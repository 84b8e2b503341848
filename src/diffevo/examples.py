"""Example fitness landscapes (SPEC.md section 7)."""

from __future__ import annotations

from typing import Any

import numpy as np

from ._device import namespace


def _sq_dist(x, mu):
    xp = namespace(x)
    d = x - xp.asarray(mu, dtype=x.dtype)
    return (d * d).sum(axis=-1)


def two_peak_density(x: Any, mu1=(-1.0, -1.0), mu2=(1.0, 1.0), std: float = 0.1):
    """Two isotropic Gaussian bumps in 2-D, normalised to about 1 on each peak.

    Args:
        x: (N, 2) points.

    Returns:
        (N,) ``2 (N1(x) + N2(x)) / (N1(mu1) + N2(mu2))``.
    """
    xp = namespace(x)
    x = xp.asarray(x, dtype=xp.float64) if x.dtype.kind != "f" else x
    # the normal densities' common factor 1/(2 pi std^2) cancels in the ratio
    bump = lambda mu: xp.exp(-_sq_dist(x, mu) / (2 * std * std))  # noqa: E731
    return bump(mu1) + bump(mu2)


def two_peak_density_step(x: Any, mu1=(-1.0, -1.0), mu2=(1.0, 1.0), std: float = 0.5):
    """1 within ``std`` of the nearer peak, else 1e-9; float32 like the reference.

    Args:
        x: (N, 2) points.

    Returns:
        (N,) float32 values.
    """
    xp = namespace(x)
    nearest = xp.minimum(_sq_dist(x, mu1), _sq_dist(x, mu2))
    return xp.where(nearest < std * std, np.float32(1.0), np.float32(1e-9)).astype(xp.float32)
