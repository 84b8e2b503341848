"""Runs of a strategy: restarts, R independent runs advanced together, checkpoints.

:func:`optimize` is what :func:`diffevo.minimize` and :func:`diffevo.maximize` call.
A run is a loop of ``ask`` -> evaluate (:mod:`diffevo.evaluation`) -> ``tell``
until a stop criterion fires, with optional restarts (new seed, optionally a
larger population) that keep the best point ever found; ``runs=R`` advances R
independent runs together (one batched x0 estimate per generation, through the
strategy's ``tell_batch``). It drives strategies through their public members only.

What a run can rely on (see also the README):

* ``checkpoint=PATH`` writes the whole state (every run, its optimiser and random
  state) every ``checkpoint_every`` generations, atomically (a temporary file in the
  same folder, then ``os.replace``); ``resume=PATH`` continues from it, and the
  resumed run finishes bit-identical to an uninterrupted one.
* Ctrl-C (KeyboardInterrupt) returns the results so far, ``success=False``, ``stop``
  naming ``'interrupted'``; any other exception propagates with the partial result
  attached as ``exc.result`` (and the checkpoint written, when one is configured).
"""

from __future__ import annotations

import contextlib
import math
import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from ._boundary import GenerationBoundary
from ._device import namespace
from ._settings import Settings, check_factor, check_int
from .checkpoint import load_checkpoint, save_checkpoint, writable_path
from .evaluation import Evaluator
from .history import History
from .modes import finish_runs as modes_of_runs
from .modes import keep_final, keep_snapshot
from .result import OptimizeResult, verdict
from .strategies import get as get_strategy

__all__ = ["NOT_OPTIONS", "Run", "child_seed", "optimize"]

#: Settings fields minimize/maximize set themselves (num_step from maxiter), not options
NOT_OPTIONS = ("num_step", "maximize")

#: popsize and maxiter of minimize/maximize: 1024 x 50 rather than 512 x 100 (the same
#: 51,200 evaluations): the larger population keeps every basin (all four optima of
#: Himmelblau / Ackley / Rastrigin in [-4,4]^2 among the modes in 97.5 / 100 / 100 % of 40
#: seeds, against 92.5 / 100 / 77.5 % at 512 x 100, T = 0.5; bench/paper/README.md)
DEFAULT_POPSIZE, DEFAULT_MAXITER = 1024, 50

#: criteria after which a restart makes no sense: the goal or a global budget was reached
FINAL = ("ftarget", "maxfev", "timeout", "callback", "interrupted")


def child_seed(seed: Any, k: int) -> Any:
    """The k-th independent child of ``seed`` (a pure function of seed and k).

    For an int / SeedSequence seed this is ``numpy.random.SeedSequence(seed).spawn(n)[k]``;
    a Generator is shared (it is a stream, its later draws are independent).
    """
    if isinstance(seed, np.random.Generator):
        return seed
    try:
        ss = seed if isinstance(seed, np.random.SeedSequence) else np.random.SeedSequence(seed)
    except (TypeError, ValueError) as err:
        raise TypeError(f"seed must be None, an int >= 0, a SeedSequence or a Generator (or, "
                        f"with runs > 1, a list of them); got {seed!r} ({err})") from None
    return np.random.SeedSequence(ss.entropy, spawn_key=tuple(ss.spawn_key) + (k,),
                                  pool_size=ss.pool_size)


