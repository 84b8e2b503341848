"""The settings of a search: one frozen, validated dataclass for every entry point.

:class:`Settings` is what :class:`diffevo.DiffusionEvolution` takes as keyword
arguments and what :func:`diffevo.minimize` passes on from its ``**options``: the
option names, defaults and checks live here once. Every check names its argument;
a bool is not a number and a numeric string is not a number either (``"0.5"`` or
``timeout=True`` are refused, not converted).

The choices made here, and why:

* **Schedule.** ``num_step`` alphas (default cosine); generation k evaluates the
  population at alpha index ``num_step - 1 - k`` and steps to the next one. The
  last generation evaluates the final population and does not step, so a full run
  is exactly ``num_step`` generations of ``popsize`` evaluations. With
  ``denoise_final=True`` (default) the cleanest alpha is replaced by 1: the last
  step lands on the x0 estimate itself (the clean output of a DDIM sampler) instead
  of keeping a residual noise of ``sqrt(1 - alpha[0])`` -- about 3% of the initial
  spread for the cosine schedule, which otherwise caps the precision.
* **Step noise** (``noise='auto'``): in 1 or 2 dimensions 0.1 of the DDPM noise
  (``noise=1`` is DDPM-like, 0 deterministic DDIM), the setting of the paper's
  benchmark runs: with ``noise=1`` members hop between basins and multimodal runs
  lose optima (Himmelblau, 512 members: one of the four minima lost in 6 of 6
  seeds), with 0.1 they keep all four. Above 2 dimensions ``noise=1``: there it
  converges 10-50x closer on sphere, Rastrigin and Styblinski-Tang in 3 to 20
  dimensions, and with 0.1 Ackley's and Rastrigin's minima in 3-D are missed (median
  best 2.1 and 0.99 over 10 seeds, bench/quality/latent_noise.py).
* **Latent distances.** In more than 3 dimensions the Gaussian kernel of the x0
  estimate is almost zero between distinct members of a population of ~1000 (each
  member only sees itself and nothing moves), so ``latent_dim='auto'`` measures
  distances in a random 2-D projection of u when D > 3 (the paper's latent Diffusion
  Evolution); the average is still over the full parameters. At D = 3 the full space
  still works and the projection only merges basins: Ackley's and Rastrigin's 8 corner
  maxima in [-4, 4]^3 were found 4.9 and 2.9 at a time in the full space against 1.5 and
  1.2 through the 2-D latent, with the minima as precise (10 seeds each); at D = 4 the
  full space missed both minima. Pass ``latent_dim=None`` to turn it off.
* **The frame's centre** (``centre='auto'``): above 3 dimensions the x0 estimate and the
  DDIM step work in a frame centred on the generation's fitness-weighted mean
  (:func:`diffevo.weighted_centre`), not on the normalised space's origin (the box's
  centre). DDIM shrinks toward the origin (``sqrt(alpha) x0``), and in many dimensions
  the x0 estimate, an average of members chosen for the sum over all coordinates, pulls
  every coordinate toward the population's mean: the population converged between the
  optimum and the box's centre. Rastrigin in 10-D with its optimum moved to x_i = 1.23
  ([-5, 5]^10, maxfev 60,000, 10 seeds): median 3.98 with the origin, 1.3e-13 centred
  (Ackley 30-D, same shift, 5 seeds: 1.5 -> 3.4e-8; bench/quality/run.py --shift);
  problems whose optimum sits at the box's centre lose that free pull (10-D unchanged;
  see the README's quality table). In 1-3
  dimensions the origin stays: niching there keeps basins all over the box, and the
  weighted mean, drawn to the best basin, cost CEC 2013's 2-D Vincent its narrow maxima
  (all 36 in 6 of 10 seeds against 20 of 20).
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ._device import to_numpy
from ._validation import DENSITIES, MODES, as_real, check_choice, check_noise, check_positive
from .backends import BACKENDS, check_path
from .mappings import Identity
from .schedulers import SCHEDULES
from .shaping import AdaptiveEnergy, CenteredRank, FunctionWeighting, Weighting

__all__ = ["NAN_POLICIES", "SHAPING_NAMES", "Settings", "check_factor", "check_int",
           "resolve_weighting"]

NAN_POLICIES = ("raise", "worst")

#: noise='auto': this step noise for D <= AUTO_LOW_D (1.0, DDPM-like, above)
AUTO_NOISE_LOW_D = 0.1
AUTO_LOW_D = 2

#: latent_dim='auto' measures distances in AUTO_LATENT_DIM random projections when D
#: exceeds AUTO_LATENT_ABOVE (see the module docstring: at D = 3 the full space is better)
AUTO_LATENT_DIM = 2
AUTO_LATENT_ABOVE = 3


#: centre='auto': the weighted frame above this many dimensions (the origin at and below)
AUTO_CENTRE_ABOVE = 3

#: the choices of ``centre``
CENTRES = ("auto", "origin", "weighted")

#: names accepted for ``fitness_shaping``
SHAPING_NAMES = ("energy", "rank", "centered_rank", "centred_rank", "identity")


@functools.cache
def _names(cls: type) -> tuple[str, ...]:
    # cached: every optimiser attribute read (es.dtype, ...) asks for the names, and
    # dataclasses.fields costs ~10 us (a tenth of a 2-D generation's bookkeeping)
    return tuple(f.name for f in dataclasses.fields(cls) if f.init)


def check_int(value: Any, name: str, minimum: int) -> int:
    """An integer >= minimum (a bool or a float is refused), as a Python int."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an integer >= {minimum}; got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}; got {value}")
    return int(value)


