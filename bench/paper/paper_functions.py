"""The five 2-D functions of the paper's benchmark (arXiv 2410.02543), in the box [-4, 4]^2.

Each :class:`PaperFunction` carries what the protocol needs (issue 13, item 4): the target
value, the temperature scale of ``p = exp(-|f - target| / (T scale))``, the penalty given
to a point outside the box (the largest in-box ``|f - target|``), the direction, and the
global optima inside the box (for the modes table). Ackley and Rastrigin are *maximised*:
their in-box maxima sit at the four corners, found here by a root of the derivative along
the diagonal (both are symmetric under x <-> y and sign flips), not copied as rounded numbers.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy.optimize import brentq

from diffevo import problems

BOX = 4.0


@dataclass(frozen=True)
class PaperFunction:
    name: str
    fun: Callable[[np.ndarray], np.ndarray]
    target: float
    scale: float
    penalty: float
    maximize: bool
    optima: np.ndarray  # (k, 2) every global optimum in the box

    def err(self, x: np.ndarray) -> np.ndarray:
        """|f(x) - target| for (..., 2) points; the penalty outside [-4, 4]^2."""
        x = np.asarray(x)
        inside = (np.abs(x) <= BOX).all(axis=-1)
        e = np.abs(self.fun(np.where(inside[..., None], x, 0.0).astype(np.float64)) - self.target)
        return np.where(inside, e, self.penalty)


def _rastrigin_corner() -> float:
    # d/dx (x^2 - 10 cos 2 pi x) = 2x + 20 pi sin(2 pi x) = 0 in (3.5, 3.75)
    return brentq(lambda a: 2 * a + 20 * math.pi * math.sin(2 * math.pi * a), 3.5, 3.75,
                  xtol=1e-15)


def _ackley_corner() -> float:
    # f(a, a) = -20 exp(-0.2 a) - exp(cos 2 pi a) + 20 + e; its derivative vanishes in (3.5, 3.75)
    return brentq(lambda a: 4 * math.exp(-0.2 * a)
                  + 2 * math.pi * math.sin(2 * math.pi * a) * math.exp(math.cos(2 * math.pi * a)),
                  3.5, 3.75, xtol=1e-15)


def _corners(a: float) -> np.ndarray:
    return np.array([[a, a], [-a, a], [-a, -a], [a, -a]])


_RA, _AC = _rastrigin_corner(), _ackley_corner()

FUNCTIONS: dict[str, PaperFunction] = {f.name: f for f in (
    PaperFunction("rosenbrock", problems.rosenbrock, 0.0, 287.51, 40009.0, False,
                  np.array([[1.0, 1.0]])),
    PaperFunction("beale", problems.beale, 0.0, 20.0, 72769.2, False, np.array([[3.0, 0.5]])),
    PaperFunction("himmelblau", problems.himmelblau, 0.0, 17.01, 308.803, False,
                  problems.HIMMELBLAU_MINIMA.copy()),
    PaperFunction("ackley", problems.ackley, float(problems.ackley(_corners(_AC)[:1])[0]), 2.0,
                  12.5401, True, _corners(_AC)),
    PaperFunction("rastrigin", problems.rastrigin, float(problems.rastrigin(_corners(_RA)[:1])[0]),
                  30.0, 64.6249, True, _corners(_RA)),
)}


def entropy_bits(x: np.ndarray, resolution: float = 0.1) -> float:
    """Entropy (bits) of (n, 2) positions binned on cells ``round(x / resolution)``."""
    _, counts = np.unique(np.round(np.asarray(x) / resolution).astype(np.int64), axis=0,
                          return_counts=True)
    p = counts / counts.sum()
    return float(-(p * np.log2(p)).sum())


def best_metrics(x: np.ndarray, err: np.ndarray, k: int = 64) -> tuple[float, float]:
    """(mean err of the k best, entropy of their positions) for (n, 2) points and (n,) errors."""
    idx = np.argsort(err, kind="stable")[:k]
    return float(err[idx].mean()), entropy_bits(x[idx])
