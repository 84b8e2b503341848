"""Classic benchmark functions with their boxes and known optima.

Every function is vectorised: ``f(X)`` takes (N, D) NumPy or CuPy arrays and returns
(N,) values; a single (D,) point gives a 0-d result. All are minimisation problems.

=================  ======  ===================  =========================================
name               D       box (each coord.)    global minima
=================  ======  ===================  =========================================
sphere             >= 1    [-5.12, 5.12]        x = 0, f = 0
rosenbrock         >= 2    [-5, 10]             x = (1, ..., 1), f = 0
beale              2       [-4.5, 4.5]          x = (3, 0.5), f = 0
himmelblau         2       [-5, 5]              four: (3, 2), (-2.8051, 3.1313),
                                                (-3.7793, -3.2832), (3.5844, -1.8481); f = 0
ackley             >= 1    [-32.768, 32.768]    x = 0, f = 0
rastrigin          >= 1    [-5.12, 5.12]        x = 0, f = 0
styblinski_tang    >= 1    [-5, 5]              x_i = -2.903534, f = -39.166166 D
=================  ======  ===================  =========================================

``PROBLEMS[name]`` (or :func:`get`) gives a :class:`Problem` with ``bounds(D)``,
``optima(D)`` and ``fmin(D)``; the CLI (``diffevo run --problem NAME``) uses it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from ._device import namespace

__all__ = ["PROBLEMS", "Problem", "ackley", "beale", "get", "himmelblau", "rastrigin",
           "rosenbrock", "sphere", "styblinski_tang"]


def _prep(x: Any):
    xp = namespace(x)
    x = xp.asarray(x)
    if x.dtype.kind != "f":
        x = x.astype(xp.float64)
    if x.ndim == 0:
        raise ValueError("x must be a point (D,) or a population (N, D); got a scalar")
    return xp, x


def _need_dim(x, d: int, name: str) -> None:
    if x.shape[-1] != d:
        raise ValueError(f"{name} is defined for D={d}; x has shape {tuple(x.shape)}")


def sphere(x: Any):
    """``sum_i x_i^2``."""
    _, x = _prep(x)
    return (x * x).sum(axis=-1)


def rosenbrock(x: Any):
    """``sum_i 100 (x_{i+1} - x_i^2)^2 + (1 - x_i)^2`` (D >= 2)."""
    _, x = _prep(x)
    if x.shape[-1] < 2:
        raise ValueError(f"rosenbrock needs D >= 2; x has shape {tuple(x.shape)}")
    a, b = x[..., :-1], x[..., 1:]
    return (100.0 * (b - a * a) ** 2 + (1.0 - a) ** 2).sum(axis=-1)


def beale(x: Any):
    """``(1.5 - x + xy)^2 + (2.25 - x + xy^2)^2 + (2.625 - x + xy^3)^2`` (D = 2)."""
    _, x = _prep(x)
    _need_dim(x, 2, "beale")
    u, v = x[..., 0], x[..., 1]
    return (1.5 - u + u * v) ** 2 + (2.25 - u + u * v * v) ** 2 + (2.625 - u + u * v ** 3) ** 2


def himmelblau(x: Any):
    """``(x^2 + y - 11)^2 + (x + y^2 - 7)^2`` (D = 2): four global minima with f = 0."""
    _, x = _prep(x)
    _need_dim(x, 2, "himmelblau")
    u, v = x[..., 0], x[..., 1]
    return (u * u + v - 11.0) ** 2 + (u + v * v - 7.0) ** 2


def ackley(x: Any):
    """``-20 exp(-0.2 sqrt(mean x^2)) - exp(mean cos(2 pi x)) + 20 + e``."""
    xp, x = _prep(x)
    d = x.shape[-1]
    r = xp.sqrt((x * x).sum(axis=-1) / d)
    c = xp.cos(2.0 * math.pi * x).sum(axis=-1) / d
    return -20.0 * xp.exp(-0.2 * r) - xp.exp(c) + 20.0 + math.e


def rastrigin(x: Any):
    """``10 D + sum_i (x_i^2 - 10 cos(2 pi x_i))``."""
    xp, x = _prep(x)
    return 10.0 * x.shape[-1] + (x * x - 10.0 * xp.cos(2.0 * math.pi * x)).sum(axis=-1)


def styblinski_tang(x: Any):
    """``sum_i (x_i^4 - 16 x_i^2 + 5 x_i) / 2``."""
    _, x = _prep(x)
    x2 = x * x
    return 0.5 * (x2 * x2 - 16.0 * x2 + 5.0 * x).sum(axis=-1)


#: the minimiser of one Styblinski-Tang coordinate (root of 2x^3 - 16x + 2.5 = 0)
STYBLINSKI_TANG_X = -2.903534027771177
STYBLINSKI_TANG_F = -39.16616570377141  # per coordinate

HIMMELBLAU_MINIMA = np.array([
    [3.0, 2.0],
    [-2.805118086952745, 3.131312518250573],
    [-3.779310253377747, -3.2831859912861696],
    [3.5844283403304917, -1.8481265269644034],
])


@dataclass(frozen=True)
class Problem:
    """A benchmark: vectorised function, box, known optima.

    Attributes:
        name: registry name.
        fun: ``(N, D) -> (N,)`` (or ``(D,) -> ()``), NumPy or CuPy.
        low, high: the box, the same for every coordinate.
        min_dim: smallest D; ``fixed_dim``: the only D (None: any D >= min_dim).
    """

    name: str
    fun: Callable[[Any], Any]
    low: float
    high: float
    min_dim: int
    fixed_dim: int | None
    _optima: Callable[[int], np.ndarray]
    _fmin: Callable[[int], float]

    def __call__(self, x: Any):
        return self.fun(x)

    def check_dim(self, dim: int) -> int:
        """``dim`` if the problem is defined there, else ValueError naming ``dim``."""
        if isinstance(dim, bool) or not isinstance(dim, (int, np.integer)):
            raise TypeError(f"dim must be an integer; got {dim!r}")
        if self.fixed_dim is not None and dim != self.fixed_dim:
            raise ValueError(f"dim: {self.name} is defined for D={self.fixed_dim} only; got {dim}")
        if dim < self.min_dim:
            raise ValueError(f"dim: {self.name} needs D >= {self.min_dim}; got {dim}")
        return int(dim)

    @property
    def default_dim(self) -> int:
        return self.fixed_dim or max(2, self.min_dim)

    def bounds(self, dim: int) -> np.ndarray:
        """(D, 2) array of ``(low, high)`` pairs."""
        d = self.check_dim(dim)
        return np.tile([self.low, self.high], (d, 1)).astype(np.float64)

    def optima(self, dim: int) -> np.ndarray:
        """(k, D) every known global minimiser."""
        return self._optima(self.check_dim(dim))

    def fmin(self, dim: int) -> float:
        """The global minimum value."""
        return self._fmin(self.check_dim(dim))


def _point(value: float) -> Callable[[int], np.ndarray]:
    return lambda d: np.full((1, d), value)


PROBLEMS: dict[str, Problem] = {p.name: p for p in (
    Problem("sphere", sphere, -5.12, 5.12, 1, None, _point(0.0), lambda d: 0.0),
    Problem("rosenbrock", rosenbrock, -5.0, 10.0, 2, None, _point(1.0), lambda d: 0.0),
    Problem("beale", beale, -4.5, 4.5, 2, 2, lambda d: np.array([[3.0, 0.5]]), lambda d: 0.0),
    Problem("himmelblau", himmelblau, -5.0, 5.0, 2, 2, lambda d: HIMMELBLAU_MINIMA.copy(),
            lambda d: 0.0),
    Problem("ackley", ackley, -32.768, 32.768, 1, None, _point(0.0), lambda d: 0.0),
    Problem("rastrigin", rastrigin, -5.12, 5.12, 1, None, _point(0.0), lambda d: 0.0),
    Problem("styblinski_tang", styblinski_tang, -5.0, 5.0, 1, None, _point(STYBLINSKI_TANG_X),
            lambda d: STYBLINSKI_TANG_F * d),
)}


def get(name: str) -> Problem:
    """The :class:`Problem` called ``name`` (``-`` and ``_`` are interchangeable)."""
    key = str(name).lower().replace("-", "_")
    try:
        return PROBLEMS[key]
    except KeyError:
        raise ValueError(f"problem must be one of {', '.join(PROBLEMS)}; got {name!r}") from None
