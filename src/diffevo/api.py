"""One-call optimisation: :func:`minimize` and :func:`maximize` (scipy.optimize style).

Built on the ask/tell :class:`diffevo.DiffusionEvolution`: a run is a loop of
``ask`` -> evaluate (:mod:`diffevo.evaluation`) -> ``tell`` until a stop criterion
fires, with optional restarts (new seed, optionally a larger population) that keep
the best point ever found, and optional independent runs advanced together
(``runs=R``: one batched x0 estimate per generation for all R populations).
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from ._array import namespace
from .evaluation import Evaluator
from .history import History
from .optimizer import DiffusionEvolution, OptimizeResult, _check_int, _verdict, tell_many

__all__ = ["maximize", "minimize"]

#: keyword arguments passed through to DiffusionEvolution
_OPTIONS = frozenset({"ndim", "sigma0", "schedule", "noise", "fitness_shaping", "latent_dim",
                      "density", "bandwidth", "mode", "backend", "dtype", "nan_policy",
                      "entropy_resolution"})

#: criteria after which a restart makes no sense: the goal or a global budget was reached
_FINAL = ("ftarget", "maxfev", "timeout", "callback")


def _child_seed(seed: Any, k: int) -> Any:
    """The k-th independent child of ``seed`` (a pure function of seed and k).

    For an int / SeedSequence seed this is ``numpy.random.SeedSequence(seed).spawn(n)[k]``;
    a Generator is shared (it is a stream, its later draws are independent).
    """
    if isinstance(seed, np.random.Generator):
        return seed
    ss = seed if isinstance(seed, np.random.SeedSequence) else np.random.SeedSequence(seed)
    return np.random.SeedSequence(ss.entropy, spawn_key=tuple(ss.spawn_key) + (k,),
                                  pool_size=ss.pool_size)


class _Run:
    """One independent run: its attempts (first + restarts), best-ever and history."""

    def __init__(self, index: int, seed: Any, make: Callable, popsize: int, restarts: int,
                 factor: float, maxfev: int | None, timeout: float | None, maximize: bool):
        self.index = index
        self.seed = seed
        self.make = make
        self.popsize = popsize
        self.restarts_left = restarts
        self.factor = factor
        self.maxfev = maxfev
        self.timeout = timeout
        self.maximize = maximize
        self.t0 = time.perf_counter()
        self.attempt = 0
        self.nit = 0
        self.nfev = 0
        self.best_x = None
        self.best_f = -math.inf if maximize else math.inf
        self.history = History(maximize)
        self.result: OptimizeResult | None = None
        self.es = self._new(seed, popsize, self.maxfev, self.timeout)

    def _new(self, seed, popsize, maxfev, timeout) -> DiffusionEvolution:
        es = self.make(popsize=popsize, seed=seed, maxfev=maxfev, timeout=timeout)
        es.restart = self.attempt
        return es

    def _better(self, f: float) -> bool:
        return f > self.best_f if self.maximize else f < self.best_f

    def after_generation(self) -> None:
        es = self.es
        self.nit += 1
        self.nfev += es.popsize
        x, f = es.best
        if x is not None and (self.best_x is None or self._better(f)):
            self.best_x, self.best_f = x, f
        row = {k: float(v[-1]) for k, v in es.history.as_dict().items()}
        row.update(generation=self.nit, nfev=self.nfev, best_ever=self.best_f,
                   time=time.perf_counter() - self.t0)
        self.history.append(**row)

    def intermediate(self) -> OptimizeResult:
        return OptimizeResult(x=self.best_x, fun=self.best_f, nit=self.nit, nfev=self.nfev,
                              population=self.es._last_x, population_fun=self.es._last_values,
                              run=self.index, restart=self.attempt, alpha=self.es.alpha)

    def finish_or_restart(self) -> bool:
        """After a generation: True when this run is over (its result is then set)."""
        stop = self.es.stop()
        if not stop:
            return False
        if self.restarts_left > 0 and not any(k in stop for k in _FINAL):
            maxfev = None if self.maxfev is None else self.maxfev - self.nfev
            timeout = None if self.timeout is None else self.timeout - (time.perf_counter() - self.t0)
            if (maxfev is None or maxfev > 0) and (timeout is None or timeout > 0):
                self.restarts_left -= 1
                self.attempt += 1
                self.popsize = max(2, int(round(self.popsize * self.factor)))
                self.es = self._new(_child_seed(self.seed, self.attempt), self.popsize, maxfev, timeout)
                return False
        res = self.es.result
        success, status, message = _verdict(stop, self.es.ftarget)
        if self.attempt:
            message += f" (after {self.attempt} restart{'s' if self.attempt > 1 else ''})"
        res.update(x=self.best_x, fun=self.best_f, nit=self.nit, nfev=self.nfev,
                   nrestarts=self.attempt, history=self.history, success=success, status=status,
                   message=message, seed=self.seed)
        self.result = res
        return True


def _optimize(fun: Callable, x0: Any, maximize: bool, *, bounds: Any, args: tuple,
              popsize: int | None, maxiter: int | None, maxfev: int | None, ftarget: float | None,
              tolx: float | None, tolfun: float | None, timeout: float | None, vectorized: bool,
              executor: Any, chunksize: int | None, callback: Callable | None, progress: bool,
              restarts: int, restart_popsize_factor: float, runs: int, seed: Any,
              **options: Any) -> OptimizeResult | list[OptimizeResult]:
    unknown = sorted(set(options) - _OPTIONS)
    if unknown:
        raise TypeError(f"{'maximize' if maximize else 'minimize'}() got an unexpected keyword "
                        f"argument {unknown[0]!r}; options are {', '.join(sorted(_OPTIONS))}")
    popsize = 512 if popsize is None else _check_int(popsize, "popsize", 2)
    num_step = 100 if maxiter is None else _check_int(maxiter, "maxiter", 2)
    restarts = _check_int(restarts, "restarts", 0)
    runs = _check_int(runs, "runs", 1)
    try:
        factor = float(restart_popsize_factor)
    except (TypeError, ValueError):
        raise TypeError(f"restart_popsize_factor must be a number >= 1; got {restart_popsize_factor!r}") from None
    if not (math.isfinite(factor) and factor >= 1):
        raise ValueError(f"restart_popsize_factor must be a finite number >= 1; got {restart_popsize_factor!r}")
    if callback is not None and not callable(callback):
        raise TypeError(f"callback must be callable; got {type(callback).__name__}")
    if maxfev is not None:
        maxfev = _check_int(maxfev, "maxfev", 1)
    if timeout is not None and not (isinstance(timeout, (int, float)) and timeout > 0):
        raise ValueError(f"timeout must be a positive number of seconds; got {timeout!r}")
    evaluate = Evaluator(fun, vectorized=vectorized, executor=executor, chunksize=chunksize,
                         args=tuple(args))

    # per-run seeds: run r of seed s uses SeedSequence(s).spawn(runs)[r]; a list gives them
    if isinstance(seed, (list, tuple)):
        if len(seed) != runs:
            raise ValueError(f"seed: a list of seeds needs one per run ({runs}); got {len(seed)}")
        seeds = list(seed)
    elif runs == 1:
        seeds = [seed]
    else:
        if seed is None:
            seed = np.random.SeedSequence()
        seeds = [_child_seed(seed, r) for r in range(runs)]

    def make(*, popsize, seed, maxfev, timeout):
        return DiffusionEvolution(popsize, x0, bounds=bounds, num_step=num_step, maximize=maximize,
                                  maxfev=maxfev, ftarget=ftarget, tolx=tolx, tolfun=tolfun,
                                  timeout=timeout, seed=seed, **options)

    state = [_Run(r, s, make, popsize, restarts, factor, maxfev, timeout, maximize)
             for r, s in enumerate(seeds)]
    bar = _progress_bar(progress, runs * state[0].es.num_step)
    try:
        active = list(state)
        while active:
            xs = [run.es.ask() for run in active]
            xp = namespace(xs[0])
            values = evaluate(xs[0] if len(xs) == 1 else xp.concatenate(xs))
            parts, start = [], 0
            for x in xs:
                parts.append(values[start:start + x.shape[0]])
                start += x.shape[0]
            tell_many([run.es for run in active], parts)
            for run in active:
                run.after_generation()
                if callback is not None:
                    try:
                        stop_now = callback(run.intermediate())
                    except StopIteration:
                        stop_now = True
                    if stop_now:
                        run.es._callback_stop = True
            still = []
            for run in active:
                attempt = run.attempt
                if not run.finish_or_restart():
                    still.append(run)
                    if bar is not None and run.attempt != attempt:
                        bar.total += run.es.num_step
            if bar is not None:
                bar.update(len(active))
                best = [r.best_f for r in state if r.best_x is not None]
                if best:
                    b = max(best) if maximize else min(best)
                    spread = float(np.mean([r.history.spread[-1] for r in active]))
                    bar.set_postfix(best=f"{b:.6g}", spread=f"{spread:.3g}", refresh=False)
            active = still
    finally:
        if bar is not None:
            bar.close()
    results = [run.result for run in state]
    return results[0] if runs == 1 else results


def _progress_bar(progress: bool, total: int):
    if not progress:
        return None
    from tqdm.auto import tqdm  # noqa: PLC0415 - tqdm is a dependency, imported when used

    return tqdm(total=total, desc="diffevo", unit="gen", file=sys.stderr, dynamic_ncols=True)


_DOC = """{verb} ``fun`` with Diffusion Evolution.

    Args:
        fun: the objective. ``fun(x, *args) -> float`` for one (D,) point, or with
            ``vectorized=True`` ``fun(X, *args) -> (N,)`` for a whole (N, D) population.
        x0: (D,) centre of the first population (default: the middle of ``bounds``,
            else the origin; then give ``ndim``).
        bounds: ``(low, high)`` for every coordinate, D ``(low, high)`` pairs, or an
            object with ``lb``/``ub``; the objective is evaluated on clipped points.
        args: extra positional arguments for fun.
        popsize: members per generation (default 512).
        maxiter: generations per run = the schedule's length (default 100).
        maxfev: stop after this many evaluations (over restarts).
        ftarget: stop once the best value reaches it.
        tolx: stop (or restart) when the population's spread falls below it.
        tolfun: stop (or restart) when recent values vary by less than it.
        timeout: wall-clock limit in seconds (over restarts).
        vectorized: fun takes the whole population.
        executor: a ``concurrent.futures.Executor``-like object (``map``) or a Dask
            ``distributed.Client``; members (chunks when vectorized) are mapped over it.
        chunksize: rows per task for a vectorized fun on an executor.
        callback: ``callback(intermediate_result)`` after every generation (with x,
            fun, nit, nfev, population, population_fun, run, restart, alpha); return
            True (or raise StopIteration) to stop that run.
        progress: show a tqdm progress bar with the best value and the spread.
        restarts: how many times to start again (new seed) when a run ends without
            reaching ftarget or a budget; the best point over all of them is kept.
        restart_popsize_factor: multiply popsize by this at each restart (2 doubles it).
        runs: R independent runs, advanced together (one batched x0 estimate for all
            R populations per generation); run r equals a separate call with
            ``seed=numpy.random.SeedSequence(seed).spawn(R)[r]``.
        seed: int, SeedSequence, Generator or None; with runs > 1 also a list of R seeds.
        **options: passed to :class:`diffevo.DiffusionEvolution`: ndim, sigma0,
            schedule, noise, fitness_shaping, latent_dim, density, bandwidth, mode,
            backend, dtype, nan_policy, entropy_resolution.

    Returns:
        An :class:`~diffevo.OptimizeResult` (x, fun, success, status, message, stop,
        nit, nfev, nrestarts, population, population_fun, x0_estimate, history, seed),
        or a list of R of them when ``runs > 1``.

    Raises:
        TypeError / ValueError naming the offending argument (unknown keyword
        arguments are a TypeError).
    """


def minimize(fun: Callable, x0: Any = None, *, bounds: Any = None, args: tuple = (),
             popsize: int | None = None, maxiter: int | None = None, maxfev: int | None = None,
             ftarget: float | None = None, tolx: float | None = None, tolfun: float | None = None,
             timeout: float | None = None, vectorized: bool = False, executor: Any = None,
             chunksize: int | None = None, callback: Callable | None = None, progress: bool = False,
             restarts: int = 0, restart_popsize_factor: float = 1.0, runs: int = 1,
             seed: Any = None, **options: Any) -> OptimizeResult | list[OptimizeResult]:
    return _optimize(fun, x0, False, bounds=bounds, args=args, popsize=popsize, maxiter=maxiter,
                     maxfev=maxfev, ftarget=ftarget, tolx=tolx, tolfun=tolfun, timeout=timeout,
                     vectorized=vectorized, executor=executor, chunksize=chunksize,
                     callback=callback, progress=progress, restarts=restarts,
                     restart_popsize_factor=restart_popsize_factor, runs=runs, seed=seed, **options)


def maximize(fun: Callable, x0: Any = None, *, bounds: Any = None, args: tuple = (),
             popsize: int | None = None, maxiter: int | None = None, maxfev: int | None = None,
             ftarget: float | None = None, tolx: float | None = None, tolfun: float | None = None,
             timeout: float | None = None, vectorized: bool = False, executor: Any = None,
             chunksize: int | None = None, callback: Callable | None = None, progress: bool = False,
             restarts: int = 0, restart_popsize_factor: float = 1.0, runs: int = 1,
             seed: Any = None, **options: Any) -> OptimizeResult | list[OptimizeResult]:
    return _optimize(fun, x0, True, bounds=bounds, args=args, popsize=popsize, maxiter=maxiter,
                     maxfev=maxfev, ftarget=ftarget, tolx=tolx, tolfun=tolfun, timeout=timeout,
                     vectorized=vectorized, executor=executor, chunksize=chunksize,
                     callback=callback, progress=progress, restarts=restarts,
                     restart_popsize_factor=restart_popsize_factor, runs=runs, seed=seed, **options)


minimize.__doc__ = _DOC.format(verb="Minimise")
maximize.__doc__ = _DOC.format(verb="Maximise")
