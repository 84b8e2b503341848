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
from .modes import (HILL_TESTS, MERGE_XTOL, POLISH_SHARE, Cost, attempt_modes_many, final_of,
                    hill_parted, keep_final, keep_snapshot, min_mode_size, taboo_radii,
                    tied_basins, zoom_box)
from .modes import _unit as mode_unit
from .polish import Counted, drive, one_thread_blas, polish_each
from .result import OptimizeResult, verdict
from .strategies import get as get_strategy

__all__ = ["NOT_OPTIONS", "Run", "child_seed", "optimize", "settle"]

#: Settings fields minimize/maximize set themselves (num_step from maxiter), not options
NOT_OPTIONS = ("num_step", "maximize")

#: popsize and maxiter of minimize/maximize: 1024 x 50 rather than 512 x 100 (the same
#: 51,200 evaluations): the larger population keeps every basin (all four optima of
#: Himmelblau / Ackley / Rastrigin in [-4,4]^2 among the modes in 97.5 / 100 / 100 % of 40
#: seeds, against 92.5 / 100 / 77.5 % at 512 x 100, T = 0.5; bench/paper/README.md)
DEFAULT_POPSIZE, DEFAULT_MAXITER = 1024, 50

#: criteria after which a restart makes no sense: the goal or a global budget was reached
FINAL = ("ftarget", "maxfev", "timeout", "callback", "interrupted")

#: restarts='auto' (the default) restarts at most this many times, and only while the attempt
#: that just ended found an optimum of the best value that no earlier attempt had, with at
#: least two such optima known: a problem with several global optima gets new seeds until they
#: stop turning up (Himmelblau: one restart, which finds the same four), a problem with one
#: best optimum gets none. An attempt of 1024 x 50 members finds 15.7 of Shubert's 18 minima,
#: 2.4 of the four corner maxima of Ackley in [-32.768, 32.768]^2 (10 seeds); three restarts
#: find all of both in 10 of 10 (bench/quality/multiglobal.py)
AUTO_RESTARTS = 4

#: restarts='auto': an attempt's basins are polished at its end (modes.tied_basins), first
#: those whose best member is within this fraction of the first generation's |median - best|
#: (the problem's own scale of values) of the best value, or within their own scatter ...
TIE_FRACTION = 1e-2

#: ... and two polished optima tie when their values differ by less than this fraction of it
#: (polished values agree to ~1e-12 of it; a final population's, to 1e-6 in 2-D, 0.1 in 3-D)
TIE_POLISHED = 1e-6

#: restarts='auto': a candidate this close to a polished optimum (in units of the run's scale,
#: the box's standard deviation per coordinate) is taken to be in its basin, not polished
SAME_BASIN = 1e-2

#: restarts='auto': the candidates' polish stops after this many in a row reached optima it
#: had (Himmelblau at 512 x 25: 12 of 20-27 candidates polished, 8 of them to the 4 minima)
TIE_REPEATS = 3

#: restarts='auto': polishing an attempt's candidates may spend this fraction of its
#: evaluations (what is left of it goes to the polish at the end)
TIE_SHARE = 0.05

#: restarts='auto': a restarted population avoids the optima of the best value known so far
#: (DiffusionEvolution.avoid): members within this fraction of the distance from each to
#: its nearest other one, or to the nearest basin its attempt saw outside its own (an
#: optimum not found yet may lie closer than the known ones: Shubert's come in pairs), weigh
#: 0, so the population spreads over the basins not found yet instead of finding the same
#: ones again (modes.taboo_radii)
TABOO_SHARE = 0.5

#: restarts='auto': the nearest modes of an attempt (outside the optimum's basin) that the
#: hill-valley test compares with each new optimum of the best value (Run.tie_reach)
TABOO_PROBES = 8


#: restarts='auto': once attempts in the whole box stop finding new optima (or AUTO_RESTARTS
#: are spent), up to ZOOM_RESTARTS more search a smaller box (modes.zoom_box): around the most
#: crowded known optimum of the best value (its 2D-th nearest other one closest), ZOOM_SPAN
#: times the distance to its nearest one to each side, when that box is from ZOOM_SMALLEST to
#: ZOOM_LARGEST of the whole box's width: optima that crowd where others lie far apart say the
#: problem has features smaller than a population spread over the whole box resolves
#: (Vincent 2-D's maxima, 0.2 wide at the corner of a box 9.75 wide: all 36 found in 11 of 20
#: seeds without the zoom, 20 of 20 with it). Each zoom centres on an optimum no earlier zoom
#: held, and avoids the known optima as a restart does. Only with bounds and neither x0 nor
#: sigma0 (a first population uniform in the box, which the zoom's box replaces)
ZOOM_SPAN = 2.0
ZOOM_LARGEST = 0.25