class Run:
    """One independent run: its attempts (first + restarts), best-ever and history.

    ``make(popsize, seed, maxfev, timeout)`` builds the strategy of an attempt (with
    what is left of the budget); it is not kept, so that a Run pickles (checkpoints)
    with its optimiser inside. ``settings`` holds the budget and direction it reads.
    """

    def __init__(self, index: int, seed: Any, make: Callable, popsize: int, restarts: int,
                 factor: float, settings: Settings):
        self.index = index
        self.seed = seed
        self.popsize = popsize
        self.restarts_left = restarts
        self.factor = factor
        self.settings = settings
        self.t0 = time.perf_counter()
        self.attempt = 0
        self.nit = 0
        self.nfev = 0
        self.best_x = None
        self.best_f = -math.inf if settings.maximize else math.inf
        self.history = History(settings.maximize)
        self.callback_stop = False
        self.fresh = True  # no generation yet in this attempt: its stop criteria wait for one
        self.result: OptimizeResult | None = None
        self.finals: list = []  # (population, costs) of each attempt's end: the modes
        self.snapshots: list = []  # (population, costs) earlier in each attempt: lost basins
        self.es = make(popsize, seed, settings.maxfev, settings.timeout)

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["t0"] = time.perf_counter() - self.t0  # elapsed: the timeout spans a resume
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self.__dict__.setdefault("snapshots", [])  # (a checkpoint of a version before them)
        self.t0 = time.perf_counter() - state["t0"]

    def _better(self, f: float) -> bool:
        return f > self.best_f if self.settings.maximize else f < self.best_f

    def after_generation(self, evaluated: int, append: bool = True) -> tuple:
        """Book one told generation of ``evaluated`` members (O(1): the strategy's ``best``
        and last history row); returns the row, appended unless ``append`` is False."""
        x, fun = self.es.best
        self.fresh = False
        if self.settings.polish:
            keep_snapshot(self.snapshots, self.es, self.settings.maximize)
        self.nit += 1
        self.nfev += evaluated
        if x is not None and (self.best_x is None or self._better(fun)):
            self.best_x, self.best_f = x, fun
        # history.FIELDS order: generation, restart, nfev, best, best_ever, ..., time
        _, _, _, best, _, *stats, _ = self.es.history.last_values()
        row = (self.nit, self.attempt, self.nfev, best, self.best_f, *stats,
               time.perf_counter() - self.t0)
        if append:
            self.history.append_many([self.history], [row])
        return row

    def intermediate(self, res: OptimizeResult) -> OptimizeResult:
        """What a callback sees after a generation."""
        return OptimizeResult(x=self.best_x, fun=self.best_f, nit=self.nit, nfev=self.nfev,
                              population=res.population, population_fun=res.population_fun,
                              run=self.index, restart=self.attempt,
                              alpha=getattr(self.es, "alpha", None))

    def end_or_restart(self, make: Callable) -> dict | None:
        """After a generation: the criteria that end this run (None: it goes on, perhaps
        restarted); :meth:`finish` (or :func:`finish_runs`) then sets its result."""
        stop = dict(self.es.stop())
        if self.callback_stop:
            stop["callback"] = True
        if not stop:
            return None
        s = self.settings
        if self.restarts_left > 0 and not any(k in stop for k in FINAL):
            maxfev = None if s.maxfev is None else s.maxfev - self.nfev
            timeout = None if s.timeout is None else s.timeout - (time.perf_counter() - self.t0)
            if (maxfev is None or maxfev > 0) and (timeout is None or timeout > 0):
                keep_final(self.finals, self.es, s.maximize)
                self.restarts_left -= 1
                self.attempt += 1
                self.popsize = max(2, int(round(self.popsize * self.factor)))
                self.es = make(self.popsize, child_seed(self.seed, self.attempt), maxfev, timeout)
                self.fresh = True
                return None
        return stop

    def finish(self, stop: dict, evaluate: Evaluator | None = None) -> OptimizeResult:
        """Set (and return) this run's result for the criteria ``stop`` that ended it; with
        ``evaluate``, the modes of every attempt are polished (:func:`diffevo.modes.run_modes`)."""
        return finish_runs([(self, stop)], evaluate)[0]

    def _finished(self, stop: dict, res: OptimizeResult, modes: list, used: int) -> OptimizeResult:
        self.nfev += used
        if modes and (self.best_x is None or self._better(modes[0]["fun"])):
            self.best_x, self.best_f = modes[0]["x"], modes[0]["fun"]
            target = self.settings.ftarget
            if target is not None and not self._better(target):  # polishing reached it
                stop = dict(stop, ftarget=target)
        success, status, message = verdict(stop, self.settings.ftarget,
                                           found=self.best_x is not None)
        if self.attempt:
            message += f" (after {self.attempt} restart{'s' if self.attempt > 1 else ''})"
        res.update(x=self.best_x, fun=self.best_f if self.best_x is not None else math.nan,
                   nit=self.nit, nfev=self.nfev, nrestarts=self.attempt, history=self.history,
                   success=success, status=status, message=message, stop=stop, seed=self.seed,
                   modes=modes)
        self.result = res
        return res


