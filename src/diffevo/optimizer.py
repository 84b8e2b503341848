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

import itertools
import math
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from ._device import cupy_module, is_gpu_array, namespace, to_numpy
from ._random import as_generator
from ._settings import Settings, check_int, with_options
from ._space import search_space
from ._told import Told, per_group, prepare, stacked
from .core import ddim_step, weighted_centre, x0_estimate
from .history import History
from .result import OptimizeResult, verdict
from .shaping import batch_key

__all__ = ["DiffusionEvolution"]

#: generations looked back over by the ``tolfun`` criterion
TOLFUN_WINDOW = 10


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
        self.centred = s.centred(d)
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
        # the asked population, last x0 estimate, last told generation, best point: none yet
        self._asked = self._x0u = self._last_x = self._last_values = self._best_x = None
        self._last_spread = math.inf
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
        state.pop("_fixed_keys", None)  # holds id(client): recomputed after a load
        state.pop("_tiled", None)  # the box tiled to a popsize: remade on first use
        state.pop("_u_row", None)  # notes of the batch arrays (see stacked): not state
        state.pop("_asked_row", None)
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

    def avoid(self, points: Any = None, radii: Any = None) -> None:
        """Members within ``radii[k]`` of ``points[k]`` weigh 0 in the x0 estimate from the
        next tell on (the fitness shaping does not see them either); their values still
        count for the best point, the statistics and the history. None clears it.

        ``restarts='auto'`` sets the optima that earlier attempts found here, so that a
        restarted population spreads over the basins not found yet instead of finding
        the same ones again (the taboo points of RS-CMSA, Ahrari et al. 2017).

        Args:
            points: (k, D) in the objective's coordinates.
            radii: (k,) > 0, distances in the run's normalised coordinates (units of
                ``box.scale`` per coordinate; a uniform first population has unit variance).

        Raises:
            ValueError: naming ``points`` or ``radii`` for a wrong shape or value.
        """
        if points is None:
            self._avoid = None
            return
        p = np.asarray(to_numpy(points), dtype=np.float64)
        r = np.asarray(to_numpy(radii), dtype=np.float64)
        if p.ndim != 2 or p.shape[1] != self.ndim or not np.isfinite(p).all():
            raise ValueError(f"points must be finite, shape (k, {self.ndim}); got shape {p.shape}")
        if r.shape != (p.shape[0],) or not (np.isfinite(r).all() and (r > 0).all()):
            raise ValueError(f"radii must be ({p.shape[0]},) finite values > 0; got {radii!r}")
        scale = np.broadcast_to(np.asarray(to_numpy(self.box.scale), dtype=np.float64), (self.ndim,))
        xp = self._xp  # kept in units of the scale, radii squared: what avoided() compares
        self._avoid = (xp.asarray(p / scale), xp.asarray(r * r), xp.asarray(scale.copy()))

    def avoided(self, x: Any):
        """(..., N) whether the members ``x`` (..., N, D) lie where :meth:`avoid` said
        (None when nothing is avoided). Points in blocks of at most ``2**22 / (N D)``:
        memory stays O(N D) however many points there are."""
        avoid = self.__dict__.get("_avoid")
        if avoid is None:
            return None
        xp = self._xp
        pu, r2, scale = avoid
        u = (x / scale)[..., None, :]
        inside = xp.zeros(x.shape[:-1], dtype=bool)
        block = max(1, (1 << 22) // max(1, math.prod(x.shape)))
        for a in range(0, pu.shape[0], block):
            d2 = ((u - pu[a:a + block]) ** 2).sum(axis=-1)
            inside |= (d2 <= r2[a:a + block]).any(axis=-1)
        return inside

    def _to_x(self, u):
        """u (..., N, D) -> x = center + scale u, clipped to the box, in x's dtype.

        The (D,) vectors are tiled to (N D,) and u is seen as (..., N D): an elementwise
        op against a (D,) vector at small D runs numpy's inner loop D elements at a time
        (at (100, 512, 2): 1.3 ms per mapping against 0.1 ms); the arithmetic per element
        is the same."""
        xp, shape = self._xp, u.shape
        tiled = self.__dict__.get("_tiled")
        if tiled is None or tiled[0] != shape[-2:]:  # a popsize's tiling, made once
            n, d = shape[-2:]
            tiled = self.__dict__["_tiled"] = (
                shape[-2:], *(None if a is None else xp.tile(xp.broadcast_to(a, (d,)), n)
                              for a in (self._center, self._scale, self._low, self._high)))
        _, center, scale, low, high = tiled
        flat = u.reshape(*shape[:-2], shape[-2] * shape[-1])
        x = xp.multiply(flat, scale)
        x += center
        if low is not None:
            xp.clip(x, low, high, out=x)
        return x.reshape(shape)

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

    @staticmethod
    def ask_batch(optimizers: Sequence[DiffusionEvolution]) -> list:
        """``[opt.ask() for opt in optimizers]``, the populations of alike NumPy runs (same
        popsize, D, dtype and box) mapped to the objective's coordinates and clipped as one
        (R, N, D) array (the same arithmetic per element as R asks), run r's a view of it."""
        groups: dict[tuple, list] = {}
        for opt in optimizers:
            if opt._asked is None and opt.generation < opt.num_step and opt._xp_name == "numpy":
                groups.setdefault(opt._key("ask"), []).append(opt)
        for runs in groups.values():
            if len(runs) > 1:
                x = runs[0]._to_x(stacked(runs, "_u"))
                x.flags.writeable = False  # and so every run's view of it
                for k, (opt, xr) in enumerate(zip(runs, x)):
                    opt._asked = xr
                    opt._asked_row = (x, k, xr)
        return [opt.ask() for opt in optimizers]

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

        Alike runs (popsize, D, dtype, array module, ...) share every step of the tell:
        the statistics and history rows (one compiled pass over (R, N)), the weights (one
        ``Weighting.batch`` call), one batched (R, N, D) :func:`diffevo.x0_estimate` and
        one DDIM step, each run drawing its step noise from its own generator; a run
        only ever sees its own members, so the outcome equals R separate tells, bit for
        bit. All or nothing: when one raises, no run has changed.
        """
        if len(optimizers) != len(fitnesses):
            raise ValueError(f"fitnesses must have one entry per optimizer ({len(optimizers)}); "
                             f"got {len(fitnesses)}")
        told = per_group(optimizers, "told", prepare, dict(enumerate(fitnesses)))
        x0s = per_group(optimizers, "x0", _estimate,
                         {i: t.weights for i, t in told.items() if t.weights is not None})
        states = [getattr(getattr(o._rng, "bit_generator", None), "state", None) for o in optimizers]
        try:
            steps = per_group(optimizers, "step", _steps, x0s)
        except BaseException:  # the steps' random draws are undone too
            for opt, state in zip(optimizers, states):
                if state is not None:
                    opt._rng.bit_generator.state = state
            raise
        for i, opt in enumerate(optimizers):
            opt._commit(told[i], x0s.get(i), steps.get(i))
        History.append_many([opt.history for opt in optimizers],
                            [told[i].row for i in range(len(optimizers))])

    # ---------------------------------------------- the pieces tell is made of
    def _alpha_pair(self) -> tuple[float, float]:
        # called inside a tell, before its commit: this generation is not counted yet
        t = self.num_step - 2 - self.generation
        return float(self.alphas[t + 1]), float(self.alphas[t])

    def _latent(self, u: Any = None):
        """The latent code of ``u`` (default: the population), None without a latent."""
        return None if self._proj is None else (self._u if u is None else u) @ self._proj.T

    def _key(self, part: str) -> tuple:
        """Equal for runs that share a part of a tell: ``'told'`` (statistics and weights:
        one (R, N) reduction each, one batch()), ``'x0'`` (one x0 estimate), ``'step'``."""
        fixed = self.__dict__.get("_fixed_keys")
        if fixed is None:  # what never changes in a run: computed once (not pickled), and
            # interned: a key is then a short tuple, hashed in a few ns (a batch groups
            # its runs three times per generation)
            fixed = self.__dict__["_fixed_keys"] = {
                k: (_INTERNED.setdefault(v, next(_NUMBERS)),) for k, v in self._fixed_keys().items()}
        if part == "ask":
            return fixed["ask"]
        if part == "told":
            return fixed["told"] + (batch_key(self.settings.fitness_shaping),
                                    self.generation + 1 < self.num_step)
        if part == "x0":
            return fixed["x0"] + (self._alpha_pair()[0],)
        return fixed["step"] + (self._alpha_pair(),)

    def _fixed_keys(self) -> dict[str, tuple]:
        s = self.settings
        key = (self._xp_name, self.popsize, self.ndim, self.dtype.str)
        box = tuple(None if a is None else (a.shape, self._xp.asnumpy(a).tobytes()
                                            if self._xp is not np else a.tobytes())
                    for a in (self._center, self._scale, self._low, self._high))
        return {"ask": ("ask", *key, box),
                "told": ("told", *key, s.maximize, s.nan_policy, s.entropy_resolution),
                "x0": ("x0", *key, self.latent_dim, self.centred, s.mode, s.density,
                       s.bandwidth, s.backend, s.path, s.approx, s.tol, id(s.client)),
                "step": ("step", *key, self.noise, self.centred)}

    def _commit(self, t: Told, estimate, u_next) -> None:
        """Apply a prepared tell (assignments only: nothing here can fail half-way; the
        history row is appended by ``tell_batch``, one call for all runs). ``estimate`` is
        ``(x0 estimate in the step's frame, the frame's centre or None)`` (:func:`_estimate`)."""
        if t.best is not None:
            self._best_x, self._best_f = t.best
        self._gen_best.append(t.gen_best)
        self._gen_range, self._last_values, self._last_x, self._last_spread = (
            t.gen_range, t.f, t.x, t.spread)
        self.generation += 1
        self.nfev += self.popsize
        self._asked = None
        if u_next is not None:
            x0c, centre = estimate
            self._x0u = x0c if centre is None else x0c + centre
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


#: every distinct fixed key met, numbered (see DiffusionEvolution._key); next() of a
#: count is atomic, so two threads never give two keys one number
_INTERNED: dict[tuple, int] = {}
_NUMBERS = itertools.count()


def _estimate(runs: Sequence[DiffusionEvolution], weights: Sequence[Any]) -> list[tuple]:
    """The x0 estimates of alike runs, one call (batched when R > 1): per run ``(x0, centre)``,
    x0 in u coordinates less ``centre`` -- the frame the step works in: the weighted mean of
    the run's members (:func:`diffevo.weighted_centre`, one per run, by the same arithmetic
    batched or not), or None where the frame is the origin of u."""
    first = runs[0]
    s, at = first.settings, first._alpha_pair()[0]
    opts = dict(density=s.density, bandwidth=s.bandwidth, mode=s.mode, backend=s.x0_backend(),
                path=s.path, approx=s.approx, tol=s.tol)
    xp = first._xp
    centres: list = [None] * len(runs)
    if first.centred:
        centres = [weighted_centre(r._u, w) for r, w in zip(runs, weights)]
        us = [r._u - m for r, m in zip(runs, centres)]
    else:
        us = [r._u for r in runs]
    if len(runs) == 1:
        x0s = [x0_estimate(us[0], weights[0], at, latent=first._latent(us[0]), **opts)]
    else:
        u = stacked(runs, "_u") if centres[0] is None else xp.stack(us)
        lat = None if first._proj is None else xp.stack([r._latent(ur) for r, ur in zip(runs, us)])
        x0u = x0_estimate(u, xp.stack(list(weights)), at, latent=lat, **opts)
        x0s = [x0u[i] for i in range(len(runs))]
    return list(zip(x0s, centres))



def _steps(runs: Sequence[DiffusionEvolution], estimates: Sequence[tuple]) -> list:
    """The next populations (u) of alike runs (one ``_key('step')``): one DDIM step over
    (R, N, D) in the frame of each run's estimate (:func:`_estimate`), the noise of run r
    drawn from run r's generator -- exactly when :func:`diffevo.ddim_step` would draw (its
    sigma > 0), so each generator advances as in a step of its own."""
    first, xp = runs[0], runs[0]._xp
    at, ap = first._alpha_pair()
    sigma = first.noise * math.sqrt(max((1.0 - ap) / (1.0 - at) * (1.0 - at / ap), 0.0))
    z = None
    if sigma > 0 and xp is np:  # drawn in place: the same numbers as a draw of its own
        z = np.empty((len(runs), *first._u.shape), dtype=first._u.dtype)
        for opt, zr in zip(runs, z):
            opt._rng.standard_normal(out=zr, dtype=zr.dtype)
    elif sigma > 0:
        z = xp.stack([opt._rng.standard_normal(opt._u.shape, dtype=opt._u.dtype) for opt in runs])
    x0s = xp.stack([x0 for x0, _ in estimates])
    if estimates[0][1] is None:
        u = ddim_step(stacked(runs, "_u"), x0s, at, ap, noise=first.noise, z=z)
    else:
        centres = xp.stack([m for _, m in estimates])[:, None, :]
        u = ddim_step(stacked(runs, "_u") - centres, x0s, at, ap, noise=first.noise, z=z)
        u += centres
    rows = [u[i] for i in range(len(runs))]
    for k, (opt, row) in enumerate(zip(runs, rows)):  # valid once committed (see stacked)
        opt._u_row = (u, k, row)
    return rows


# help(DiffusionEvolution) lists every option: the signature is built from Settings' fields
DiffusionEvolution.__init__.__signature__ = with_options(DiffusionEvolution.__init__)
