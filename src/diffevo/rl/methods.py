"""The three training loops behind :func:`diffevo.rl.evolve`, one function each.

Every loop gets the same budget (``generations`` evaluations of ``popsize`` episodes),
evaluates the population on ``x * scaling`` and reports each generation's (P,)
returns to ``record``; it returns the last generation ``(x * scaling, returns)``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from .. import (
    BayesianGenerator,
    DDIMSchedulerCosine,
    DiffusionEvolution,
    LatentBayesianGenerator,
    RandomProjection,
)

METHODS = ("reference", "diffevo", "cma")


@dataclass
class Settings:
    """What a loop needs besides the fitness (validated by :func:`evolve`)."""

    popsize: int
    generations: int
    latent_dim: int | None
    scaling: float
    temperature: float
    noise: float
    shaping: str = "energy"


def select(x: np.ndarray, r: np.ndarray) -> int:
    """Index of the policy a run hands back: among the members with the highest return,
    the one nearest their mean.

    Returns are often tied at the top (CartPole's 500 cap, a deterministic training
    episode); the first of the tied members generalises worst to fresh episodes (measured:
    fresh-episode mean 409 against 500 on CartPole over 8 seeds), the central one best.
    """
    top = np.flatnonzero(r == r.max())
    pts = x[top]
    return int(top[np.argmin(((pts - pts.mean(axis=0)) ** 2).sum(axis=1))])


def paper_weights(r: np.ndarray, temperature: float) -> np.ndarray:
    """The paper's fitness mapping ``exp((r - r_max) / T)``, r_max this generation's best.

    The best member weighs 1. (A fixed task maximum such as CartPole's 500 would
    send every weight of an early generation to exp(-hundreds) = 0, leaving only the
    kernel's 1e-9 floor, i.e. uniform selection; the published code uses the
    generation's own maximum.)
    """
    return np.exp((r - r.max()) / temperature)


def _paper_weights_of(r, temperature: float) -> np.ndarray:
    return paper_weights(np.asarray(r), temperature)


def reference_loop(fit: Callable, d: int, s: Settings, rng: np.random.Generator,
                   record: Callable) -> tuple[np.ndarray, np.ndarray]:
    """The paper's loop: a cosine schedule of ``generations`` steps (``generations - 1``
    denoising steps and a last evaluation of the final population), x ~ N(0, I),
    noise 1, the (latent) Bayesian generator on the unscaled x."""
    x = rng.standard_normal((s.popsize, d))
    proj = RandomProjection(d, s.latent_dim, normalize=True, rng=rng) if s.latent_dim else None
    for _, alpha in DDIMSchedulerCosine(s.generations):
        r = fit(x * s.scaling)
        record(r)
        g = paper_weights(r, s.temperature)
        if proj is None:
            gen = BayesianGenerator(x, g, alpha, rng=rng)
        else:
            gen = LatentBayesianGenerator(x, proj(x), g, alpha, rng=rng)
        x = gen(noise=s.noise)
    r = fit(x * s.scaling)
    record(r)
    return x * s.scaling, r


def library_loop(fit: Callable, d: int, s: Settings, rng: np.random.Generator,
                 record: Callable) -> tuple[np.ndarray, np.ndarray]:
    """The library's own optimiser, :class:`diffevo.DiffusionEvolution` by ask/tell:
    ``generations`` evaluated generations, the last one landing on the x0 estimate
    (``denoise_final``), its own fitness shaping (``s.shaping``: ``'energy'``, the
    adaptive Boltzmann weights, by default; ``'paper'`` for ``exp((r - r_max) / T)``)."""
    shaping: str | Callable = s.shaping
    if s.shaping == "paper":
        shaping = functools.partial(_paper_weights_of, temperature=s.temperature)
    # centre='origin': the frame the RL results (bench/results/rl-*.json) were measured
    # with; the weighted frame minimize's defaults use above 3-D is not measured here yet
    es = DiffusionEvolution(s.popsize, np.zeros(d), sigma0=s.scaling, num_step=s.generations,
                            schedule="cosine", noise=s.noise, latent_dim=s.latent_dim,
                            fitness_shaping=shaping, centre="origin",
                            maximize=True, seed=rng)
    while not es.stop():
        x = np.asarray(es.ask())
        r = fit(x)
        record(r)
        es.tell(r)
    return x, r


def cma_loop(fit: Callable, d: int, s: Settings, rng: np.random.Generator,
             record: Callable) -> tuple[np.ndarray, np.ndarray]:
    """CMA-ES (pycma) as the paper ran it: x0 = 0, sigma 1, popsize 256, elitist,
    ``generations`` generations, evaluated on ``x * scaling``."""
    try:
        import cma  # noqa: PLC0415 - optional dependency (diffevo[rl])
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise ImportError("method='cma' needs pycma: pip install 'diffevo[rl]'") from exc
    opts = {"popsize": s.popsize, "CMA_elitist": True, "seed": int(rng.integers(1, 2**31 - 1)),
            "verbose": -9, "maxiter": s.generations}
    es = cma.CMAEvolutionStrategy(np.zeros(d), 1.0, opts)
    for _ in range(s.generations):
        x = np.asarray(es.ask())
        r = fit(x * s.scaling)
        record(r)
        es.tell(list(x), list(-r))  # pycma minimises
    return x * s.scaling, r


LOOPS = {"reference": reference_loop, "diffevo": library_loop, "cma": cma_loop}