#: ... and at least this fraction of it: two optima of the best value closer than that are
#: one flat basin polished to two points (Schaffer N.4's valleys: 0.0014 apart in a box 20
#: wide, values 4e-9 apart), not a crowd
ZOOM_SMALLEST = 0.02

#: restarts='auto': zoomed attempts a run may make beyond its AUTO_RESTARTS
ZOOM_RESTARTS = 2


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

    def __init__(self, index: int, seed: Any, make: Callable, popsize: int, restarts: int | str,
                 factor: float, settings: Settings):
        self.index = index
        self.seed = seed
        self.popsize = popsize
        # 'auto' tells optima apart by polishing them: with polish=False it never restarts
        self.auto = restarts == "auto"
        self.restarts_left = (AUTO_RESTARTS if settings.polish else 0) if self.auto else restarts
        self.zooms_left = ZOOM_RESTARTS if self.auto and settings.polish else 0
        self.value_width: float | None = None  # restarts='auto': the first generation's
        self.ties: list = []  # restarts='auto': the polished optima of the best value
        self.tie_unit: np.ndarray | None = None
        # restarts='auto': an attempt that avoided the known optima and found no new one
        # explored elsewhere; the result then shows the population of the last attempt
        # that found one (its strategy's result, kept at the restart)
        self.shown: OptimizeResult | None = None
        self.nothing_new = False
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
        self.snapshots_from = 0  # the first of them kept in this attempt
        self.es = make(popsize, seed, settings.maxfev, settings.timeout)
        # the run's box: a zoomed attempt's strategy has a smaller one (ZOOM_SPAN)
        self.space = getattr(self.es, "box", None)
        self.zooms: list = []  # the boxes of its zoomed attempts, (low, high)
        self.zoomed = False  # whether the attempt now running is one

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["t0"] = time.perf_counter() - self.t0  # elapsed: the timeout spans a resume
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self.__dict__.setdefault("snapshots", [])  # (a checkpoint of a version before them)
        for name, value in (("auto", False), ("snapshots_from", 0), ("value_width", None),
                            ("ties", []), ("tie_unit", None), ("shown", None),
                            ("nothing_new", False), ("zooms", []), ("zoomed", False),
                            ("zooms_left", 0)):
            self.__dict__.setdefault(name, value)
        self.__dict__.setdefault("space", getattr(self.es, "box", None))
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
        if self.auto and self.value_width is None:  # stats: mean, median, worst, spread, ...
            width = abs(stats[1] - best)
            self.value_width = width if math.isfinite(width) else 0.0
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

    def end_or_restart(self, make: Callable, evaluate: Evaluator | None = None) -> dict | None:
        """After a generation: the criteria that end this run (None: it goes on, perhaps
        restarted); :meth:`finish` (or :func:`finish_runs`) then sets its result.
        ``evaluate`` lets restarts='auto' polish the attempt's basins (:func:`settle`)."""
        return settle([self], make, evaluate)[0]

    def criteria(self) -> dict:
        """The stop criteria the last generation met (empty: it goes on)."""
        stop = dict(self.es.stop())
        if self.callback_stop:
            stop["callback"] = True
        return stop

    def room(self, stop: dict) -> tuple | None:
        """``(maxfev, timeout)`` left for a restart after ``stop``, or None (no restart)."""
        s = self.settings
        if self.restarts_left + self.zooms_left <= 0 or any(k in stop for k in FINAL):
            return None
        maxfev = None if s.maxfev is None else s.maxfev - self.nfev
        timeout = None if s.timeout is None else s.timeout - (time.perf_counter() - self.t0)
        if (maxfev is None or maxfev > 0) and (timeout is None or timeout > 0):
            return maxfev, timeout
        return None

    def restart(self, make: Callable, maxfev: int | None, timeout: float | None,
                zoom: tuple | None = None) -> None:
        """Start the next attempt (a child seed, the popsize times the factor), in the box
        ``zoom`` ``(low, high)`` when given (:meth:`next_zoom`), else in the run's."""
        keep_final(self.finals, self.es, self.settings.maximize)
        if zoom is None:
            self.restarts_left -= 1
        else:
            self.zooms_left -= 1
        self.attempt += 1
        self.snapshots_from = len(self.snapshots)
        self.popsize = max(2, int(round(self.popsize * self.factor)))
        seed = child_seed(self.seed, self.attempt)
        self.es = (make(self.popsize, seed, maxfev, timeout) if zoom is None
                   else make(self.popsize, seed, maxfev, timeout, zoom))
        self.fresh = True
        self.zoomed = zoom is not None
        if self.zoomed:
            self.zooms.append(zoom)
        box, space = getattr(self.es, "box", None), self.space
        if (self.auto and len(self.ties) >= 2 and box is not None and space is not None
                and hasattr(self.es, "avoid")):
            self.niche()
            points = np.array([t["x"] for t in self.ties], dtype=np.float64)
            reach = np.array([t.get("reach", math.inf) for t in self.ties])
            radii = taboo_radii(points, space.scale, TABOO_SHARE, reach)
            # (in units of the run's scale; a zoomed box's is that one shrunk alike everywhere)
            self.es.avoid(points, radii / float(np.mean(box.scale / space.scale)))

    def niche(self) -> None:
        """restarts='auto', a restart after two or more optima of the best value turned up:
        the new attempt steps with the noise ``Settings.step_noise(ndim, niching=True)``,
        with ``noise='auto'`` the low-D one (0.1) also above two dimensions; a noise the user
        set stays. The first attempt's DDPM-like
        noise 1.0 is what finds a single global minimum in 3-D (with 0.1 Rastrigin's and
        Ackley's were lost to neighbouring minima); the restarts are there to find more of
        several equal optima, and the low noise keeps basins: 7.1 and 6.8 of the 8 corner
        maxima of Rastrigin and Ackley in [-4, 4]^3 per attempt, against 2.9 and 4.9
        (bench/results/latent-noise-znver4-2cpu-2026-12-03.json)."""
        es = self.es
        settings = getattr(es, "settings", None)
        if isinstance(settings, Settings) and isinstance(getattr(es, "noise", None), float):
            es.noise = settings.step_noise(es.ndim, niching=True)

    def next_attempt(self, new: bool) -> tuple | None:
        """restarts='auto', an attempt ended, having found a ``new`` optimum of the best value
        or not: ``(zoom,)``, the next attempt's box (None: the run's whole box), or None to
        stop. Attempts in the whole box go on while they find new optima (at most
        AUTO_RESTARTS); then zoomed ones (ZOOM_SPAN) while a box to zoom into and
        ZOOM_RESTARTS remain, each centred on an optimum no earlier zoom held; after the last
        zoom, the whole box again if that zoom found something and restarts remain."""
        zoom = None if not self.zooms_left else self.next_zoom()
        if new and not self.zoomed and self.restarts_left > 0:
            return (None,)
        if zoom is not None:
            return (zoom,)
        if new and self.restarts_left > 0:
            return (None,)
        return None

    def next_zoom(self) -> tuple | None:
        """restarts='auto': the box ``(low, high)`` of a zoomed next attempt (ZOOM_SPAN), or
        None: only for a run in bounds with a uniform first population and two or more
        optima of the best value known."""
        space = self.space
        if (not self.auto or len(self.ties) < 2 or space is None or space.low is None
                or space.x0_given
                or not np.allclose(space.scale, (space.high - space.low) / math.sqrt(12.0))):
            return None
        points = np.array([t["x"] for t in self.ties], dtype=np.float64)
        return zoom_box(points, space.low, space.high, ZOOM_SPAN, ZOOM_LARGEST, ZOOM_SMALLEST,
                        self.zooms)

    def tie_populations(self, left: int | None, evaluate: Evaluator | None) -> list | None:
        """restarts='auto', an attempt just ended: the populations whose basins
        :meth:`tie_lane` tests (the attempt's final one and its snapshots), or None when no
        restart is possible: with maxfev, what is left must hold a whole attempt and the
        share of polishing it brings."""
        s = self.settings
        size = max(2, int(round(self.popsize * self.factor))) * s.num_step
        if left is not None and left < size + POLISH_SHARE * (self.nfev + size):
            return None
        final = final_of(self.es, s.maximize)
        if evaluate is None or final is None or not len(final[1]) or not self.value_width:
            return None  # (value_width 0: a flat first generation, no scale to tell ties by)
        if self.tie_unit is None:
            self.tie_unit = mode_unit(final[0], getattr(self.space, "scale", None))
        return [final, *self.snapshots[self.snapshots_from:]]

    def tie_lane(self, evaluate: Evaluator, modes: list[dict]) -> tuple:
        """``(steps, cost)``: the polish of the attempt's basins of about the best value
        among ``modes`` (those of :meth:`tie_populations`) as a generator of stencils
        (:func:`diffevo.polish.drive`) that returns whether to start another attempt (see
        :data:`AUTO_RESTARTS`), and the cost it evaluates."""
        s = self.settings
        sign = -1.0 if s.maximize else 1.0
        best = min([sign * self.best_f] + [m["fun"] for m in self.ties])
        candidates = tied_basins(modes, best, TIE_FRACTION * self.value_width)
        pop = self.es.result.get("population")
        cost = Cost(evaluate, sign, np if pop is None else namespace(pop))
        counted = Counted(cost, int(TIE_SHARE * self.popsize * s.num_step))
        steps = self._tie_steps(counted, candidates, getattr(self.space, "bounds", None), best,
                                TIE_POLISHED * self.value_width)
        return steps, cost

    def tie_reach(self, cost: Cost, modes: list[dict]) -> None:
        """Note each new optimum's ``reach`` (units of the run's scale): the distance to the
        nearest of the attempt's ``modes`` that a hill parts from it (the hill-valley test,
        :func:`diffevo.modes.hill_parted`: ``TABOO_PROBES`` nearest modes outside its basin,
        one call of ``cost`` (:meth:`tie_lane`'s) for all new optima, counted in nfev and
        within what maxfev leaves), inf when none is. An
        optimum not found yet may lie much closer than the known ones (Shubert's global
        minima come in pairs 0.1 of the scale apart, 1.1 from the next pair): the ball a
        restart avoids stays short of it (:data:`TABOO_SHARE`)."""
        fresh = [t for t in self.ties if "reach" not in t]
        pairs, dists = [], []
        for t in fresh:
            t["reach"] = math.inf
        if fresh and modes:
            mx, mf, ms = _as_arrays(modes)
            for k, t in enumerate(fresh):
                dist = np.linalg.norm((mx - t["x"]) / self.tie_unit, axis=1)
                outside = np.flatnonzero(~self._covering(mx, mf, ms, t))
                for j in outside[np.argsort(dist[outside], kind="stable")][:TABOO_PROBES]:
                    pairs.append((k, int(j)))
                    dists.append(float(dist[j]))
        if not pairs:
            return
        need = len(pairs) * HILL_TESTS
        maxfev = self.settings.maxfev
        counted = Counted(cost, need if maxfev is None else max(0, min(need, maxfev - self.nfev)))
        parted = hill_parted(counted, [fresh[k] for k, _ in pairs], [modes[j] for _, j in pairs])
        self.nfev += counted.nfev
        for (k, _), dist, hill in zip(pairs, dists, parted):
            if hill:
                fresh[k]["reach"] = min(fresh[k]["reach"], dist)

    def _covers(self, candidate: dict, optimum: dict) -> bool:
        """Whether a candidate basin holds a polished optimum: it lies within SAME_BASIN of it
        (units of the run's scale) or within the basin's spread in every coordinate (one
        optimum shows as several basins of an attempt's final and earlier populations:
        Himmelblau's four minima came as 20-27 candidates at 512 x 25). Never when the
        candidate is better than the optimum: no point of a basin is, and in 3-D a basin's
        spread (about 1 on Rastrigin) reaches the neighbouring optima."""
        return bool(self._covering(*_as_arrays([candidate]), optimum)[0])

    def _covering(self, x: np.ndarray, fun: np.ndarray, spread: np.ndarray,
                  optimum: dict) -> np.ndarray:
        """(M,) :meth:`_covers` of M candidates: ``x`` and ``spread`` (M, D), ``fun`` (M,)."""
        gap = np.abs(x - optimum["x"])
        near = np.linalg.norm(gap / self.tie_unit, axis=1) <= SAME_BASIN
        return (fun >= optimum["fun"]) & (near | (gap <= spread).all(axis=1))

    def _same(self, a: dict, b: dict) -> bool:
        """Whether two polished optima are one point (within MERGE_XTOL, as merge_modes)."""
        return bool(np.linalg.norm((a["x"] - b["x"]) / self.tie_unit) <= MERGE_XTOL)

    def _tie_steps(self, counted: Counted, candidates: list, bounds: Any, best: float,
                   near: float):
        """Polish the candidates ("two modes are one when they polish to the same point";
        counted in nfev), keep the optima of the best value, and return whether one is new
        and two or more are known."""
        polished: list = []
        again = 0  # candidates in a row that polished to an optimum polished before
        for c in candidates:  # best first; one that lies in a basin polished already is skipped
            if again >= TIE_REPEATS:
                break
            if any(self._covers(c, o) for o in polished + self.ties):
                continue
            (m,) = yield from polish_each(counted, [c], bounds, None)
            again = again + 1 if any(self._same(m, o) for o in polished + self.ties) else 0
            polished.append(m)
        self.nfev += counted.nfev  # (their optima are polished again at the end, with the modes)
        best = min([best] + [m["fun"] for m in polished])
        known = [m for m in self.ties if m["fun"] <= best + near]
        new = []
        for m in sorted(polished, key=lambda m: m["fun"]):
            if (m["polished"] and m["fun"] <= best + near
                    and not any(self._same(m, k) for k in known + new)):
                new.append({"x": m["x"], "fun": m["fun"]})
        self.ties = known + new
        return bool(new) and len(self.ties) >= 2

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


