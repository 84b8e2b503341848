"""Ask/tell Diffusion Evolution: the optimiser users drive themselves.

:class:`DiffusionEvolution` keeps one population and walks it through one noise
schedule, one generation per ``tell``::

    es = diffevo.DiffusionEvolution(512, bounds=[(-5, 5)] * 2, seed=0)
    while not es.stop():
        X = es.ask()                      # (popsize, ndim)
        es.tell(objective(X))             # (popsize,) raw objective values
    es.result.x, es.result.fun

How it works (SPEC.md sections 2-4), and the choices made here:

* **Coordinates.** The diffusion runs in normalised coordinates ``u``; the
  objective sees ``x = center + scale * u``. ``center`` is x0 (default: the box's
  mid-point, or 0 without bounds); ``scale`` is sigma0 (default: the box's standard
  deviation width / sqrt(12) per coordinate, or 1 without bounds). With bounds and
  no x0 the first population is uniform in the box -- unit variance in u, like the
  Gaussian the schedule assumes, so the kernel widths of the x0 estimate mean the
  same thing on every problem (half the width instead lost two of Himmelblau's
  four minima in 6 of 6 seeds); otherwise it is ``N(x0, scale^2)``.
* **Bounds** are handled by evaluating on *clipped* points: the population itself
  moves freely (the diffusion's dynamics are not distorted), but ``ask`` returns
  ``clip(x, low, high)``, so the objective is only ever called inside the box and
  every reported point (``result.x``, ``result.population``) is feasible.
* **Schedule.** ``num_step`` alphas (default cosine); generation k evaluates the
  population at alpha index ``num_step - 1 - k`` and steps to the next one. The
  last generation evaluates the final population and does not step, so a full run
  is exactly ``num_step`` generations of ``popsize`` evaluations. With
  ``denoise_final=True`` (default) the cleanest alpha is replaced by 1: the last
  step lands on the x0 estimate itself (the clean output of a DDIM sampler) instead
  of keeping a residual noise of ``sqrt(1 - alpha[0])`` -- about 3% of the initial
  spread for the cosine schedule, which otherwise caps the precision.
* **Fitness shaping** (default :class:`diffevo.shaping.AdaptiveEnergy`, temperature
  0.1 of the median's distance to the best) turns any real objective into
  non-negative weights; see :mod:`diffevo.shaping`.
* **Step noise** (``noise='auto'``): in 1 or 2 dimensions 0.1 of the DDPM noise
  (``noise=1`` is DDPM-like, 0 deterministic DDIM), the setting of the paper's
  benchmark runs: with ``noise=1`` members hop between basins and multimodal runs
  lose optima (Himmelblau, 512 members: one of the four minima lost in 6 of 6
  seeds), with 0.1 they keep all four. Above 2 dimensions (where distances are
  measured in a latent projection, see below) ``noise=1``: there it converges
  10-50x closer on sphere, Rastrigin and Styblinski-Tang in 3 to 20 dimensions.
* **Latent distances.** In more than 2 dimensions the Gaussian kernel of the x0
  estimate is almost zero between distinct members (each member only sees itself
  and nothing moves), so ``latent_dim='auto'`` measures distances in a random
  2-D projection of u when D > 2 (the paper's latent Diffusion Evolution); the
  average is still over the full parameters. Pass ``latent_dim=None`` to turn it off.

Populations are NumPy arrays, or CuPy arrays when ``x0`` is one (or
``backend='cuda'``): every operation goes through the array's own module and
the x0 estimate through :func:`diffevo.backends.resolve`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from ._array import is_gpu_array, namespace, to_numpy
from ._random import as_generator
from ._validation import DENSITIES, MODES, check_choice, check_noise, check_positive
from .backends import BACKENDS
from .core import ddim_step, x0_estimate
from .history import History, population_spread, position_entropy
from .schedulers import SCHEDULES
from .shaping import resolve_shaping, weights_from

__all__ = ["DiffusionEvolution", "OptimizeResult", "parse_bounds"]

NAN_POLICIES = ("raise", "worst")

#: noise='auto': this step noise for D <= AUTO_LATENT_DIM (1.0, DDPM-like, above)
AUTO_NOISE_LOW_D = 0.1

#: latent_dim='auto' measures distances in this many random projections when D exceeds it
AUTO_LATENT_DIM = 2

#: generations looked back over by the ``tolfun`` criterion
TOLFUN_WINDOW = 10


class OptimizeResult(dict):
    """scipy-style result: a dict whose keys are also attributes.

    Keys set by diffevo:

    * ``x`` (D,): best point ever evaluated; ``fun``: its objective value.
    * ``success`` (bool), ``status`` (0 success, 1 budget exhausted, 2 ftarget not
      reached, 3 stopped by the callback), ``message`` (str), ``stop`` (dict of the
      criteria that fired -> their thresholds).
    * ``nit``: generations run, ``nfev``: objective evaluations, ``nrestarts``.
    * ``population`` (popsize, D): the last population evaluated (clipped to the
      bounds); ``population_fun`` (popsize,): its values.
    * ``x0_estimate`` (popsize, D): the latest x0 (denoised) estimate of every member.
    * ``history``: a :class:`diffevo.History` (per-generation arrays).
    * ``seed``: the seed the run started from.
    """

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None

    def __setattr__(self, name: str, value: Any) -> None:
        self[name] = value

    def __dir__(self):
        return list(self.keys())

    def __repr__(self) -> str:
        if not self:
            return "OptimizeResult()"
        width = max(map(len, self.keys())) + 1
        lines = []
        for k, v in self.items():
            if isinstance(v, np.ndarray) and v.size > 8:
                text = f"array of shape {v.shape}"
            else:
                text = repr(v).replace("\n", "\n" + " " * (width + 2))
            lines.append(f"{k.rjust(width)}: {text}")
        return "\n".join(lines)


def _check_int(value: Any, name: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an integer >= {minimum}; got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}; got {value}")
    return int(value)


def _check_optional_positive(value: Any, name: str) -> float | None:
    return None if value is None else check_positive(value, name)


def parse_bounds(bounds: Any, ndim: int | None) -> tuple[np.ndarray, np.ndarray] | None:
    """Normalise ``bounds`` to ``(low (D,), high (D,))`` float64 arrays.

    Accepted forms: ``(low, high)`` scalars applied to every coordinate; a
    sequence of D ``(low, high)`` pairs (scipy's convention; shape (D, 2));
    an object with ``lb`` and ``ub`` attributes (``scipy.optimize.Bounds``).

    Raises:
        ValueError: naming ``bounds`` for a wrong shape, non-finite values, a
            dimension that disagrees with ``ndim``, or any ``low >= high``.
    """
    if bounds is None:
        return None
    if hasattr(bounds, "lb") and hasattr(bounds, "ub"):
        low = np.asarray(to_numpy(bounds.lb), dtype=np.float64)
        high = np.asarray(to_numpy(bounds.ub), dtype=np.float64)
    else:
        try:
            arr = np.asarray(to_numpy(bounds) if hasattr(bounds, "shape") else bounds,
                             dtype=np.float64)
        except (TypeError, ValueError):
            raise TypeError(
                f"bounds must be (low, high) or a sequence of (low, high) pairs; got {bounds!r}"
            ) from None
        if arr.shape == (2,):
            low, high = arr[:1], arr[1:]
        elif arr.ndim == 2 and arr.shape[1] == 2 and arr.shape[0] >= 1:
            low, high = arr[:, 0], arr[:, 1]
        else:
            raise ValueError(
                "bounds must be (low, high) or a sequence of D (low, high) pairs "
                f"(shape (D, 2)); got shape {arr.shape}")
    low, high = np.atleast_1d(low), np.atleast_1d(high)
    if low.shape != high.shape or low.ndim != 1:
        raise ValueError(f"bounds: low and high must have the same length; got {low.shape}, {high.shape}")
    if ndim is not None:
        if low.shape[0] == 1:
            low, high = np.repeat(low, ndim), np.repeat(high, ndim)
        elif low.shape[0] != ndim:
            raise ValueError(f"bounds has {low.shape[0]} (low, high) pairs but the problem has "
                             f"ndim={ndim} coordinates")
    if not (np.isfinite(low).all() and np.isfinite(high).all()):
        raise ValueError("bounds must be finite (the first population is drawn uniformly in them)")
    bad = np.flatnonzero(~(low < high))
    if bad.size:
        i = int(bad[0])
        raise ValueError(f"bounds must have low < high in every coordinate; coordinate {i} has "
                         f"low={low[i]!r} >= high={high[i]!r}")
    return low, high


def _bounds_per_coordinate(bounds: Any) -> bool:
    """Whether ``bounds`` lists one (low, high) pair per coordinate (so it gives D)."""
    if hasattr(bounds, "lb") and hasattr(bounds, "ub"):
        return np.ndim(to_numpy(bounds.lb)) == 1
    try:
        return len(np.shape(to_numpy(bounds) if hasattr(bounds, "shape") else bounds)) == 2
    except ValueError:
        return False


def _resolve_schedule(schedule: Any, num_step: int) -> tuple[np.ndarray, str]:
    if isinstance(schedule, str):
        if schedule not in SCHEDULES:
            raise ValueError(f"schedule must be one of {', '.join(map(repr, SCHEDULES))} or a "
                             f"scheduler object; got {schedule!r}")
        return np.asarray(SCHEDULES[schedule](num_step).alpha, dtype=np.float64), schedule
    alpha = getattr(schedule, "alpha", None)
    if alpha is None:
        raise TypeError("schedule must be a name ('cosine', 'linear', 'ddpm') or a scheduler "
                        f"object with an alpha array; got {type(schedule).__name__}")
    alpha = np.asarray(to_numpy(alpha), dtype=np.float64).reshape(-1)
    if alpha.shape[0] < 2 or not (np.isfinite(alpha).all() and (alpha > 0).all() and (alpha < 1).all()):
        raise ValueError("schedule.alpha must hold at least 2 values in (0, 1)")
    return alpha, type(schedule).__name__


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
        num_step: schedule length = generations of a full run (>= 2; default 100).
        schedule: ``'cosine'`` (default), ``'linear'`` (DDIM), ``'ddpm'``, or a
            scheduler object with an ``alpha`` array (then num_step is its length).
        noise: step noise in [0, 1] (1 = DDPM-like, 0 = deterministic DDIM) or
            ``'auto'`` (default): 0.1 when D <= 2, 1.0 above.
        fitness_shaping: ``'energy'`` (default, :class:`~diffevo.shaping.AdaptiveEnergy`),
            ``'rank'``, ``'identity'``, a :class:`~diffevo.shaping.Shaping` (gets costs:
            lower is better) or a :class:`diffevo.FitnessMapping` / callable (gets the
            raw values, returns weights where larger is better).
        latent_dim: measure distances in a random ``latent_dim``-dimensional
            projection of u (the paper's latent Diffusion Evolution); ``'auto'``
            (default) = 2 when D > 2, else off; None = off.
        denoise_final: make the last step land on the x0 estimate (alpha = 1).
        density, bandwidth, mode, backend: see :func:`diffevo.x0_estimate`.
        maximize: maximise the objective instead of minimising it.
        nan_policy: ``'raise'`` (default) rejects NaN/inf values in ``tell``;
            ``'worst'`` gives those members zero weight (worse than any finite value).
        maxfev, ftarget, tolx, tolfun, timeout: stop criteria, see :meth:`stop`.
        dtype: float64 (default) or float32 population.
        entropy_resolution: cell size of the history's position entropy.
        seed: int, ``numpy.random.SeedSequence``, Generator or None.

    Raises:
        TypeError / ValueError naming the offending argument.
    """

    def __init__(
        self,
        popsize: int,
        x0: Any = None,
        *,
        ndim: int | None = None,
        sigma0: Any = None,
        bounds: Any = None,
        num_step: int = 100,
        schedule: Any = "cosine",
        noise: float | str = "auto",
        fitness_shaping: Any = "energy",
        latent_dim: int | str | None = "auto",
        denoise_final: bool = True,
        density: str = "uniform",
        bandwidth: float = 0.1,
        maximize: bool = False,
        nan_policy: str = "raise",
        maxfev: int | None = None,
        ftarget: float | None = None,
        tolx: float | None = None,
        tolfun: float | None = None,
        timeout: float | None = None,
        backend: str = "auto",
        mode: str = "reference",
        dtype: Any = np.float64,
        entropy_resolution: float = 0.1,
        seed: Any = None,
    ):
        self.popsize = _check_int(popsize, "popsize", 2)
        self.num_step_requested = _check_int(num_step, "num_step", 2)
        if isinstance(noise, str):
            check_choice(noise, "noise", ("auto",))
        else:
            noise = check_noise(noise)
        self.density = check_choice(density, "density", DENSITIES)
        self.bandwidth = check_positive(bandwidth, "bandwidth")
        self.mode = check_choice(mode, "mode", MODES)
        self.backend = check_choice(backend, "backend", BACKENDS)
        self.maximize = bool(maximize)
        self.nan_policy = check_choice(nan_policy, "nan_policy", NAN_POLICIES)
        self.maxfev = None if maxfev is None else _check_int(maxfev, "maxfev", 1)
        if ftarget is not None:
            try:
                ftarget = float(ftarget)
            except (TypeError, ValueError):
                raise TypeError(f"ftarget must be a real number; got {ftarget!r}") from None
            if math.isnan(ftarget):
                raise ValueError("ftarget must not be NaN")
        self.ftarget = ftarget
        self.tolx = _check_optional_positive(tolx, "tolx")
        self.tolfun = _check_optional_positive(tolfun, "tolfun")
        self.timeout = _check_optional_positive(timeout, "timeout")
        self.entropy_resolution = check_positive(entropy_resolution, "entropy_resolution")
        self.shaping, self._shaping_takes_cost = resolve_shaping(fitness_shaping)
        try:
            dt = np.dtype(dtype)
        except TypeError:
            raise TypeError(f"dtype must be float32 or float64; got {dtype!r}") from None
        if dt not in (np.float32, np.float64):
            raise ValueError(f"dtype must be float32 or float64; got {dt}")

        # the array module: CuPy when x0 lives on the GPU or the cuda backend is asked for
        if x0 is not None and is_gpu_array(x0):
            xp = namespace(x0)
        elif backend == "cuda":
            import cupy as xp  # noqa: PLC0415 - only when asked for the GPU
        else:
            xp = np
        self._xp = xp
        self.dtype = dt

        # dimension: from x0, ndim or per-coordinate bounds (they must agree)
        x0_host = None
        if x0 is not None:
            x0_host = np.asarray(to_numpy(x0), dtype=np.float64)
            if x0_host.ndim != 1 or x0_host.shape[0] < 1:
                raise ValueError(f"x0 must be a 1-D array of shape (D,); got shape {x0_host.shape}")
            if not np.isfinite(x0_host).all():
                raise ValueError("x0 contains NaN or inf")
        if ndim is not None:
            ndim = _check_int(ndim, "ndim", 1)
            if x0_host is not None and x0_host.shape[0] != ndim:
                raise ValueError(f"ndim={ndim} disagrees with x0 of length {x0_host.shape[0]}")
        elif x0_host is not None:
            ndim = x0_host.shape[0]
        if ndim is None and bounds is not None and _bounds_per_coordinate(bounds):
            ndim = parse_bounds(bounds, None)[0].shape[0]
        if ndim is None:
            raise ValueError("give x0, ndim, or per-coordinate bounds: the number of "
                             "parameters D is unknown")
        self.ndim = ndim
        box = parse_bounds(bounds, ndim)
        self.bounds = box

        # the affine map x = center + scale * u
        if sigma0 is not None:
            s0 = np.asarray(to_numpy(sigma0), dtype=np.float64)
            if s0.ndim > 1 or (s0.ndim == 1 and s0.shape[0] not in (1, ndim)):
                raise ValueError(f"sigma0 must be a scalar or shape ({ndim},); got shape {s0.shape}")
            if not (np.isfinite(s0).all() and (s0 > 0).all()):
                raise ValueError(f"sigma0 must be positive and finite; got {sigma0!r}")
            scale = np.broadcast_to(s0, (ndim,)).copy()
        elif box is not None:
            scale = (box[1] - box[0]) / math.sqrt(12.0)
        else:
            scale = np.ones(ndim)
        if x0_host is not None:
            center = x0_host
        elif box is not None:
            center = (box[0] + box[1]) / 2
        else:
            center = np.zeros(ndim)
        self._center_h, self._scale_h = center, scale
        self._center = xp.asarray(center, dtype=dt)
        self._scale = xp.asarray(scale, dtype=dt)
        self._low = None if box is None else xp.asarray(box[0], dtype=dt)
        self._high = None if box is None else xp.asarray(box[1], dtype=dt)

        self.alphas, self.schedule = _resolve_schedule(schedule, self.num_step_requested)
        self.num_step = int(self.alphas.shape[0])
        self.denoise_final = bool(denoise_final)
        if self.denoise_final:
            self.alphas = self.alphas.copy()
            self.alphas[0] = 1.0  # the last step lands on the x0 estimate itself

        self.seed = seed
        if xp is not np and isinstance(seed, np.random.SeedSequence):
            seed = int(seed.generate_state(1, np.uint64)[0])
        self._rng = as_generator(seed, xp.empty(0) if xp is not np else None)

        # the first population, in u coordinates
        n, d = self.popsize, ndim
        if box is not None and x0_host is None:
            half = xp.asarray((box[1] - box[0]) / 2 / scale, dtype=dt)
            r = self._rng.random((n, d), dtype=dt)
            self._u = (2 * r - 1) * half
        else:
            self._u = self._rng.standard_normal((n, d), dtype=dt)

        self.latent_dim = None
        self._proj = None
        if isinstance(latent_dim, str):
            check_choice(latent_dim, "latent_dim", ("auto",))
            latent_dim = AUTO_LATENT_DIM if d > AUTO_LATENT_DIM else None
        if isinstance(noise, str):  # 'auto'
            noise = AUTO_NOISE_LOW_D if d <= AUTO_LATENT_DIM else 1.0
        self.noise = noise
        if latent_dim is not None:
            self.latent_dim = _check_int(latent_dim, "latent_dim", 1)
            w = self._rng.standard_normal((self.latent_dim, d), dtype=dt)
            self._proj = w / xp.linalg.norm(w, axis=1, keepdims=True)

        self.generation = 0
        self.nfev = 0
        self.restart = 0
        self.history = History(self.maximize)
        self._t0 = time.perf_counter()
        self._asked = None
        self._x0u = None
        self._last_values = None
        self._best_x = None
        self._best_f = math.inf if not self.maximize else -math.inf
        self._gen_best: list[float] = []
        self._gen_range = math.inf
        self._callback_stop = False

    # ------------------------------------------------------------------ state
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
        """The population to evaluate now: (popsize, ndim), clipped to the bounds.

        Raises:
            RuntimeError: when the schedule is finished (``stop()`` says ``maxiter``).
        """
        if self.generation >= self.num_step:
            raise RuntimeError("the schedule is finished (stop() reports 'maxiter'); "
                               "create a new DiffusionEvolution to run again")
        if self._asked is None:
            self._asked = self._to_x(self._u)
        return self._asked

    def tell(self, fitness: Any) -> None:
        """Report the objective values of the last ``ask()`` and advance one generation.

        Args:
            fitness: (popsize,) raw objective values (NumPy, CuPy or a sequence).

        Raises:
            RuntimeError: without a preceding ``ask()``.
            ValueError: naming ``fitness`` for a wrong length or (with
                ``nan_policy='raise'``) NaN/inf values; naming ``fitness_shaping``
                when the shaping returns negative weights.
        """
        weights = self._record(fitness)
        if weights is not None:
            at, ap = self._alpha_pair()
            x0u = x0_estimate(self._u, weights, at, latent=self._latent(), density=self.density,
                              bandwidth=self.bandwidth, mode=self.mode, backend=self.backend)
            self._advance(x0u)

    # ---------------------------------------------- the pieces tell is made of
    def _alpha_pair(self) -> tuple[float, float]:
        t = self.num_step - 1 - self.generation  # tells not yet counted: generation = done so far
        return float(self.alphas[t + 1]), float(self.alphas[t])

    def _latent(self):
        return None if self._proj is None else self._u @ self._proj.T

    def _record(self, fitness: Any):
        """Validate, update best/history/counters; the weights when a step follows, else None."""
        if self._asked is None:
            raise RuntimeError("tell() needs a population: call ask() first")
        xp = self._xp
        n = self.popsize
        f = np.asarray(to_numpy(fitness)) if xp is np else xp.asarray(fitness)
        if f.dtype.kind not in "biuf":
            raise TypeError(f"fitness must be real numbers; got dtype {f.dtype}")
        f = f.astype(xp.float64, copy=False)
        if f.ndim == 2 and f.shape[1] == 1:
            f = f[:, 0]
        if f.shape != (n,):
            raise ValueError(f"fitness must have shape ({n},), one value per member of ask(); "
                             f"got shape {tuple(f.shape)}")
        finite = xp.isfinite(f)
        all_finite = bool(finite.all())
        if not all_finite and self.nan_policy == "raise":
            bad = to_numpy(xp.flatnonzero(~finite))[:5].tolist()
            raise ValueError(f"fitness contains NaN or inf (members {bad}...); pass "
                             "nan_policy='worst' to treat such members as the worst")
        x = self._asked
        cost = -f if self.maximize else f
        any_finite = bool(finite.any())

        # best ever, and this generation's statistics (over finite values)
        if any_finite:
            masked = xp.where(finite, cost, xp.inf)
            i = int(masked.argmin())
            gen_best_cost = float(masked[i])
            sign = -1.0 if self.maximize else 1.0
            if gen_best_cost < (sign * self._best_f) or self._best_x is None:
                self._best_f = sign * gen_best_cost
                self._best_x = x[i].copy()
            fv = to_numpy(f[finite]) if not all_finite else to_numpy(f)
            gen_best = sign * gen_best_cost
            stats = dict(mean=float(fv.mean()), median=float(np.median(fv)),
                         worst=float(fv.min() if self.maximize else fv.max()))
            self._gen_range = float(fv.max() - fv.min())
        else:
            gen_best = math.nan
            stats = dict(mean=math.nan, median=math.nan, worst=math.nan)
            self._gen_range = math.inf
        self._gen_best.append(gen_best)
        self._last_values = f
        self.generation += 1
        self.nfev += n
        self._last_spread = population_spread(x)
        self.history.append(
            generation=self.generation, restart=self.restart, nfev=self.nfev, best=gen_best,
            best_ever=self._best_f, spread=self._last_spread,
            entropy=position_entropy(x, self.entropy_resolution),
            time=time.perf_counter() - self._t0, **stats)
        self._last_x = x
        self._asked = None
        if self.generation >= self.num_step:
            return None  # the final, cleanest population: evaluated, no step follows

        # weights
        if self._shaping_takes_cost:
            if all_finite:
                w = weights_from(self.shaping, cost, n, xp)
            else:
                w = xp.zeros(n, dtype=xp.float64)
                if any_finite:
                    idx = xp.flatnonzero(finite)
                    w[idx] = weights_from(self.shaping, cost[idx], int(idx.shape[0]), xp)
        else:
            if all_finite:
                raw = f
            else:
                fill = float(f[finite].min() if self.maximize else f[finite].max()) if any_finite else 0.0
                raw = xp.where(finite, f, fill)
            w = weights_from(self.shaping, raw, n, xp)
            if not all_finite:
                w = xp.where(finite, w, 0.0)
        return w.astype(self.dtype, copy=False)

    def _advance(self, x0u) -> None:
        at, ap = self._alpha_pair()
        self._x0u = x0u
        self._u = ddim_step(self._u, x0u, at, ap, noise=self.noise, rng=self._rng)

    # ------------------------------------------------------------------ stopping
    def stop(self) -> dict[str, Any]:
        """The stop criteria that fire now, as ``{name: threshold}`` (empty: go on).

        * ``maxiter``: the schedule's ``num_step`` generations are done.
        * ``maxfev``: at least ``maxfev`` evaluations (checked after each generation,
          so a run may overshoot by up to popsize - 1).
        * ``ftarget``: the best value reached ``ftarget`` (<= when minimising, >= when
          maximising).
        * ``tolx``: the last population's spread (largest per-coordinate standard
          deviation, objective coordinates) fell below ``tolx``.
        * ``tolfun``: the range of the last generation's values and of the best
          values of the last 10 generations fell below ``tolfun``.
        * ``timeout``: ``timeout`` seconds have passed since construction.
        * ``callback``: a :func:`diffevo.minimize` callback returned True.
        """
        out: dict[str, Any] = {}
        if self.generation >= self.num_step:
            out["maxiter"] = self.num_step
        if self.maxfev is not None and self.nfev >= self.maxfev:
            out["maxfev"] = self.maxfev
        if self.ftarget is not None and self._best_x is not None:
            hit = self._best_f >= self.ftarget if self.maximize else self._best_f <= self.ftarget
            if hit:
                out["ftarget"] = self.ftarget
        if self.generation > 0:
            if self.tolx is not None and self._last_spread < self.tolx:
                out["tolx"] = self.tolx
            if self.tolfun is not None:
                recent = [v for v in self._gen_best[-TOLFUN_WINDOW:] if math.isfinite(v)]
                if recent and math.isfinite(self._gen_range):
                    rng = max(self._gen_range, max(recent) - min(recent))
                    if rng < self.tolfun:
                        out["tolfun"] = self.tolfun
        if self.timeout is not None and time.perf_counter() - self._t0 >= self.timeout:
            out["timeout"] = self.timeout
        if self._callback_stop:
            out["callback"] = True
        return out

    # ------------------------------------------------------------------ result
    @property
    def result(self) -> OptimizeResult:
        """Where the run stands: an :class:`OptimizeResult` (see its keys)."""
        stop = self.stop()
        success, status, message = _verdict(stop, self.ftarget)
        x0e = None if self._x0u is None else self._to_x(self._x0u)
        last = getattr(self, "_last_x", None)
        return OptimizeResult(
            x=self._best_x, fun=self._best_f if self._best_x is not None else math.nan,
            success=success, status=status, message=message, stop=stop,
            nit=self.generation, nfev=self.nfev, nrestarts=self.restart,
            population=self.population if last is None else last,
            population_fun=self._last_values, x0_estimate=x0e,
            history=self.history, seed=self.seed)

    def __repr__(self) -> str:
        return (f"DiffusionEvolution(popsize={self.popsize}, ndim={self.ndim}, "
                f"num_step={self.num_step}, schedule={self.schedule!r}, generation={self.generation}, "
                f"best={self._best_f:.6g})")


def _verdict(stop: dict, ftarget: float | None) -> tuple[bool, int, str]:
    """(success, status, message) from the criteria that fired."""
    if not stop:
        return False, -1, "running"
    names = ", ".join(sorted(stop))
    if "ftarget" in stop:
        return True, 0, f"ftarget {ftarget!r} reached"
    if "callback" in stop:
        return False, 3, "stopped by the callback"
    if ftarget is not None:
        return False, 2, f"stopped ({names}) before reaching ftarget {ftarget!r}"
    if "maxfev" in stop or "timeout" in stop:
        if "maxiter" in stop:
            return True, 0, "schedule completed"
        return False, 1, f"budget exhausted ({names}) before the schedule completed"
    if "maxiter" in stop:
        return True, 0, "schedule completed"
    return True, 0, f"converged ({names})"


def tell_many(optimizers: Sequence[DiffusionEvolution], values: Sequence[Any]) -> None:
    """``opt.tell(v)`` for every pair, with the x0 estimates of alike runs in one call.

    Runs that share population size, dimension, dtype, array module, alpha pair
    and estimator settings are stacked to (R, N, D) and estimated by one batched
    :func:`diffevo.x0_estimate` call (each run sees only its own members); each run
    then steps with its own random generator, so the outcome equals R separate
    ``tell`` calls.
    """
    if len(optimizers) != len(values):
        raise ValueError(f"values must have one entry per optimizer ({len(optimizers)}); "
                         f"got {len(values)}")
    groups: dict[tuple, list[tuple[DiffusionEvolution, Any]]] = {}
    for opt, v in zip(optimizers, values):
        w = opt._record(v)
        if w is None:
            continue
        at, ap = opt._alpha_pair()
        key = (id(opt._xp), opt.popsize, opt.ndim, opt.latent_dim, opt.dtype.str, at, opt.mode,
               opt.density, opt.bandwidth, opt.backend)
        groups.setdefault(key, []).append((opt, w))
    for key, members in groups.items():
        first = members[0][0]
        at, _ = first._alpha_pair()
        if len(members) == 1:
            opt, w = members[0]
            x0u = x0_estimate(opt._u, w, at, latent=opt._latent(), density=opt.density,
                              bandwidth=opt.bandwidth, mode=opt.mode, backend=opt.backend)
            opt._advance(x0u)
            continue
        xp = first._xp
        u = xp.stack([m[0]._u for m in members])
        w = xp.stack([m[1] for m in members])
        lat = None if first._proj is None else xp.stack([m[0]._latent() for m in members])
        x0u = x0_estimate(u, w, at, latent=lat, density=first.density, bandwidth=first.bandwidth,
                          mode=first.mode, backend=first.backend)
        for r, (opt, _) in enumerate(members):
            opt._advance(x0u[r])
