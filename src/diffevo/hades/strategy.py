"""HADES and CHARLES-D: evolution with a diffusion model learned every generation.

One generation (arXiv 2411.13420; the strategy of Hartl, Zhang, Levin & Hartl,
written anew here)::

    evaluate the population
    -> push the new members into the buffer of 4 x popsize points (once full, a
       newcomer replaces its nearest buffered point if fitter: ``buffer_policy``)
    -> selection weights of the buffer (roulette exp(s f_norm), s = 3)
    -> train a fresh MLP denoiser on the standardised buffer, loss weighted by them
    -> next population = the 10 % elites unchanged + samples of the model
       (optionally mutated: diffused to t = mutation_rate and denoised back;
       6.25 % get uniform noise), clipped to the bounds.

:class:`CHARLES` (CHARLES-D) adds conditions (:mod:`diffevo.hades.conditions`):
the model also sees each buffered point's condition values, and samples are drawn
for requested targets through classifier-free guidance.

Same ask/tell surface as :class:`diffevo.DiffusionEvolution`: ``ask() -> (N, D)``,
``tell(values)``, ``stop() -> dict``, ``result``, ``history``; the same constructor
arguments ``(popsize, x0, *, ndim, sigma0, bounds, seed, **options)``: the run
options of DiffusionEvolution (num_step = generations, maximize, nan_policy,
maxfev, ftarget, tolx, tolfun, timeout, dtype, entropy_resolution) plus the model
options of :class:`diffevo.hades.config.HadesConfig`. Populations are NumPy; the
network trains on ``device`` (a CUDA torch when ``device='cuda'``).

Randomness: everything is drawn from the run's NumPy generator (``seed``); each
generation seeds a fresh ``torch.Generator`` from it, and the network is trained
with ``threads`` torch threads, so a seed gives the same run on the same machine.
"""

from __future__ import annotations

import copy
import math
from contextlib import contextmanager
from typing import Any

import numpy as np
import torch

from .._random import as_generator
from .._settings import check_int
from .._space import search_space
from ..result import OptimizeResult
from .conditions import Condition, ConditionState, FitnessCondition
from .config import split_options
from .ledger import Ledger
from .model import MLPDenoiser
from .sampling import make_process
from .selection import Buffer, adaptive_pressure, selection_weights
from .training import fit

__all__ = ["CHARLES", "HADES"]

#: standardised condition targets are clipped to +-this: the network never saw beyond
TARGET_CLIP = 4.0


@contextmanager
def _torch_threads(n: int):
    old = torch.get_num_threads()
    if old != n:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        if old != n:
            torch.set_num_threads(old)