def _as_arrays(modes: list[dict]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(x (M, D), fun (M,), spread (M, D))`` of modes (no spread: zeros)."""
    x = np.array([m["x"] for m in modes], dtype=np.float64)
    fun = np.array([m["fun"] for m in modes], dtype=np.float64)
    spread = np.array([m.get("spread", np.zeros(x.shape[1])) for m in modes], dtype=np.float64)
    return x, fun, spread


def settle(runs: list[Run], make: Callable, evaluate: Evaluator | None) -> list[dict | None]:
    """After a generation, for told runs: each one's stop criteria, or None when it goes on
    (restarted, perhaps). The restarts='auto' polishes of the runs whose attempts ended now
    advance in lockstep (:func:`diffevo.polish.drive`: one objective call per round for all
    of them), each run deciding what it would decide alone."""
    out: list[dict | None] = [None] * len(runs)
    lanes: dict = {}
    tests = []  # (run index, room, populations) of the runs whose tied basins are polished
    for i, run in enumerate(runs):
        stop = run.criteria()
        if not stop:
            continue
        out[i] = stop
        room = run.room(stop)
        if room is None:
            continue
        if not run.auto:
            run.restart(make, *room)
            out[i] = None
            continue
        pops = run.tie_populations(room[0], evaluate)
        if pops is not None:
            tests.append((i, room, pops))
    found = attempt_modes_many([(pops, runs[i].tie_unit, min_mode_size(runs[i].popsize))
                                for i, _, pops in tests])  # one clustering call for all
    for (i, room, _), modes in zip(tests, found):
        steps, cost = runs[i].tie_lane(evaluate, modes)
        lanes.setdefault(cost.key(), []).append((i, steps, cost, room, modes))
    if lanes:
        with one_thread_blas():
            for group in lanes.values():
                again = drive([steps for _, steps, _, _, _ in group], group[0][2])
                for (i, _, cost, room, modes), yes in zip(group, again):
                    run = runs[i]
                    run.nothing_new = not yes
                    if yes:
                        run.shown = run.es.result
                        run.tie_reach(cost, modes)
                    after = run.next_attempt(yes)
                    if after is not None:
                        run.restart(make, *room, *after)
                        out[i] = None
    return out


def finish_runs(ending: list[tuple[Run, dict]], evaluate: Evaluator | None) -> list[OptimizeResult]:
    """Finish runs ``[(run, stop), ...]`` that end together: their modes are found and
    polished at once (:func:`diffevo.modes.finish_runs`: one objective call per round for
    all of them), each run getting what it would get alone."""
    results = []
    for run, _ in ending:
        shown = run.shown if run.nothing_new and run.shown is not None else run.es.result
        results.append(shown)
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
    if not (isinstance(restarts, str) and restarts == "auto"):
        if isinstance(restarts, str):
            raise ValueError(f"restarts must be 'auto' or an integer >= 0; got {restarts!r}")
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

    def make(size: int, run_seed: Any, maxfev: int | None, timeout: float | None,
             zoom: tuple | None = None):  # zoom: a smaller box (Run.next_zoom)
        return strategy(size, x0, ndim=ndim, sigma0=sigma0,
                        bounds=bounds if zoom is None else list(zip(*zoom)), seed=run_seed,
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
        told = [run for run in state if run.result is None and not run.fresh]
        attempts = [run.attempt for run in state]
        stops = dict(zip(map(id, told), settle(told, make, evaluate)))
        for run, attempt in zip(state, attempts):  # the last generation: finish, restart, go on
            stop = stops.get(id(run))
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