def finish_runs(ending: list[tuple[Run, dict]], evaluate: Evaluator | None) -> list[OptimizeResult]:
    """Finish runs ``[(run, stop), ...]`` that end together: their modes are found and
    polished at once (:func:`diffevo.modes.finish_runs`: one objective call per round for
    all of them), each run getting what it would get alone."""
    results = []
    for run, _ in ending:
        results.append(run.es.result)
        keep_final(run.finals, run.es, run.settings.maximize)
    reports = modes_of_runs(evaluate, ending)
    return [run._finished(stop, res, modes, used)
            for (run, stop), res, (modes, used) in zip(ending, results, reports)]


def _seeds(seed: Any, runs: int) -> list:
    """Per-run seeds: run r of seed s uses SeedSequence(s).spawn(runs)[r]; a list gives them."""
    if isinstance(seed, (list, tuple)):
        if len(seed) != runs:
            raise ValueError(f"seed: a list of seeds needs one per run ({runs}); got {len(seed)}")
        return list(seed)
    if runs == 1:
        return [seed]
    return [child_seed(np.random.SeedSequence() if seed is None else seed, r) for r in range(runs)]


def optimize(fun: Callable, x0: Any, *, maximize: bool, bounds: Any, ndim: Any, sigma0: Any,
             args: tuple,
             popsize: int | None, maxiter: int | None, maxfev: int | None, ftarget: float | None,
             tolx: float | None, tolfun: float | None, timeout: float | None, vectorized: bool,
             executor: Any, chunksize: int | None, on_error: str, callback: Callable | None,
             progress: bool, restarts: int, restart_popsize_factor: float, runs: int,
             method: str, checkpoint: Any, checkpoint_every: int, resume: Any, seed: Any,
             caller: str = "minimize",
             **options: Any) -> OptimizeResult | list[OptimizeResult]:
    """The body of :func:`diffevo.minimize` / :func:`diffevo.maximize` (see there)."""
    taken = sorted(set(options) & set(NOT_OPTIONS))
    if taken:
        raise TypeError(f"{caller}() got an unexpected keyword argument {taken[0]!r}")
    popsize = DEFAULT_POPSIZE if popsize is None else check_int(popsize, "popsize", 2)
    num_step = DEFAULT_MAXITER if maxiter is None else check_int(maxiter, "maxiter", 2)
    budget = dict(num_step=num_step, maximize=maximize, maxfev=maxfev, ftarget=ftarget, tolx=tolx,
                  tolfun=tolfun, timeout=timeout)
    # what the runner itself reads (polish: only it); the strategy checks the rest
    settings = Settings(**budget, polish=options.pop("polish", True))
    restarts = check_int(restarts, "restarts", 0)
    runs = check_int(runs, "runs", 1)
    factor = check_factor(restart_popsize_factor, "restart_popsize_factor")
    if callback is not None and not callable(callback):
        raise TypeError(f"callback must be callable; got {type(callback).__name__}")
    every = check_int(checkpoint_every, "checkpoint_every", 1)
    checkpoint = None if checkpoint is None else writable_path(checkpoint, "checkpoint")
    evaluate = Evaluator(fun, vectorized=vectorized, executor=executor, chunksize=chunksize,
                         args=args, on_error=on_error)
    strategy = get_strategy(method)

    def make(size: int, run_seed: Any, maxfev: int | None, timeout: float | None):
        return strategy(size, x0, ndim=ndim, sigma0=sigma0, bounds=bounds, seed=run_seed,
                        **options, **dict(budget, maxfev=maxfev, timeout=timeout))

    if resume is not None:
        state = load_checkpoint(resume, runs)
    else:
        state = [Run(r, s, make, popsize, restarts, factor, settings)
                 for r, s in enumerate(_seeds(seed, runs))]
    if resume is None:
        _save(checkpoint, state)  # generation 0: an unpicklable option fails here, not later
    bar = _progress_bar(progress, sum(getattr(r.es, "num_step", 0) for r in state))
    try:
        with GenerationBoundary() as boundary:
            _loop(state, make, evaluate, callback, bar, boundary, checkpoint, every)
        _save(checkpoint, state)  # finished: a resume of it returns these results at once
    except KeyboardInterrupt:
        _save(checkpoint, state)  # before the runs are marked finished: a resume goes on
        for run in state:
            if run.result is None:
                run.finish({"interrupted": "KeyboardInterrupt"})
    except Exception as exc:
        with contextlib.suppress(Exception):  # the original error matters more
            _save(checkpoint, state)
        partial = _results([run.result or run.finish({"error": type(exc).__name__})
                            for run in state])
        try:
            exc.result = partial
        except AttributeError:  # an exception type that takes no attributes
            pass
        raise
    finally:
        if bar is not None:
            bar.close()
    return _results([run.result for run in state])


