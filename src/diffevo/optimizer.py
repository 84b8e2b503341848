"""Ask/tell Diffusion Evolution: the optimiser users drive themselves.

:class:`DiffusionEvolution` keeps one population and walks it through one noise
schedule, one generation per ``tell``::

    es = diffevo.DiffusionEvolution(512, bounds=[(-5, 5)] * 2, seed=0)
    while not es.stop():
        X = es.ask()                      # (popsize, ndim)
        es.tell(objective(X))             # (popsize,) raw objective values
    es.result.x, es.result.fun

One generation (SPEC.md sections 2-4): weights of the told values -> x0 estimate in
normalised coordinates u -> DDIM step. The choices made, and why, are documented where
they are made: search space and bounds in :mod:`diffevo._space`; schedule, step noise
and latent distances in :mod:`diffevo._settings`; fitness weights in :mod:`diffevo.shaping`.
Populations are NumPy arrays, or CuPy arrays when ``x0`` is one (or ``backend='cuda'``).

A ``tell`` is a transaction: it computes everything (weights, x0 estimate, step)
before it changes any state, so a tell that raises leaves the optimiser as it was and
a retry with the same values continues the run bit for bit. The optimiser pickles
(and deep-copies), random state included.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np

from ._device import cupy_module, is_gpu_array, namespace, to_numpy
from ._random import as_generator
from ._settings import Settings, check_int, with_options
from ._space import search_space
from .core import ddim_step, x0_estimate
from .evaluation import told_values
from .history import History, population_spread, position_entropy, value_stats
from .result import OptimizeResult, verdict
from .shaping import weights_from

__all__ = ["DiffusionEvolution"]

#: generations looked back over by the ``tolfun`` criterion
TOLFUN_WINDOW = 10


class _Told(NamedTuple):
    """Everything one tell will commit, computed before any state changes: the (N,) values
    told, the (N, D) population they belong to, (x, value) when this generation beat the
    best ever, its statistics and history row, the (N,) weights (None: no step follows)."""

    f: Any
    x: Any
    best: tuple | None
    gen_best: float
    gen_range: float
    spread: float
    row: dict
    weights: Any


class DiffusionEvolution:
    """Diffusion Evolution with an ask/tell interface (pycma / evosax style).

    Args:
        popsize: members per generation, >= 2.
        x0: (D,) centre of the first population (NumPy or CuPy; a CuPy x0 keeps the
            whole run on the GPU). Default: the middle of ``bounds``, else the origin.
        ndim: D, needed only when neither x0 nor per-coordinate bounds give it.
        sigma0: scalar or (D,) scale of the first population around x0 (default: the
            box's width / sqrt(12) with bounds, else 1.0).
        bounds: ``(low, high)`` for every coordinate, D ``(low, high)`` pairs, or an
            object with ``lb``/``ub``. The objective is evaluated on clipped points.
        seed: int, ``numpy.random.SeedSequence``, Generator or None.
        **options: the fields of :class:`diffevo._settings.Settings` (num_step,
            schedule, noise, fitness_shaping, ...), each readable as an attribute.

    Raises:
        TypeError / ValueError naming the offending argument.
    """

    def __init__(self, popsize: int, x0: Any = None, *, ndim: int | None = None,
                 sigma0: Any = None, bounds: Any = None, seed: Any = None, **options: Any):
        self.popsize = check_int(popsize, "popsize", 2)
        self.settings = s = Settings.from_options("DiffusionEvolution", options)
        # the array module: CuPy when x0 lives on the GPU or the cuda backend is asked for;
        # kept by name so that the optimiser pickles
        if x0 is not None and is_gpu_array(x0):
            self._xp_name = namespace(x0).__name__
        else:
            self._xp_name = "cupy" if s.backend == "cuda" else "numpy"
        xp = self._xp
        dt = self.dtype
        self.box = box = search_space(x0, ndim, sigma0, bounds)
        self.ndim = d = box.ndim
        self.bounds = box.bounds
        self._center, self._scale, self._low, self._high = box.on(xp, dt)
        self.alphas = s.alphas
        self.num_step = s.num_generations
        self.schedule = s.schedule_name

        self.seed = seed
        if xp is not np and isinstance(seed, np.random.SeedSequence):
            seed = int(seed.generate_state(1, np.uint64)[0])
        self._rng = as_generator(seed, xp.empty(0) if xp is not np else None, name="seed")

        self._u = box.first_population(self._rng, self.popsize, xp, dt)  # in u coordinates

        self.noise = s.step_noise(d)
        self.latent_dim = latent_dim = s.latent(d)
        self._proj = None
        if latent_dim is not None:
            w = self._rng.standard_normal((latent_dim, d), dtype=dt)
            self._proj = w / xp.linalg.norm(w, axis=1, keepdims=True)

        self.generation = 0
        self.nfev = 0
        self.restart = 0
        self.history = History(s.maximize)
        self._t0 = time.perf_counter()
        self._asked = None
        self._x0u = None
        self._last_x = None
        self._last_values = None
        self._last_spread = math.inf
        self._best_x = None
        self._best_f = -math.inf if s.maximize else math.inf
        self._gen_best: list[float] = []
        self._gen_range = math.inf

    # ------------------------------------------------------------------ state
    def __getattr__(self, name: str) -> Any:
        # the settings read as attributes (es.maxfev, ...); never private names (pickle probes)
        settings = self.__dict__.get("settings")
        if settings is not None and not name.startswith("_"):
            if name == "shaping":
                return settings.fitness_shaping
            if name in Settings.names():
                return getattr(settings, name)
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    @property
    def _xp(self):
        return np if self._xp_name == "numpy" else cupy_module("x0")

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_t0"] = time.perf_counter() - self._t0  # elapsed seconds: timeout spans a resume
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._t0 = time.perf_counter() - state["_t0"]

    @property
    def alpha(self) -> float:
        """alpha_t of the current population (1 = clean)."""
        return float(self.alphas[max(self.num_step - 1 - self.generation, 0)])

    @property
    def best(self) -> tuple[Any, float]:
        """``(x (D,), value)`` of the best point evaluated so far (x None before any tell)."""
        return self._best_x, self._best_f

    def _to_x(self, u):
        x = self._center + self._scale * u
        if self._low is not None:
            x = self._xp.clip(x, self._low, self._high)
        return x

    @property
    def population(self):
        """(popsize, D) current population in the objective's coordinates (clipped)."""
        return self._to_x(self._u)

    # ------------------------------------------------------------------ ask / tell
    def ask(self):
        """The population to evaluate now: (popsize, ndim), clipped to the bounds; the same
        until ``tell``, read-only (a copy for CuPy), so writing into it changes nothing.

        Raises:
            RuntimeError: when the schedule is finished (``stop()`` says ``maxiter``).
        """
        if self.generation >= self.num_step:
            raise RuntimeError("the schedule is finished (stop() reports 'maxiter'); "
                               "create a new DiffusionEvolution to run again")
        if self._asked is None:
            x = self._to_x(self._u)
            if isinstance(x, np.ndarray):
                x.flags.writeable = False
            self._asked = x
        return self._asked if isinstance(self._asked, np.ndarray) else self._asked.copy()

    def tell(self, fitness: Any) -> None:
        """Report the (popsize,) raw objective values of the last ``ask()``; advance one
        generation. All or nothing: when it raises, the optimiser is as it was before.

        Raises:
            RuntimeError without a preceding ``ask()``; ValueError naming ``fitness``
            (wrong length; NaN/inf with ``nan_policy='raise'``) or ``fitness_shaping``
            (negative, NaN or wrongly shaped weights).
        """
        DiffusionEvolution.tell_batch([self], [fitness])

    @staticmethod
    def tell_batch(optimizers: Sequence[DiffusionEvolution], fitnesses: Sequence[Any]) -> None:
        """``opt.tell(f)`` for R pairs (optimizers, their asked populations' values).

        Alike runs (popsize, D, dtype, array module, alpha, estimator settings) share one
        batched (R, N, D) :func:`diffevo.x0_estimate` call, each run seeing only its own
        members; each then steps with its own generator, so the outcome equals R
        separate tells. All or nothing: when one raises, no run has changed.
        """
        if len(optimizers) != len(fitnesses):
            raise ValueError(f"fitnesses must have one entry per optimizer ({len(optimizers)}); "
                             f"got {len(fitnesses)}")
        told = [opt._prepare(f) for opt, f in zip(optimizers, fitnesses)]
        x0s: dict[int, Any] = {}
        groups: dict[tuple, list[int]] = {}
        for i, (opt, t) in enumerate(zip(optimizers, told)):
            if t.weights is not None:
                groups.setdefault(opt._batch_key(), []).append(i)
        for members in groups.values():
            x0s.update(zip(members, _estimate([optimizers[i] for i in members],
                                              [told[i].weights for i in members])))
        states = [getattr(getattr(o._rng, "bit_generator", None), "state", None) for o in optimizers]
        try:
            steps = {i: optimizers[i]._step(x0u) for i, x0u in x0s.items()}
        except BaseException:  # the steps' random draws are undone too
            for opt, state in zip(optimizers, states):
                if state is not None:
                    opt._rng.bit_generator.state = state
            raise
        for i, (opt, t) in enumerate(zip(optimizers, told)):
            opt._commit(t, x0s.get(i), steps.get(i))

    # ---------------------------------------------- the pieces tell is made of
    def _alpha_pair(self) -> tuple[float, float]:
        # called inside a tell, before its commit: this generation is not counted yet
        t = self.num_step - 2 - self.generation
        return float(self.alphas[t + 1]), float(self.alphas[t])

    def _latent(self):
        return None if self._proj is None else self._u @ self._proj.T

    def _batch_key(self) -> tuple:
        s = self.settings
        return (self._xp_name, self.popsize, self.ndim, self.latent_dim, self.dtype.str,
                self._alpha_pair()[0], s.mode, s.density, s.bandwidth, s.backend, s.path, s.approx, s.tol,
                id(s.client))

    def _prepare(self, fitness: Any) -> _Told:
        """Validate ``fitness``; the statistics, history row and weights of this tell."""
        if self._asked is None:
            raise RuntimeError("tell() needs a population: call ask() first")
        xp, s, n = self._xp, self.settings, self.popsize
        f, finite, all_finite = told_values(fitness, n, s.nan_policy, xp)
        x = self._asked
        cost = -f if s.maximize else f
        any_finite = bool(finite.any())

        # best ever, and this generation's statistics (over finite values)
        best = None
        best_f = self._best_f
        if any_finite:
            masked = xp.where(finite, cost, xp.inf)
            i = int(masked.argmin())
            gen_best_cost = float(masked[i])
            sign = -1.0 if s.maximize else 1.0
            if gen_best_cost < (sign * self._best_f) or self._best_x is None:
                best_f = sign * gen_best_cost
                best = (x[i].copy(), best_f)
            gen_best = sign * gen_best_cost
        else:
            gen_best = math.nan
        stats, gen_range = value_stats(f[finite] if not all_finite else f, s.maximize)
        spread = population_spread(x)
        row = dict(generation=self.generation + 1, restart=self.restart, nfev=self.nfev + n,
                   best=gen_best, best_ever=best_f, spread=spread,
                   entropy=position_entropy(x, s.entropy_resolution),
                   time=time.perf_counter() - self._t0, **stats)
        weights = None
        if self.generation + 1 < self.num_step:  # the final population gets no step
            weights = self._weights(f if s.fitness_shaping.sense == "fitness" else cost,
                                    finite, all_finite, any_finite)
        return _Told(f, x, best, gen_best, gen_range, spread, row, weights)

    def _weights(self, values, finite, all_finite: bool, any_finite: bool):
        """(N,) weights of the finite members (the others weigh 0), in the population's dtype."""
        xp, n, weighting = self._xp, self.popsize, self.settings.fitness_shaping
        if all_finite:
            w = weights_from(weighting, values, n, xp)
        else:
            w = xp.zeros(n, dtype=xp.float64)
            if any_finite:
                idx = xp.flatnonzero(finite)
                w[idx] = weights_from(weighting, values[idx], int(idx.shape[0]), xp)
        return w.astype(self.dtype, copy=False)

    def _step(self, x0u):
        """The next population (u) from the x0 estimate; draws from the random generator."""
        at, ap = self._alpha_pair()
        return ddim_step(self._u, x0u, at, ap, noise=self.noise, rng=self._rng)

    def _commit(self, t: _Told, x0u, u_next) -> None:
        """Apply a prepared tell (assignments only: nothing here can fail half-way)."""
        if t.best is not None:
            self._best_x, self._best_f = t.best
        self._gen_best.append(t.gen_best)
        self._gen_range = t.gen_range
        self._last_values = t.f
        self._last_x = t.x
        self._last_spread = t.spread
        self.generation += 1
        self.nfev += self.popsize
        self.history.append(**t.row)
        self._asked = None
        if u_next is not None:
            self._x0u = x0u
            self._u = u_next

    # ------------------------------------------------------------------ stopping
    def stop(self) -> dict[str, Any]:
        """The stop criteria that fire now, as ``{name: threshold}`` (empty: go on).

        ``maxiter``: the schedule's ``num_step`` generations are done. ``maxfev``: at least
        ``maxfev`` evaluations (checked after each generation: a run may overshoot by up
        to popsize - 1). ``ftarget``: the best value reached it (<= minimising, >=
        maximising). ``tolx``: the last population's spread (largest per-coordinate
        standard deviation) fell below it. ``tolfun``: the range of the last generation's
        values and of the best values of the last 10 generations fell below it.
        ``timeout``: so many seconds since construction (not counting a pickled pause).
        """
        s = self.settings
        out: dict[str, Any] = {}
        if self.generation >= self.num_step:
            out["maxiter"] = self.num_step
        if s.maxfev is not None and self.nfev >= s.maxfev:
            out["maxfev"] = s.maxfev
        if s.ftarget is not None and self._best_x is not None:
            hit = self._best_f >= s.ftarget if s.maximize else self._best_f <= s.ftarget
            if hit:
                out["ftarget"] = s.ftarget
        if self.generation > 0:
            if s.tolx is not None and self._last_spread < s.tolx:
                out["tolx"] = s.tolx
            if s.tolfun is not None:
                recent = [v for v in self._gen_best[-TOLFUN_WINDOW:] if math.isfinite(v)]
                if recent and math.isfinite(self._gen_range):
                    rng = max(self._gen_range, max(recent) - min(recent))
                    if rng < s.tolfun:
                        out["tolfun"] = s.tolfun
        if s.timeout is not None and time.perf_counter() - self._t0 >= s.timeout:
            out["timeout"] = s.timeout
        return out

    # ------------------------------------------------------------------ result
    @property
    def result(self) -> OptimizeResult:
        """Where the run stands: an :class:`OptimizeResult` (see its keys)."""
        stop = self.stop()
        found = self._best_x is not None or self.generation == 0
        success, status, message = verdict(stop, self.settings.ftarget, found=found)
        x0e = None if self._x0u is None else self._to_x(self._x0u)
        return OptimizeResult(
            x=self._best_x, fun=self._best_f if self._best_x is not None else math.nan,
            success=success, status=status, message=message, stop=stop,
            nit=self.generation, nfev=self.nfev, nrestarts=self.restart,
            population=self.population if self._last_x is None else self._last_x,
            population_fun=self._last_values, x0_estimate=x0e,
            history=self.history, seed=self.seed)

    def __repr__(self) -> str:
        return (f"DiffusionEvolution(popsize={self.popsize}, ndim={self.ndim}, "
                f"num_step={self.num_step}, schedule={self.schedule!r}, generation={self.generation}, "
                f"best={self._best_f:.6g})")


def _estimate(runs: Sequence[DiffusionEvolution], weights: Sequence[Any]) -> list:
    """The x0 estimates (u coordinates) of alike runs: one call, batched when R > 1."""
    first = runs[0]
    s, at = first.settings, first._alpha_pair()[0]
    opts = dict(density=s.density, bandwidth=s.bandwidth, mode=s.mode, backend=s.x0_backend(),
                path=s.path, approx=s.approx, tol=s.tol)
    if len(runs) == 1:
        return [x0_estimate(first._u, weights[0], at, latent=first._latent(), **opts)]
    xp = first._xp
    lat = None if first._proj is None else xp.stack([r._latent() for r in runs])
    x0u = x0_estimate(xp.stack([r._u for r in runs]), xp.stack(list(weights)), at, latent=lat, **opts)
    return [x0u[i] for i in range(len(runs))]


# help(DiffusionEvolution) lists every option: the signature is built from Settings' fields
DiffusionEvolution.__init__.__signature__ = with_options(DiffusionEvolution.__init__)
