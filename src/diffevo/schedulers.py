"""Noise schedules (SPEC.md section 2): ``alpha[0]`` is the cleanest, 1 = clean, 0 = noise.

Iterating a schedule yields ``(t, (alpha_t, alpha_prev))`` for t = n-1 down to 1:
it starts at the noisiest end and finishes at ``alpha[0]``.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np


class _Scheduler:
    """Common iteration over a fixed float64 ``alpha`` array of length num_step."""

    alpha: np.ndarray

    def __init__(self, num_step: int):
        if isinstance(num_step, bool) or not isinstance(num_step, (int, np.integer)):
            raise TypeError(f"num_step must be an integer >= 2; got {num_step!r}")
        if num_step < 2:
            raise ValueError(f"num_step must be >= 2 (it yields num_step - 1 steps); got {num_step}")
        self.num_step = int(num_step)

    def __len__(self) -> int:
        return self.num_step - 1

    def __iter__(self) -> Iterator[tuple[int, tuple[float, float]]]:
        alpha = self.alpha
        for t in range(self.num_step - 1, 0, -1):
            yield t, (float(alpha[t]), float(alpha[t - 1]))

    def __repr__(self) -> str:
        return f"{type(self).__name__}(num_step={self.num_step})"


class DDIMScheduler(_Scheduler):
    """Linear schedule raised to ``power``: ``linspace(1 - eps, eps**(2/p), n) ** p``, eps = 1e-4."""

    def __init__(self, num_step: int, power: float = 1, eps: float = 1e-4):
        super().__init__(num_step)
        if not power > 0:
            raise ValueError(f"power must be positive; got {power!r}")
        self.power = power
        self.alpha = np.linspace(1 - eps, (eps * eps) ** (1 / power), num_step) ** power


class DDIMSchedulerCosine(_Scheduler):
    """Cosine schedule: ``a = (cos(linspace(0, pi, n)) + 1) / 2`` squeezed into (1e-3, 1)."""

    def __init__(self, num_step: int):
        super().__init__(num_step)
        a = (np.cos(np.linspace(0, math.pi, num_step)) + 1) / 2
        self.alpha = (a + 1e-3) * (1 - 1e-3) / (1 + 1e-3)


class DDPMScheduler(_Scheduler):
    """Exponential-quadratic fit of DDPM's alpha-bar, from 1 - eps down to eps (eps = 1e-4)."""

    def __init__(self, num_step: int, eps: float = 1e-4):
        super().__init__(num_step)
        n = num_step
        u = np.linspace(1 / n, 1, n)
        beta = (n * n * math.log(1 / (1 - eps)) + math.log(eps)) / (n - 1)
        gamma = -n * (n * math.log(1 / (1 - eps)) + math.log(eps)) / (n - 1)
        self.alpha = np.exp(-beta * u - gamma * u * u)


SCHEDULES = {"linear": DDIMScheduler, "cosine": DDIMSchedulerCosine, "ddpm": DDPMScheduler}