def _loop(state: list[Run], make: Callable, evaluate: Evaluator, callback: Callable | None,
          bar, boundary: GenerationBoundary, checkpoint: Any, every: int) -> None:
    """Generations until every run is over. The state between two generations is whole
    (every run told and booked): that is what a checkpoint holds and Ctrl-C returns."""
    generation = 0
    while True:
        active, ending = [], []
        for run in state:  # the criteria of the last generation: finish, restart or go on
            attempt = run.attempt
            stop = None if run.result is not None or run.fresh else run.end_or_restart(make)
            if stop is not None:
                ending.append((run, stop))
            elif run.result is None:
                active.append(run)
                if bar is not None and run.attempt != attempt:
                    bar.total += getattr(run.es, "num_step", 0)
        if ending:  # the runs that end now are polished together
            finish_runs(ending, evaluate)
        if not active:
            return
        xs = _ask([run.es for run in active])
        xp = namespace(xs[0])
        with boundary.evaluating():  # the only place a Ctrl-C interrupts at once
            # a fresh array (also for one run): an objective writing into it changes nothing
            values = evaluate(xp.concatenate(xs))
        _tell(active, xs, values)
        for run in active:
            if callback is not None and _callback_says_stop(callback, run):
                run.callback_stop = True
        _show(bar, state, active)
        generation += 1
        if checkpoint is not None and generation % every == 0:
            _save(checkpoint, state)


def _save(checkpoint: Any, state: list[Run]) -> None:
    if checkpoint is not None:
        save_checkpoint(checkpoint, state)


def _results(results: list[OptimizeResult]) -> OptimizeResult | list[OptimizeResult]:
    return results[0] if len(results) == 1 else results


def _batched(strategies: list, name: str):
    """The strategies' ``ask_batch`` / ``tell_batch`` when they are all of one class that has it."""
    fn = getattr(type(strategies[0]), name, None)
    return fn if fn is not None and all(type(e) is type(strategies[0]) for e in strategies) else None


def _ask(strategies: list) -> list:
    asks = _batched(strategies, "ask_batch")
    return asks(strategies) if asks is not None else [es.ask() for es in strategies]


def _tell(active: list[Run], xs: list, values: Any) -> None:
    """Tell every active run its part of ``values`` (batched where the strategy can) and book it."""
    parts, start = [], 0
    for x in xs:
        parts.append(values[start:start + x.shape[0]])
        start += x.shape[0]
    batched = _batched([run.es for run in active], "tell_batch")
    if batched is not None:
        batched([run.es for run in active], parts)
    else:
        for run, part in zip(active, parts):
            run.es.tell(part)
    History.append_many([run.history for run in active],
                        [run.after_generation(x.shape[0], append=False) for run, x in zip(active, xs)])


def _callback_says_stop(callback: Callable, run: Run) -> bool:
    try:
        return bool(callback(run.intermediate(run.es.result)))
    except StopIteration:
        return True


def _progress_bar(progress: bool, total: int):
    if not progress:
        return None
    from tqdm.auto import tqdm  # noqa: PLC0415 - tqdm is a dependency, imported when used

    return tqdm(total=total, desc="diffevo", unit="gen", file=sys.stderr, dynamic_ncols=True)


def _show(bar, state: list[Run], active: list[Run]) -> None:
    if bar is None:
        return
    bar.update(len(active))
    best = [r.best_f for r in state if r.best_x is not None]
    if best:
        b = max(best) if state[0].settings.maximize else min(best)
        spread = float(np.mean([r.history.spread[-1] for r in active]))
        bar.set_postfix(best=f"{b:.6g}", spread=f"{spread:.3g}", refresh=False)