class HADES:
    """HADES: an evolution strategy whose offspring are samples of a learned diffusion model.

    Args:
        popsize: members per generation (>= 4).
        x0: (D,) centre of the first population (default: the middle of ``bounds``).
        ndim: D, needed only when neither x0 nor per-coordinate bounds give it.
        sigma0: scalar or (D,) spread of the first population around x0 (default:
            width / sqrt(12) with bounds, else 1); also the floor of the random noise.
        bounds: as :class:`diffevo.DiffusionEvolution` (the population is clipped).
        seed: int, SeedSequence, Generator or None.
        **options: ``num_step`` (or ``generations``; default 100), ``maximize``,
            ``nan_policy``, ``maxfev``, ``ftarget``, ``tolx``, ``tolfun``, ``timeout``,
            ``dtype``, ``entropy_resolution`` (as DiffusionEvolution) and the fields of
            :class:`~diffevo.hades.config.HadesConfig` (hidden, process, epochs, ...).

    Attributes:
        losses: the per-epoch training losses of the latest generation.
        pressure: the selection pressure used in the latest generation.

    Raises:
        TypeError / ValueError naming the offending argument.
    """

    _conditional = False

    def __init__(self, popsize: int, x0: Any = None, *, ndim: int | None = None,
                 sigma0: Any = None, bounds: Any = None, seed: Any = None, **options: Any):
        self._setup(popsize, x0, ndim, sigma0, bounds, seed, options, ())

    def _setup(self, popsize, x0, ndim, sigma0, bounds, seed, options, conditions) -> None:
        name = type(self).__name__
        self.popsize = n = check_int(popsize, "popsize", 4)
        self.settings, self.config = split_options(name, options, conditional=self._conditional)
        self.conditions: tuple[Condition, ...] = tuple(conditions)
        self.box = box = search_space(x0, ndim, sigma0, bounds)
        self.ndim = d = box.ndim
        self.bounds = box.bounds
        self.num_step = self.settings.num_step
        self.dtype = self.settings.dtype
        self.seed = seed
        self._rng = as_generator(seed, None, name="seed")
        self._ledger = Ledger(n, self.settings)
        self._process = make_process(self.config.process, self.config.diffusion_steps,
                                     self.config.eta)
        k = len(self.conditions)
        self._buffer = Buffer(self.config.buffer_factor * n, d, k, self.config.buffer_policy)
        self._model: MLPDenoiser | None = None
        self._pop = self._initial(n)
        self._new = np.ones(n, dtype=bool)
        self._asked: np.ndarray | None = None
        self.losses: list[float] = []
        self.pressure = self.config.selection_pressure

    # ------------------------------------------------------------------ state
    @property
    def generation(self) -> int:
        return self._ledger.generation

    @property
    def nfev(self) -> int:
        return self._ledger.nfev

    @property
    def restart(self) -> int:
        return self._ledger.restart

    @restart.setter
    def restart(self, value: int) -> None:
        self._ledger.restart = int(value)

    @property
    def history(self):
        """The :class:`diffevo.History` of the run (one row per tell)."""
        return self._ledger.history

    @property
    def best(self) -> tuple[np.ndarray | None, float]:
        """``(x (D,), value)`` of the best point evaluated so far (x None before any tell)."""
        return self._ledger.best_x, self._ledger.best_f

    @property
    def population(self) -> np.ndarray:
        """(popsize, D) the population to evaluate next (clipped to the bounds)."""
        return self._pop.astype(self.dtype, copy=True)

    @property
    def alpha(self) -> float:
        """No noise schedule here: NaN (kept for the interface of DiffusionEvolution)."""
        return math.nan

    # the names DiffusionEvolution's runners read
    _last_x = property(lambda self: self._ledger.last_x)
    _last_values = property(lambda self: self._ledger.last_values)

    # ------------------------------------------------------------------ ask / tell
    def ask(self) -> np.ndarray:
        """The population to evaluate now: (popsize, ndim), inside the bounds (read-only).

        Raises:
            RuntimeError: when the run is finished (``stop()`` says ``maxiter``).
        """
        if self.generation >= self.num_step:
            raise RuntimeError(f"the run is finished ({self.num_step} generations; stop() reports "
                               f"'maxiter'): create a new {type(self).__name__} to run again")
        if self._asked is None:
            x = self.population
            x.flags.writeable = False  # as DiffusionEvolution: writing into it cannot move the run
            self._asked = x
        return self._asked

    def tell(self, fitness: Any) -> None:
        """Report the objective values of the last ``ask()`` and breed the next population.

        Args:
            fitness: (popsize,) objective values (minimised unless ``maximize=True``).

        Raises:
            RuntimeError: without a preceding ``ask()``.
            ValueError / TypeError naming ``fitness`` (shape, type, NaN with
                nan_policy='raise'). A tell that raises changes nothing.
        """
        if self._asked is None:
            raise RuntimeError("tell() needs a population: call ask() first")
        values, fit_ = self._ledger.check(fitness)
        x = self._pop
        nxt = None
        if self.generation + 1 < self.num_step:  # the last population breeds no other
            state = self._rng.bit_generator.state
            try:
                nxt = self._breed(x, fit_)
            except BaseException:
                self._rng.bit_generator.state = state
                raise
        self._ledger.commit(x.astype(self.dtype, copy=True), values, fit_)
        self._asked = None
        if nxt is not None:
            self._buffer, self._pop, self._new, self._model, self.losses, self.pressure = nxt

    # ---------------------------------------------- one generation
    def _initial(self, n: int) -> np.ndarray:
        """n points of the first population's law (uniform in the box, else Gaussian)."""
        box = self.box
        if box.low is not None and not box.x0_given:
            return box.low + (box.high - box.low) * self._rng.random((n, box.ndim))
        return self._clip(box.center + box.scale * self._rng.standard_normal((n, box.ndim)))

    def _clip(self, x: np.ndarray) -> np.ndarray:
        return x if self.box.low is None else np.clip(x, self.box.low, self.box.high)

    def _breed(self, x: np.ndarray, fit_: np.ndarray):
        cfg, n = self.config, self.popsize
        new = self._new & np.isfinite(fit_)
        buf = self._buffer.pushed(x[new], fit_[new], self._values(x[new], fit_[new]))
        buf = self._refreshed(buf)
        finite = fit_[np.isfinite(fit_)]
        pressure = cfg.selection_pressure
        if cfg.adaptive_pressure and finite.size > 1:
            pressure = adaptive_pressure(finite, cfg.elite_ratio)
        n_elite = int(cfg.elite_ratio * n)
        order = np.argsort(-fit_, kind="stable")
        elites = x[order[:n_elite]]
        m = n - n_elite
        if len(buf) < 2:  # nothing (finite) to learn from yet: draw afresh
            return (buf, np.concatenate([elites, self._initial(m)]), self._new_mask(n_elite, m),
                    self._model, [], pressure)
        mean, std = buf.x.mean(axis=0), buf.x.std(axis=0)
        std = np.maximum(std, 1e-12 * self.box.scale)
        weights = selection_weights(buf.fitness, cfg.selection, pressure)
        dev = torch.device(cfg.device)
        gen = torch.Generator(device=dev).manual_seed(int(self._rng.integers(2**63)))
        ref = finite if finite.size else buf.fitness  # an all-NaN generation: the buffer's
        state = ConditionState(buf.x, buf.fitness, buf.values, ref,
                               np.sort(ref)[::-1][:max(n_elite, 1)], self._rng)
        with _torch_threads(cfg.threads):
            # continued training works on a copy: a tell that fails later leaves the old one
            model = None if self._model is None else copy.deepcopy(self._model)
            if model is None or cfg.reinit:
                model = MLPDenoiser(self.ndim, len(self.conditions), cfg.hidden,
                                    cfg.time_embedding, device=dev)
                model.init(gen)
            cond, cmean, cstd = self._standard_values(buf.values)
            losses = fit(model, self._process, self._tensor((buf.x - mean) / std, dev),
                         self._tensor(weights, dev), None if cond is None else self._tensor(cond, dev),
                         cfg.train, gen)
            targets = self._targets(m, state, cmean, cstd)
            tc = None if targets is None else self._tensor(targets, dev)
            z = self._sample(model, torch.randn((m, self.ndim), generator=gen, device=dev), gen, tc)
        xs = z.double().cpu().numpy() * std + mean
        xs = self._perturb(xs, std)
        return (buf, np.concatenate([elites, xs]), self._new_mask(n_elite, m), model, losses,
                pressure)

    @staticmethod
    def _new_mask(n_elite: int, m: int) -> np.ndarray:
        return np.concatenate([np.zeros(n_elite, dtype=bool), np.ones(m, dtype=bool)])

    @staticmethod
    def _tensor(a: np.ndarray, dev: torch.device) -> torch.Tensor:
        return torch.as_tensor(np.ascontiguousarray(a), dtype=torch.float32, device=dev)

    def _sample(self, model, prior, gen, cond):
        cfg, proc = self.config, self._process
        z = proc.sample(model, prior, gen, cond=cond, guidance=cfg.guidance_scale)
        if cfg.mutation_rate > 0:  # the HADES mutation: forward to t = rate, then back
            z = proc.sample(model, proc.diffuse(z, cfg.mutation_rate, gen), gen, cond=cond,
                            guidance=cfg.guidance_scale, t_start=cfg.mutation_rate)
        return z

    def _perturb(self, xs: np.ndarray, std: np.ndarray) -> np.ndarray:
        """Random-noise members, a re-draw of non-finite samples, clipping to the box."""
        m, d = xs.shape
        hit = self._rng.random(m) < self.config.random_ratio
        width = 3.0 * np.maximum(std, self.box.scale)
        xs[hit] += (self._rng.random((int(hit.sum()), d)) - 0.5) * width
        bad = ~np.isfinite(xs).all(axis=1)
        if bad.any():
            xs[bad] = self._initial(int(bad.sum()))
        return self._clip(xs)

    # ---------------------------------------------- conditions (none in HADES)
    def _values(self, x: np.ndarray, fit_: np.ndarray) -> np.ndarray:
        return np.empty((x.shape[0], 0))

    def _refreshed(self, buf: Buffer) -> Buffer:
        return buf

    def _standard_values(self, values: np.ndarray):
        return None, None, None

    def _targets(self, m: int, state: ConditionState, cmean, cstd):
        return None

    # ------------------------------------------------------------------ stop / result
    def stop(self) -> dict[str, Any]:
        """The stop criteria that fire now, ``{name: threshold}`` (empty: go on): maxiter
        (num_step generations told), maxfev, ftarget, tolx, tolfun, timeout, exactly as
        :meth:`diffevo.DiffusionEvolution.stop`."""
        return self._ledger.stop()

    @property
    def result(self) -> OptimizeResult:
        """Where the run stands: a :class:`diffevo.OptimizeResult` (x, fun, success,
        status, message, stop, nit, nfev, nrestarts, population, population_fun,
        x0_estimate (None: no closed-form estimate here), history, seed)."""
        return self._ledger.result(self.population, self.seed, x0_estimate=None)

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(popsize={self.popsize}, ndim={self.ndim}, "
                f"num_step={self.num_step}, generation={self.generation}, "
                f"best={self._ledger.best_f:.6g})")


