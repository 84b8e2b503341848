"""HADES and CHARLES-D: evolution strategies with a learned diffusion model (needs torch).

* :class:`HADES` (arXiv 2411.13420): every generation a small MLP denoiser is
  trained on the best points seen, weighted by fitness, and the next population
  is sampled from it (elites kept).
* :class:`CHARLES` (CHARLES-D): the same, conditioned on fitness, novelty or user
  traits through classifier-free guidance; conditions are :class:`FitnessCondition`,
  :class:`NoveltyCondition` and :class:`TraitCondition` (or a :class:`Condition`
  subclass).

Both have the ask/tell surface of :class:`diffevo.DiffusionEvolution`; install with
``pip install 'diffevo[hades]'``.
"""

from __future__ import annotations

from .conditions import Condition, FitnessCondition, NoveltyCondition, TraitCondition
from .config import HadesConfig
from .model import MLPDenoiser
from .sampling import DDIMProcess, RectifiedFlowProcess
from .strategy import CHARLES, HADES
from .training import TrainSettings, fit

__all__ = [
    "CHARLES",
    "HADES",
    "Condition",
    "DDIMProcess",
    "FitnessCondition",
    "HadesConfig",
    "MLPDenoiser",
    "NoveltyCondition",
    "RectifiedFlowProcess",
    "TrainSettings",
    "TraitCondition",
    "fit",
]
