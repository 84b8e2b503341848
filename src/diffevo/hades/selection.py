"""Selection for HADES: the quality buffer and the weights of its samples.

* :class:`Buffer`: the training set, ``capacity`` evaluated points (the HADES paper:
  4 x popsize). Once full, policy ``'quality'`` evicts the worst, so it holds the
  best points ever seen; ``'diversity'`` (the default of :class:`~diffevo.hades.HADES`)
  lets each newcomer replace its nearest buffered point if it is fitter, so every
  region keeps its own best points. Measured on Himmelblau (256 members, 30
  generations, seeds 0-4): with 'quality' the buffer fills with the first basin to
  be refined and the run ends with 1-3 of the 4 minima (members within 0.1); with
  'diversity' it keeps all 4 in 5 of 5 seeds.
* :func:`selection_weights`: roulette (``exp(s f_norm)`` of the min-max normalised
  fitness; the default, s = 3), cumulative (the running sum of those over the
  sorted values, the form of the authors' code), rank (``exp(s (rank_norm - 1))``)
  or Boltzmann (``exp(-s |f - f_max|)``), scaled so the best sample weighs 1 (they
  multiply a per-sample MSE).
* :func:`adaptive_pressure`: the s at which the population's best ``elite_ratio``
  share holds ``1 - elite_ratio`` of the roulette mass.

Fitness is "larger is better" throughout.
"""

from __future__ import annotations

import numpy as np

__all__ = ["SELECTIONS", "Buffer", "adaptive_pressure", "selection_weights"]

SELECTIONS = ("roulette", "cumulative", "rank", "boltzmann")
BUFFER_POLICIES = ("quality", "diversity")


class Buffer:
    """The best-kept training set: points x (M, D), fitness (M,), condition values (M, K).

    Immutable in use: :meth:`pushed` returns a new buffer (so a failed generation
    leaves the old one intact).
    """

    def __init__(self, capacity: int, ndim: int, num_conditions: int = 0,
                 policy: str = "quality"):
        self.capacity = int(capacity)
        self.policy = policy
        self.x = np.empty((0, ndim))
        self.fitness = np.empty(0)
        self.values = np.empty((0, num_conditions))

    @classmethod
    def of(cls, like: Buffer, x=None, fitness=None, values=None) -> Buffer:
        """A buffer of ``like``'s capacity with some arrays replaced."""
        out = cls.__new__(cls)
        out.capacity = like.capacity
        out.policy = like.policy
        out.x = like.x if x is None else x
        out.fitness = like.fitness if fitness is None else fitness
        out.values = like.values if values is None else values
        return out

    def __len__(self) -> int:
        return self.fitness.shape[0]

    def pushed(self, x: np.ndarray, fitness: np.ndarray, values: np.ndarray) -> Buffer:
        """This buffer plus the points of finite fitness, the worst evicted beyond capacity.

        A stable sort keeps the older of equally fit points, so ties evict the
        newcomers (the buffer does not churn on plateaus).
        """
        ok = np.isfinite(fitness)
        x, fitness, values = x[ok], fitness[ok], values[ok]
        if self.policy == "diversity" and len(self) + x.shape[0] > self.capacity:
            room = self.capacity - len(self)
            first = Buffer.of(self, np.concatenate([self.x, x[:room]]),
                              np.concatenate([self.fitness, fitness[:room]]),
                              np.concatenate([self.values, values[:room]]))
            return first._replace_nearest(x[room:], fitness[room:], values[room:])
        bx = np.concatenate([self.x, x])
        bf = np.concatenate([self.fitness, fitness])
        bv = np.concatenate([self.values, values])
        if bf.shape[0] > self.capacity:
            keep = np.sort(np.argsort(-bf, kind="stable")[: self.capacity])
            bx, bf, bv = bx[keep], bf[keep], bv[keep]
        return Buffer.of(self, bx, bf, bv)

    def _replace_nearest(self, x: np.ndarray, fitness: np.ndarray, values: np.ndarray) -> Buffer:
        """Each newcomer replaces its nearest buffered point when it is fitter (of several
        newcomers aiming at one point, the fittest); one KD-tree query, no loop."""
        from scipy.spatial import cKDTree

        if not x.shape[0]:
            return self
        _, slot = cKDTree(self.x).query(x)
        win = fitness > self.fitness[slot]
        idx = np.flatnonzero(win)
        order = idx[np.lexsort((-fitness[idx], slot[idx]))]
        order = order[np.r_[True, slot[order][1:] != slot[order][:-1]]] if order.size else order
        bx, bf, bv = self.x.copy(), self.fitness.copy(), self.values.copy()
        bx[slot[order]], bf[slot[order]], bv[slot[order]] = x[order], fitness[order], values[order]
        return Buffer.of(self, bx, bf, bv)


def _normalised(f: np.ndarray) -> np.ndarray:
    span = float(f.max() - f.min())
    return (f - f.min()) / span if span > 0 else np.ones_like(f)


def selection_weights(fitness: np.ndarray, kind: str, pressure: float) -> np.ndarray:
    """Per-sample weights (M,) in (0, 1], the best sample's = 1.

    Args:
        fitness: (M,) finite fitness values (larger is better).
        kind: ``'roulette'`` (``exp(s f_norm)``) or ``'boltzmann'`` (``exp(-s |f - f_max|)``).
        pressure: s >= 0.
    """
    if kind == "roulette":
        return np.exp(pressure * (_normalised(fitness) - 1.0))
    if kind == "rank":
        uniq, inverse = np.unique(fitness, return_inverse=True)
        r = np.arange(uniq.shape[0]) / max(uniq.shape[0] - 1, 1)
        return np.exp(pressure * (r - 1.0))[inverse]
    if kind == "boltzmann":
        return np.exp(-pressure * np.abs(fitness - fitness.max()))
    # cumulative: the sum of exp(s f_norm) over the distinct values up to this one, worst
    # first (the form of the HADES code; about linear ranking once most values are good)
    uniq, inverse = np.unique(fitness, return_inverse=True)
    cum = np.cumsum(np.exp(pressure * (_normalised(uniq) - 1.0)))
    return cum[inverse] / cum[-1]


def adaptive_pressure(fitness: np.ndarray, elite_ratio: float, lo: float = 0.1,
                      hi: float = 30.0) -> float:
    """The roulette pressure s in [lo, hi] at which the best ``ceil(elite_ratio N)``
    members hold ``1 - elite_ratio`` of the weight mass of fitness (N,).

    The elites' share grows monotonically with s, so a bisection finds it; when even
    ``hi`` (``lo``) over- or undershoots, the bound is returned.
    """
    n_elite = max(1, int(np.ceil(elite_ratio * fitness.shape[0])))
    fn = np.sort(_normalised(fitness))[::-1]
    goal = 1.0 - elite_ratio

    def share(s: float) -> float:
        w = np.exp(s * (fn - 1.0))
        return float(w[:n_elite].sum() / w.sum())

    if share(lo) >= goal:
        return lo
    if share(hi) <= goal:
        return hi
    a, b = lo, hi
    for _ in range(50):
        mid = 0.5 * (a + b)
        a, b = (mid, b) if share(mid) < goal else (a, mid)
    return 0.5 * (a + b)
