"""diffevo: Diffusion Evolution (evolution read as denoising) at very large populations.

The hot operation is the x0 estimate, an N^2 fitness- and Gaussian-weighted average
(attention with a per-key bias), computed by one of several backends behind a single
dispatch point: ``numpy`` (reference), ``numba`` (fast CPU, default), ``cpp`` (the
C++ headers) and ``cuda`` (device arrays).
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version as _version
from pathlib import Path as _Path

from . import examples
from .backends import available as available_backends
from .core import EPS, ddim_step, kde_density, weighted_centre, x0_estimate
from .reference import BayesianGenerator, DiffEvo, LatentBayesianGenerator, RandomProjection
from .history import History
from .mappings import Energy, FitnessMapping, Identity, Power
from .api import maximize, minimize
from .optimizer import DiffusionEvolution
from .result import OptimizeResult
from .shaping import AdaptiveEnergy, CenteredRank, Shaping, Weighting
from . import plot, problems
from .schedulers import DDIMScheduler, DDIMSchedulerCosine, DDPMScheduler

try:
    __version__ = _version("diffevo")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0"


def _installed_dir() -> _Path:
    """Where the build installed headers and CMake files: beside the compiled module
    (in an editable install that is site-packages/diffevo, not this source folder)."""
    here = _Path(__file__).parent
    if (here / "include").is_dir():
        return here
    from importlib.util import find_spec  # noqa: PLC0415 - locates _core without loading it

    spec = find_spec("diffevo._core")
    return _Path(spec.origin).parent if spec is not None and spec.origin else here


def get_include() -> str:
    """Directory of the installed C++ headers (``#include <diffevo/...>``)."""
    return str(_installed_dir() / "include")


def get_cmake_dir() -> str:
    """Directory holding ``diffevoConfig.cmake``: pass it as ``-Ddiffevo_DIR=...``."""
    return str(_installed_dir() / "share" / "cmake" / "diffevo")


__all__ = [
    "EPS",
    "AdaptiveEnergy",
    "BayesianGenerator",
    "CenteredRank",
    "DDIMScheduler",
    "DDIMSchedulerCosine",
    "DDPMScheduler",
    "DiffEvo",
    "DiffusionEvolution",
    "Energy",
    "FitnessMapping",
    "History",
    "Identity",
    "LatentBayesianGenerator",
    "OptimizeResult",
    "Power",
    "RandomProjection",
    "Shaping",
    "Weighting",
    "__version__",
    "available_backends",
    "ddim_step",
    "examples",
    "get_cmake_dir",
    "get_include",
    "kde_density",
    "maximize",
    "minimize",
    "plot",
    "problems",
    "weighted_centre",
    "x0_estimate",
]
