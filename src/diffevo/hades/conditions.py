"""CHARLES-D conditions: what a sample is conditioned on, and which targets to ask for.

A condition does two jobs (the strategy calls them, users only construct them):

* ``values(x, fitness, state) -> (N,)``: the condition's value for evaluated points
  x (N, D) in the objective's coordinates (stored in the buffer beside the point);
  :meth:`Condition.refresh` may recompute the values of the whole buffer when they
  depend on it (novelty does).
* ``targets(n, state) -> (n,)``: the values requested for the n members sampled
  next; the model is asked, through classifier-free guidance, for points whose
  value is the target.

``fitness`` here is always "larger is better" (minus the objective when
minimising). ``state`` is a :class:`ConditionState`: the buffer and the population
just evaluated.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["Condition", "ConditionState", "FitnessCondition", "NoveltyCondition", "TraitCondition"]


@dataclass(frozen=True)
class ConditionState:
    """What a condition may look at (all host NumPy arrays).

    Attributes:
        buffer_x: (M, D) buffered points; buffer_fitness: (M,) their fitness.
        buffer_values: (M,) this condition's stored values of the buffered points.
        fitness: (N,) fitness of the population just evaluated; elite_fitness: (E,)
            its best E values (E >= 1).
        rng: the run's NumPy generator (all randomness comes from it).
    """

    buffer_x: np.ndarray
    buffer_fitness: np.ndarray
    buffer_values: np.ndarray
    fitness: np.ndarray
    elite_fitness: np.ndarray
    rng: np.random.Generator


class Condition:
    """Base class: override :meth:`values` and :meth:`targets` (and :meth:`refresh`)."""

    def values(self, x: np.ndarray, fitness: np.ndarray, state: ConditionState | None) -> np.ndarray:
        raise NotImplementedError

    def refresh(self, state: ConditionState) -> np.ndarray | None:
        """New values (M,) for the whole buffer, or None when stored values stay valid."""
        return None

    def targets(self, n: int, state: ConditionState) -> np.ndarray:
        raise NotImplementedError


class FitnessCondition(Condition):
    """Condition on the fitness itself: ask for slightly better than the elites.

    Target (Fisher's fundamental theorem, the HADES paper's choice): the mean
    elite fitness plus ``|0.5 var(f) z|``, z ~ N(0, 1) per sample, var(f) the
    variance of the population's fitness; ``greedy=True``: the best fitness plus
    ``0.5 var(f) z``.

    Args:
        greedy: see above.
        scale: divide fitness values (and targets) by this (default 1).
    """

    def __init__(self, greedy: bool = False, scale: float = 1.0):
        if not (isinstance(scale, (int, float)) and math.isfinite(scale) and scale > 0):
            raise ValueError(f"FitnessCondition: scale must be a positive number; got {scale!r}")
        self.greedy = bool(greedy)
        self.scale = float(scale)

    def values(self, x, fitness, state):
        return np.asarray(fitness, dtype=np.float64) / self.scale

    def targets(self, n, state):
        var = float(np.var(state.fitness))
        dw = 0.5 * var * state.rng.standard_normal(n)
        if self.greedy:
            return (float(state.elite_fitness.max()) + dw) / self.scale
        return (float(state.elite_fitness.mean()) + np.abs(dw)) / self.scale

    def __repr__(self) -> str:
        return f"FitnessCondition(greedy={self.greedy}, scale={self.scale})"


def knn_log_novelty(points: np.ndarray, k: int) -> np.ndarray:
    """``log(mean distance to the k nearest other points + 1e-8)`` for every row of
    points (M, D), through one KD-tree query (scipy's cKDTree, O(M log M))."""
    from scipy.spatial import cKDTree

    m = points.shape[0]
    kk = min(k, m - 1)
    if kk < 1:
        return np.zeros(m)
    dist, _ = cKDTree(points).query(points, k=kk + 1)
    return np.log(dist[:, 1:].mean(axis=1) + 1e-8)  # column 0 is the point itself


class NoveltyCondition(Condition):
    """Condition on novelty: the log mean distance to the k nearest neighbours.

    Values are computed over the buffer plus the new points (a point's neighbours
    change as the buffer does, so the buffer's values are refreshed every
    generation). Targets: a buffered value drawn with Boltzmann probability
    ``exp(-beta (1 - f_norm) / novelty_shifted)`` (novel AND fit points are
    favoured; f_norm the min-max normalised fitness, ``weight_by_fitness=False``
    drops it), plus Gaussian noise of half the drawn values' variance.

    Args:
        k: neighbours (default 10).
        beta: inverse temperature of the target draw (default 10).
        weight_by_fitness: see above.
    """

    def __init__(self, k: int = 10, beta: float = 10.0, weight_by_fitness: bool = True):
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
            raise ValueError(f"NoveltyCondition: k must be an integer >= 1; got {k!r}")
        if not (isinstance(beta, (int, float)) and math.isfinite(beta) and beta >= 0):
            raise ValueError(f"NoveltyCondition: beta must be a number >= 0; got {beta!r}")
        self.k = int(k)
        self.beta = float(beta)
        self.weight_by_fitness = bool(weight_by_fitness)

    def values(self, x, fitness, state):
        if state is None or state.buffer_x.shape[0] == 0:
            return knn_log_novelty(np.asarray(x, dtype=np.float64), self.k)
        both = np.concatenate([np.asarray(x, dtype=np.float64), state.buffer_x])
        return knn_log_novelty(both, self.k)[: x.shape[0]]

    def refresh(self, state):
        return knn_log_novelty(state.buffer_x, self.k)

    def targets(self, n, state):
        nov = state.buffer_values
        f = state.buffer_fitness
        shifted = nov - nov.min()
        if self.weight_by_fitness and f.max() > f.min():
            cost = 1.0 - (f - f.min()) / (f.max() - f.min())
        else:
            cost = np.ones_like(f)
        logits = -self.beta * cost / (shifted + 1e-8)
        p = np.exp(logits - logits.max())
        p /= p.sum()
        picked = nov[state.rng.choice(nov.shape[0], size=n, p=p)]
        return picked + state.rng.standard_normal(n) * 0.5 * float(np.var(picked))

    def __repr__(self) -> str:
        return f"NoveltyCondition(k={self.k}, beta={self.beta}, weight_by_fitness={self.weight_by_fitness})"


class TraitCondition(Condition):
    """Condition on a user trait: any function of the solutions, with a target value.

    Args:
        fn: ``fn(X (N, D)) -> (N,)`` real values (a phenotype or behaviour statistic),
            called once per evaluated population (values are stored, not recomputed).
        target: the value to ask for.
        spread: standard deviation of Gaussian noise added to the target (default 0).
    """

    def __init__(self, fn: Callable[[np.ndarray], Any], target: float, spread: float = 0.0):
        if not callable(fn):
            raise TypeError(f"TraitCondition: fn must be callable; got {type(fn).__name__}")
        for name, v in (("target", target), ("spread", spread)):
            if isinstance(v, bool) or not isinstance(v, (int, float, np.floating, np.integer)) \
                    or not math.isfinite(v):
                raise ValueError(f"TraitCondition: {name} must be a finite number; got {v!r}")
        if spread < 0:
            raise ValueError(f"TraitCondition: spread must be >= 0; got {spread!r}")
        self.fn = fn
        self.target = float(target)
        self.spread = float(spread)

    def values(self, x, fitness, state):
        v = np.asarray(self.fn(x), dtype=np.float64)
        if v.ndim == 2 and v.shape[1] == 1:
            v = v[:, 0]
        if v.shape != (x.shape[0],):
            raise ValueError(f"TraitCondition: fn must return shape ({x.shape[0]},), one value per "
                             f"row of X; got shape {v.shape}")
        if not np.isfinite(v).all():
            raise ValueError("TraitCondition: fn returned NaN or inf")
        return v

    def targets(self, n, state):
        t = np.full(n, self.target)
        return t + self.spread * state.rng.standard_normal(n) if self.spread else t

    def __repr__(self) -> str:
        return f"TraitCondition(fn={getattr(self.fn, '__name__', self.fn)!r}, target={self.target})"
