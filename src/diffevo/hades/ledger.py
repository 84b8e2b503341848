"""The bookkeeping of a HADES / CHARLES-D run: told values, best point, history, stop.

It gives the strategies the ask/tell surface of :class:`diffevo.DiffusionEvolution`
(the same stop criteria, result keys and :class:`diffevo.History` columns, the same
``maximize`` and ``nan_policy`` semantics), on host NumPy arrays. A tell is split
in :meth:`Ledger.check` (validation, no state change) and :meth:`Ledger.commit`
(assignments only), so a tell that raises leaves the run as it was.
"""

from __future__ import annotations

import math
import time
from typing import Any

import numpy as np

from .._settings import Settings
from ..evaluation import told_values
from ..history import History, generation_stats
from ..result import OptimizeResult, verdict

__all__ = ["Ledger"]

#: generations looked back over by the ``tolfun`` criterion (as DiffusionEvolution)
TOLFUN_WINDOW = 10


class Ledger:
    """Counters, best-ever, history and stop criteria of one run.

    Args:
        popsize: N.
        run: the validated run settings (num_step = generations, maximize,
            nan_policy, maxfev, ftarget, tolx, tolfun, timeout, entropy_resolution).
    """

    def __init__(self, popsize: int, run: Settings):
        self.popsize = popsize
        self.run = run
        self.num_step = run.num_step
        self.generation = 0
        self.nfev = 0
        self.restart = 0
        self.history = History(run.maximize)
        self.t0 = time.perf_counter()
        self.best_x: np.ndarray | None = None
        self.best_f = -math.inf if run.maximize else math.inf
        self.gen_best: list[float] = []
        self.gen_range = math.inf
        self.last_x: np.ndarray | None = None
        self.last_values: np.ndarray | None = None
        self.last_spread = math.inf

    def check(self, fitness: Any) -> tuple[np.ndarray, np.ndarray]:
        """``(values (N,), fitness (N,))`` of told values: ``fitness`` is larger-is-better
        (minus the objective when minimising), -inf for NaN/inf members.

        Raises:
            TypeError / ValueError naming ``fitness`` (wrong type, shape, or NaN/inf
            with ``nan_policy='raise'``).
        """
        f, finite, _ = told_values(fitness, self.popsize, self.run.nan_policy)
        fit = np.where(finite, f if self.run.maximize else -f, -np.inf)
        return f, fit

    def commit(self, x: np.ndarray, values: np.ndarray, fit: np.ndarray) -> None:
        """Record one evaluated generation: x (N, D), its values and fitness (N,)."""
        sign = 1.0 if self.run.maximize else -1.0
        finite = np.isfinite(fit)
        if finite.any():
            i = int(np.argmax(fit))
            gen_best = sign * float(fit[i])
            if self.best_x is None or fit[i] > sign * self.best_f:  # fit = sign * value
                self.best_x, self.best_f = x[i].copy(), gen_best
        else:
            gen_best = math.nan
        # every statistic in one pass (diffevo._genstats), as DiffusionEvolution books them
        [(_, _, mean, median, worst, self.gen_range, spread, entropy)] = generation_stats(
            np.where(finite, -fit, np.inf)[None], values[None], x[None], finite[None],
            self.run.maximize, self.run.entropy_resolution)
        self.gen_best.append(gen_best)
        self.generation += 1
        self.nfev += self.popsize
        self.last_x, self.last_values = x, values
        self.last_spread = spread
        self.history.append(
            generation=self.generation, restart=self.restart, nfev=self.nfev, best=gen_best,
            best_ever=self.best_f, mean=mean, median=median, worst=worst, spread=spread,
            entropy=entropy, time=time.perf_counter() - self.t0)

    def stop(self) -> dict[str, Any]:
        """The criteria that fire now, ``{name: threshold}``, as DiffusionEvolution.stop."""
        r = self.run
        fired = {
            "maxiter": (self.generation >= self.num_step, self.num_step),
            "maxfev": (r.maxfev is not None and self.nfev >= r.maxfev, r.maxfev),
            "ftarget": (r.ftarget is not None and self.best_x is not None and
                        (self.best_f >= r.ftarget if r.maximize else self.best_f <= r.ftarget),
                        r.ftarget),
            "tolx": (r.tolx is not None and self.generation > 0 and self.last_spread < r.tolx,
                     r.tolx),
            "tolfun": (r.tolfun is not None and self.generation > 0 and self._flat(r.tolfun),
                       r.tolfun),
            "timeout": (r.timeout is not None and time.perf_counter() - self.t0 >= r.timeout,
                        r.timeout),
        }
        return {name: value for name, (hit, value) in fired.items() if hit}

    def _flat(self, tolfun: float) -> bool:
        recent = [v for v in self.gen_best[-TOLFUN_WINDOW:] if math.isfinite(v)]
        if not recent or not math.isfinite(self.gen_range):
            return False
        return max(self.gen_range, max(recent) - min(recent)) < tolfun

    def result(self, population: np.ndarray, seed: Any, **extra: Any) -> OptimizeResult:
        """The :class:`diffevo.OptimizeResult` of the run so far."""
        stop = self.stop()
        found = self.best_x is not None or self.generation == 0
        success, status, message = verdict(stop, self.run.ftarget, found=found)
        return OptimizeResult(
            x=self.best_x, fun=self.best_f if self.best_x is not None else math.nan,
            success=success, status=status, message=message, stop=stop,
            nit=self.generation, nfev=self.nfev, nrestarts=self.restart,
            population=population if self.last_x is None else self.last_x,
            population_fun=self.last_values, history=self.history, seed=seed, **extra)