def check_factor(value: Any, name: str) -> float:
    """A finite real number >= 1 (a bool or a string is refused), as a float."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be a number >= 1; got {value!r}")
    factor = float(value)
    if not (math.isfinite(factor) and factor >= 1):
        raise ValueError(f"{name} must be a finite number >= 1; got {value!r}")
    return factor


def _positive(value: Any, name: str, *, optional: bool = False) -> float | None:
    return None if value is None and optional else check_positive(value, name)


def resolve_weighting(spec: Any) -> Weighting:
    """Turn a ``fitness_shaping`` argument into a :class:`~diffevo.shaping.Weighting`.

    Args:
        spec: ``None`` or ``'energy'`` (:class:`~diffevo.AdaptiveEnergy`), ``'rank'`` /
            ``'centered_rank'`` (:class:`~diffevo.CenteredRank`), ``'identity'``
            (:class:`diffevo.Identity`), any Weighting (a shaping, which receives
            costs, or a SPEC mapping, which receives the raw values), or any other
            callable (receives the raw values, see :class:`~diffevo.shaping.FunctionWeighting`).

    Raises:
        ValueError / TypeError naming ``fitness_shaping``.
    """
    if spec is None or (isinstance(spec, str) and spec == "energy"):
        return AdaptiveEnergy()
    if isinstance(spec, str):
        if spec in ("rank", "centered_rank", "centred_rank"):
            return CenteredRank()
        if spec == "identity":
            return Identity()
        raise ValueError(
            f"fitness_shaping must be one of {', '.join(map(repr, SHAPING_NAMES))}, a Shaping, "
            f"a FitnessMapping or a callable; got {spec!r}")
    if isinstance(spec, Weighting):
        return spec
    if callable(spec):
        return FunctionWeighting(spec)
    raise TypeError(
        f"fitness_shaping must be a name ({', '.join(map(repr, SHAPING_NAMES))}), a Shaping, "
        f"a FitnessMapping or a callable; got {type(spec).__name__}")


def _schedule(schedule: Any, num_step: int) -> tuple[np.ndarray, str]:
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


@dataclass(frozen=True, eq=False)
class Settings:
    """How a search runs (everything but the problem: popsize, x0, bounds, seed).

    Fields (the keyword arguments of :class:`diffevo.DiffusionEvolution`):
        num_step: schedule length = generations of a full run (>= 2; default 100).
        schedule: ``'cosine'`` (default), ``'linear'`` (DDIM), ``'ddpm'``, or a
            scheduler object with an ``alpha`` array (then num_step is its length).
        noise: step noise in [0, 1] (1 = DDPM-like, 0 = deterministic DDIM) or
            ``'auto'`` (default): 0.1 when D <= 2, 1.0 above.
        fitness_shaping: ``'energy'`` (default: AdaptiveEnergy()), ``'rank'``, ``'identity'``, a
            :class:`~diffevo.shaping.Weighting` or any callable; stored resolved.
        latent_dim: distances in a random ``latent_dim``-dimensional projection;
            ``'auto'`` (default) = 2 when D > 3, else off; None = off.
        centre: the frame of the x0 estimate and the DDIM step: ``'origin'`` (the
            normalised space's, the box's centre or x0: the reference's), ``'weighted'``
            (each generation's fitness-weighted mean, :func:`diffevo.weighted_centre`)
            or ``'auto'`` (default): weighted when D > 3, else the origin.
        denoise_final: make the last step land on the x0 estimate (alpha = 1).
        density, bandwidth, mode, backend, path: see :func:`diffevo.x0_estimate` (backend:
            a name, or an object implementing the backend contract; path: the kernel path,
            ``'auto'``, ``'direct'`` or ``'dot'``).
        approx, tol: ``approx='grid'`` computes the x0 sums on a grid (at most 3 distance
            dimensions: D <= 3, or a latent of width <= 3), every member within
            ``tol * std`` of the exact estimate (:func:`diffevo.x0_estimate`).
        client: a ``distributed.Client``: the x0 step of every generation runs on its
            Dask cluster (:mod:`diffevo.distributed`; ``backend`` then names the workers'
            backend, ``'auto'`` = their best); fitness evaluation still uses ``executor=``.
        maximize: maximise the objective instead of minimising it.
        nan_policy: ``'raise'`` (default) or ``'worst'`` (NaN/inf members weigh 0).
        maxfev, ftarget, tolx, tolfun, timeout: stop criteria.
        dtype: float64 (default) or float32 population.
        entropy_resolution: cell size of the history's position entropy.
        polish: used by :func:`diffevo.minimize` / :func:`~diffevo.maximize` (ask/tell
            ignores it): find the modes of the final populations, refine each with a
            local method inside the bounds (:mod:`diffevo.polish`; every evaluation
            counted in nfev, within maxfev) and report them as ``result.modes``.

    Derived (not arguments): ``alphas`` (num_step,) read-only float64, the schedule
    with alpha[0] = 1 when ``denoise_final``; ``schedule_name``.

    Raises:
        TypeError / ValueError naming the offending field.
    """

    num_step: int = 100
    schedule: Any = "cosine"
    noise: float | str = "auto"
    fitness_shaping: Any = "energy"
    latent_dim: int | str | None = "auto"
    centre: str = "auto"
    denoise_final: bool = True
    density: str = "uniform"
    bandwidth: float = 0.1
    maximize: bool = False
    nan_policy: str = "raise"
    maxfev: int | None = None
    ftarget: float | None = None
    tolx: float | None = None
    tolfun: float | None = None
    timeout: float | None = None
    backend: str = "auto"
    path: str = "auto"
    approx: str | None = None
    tol: float = 1e-3
    client: Any = None
    mode: str = "reference"
    dtype: Any = np.float64
    entropy_resolution: float = 0.1
    polish: bool = True
    alphas: np.ndarray = field(init=False, repr=False)
    schedule_name: str = field(init=False, repr=False)

    def __post_init__(self) -> None:
        put = object.__setattr__  # frozen: normalised values are stored once, here
        put(self, "num_step", check_int(self.num_step, "num_step", 2))
        if isinstance(self.noise, str):
            check_choice(self.noise, "noise", ("auto",))
        else:
            put(self, "noise", check_noise(self.noise))
        put(self, "density", check_choice(self.density, "density", DENSITIES))
        put(self, "bandwidth", _positive(self.bandwidth, "bandwidth"))
        put(self, "mode", check_choice(self.mode, "mode", MODES))
        if isinstance(self.backend, str) or not hasattr(self.backend, "pairwise_sums"):
            put(self, "backend", check_choice(self.backend, "backend", BACKENDS))
        put(self, "path", check_path(self.path))
        if self.approx is not None and self.approx != "grid":
            raise ValueError(f"approx must be None or 'grid'; got {self.approx!r}")
        put(self, "tol", check_positive(self.tol, "tol"))
        if self.client is not None:
            if not (callable(getattr(self.client, "scatter", None)) and isinstance(self.backend, str)
                    and self.backend != "cuda"):
                raise TypeError("client must be a distributed.Client, with backend= a CPU name or "
                                "'auto' (the workers choose cuda themselves when they have a GPU)")
        put(self, "maximize", _flag(self.maximize, "maximize"))
        put(self, "polish", _flag(self.polish, "polish"))
        put(self, "denoise_final", _flag(self.denoise_final, "denoise_final"))
        put(self, "nan_policy", check_choice(self.nan_policy, "nan_policy", NAN_POLICIES))
        put(self, "maxfev", None if self.maxfev is None else check_int(self.maxfev, "maxfev", 1))
        if self.ftarget is not None:
            ftarget = as_real(self.ftarget, "ftarget", "a real number")
            if math.isnan(ftarget):
                raise ValueError("ftarget must not be NaN")
            put(self, "ftarget", ftarget)
        for name in ("tolx", "tolfun", "timeout"):
            put(self, name, _positive(getattr(self, name), name, optional=True))
        put(self, "entropy_resolution", _positive(self.entropy_resolution, "entropy_resolution"))
        put(self, "fitness_shaping", resolve_weighting(self.fitness_shaping))
        put(self, "centre", check_choice(self.centre, "centre", CENTRES))
        if isinstance(self.latent_dim, str):
            check_choice(self.latent_dim, "latent_dim", ("auto",))
        elif self.latent_dim is not None:
            put(self, "latent_dim", check_int(self.latent_dim, "latent_dim", 1))
        try:
            dt = np.dtype(self.dtype)
        except TypeError:
            raise TypeError(f"dtype must be float32 or float64; got {self.dtype!r}") from None
        if dt not in (np.float32, np.float64):
            raise ValueError(f"dtype must be float32 or float64; got {dt}")
        put(self, "dtype", dt)
        alphas, name = _schedule(self.schedule, self.num_step)
        if self.denoise_final:
            alphas = alphas.copy()
            alphas[0] = 1.0  # the last step lands on the x0 estimate itself
        alphas.flags.writeable = False
        put(self, "alphas", alphas)
        put(self, "schedule_name", name)

    @classmethod
    def names(cls) -> tuple[str, ...]:
        """The keyword arguments a Settings takes, in order."""
        return _names(cls)

    @classmethod
    def from_options(cls, caller: str, options: dict[str, Any]) -> Settings:
        """``Settings(**options)``, with an unknown keyword reported as ``caller()``'s."""
        unknown = sorted(set(options) - set(cls.names()))
        if unknown:
            raise TypeError(f"{caller}() got an unexpected keyword argument {unknown[0]!r}; "
                            f"options are {', '.join(cls.names())}")
        return cls(**options)

    def replace(self, **changes: Any) -> Settings:
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)

    def step_noise(self, ndim: int, niching: bool = False) -> float:
        """The step noise at D = ``ndim`` (``'auto'`` resolved); ``niching``: that of an
        attempt looking for more of several equal optima (restarts='auto'), where 'auto'
        is the low-D noise in any D (``diffevo.runner.Run.niche``)."""
        if self.noise == "auto":
            return AUTO_NOISE_LOW_D if niching or ndim <= AUTO_LOW_D else 1.0
        return self.noise

    def centred(self, ndim: int) -> bool:
        """Whether the x0 estimate and the step work in the weighted frame at D = ``ndim``
        (``'auto'`` resolved)."""
        if self.centre == "auto":
            return ndim > AUTO_CENTRE_ABOVE
        return self.centre == "weighted"

    def latent(self, ndim: int) -> int | None:
        """The latent dimension at D = ``ndim`` (``'auto'`` resolved; None = off)."""
        if self.latent_dim == "auto":
            return AUTO_LATENT_DIM if ndim > AUTO_LATENT_ABOVE else None
        return self.latent_dim

    def x0_backend(self) -> Any:
        """What :func:`diffevo.x0_estimate` gets as ``backend``: the sharded sums with a client."""
        if self.client is None:
            return self.backend
        from .distributed import DaskSums  # noqa: PLC0415 - dask only when a client is given

        return DaskSums(self.client, self.backend)

    @property
    def num_generations(self) -> int:
        """Generations of a full run: the schedule's length."""
        return int(self.alphas.shape[0])


def _flag(value: Any, name: str) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False; got {value!r}")
    return bool(value)


def with_options(func: Any, exclude: tuple[str, ...] = ()) -> inspect.Signature:
    """``func``'s signature with its ``**options`` spelled out as Settings' keyword fields
    but ``exclude`` (for help() and IDEs: the option list is the dataclass, written once)."""
    sig = inspect.signature(func)
    params = [p for p in sig.parameters.values() if p.kind != inspect.Parameter.VAR_KEYWORD]
    taken = {p.name for p in params} | set(exclude)
    params += [inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, default=f.default)
               for f in dataclasses.fields(Settings) if f.init and f.name not in taken]
    return sig.replace(parameters=params)
