"""The settings of HADES / CHARLES-D: one validated, frozen dataclass.

Run control (num_step = generations, maximize, nan_policy, maxfev, ftarget, tolx,
tolfun, timeout, dtype, entropy_resolution) is validated by the library's own
:class:`diffevo._settings.Settings`, so it means exactly what it means for
:class:`diffevo.DiffusionEvolution`; the options of the closed-form estimate
(schedule, noise, fitness_shaping, ...) have no meaning here and are refused.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

from .._settings import Settings, check_int
from .._validation import check_choice
from .sampling import PROCESSES
from .selection import BUFFER_POLICIES, SELECTIONS
from .training import TrainSettings

__all__ = ["RUN_OPTIONS", "HadesConfig", "split_options"]

#: the options of diffevo.DiffusionEvolution that HADES takes too (run control)
RUN_OPTIONS = ("num_step", "maximize", "nan_policy", "maxfev", "ftarget", "tolx", "tolfun",
               "timeout", "dtype", "entropy_resolution")


def _real(value: Any, name: str, lo: float, hi: float = math.inf, lo_open: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise TypeError(f"{name} must be a finite number; got {value!r}")
    if value < lo or value > hi or (lo_open and value == lo):
        side = ">" if lo_open else ">="
        top = "" if hi == math.inf else f" and <= {hi}"
        raise ValueError(f"{name} must be {side} {lo}{top}; got {value!r}")
    return float(value)


@dataclass(frozen=True)
class HadesConfig:
    """Model, training and selection settings (defaults: the HADES paper's).

    Attributes:
        hidden: hidden layer widths of the MLP denoiser ((32, 32)).
        time_embedding: None (t itself) or E sinusoid pairs of t.
        process: ``'ddim'`` (epsilon prediction, default) or ``'rectified_flow'``.
        diffusion_steps: noise levels / Euler steps of the sampler (100).
        eta: DDIM step noise in [0, 1] (1.0, DDPM-like).
        train: the :class:`~diffevo.hades.training.TrainSettings` (epochs, batch_size,
            lr, weight_decay, lr_min, condition_drop: given as keywords of the strategy).
        buffer_factor: the buffer holds buffer_factor x popsize points (4).
        buffer_policy: ``'diversity'`` (default: a newcomer replaces its nearest
            buffered point when fitter) or ``'quality'`` (the worst are evicted); see
            :mod:`diffevo.hades.selection` for why.
        selection: ``'roulette'`` (default), ``'cumulative'``, ``'rank'`` or
            ``'boltzmann'`` (:func:`~diffevo.hades.selection.selection_weights`);
            selection_pressure: s (3).
        adaptive_pressure: re-choose s every generation so the elites hold
            1 - elite_ratio of the roulette mass.
        elite_ratio: share of the population kept unchanged (0.1).
        mutation_rate: diffuse sampled members forward to this fraction of the
            schedule and denoise them back (0 = off, the default).
        random_ratio: probability that a sampled member gets uniform noise of
            +-1.5 x max(buffer std, initial scale) per coordinate (0.0625).
        reinit: re-initialise the network every generation (True).
        device: torch device of the network ('cpu').
        threads: torch CPU threads while training and sampling (1: tiny matrices).
        guidance_scale: classifier-free guidance s (CHARLES only; 1 = conditional model).
    """

    hidden: tuple[int, ...] = (32, 32)
    time_embedding: int | None = None
    process: str = "ddim"
    diffusion_steps: int = 100
    eta: float = 1.0
    buffer_factor: int = 4
    buffer_policy: str = "diversity"
    selection: str = "roulette"
    selection_pressure: float = 3.0
    adaptive_pressure: bool = False
    elite_ratio: float = 0.1
    mutation_rate: float = 0.0
    random_ratio: float = 0.0625
    reinit: bool = True
    device: str = "cpu"
    threads: int = 1
    guidance_scale: float = 1.0
    train: TrainSettings = field(default_factory=TrainSettings)

    def __post_init__(self) -> None:
        put = object.__setattr__
        try:
            hidden = tuple(self.hidden)
        except TypeError:
            raise TypeError(f"hidden must be a sequence of layer widths; got {self.hidden!r}") from None
        if not hidden:
            raise ValueError("hidden must list at least one layer width")
        put(self, "hidden", tuple(check_int(h, "hidden", 1) for h in hidden))
        if self.time_embedding is not None:
            put(self, "time_embedding", check_int(self.time_embedding, "time_embedding", 1))
        check_choice(self.process, "process", tuple(PROCESSES))
        check_choice(self.selection, "selection", SELECTIONS)
        check_choice(self.buffer_policy, "buffer_policy", BUFFER_POLICIES)
        for name, lo in (("diffusion_steps", 2), ("buffer_factor", 1), ("threads", 1)):
            put(self, name, check_int(getattr(self, name), name, lo))
        put(self, "eta", _real(self.eta, "eta", 0.0, 1.0))
        put(self, "train", _checked_train(self.train))
        put(self, "selection_pressure", _real(self.selection_pressure, "selection_pressure", 0.0))
        put(self, "elite_ratio", _real(self.elite_ratio, "elite_ratio", 0.0, 0.9))
        put(self, "mutation_rate", _real(self.mutation_rate, "mutation_rate", 0.0, 1.0))
        put(self, "random_ratio", _real(self.random_ratio, "random_ratio", 0.0, 1.0))
        put(self, "guidance_scale", _real(self.guidance_scale, "guidance_scale", 0.0))
        for name in ("adaptive_pressure", "reinit"):
            if not isinstance(getattr(self, name), bool):
                raise TypeError(f"{name} must be True or False; got {getattr(self, name)!r}")
        if not isinstance(self.device, str):
            raise TypeError(f"device must be a torch device name such as 'cpu' or 'cuda'; "
                            f"got {self.device!r}")

    @classmethod
    def names(cls) -> tuple[str, ...]:
        """The keyword arguments of a strategy these settings take (train's flattened)."""
        own = tuple(f.name for f in dataclasses.fields(cls) if f.name != "train")
        return own + tuple(f.name for f in dataclasses.fields(TrainSettings) if f.name != "keep_best")


def _checked_train(t: TrainSettings) -> TrainSettings:
    """``t`` with every field validated (and numbers as Python floats / ints)."""
    if not isinstance(t, TrainSettings):
        raise TypeError(f"train must be a TrainSettings; got {type(t).__name__}")
    return TrainSettings(
        epochs=check_int(t.epochs, "epochs", 1), batch_size=check_int(t.batch_size, "batch_size", 1),
        lr=_real(t.lr, "lr", 0.0, lo_open=True), weight_decay=_real(t.weight_decay, "weight_decay", 0.0),
        lr_min=_real(t.lr_min, "lr_min", 0.0, t.lr if isinstance(t.lr, (int, float)) else math.inf),
        condition_drop=_real(t.condition_drop, "condition_drop", 0.0, 1.0), keep_best=t.keep_best)


def split_options(caller: str, options: dict[str, Any], *,
                  conditional: bool) -> tuple[Settings, HadesConfig]:
    """``(run Settings, HadesConfig)`` from a strategy's keyword arguments.

    ``generations`` is accepted as a synonym of ``num_step``.

    Raises:
        TypeError: naming an unknown keyword (or a DiffusionEvolution-only one).
    """
    options = dict(options)
    if "generations" in options:
        if "num_step" in options:
            raise TypeError(f"{caller}(): give generations or num_step, not both")
        options["num_step"] = options.pop("generations")
    model_names = set(HadesConfig.names())
    if not conditional:
        model_names -= {"guidance_scale", "condition_drop"}
    known = set(RUN_OPTIONS) | model_names
    unknown = sorted(set(options) - known)
    if unknown:
        raise TypeError(f"{caller}() got an unexpected keyword argument {unknown[0]!r}; "
                        f"options are {', '.join(sorted(known | {'generations'}))}")
    run = Settings(**{k: v for k, v in options.items() if k in RUN_OPTIONS})
    train_names = {f.name for f in dataclasses.fields(TrainSettings)}
    train = TrainSettings(**{k: v for k, v in options.items() if k in train_names})
    config = HadesConfig(**{k: v for k, v in options.items()
                            if k in model_names and k not in train_names}, train=train)
    return run, config
