"""Fitness mappings (SPEC.md section 5): raw fitness f (N,) -> non-negative weight g (N,).

``mapped = forward(f) * exp(-l2_factor * ||f||^2)``, ``||f||`` the norm of the whole
fitness vector (one scalar per generation, as the reference does).

They are adapters of the one weight protocol, :class:`diffevo.shaping.Weighting`,
with ``sense = 'fitness'``: they receive the raw objective values, whatever the
optimisation direction (each mapping encodes its own: Energy prefers low values,
Identity and Power high ones).
"""

from __future__ import annotations

from typing import Any, ClassVar

from ._device import namespace
from .shaping import Weighting


class FitnessMapping(Weighting):
    """Base class of the SPEC section 5 mappings: subclasses define :meth:`forward`."""

    sense: ClassVar[str] = "fitness"

    def __init__(self, l2_factor: float = 0.0):
        self.l2_factor = float(l2_factor)

    def forward(self, fitness):  # pragma: no cover - abstract
        raise NotImplementedError

    def __call__(self, fitness: Any):
        xp = namespace(fitness)
        f = xp.asarray(fitness)
        if f.dtype.kind not in "fc":
            f = f.astype(xp.float64)
        out = self.forward(f)
        if self.l2_factor:
            out = out * xp.exp(-self.l2_factor * xp.sum(f * f))
        return out


class Identity(FitnessMapping):
    """g = f (f must already be non-negative)."""

    def forward(self, fitness):
        return fitness


class Energy(FitnessMapping):
    """Boltzmann weight for minimisation: ``exp(-f/T)``, shifted so the best member gets e^5."""

    def __init__(self, temperature: float = 1.0, l2_factor: float = 0.0):
        super().__init__(l2_factor)
        if not temperature > 0:
            raise ValueError(f"temperature must be positive; got {temperature!r}")
        self.temperature = float(temperature)

    def forward(self, fitness):
        xp = namespace(fitness)
        u = -fitness / self.temperature
        return xp.exp(u - u.max() + 5)


class Power(FitnessMapping):
    """``(f / T) ** power`` (f non-negative, or an even power)."""

    def __init__(self, power: float, temperature: float = 1.0, l2_factor: float = 0.0):
        super().__init__(l2_factor)
        if not temperature > 0:
            raise ValueError(f"temperature must be positive; got {temperature!r}")
        self.power = power
        self.temperature = float(temperature)

    def forward(self, fitness):
        return (fitness / self.temperature) ** self.power
