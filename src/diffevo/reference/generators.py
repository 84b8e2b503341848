"""Reference-compatible generators (SPEC.md section 6): one generation each.

Thin classes over :func:`diffevo.core.x0_estimate` and :func:`diffevo.core.ddim_step`.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .. import backends
from .._device import namespace
from .._random import as_generator
from .._validation import (
    DENSITIES,
    MODES,
    as_population,
    as_vector,
    check_alpha,
    check_choice,
    check_positive,
    check_step_noise,
)
from ..core import _ddim, _x0


class BayesianGenerator:
    """x0 estimate and DDIM step for one population at one noise level.

    Args:
        x: (N, D) population.
        fitness: (N,) non-negative mapped fitness (the kernel's weights).
        alpha: ``(alpha_t, alpha_prev)``.
        density: ``'uniform'`` or ``'kde'``.
        h: the KDE bandwidth (the published name; also readable as ``bandwidth``).
        mode, backend: see :func:`diffevo.x0_estimate`.
        rng: Generator or seed for the step's noise.
    """

    def __init__(
        self,
        x: Any,
        fitness: Any,
        alpha: tuple[float, float],
        density: str = "uniform",
        h: float = 0.1,
        *,
        mode: str = "reference",
        backend: str = "auto",
        rng: Any = None,
    ):
        self.x = as_population(x, "x")
        n = self.x.shape[0]
        self.fitness = as_vector(fitness, n, self.x.dtype, "fitness", non_negative=True,
                                 like=self.x)
        try:
            alpha_t, alpha_prev = alpha
        except (TypeError, ValueError):
            raise TypeError(f"alpha must be a pair (alpha_t, alpha_prev); got {alpha!r}") from None
        self.alpha_t = check_alpha(alpha_t, "alpha_t", allow_one=False)
        self.alpha_prev = check_alpha(alpha_prev, "alpha_prev", allow_one=True)
        self.density = check_choice(density, "density", DENSITIES)
        self.bandwidth = check_positive(h, "h")  # the published name is h
        self.mode = check_choice(mode, "mode", MODES)
        self.backend = backends.resolve(backend, self.x)
        self.rng = rng
        self._latent = None

    @property
    def h(self) -> float:
        """The KDE bandwidth under its published name."""
        return self.bandwidth

    def _code(self):
        """The positions distances are measured in (x itself here)."""
        return self.x

    def estimate_x0(self):
        """(N, D) x0 estimate of every member."""
        return _x0(self.x, self.fitness, self.alpha_t, self._code(), self.density,
                   self.bandwidth, self.mode, self.backend)

    def __call__(self, noise: float = 1.0, return_x0: bool = False):
        """Step the population: ``x_prev``, or ``(x_prev, x0)`` with ``return_x0``."""
        eta = check_step_noise(noise, self.alpha_t, self.alpha_prev)
        x0 = self.estimate_x0()
        rng = as_generator(self.rng, self.x) if eta > 0 else None
        x_next = _ddim(self.x, x0, self.alpha_t, self.alpha_prev, eta, None, rng)
        return (x_next, x0) if return_x0 else x_next

    generate = __call__


class LatentBayesianGenerator(BayesianGenerator):
    """As :class:`BayesianGenerator`, with distances (and density) in a latent code.

    Args:
        x: (N, D) population (the average is over it).
        latent: (N, d) latent code of x, e.g. ``RandomProjection(D, d)(x)``.
        fitness, alpha, density, h, mode, backend, rng: as for BayesianGenerator.
    """

    def __init__(self, x: Any, latent: Any, fitness: Any, alpha: tuple[float, float],
                 density: str = "uniform", h: float = 0.1, **kwargs: Any):
        super().__init__(x, fitness, alpha, density, h, **kwargs)
        z = as_population(latent, "latent", like=self.x)
        if z.shape[0] != self.x.shape[0]:
            raise ValueError(
                f"latent must have N={self.x.shape[0]} rows to match x; got shape {tuple(z.shape)}")
        self._latent = z.astype(self.x.dtype, copy=False)

    def _code(self):
        return self._latent


class RandomProjection:
    """Fixed random linear map R^D -> R^d: ``z = x W^T`` with W (d, D) ~ N(0, 1/D).

    Args:
        in_dim: D.
        out_dim: d.
        normalize: scale each row of W to unit norm.
        rng: Generator or seed.
    """

    def __init__(self, in_dim: int, out_dim: int, normalize: bool = True, *, rng: Any = None):
        for name, v in (("in_dim", in_dim), ("out_dim", out_dim)):
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
                raise ValueError(f"{name} must be a positive integer; got {v!r}")
        gen = as_generator(rng)
        w = gen.standard_normal((out_dim, in_dim)) / math.sqrt(in_dim)
        if normalize:
            w /= np.linalg.norm(w, axis=1, keepdims=True)
        self.weight = w
        self.in_dim, self.out_dim, self.normalize = int(in_dim), int(out_dim), normalize

    def __call__(self, x: Any):
        """(N, D) -> (N, d), in x's dtype and on x's device."""
        xp = namespace(x)
        if x.ndim != 2 or x.shape[1] != self.in_dim:
            raise ValueError(f"x must have shape (N, {self.in_dim}); got {tuple(x.shape)}")
        return x @ xp.asarray(self.weight, dtype=x.dtype).T