class CHARLES(HADES):
    """CHARLES-D: HADES with conditions, sampled through classifier-free guidance.

    Args:
        popsize, x0, ndim, sigma0, bounds, seed: as :class:`HADES`.
        conditions: a non-empty sequence of :class:`~diffevo.hades.Condition`
            (:class:`FitnessCondition`, :class:`NoveltyCondition`, :class:`TraitCondition`);
            default ``[FitnessCondition()]`` (as the authors' code).
        guidance_scale: s of ``eps_u + s (eps_c - eps_u)`` (default 1: the conditional
            model; 0: the unconditional one).
        **options: as :class:`HADES` (plus ``condition_drop``, default 0.1).

    Raises:
        TypeError / ValueError naming the offending argument.
    """

    _conditional = True

    def __init__(self, popsize: int, x0: Any = None, *, conditions: Any = None,
                 guidance_scale: float = 1.0, ndim: int | None = None, sigma0: Any = None,
                 bounds: Any = None, seed: Any = None, **options: Any):
        if conditions is None or isinstance(conditions, Condition):
            conditions = (FitnessCondition(),) if conditions is None else (conditions,)
        try:
            conditions = tuple(conditions)
        except TypeError:
            raise TypeError("conditions must be a sequence of Condition objects; "
                            f"got {type(conditions).__name__}") from None
        if not conditions:
            raise ValueError("conditions must hold at least one Condition (FitnessCondition(), "
                             "NoveltyCondition(), TraitCondition(fn, target))")
        for c in conditions:
            if not isinstance(c, Condition):
                raise TypeError(f"conditions must hold Condition objects; got {type(c).__name__}")
        options["guidance_scale"] = guidance_scale
        self._setup(popsize, x0, ndim, sigma0, bounds, seed, options, conditions)

    def _state(self, buf: Buffer, k: int) -> ConditionState:
        empty = np.empty(0)
        return ConditionState(buf.x, buf.fitness, buf.values[:, k], empty, empty, self._rng)

    def _values(self, x, fit_):
        buf = self._buffer
        cols = [c.values(x, fit_, self._state(buf, k)) for k, c in enumerate(self.conditions)]
        return np.stack(cols, axis=1) if x.shape[0] else np.empty((0, len(cols)))

    def _refreshed(self, buf):
        values = buf.values
        for k, c in enumerate(self.conditions):
            v = c.refresh(self._state(buf, k)) if len(buf) else None
            if v is not None:
                values = values.copy()
                values[:, k] = v
        return Buffer.of(buf, values=values)

    def _standard_values(self, values):
        cmean, cstd = values.mean(axis=0), values.std(axis=0)
        cstd = np.where(cstd > 0, cstd, 1.0)
        return (values - cmean) / cstd, cmean, cstd

    def _targets(self, m, state, cmean, cstd):
        cols = []
        for k, c in enumerate(self.conditions):
            st = ConditionState(state.buffer_x, state.buffer_fitness, state.buffer_values[:, k],
                                state.fitness, state.elite_fitness, self._rng)
            cols.append(np.asarray(c.targets(m, st), dtype=np.float64).reshape(m))
        t = (np.stack(cols, axis=1) - cmean) / cstd
        return np.clip(np.nan_to_num(t, nan=0.0), -TARGET_CLIP, TARGET_CLIP)
