"""``DiffEvo``: the reference-compatible one-call optimiser (SPEC.md section 6)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .._device import namespace
from .._random import as_generator
from .._validation import DENSITIES, MODES, as_population, check_choice, check_noise, check_positive
from .generators import BayesianGenerator
from ..mappings import FitnessMapping, Identity
from ..schedulers import DDIMScheduler


class DiffEvo:
    """Diffusion Evolution with the reference's defaults.

    Args:
        num_step: schedule length (``num_step - 1`` generations).
        density: ``'uniform'`` or ``'kde'``.
        noise: 0 deterministic DDIM, 1 DDPM-like.
        scaling: fitness is evaluated on ``x * scaling``; the trace is scaled too.
        fitness_mapping: raw fitness -> non-negative weight; None = ``Identity()``.
        kde_bandwidth: KDE bandwidth h.
        scheduler: any schedule object (default ``DDIMScheduler(num_step)``).
        mode, backend: see :func:`diffevo.x0_estimate`.
        seed: int or ``numpy.random.Generator`` for the step noise.
    """

    def __init__(
        self,
        num_step: int = 100,
        density: str = "uniform",
        noise: float = 1.0,
        scaling: float = 1.0,
        fitness_mapping: FitnessMapping | Callable | None = None,
        kde_bandwidth: float = 0.1,
        scheduler: Any = None,
        *,
        mode: str = "reference",
        backend: str = "auto",
        seed: Any = None,
    ):
        self.num_step = num_step
        self.density = check_choice(density, "density", DENSITIES)
        self.noise = check_noise(noise)
        self.scaling = float(scaling)
        self.fitness_mapping = Identity() if fitness_mapping is None else fitness_mapping
        self.kde_bandwidth = check_positive(kde_bandwidth, "kde_bandwidth")
        self.scheduler = DDIMScheduler(num_step) if scheduler is None else scheduler
        self.mode = check_choice(mode, "mode", MODES)
        self.backend = backend
        self.seed = seed

    def optimize(self, fit_fn: Callable, initial_population: Any, trace: bool = False):
        """Run the whole schedule.

        Args:
            fit_fn: maps (N, D) populations (scaled) to (N,) raw fitness.
            initial_population: (N, D) starting population (unscaled).
            trace: also return the trace and the raw fitness of each step.

        Returns:
            The final (N, D) population; with ``trace`` the tuple
            ``(x, population_trace (steps+1, N, D), fitness_trace list of (N,))``.
        """
        x = as_population(initial_population, "initial_population")
        xp = namespace(x)
        rng = as_generator(self.seed, x, name="seed")
        populations = [x * self.scaling]
        fitnesses = []
        for _, alpha in self.scheduler:
            fitness = fit_fn(x * self.scaling)
            fitnesses.append(fitness)
            weight = self.fitness_mapping(fitness)
            gen = BayesianGenerator(x, weight, alpha, self.density, self.kde_bandwidth,
                                    mode=self.mode, backend=self.backend, rng=rng)
            x = gen(noise=self.noise)
            populations.append(x * self.scaling)
        if trace:
            return x, xp.stack(populations), fitnesses
        return x
