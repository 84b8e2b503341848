"""Zoom restarts (a prototype, not wired into minimize): re-centre and re-scale on a mode.

Diffusion Evolution's precision is capped by the kernel's width in *normalised*
coordinates (bench/paper/README.md: the final spread stays near sqrt(1 - alpha_1) of the
first population's scale). A restart whose normalised space is centred on the best mode
and scaled by that mode's spread (per coordinate) makes the same schedule work at the
mode's scale: each zoom gains the ratio of the two spreads, and a per-coordinate scale
also undoes part of an ill-conditioning (the kernel stays isotropic in u, the mode's
spread is not).

:func:`zoom_minimize` drives the public ask/tell :class:`diffevo.DiffusionEvolution`;
every evaluation is counted and the total stays within ``maxfev``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from .modes import find_modes
from .optimizer import DiffusionEvolution

__all__ = ["zoom_minimize"]

#: a zoomed restart starts with this many times the mode's spread (the basin's width is
#: larger than the spread of the members that reached it)
SPREAD_FACTOR = 3.0


def _attempt(fun: Callable, es: DiffusionEvolution) -> tuple[np.ndarray, np.ndarray, int]:
    while not es.stop():
        es.tell(fun(es.ask()))
    res = es.result
    return np.asarray(res.population), np.asarray(res.population_fun), int(res.nfev)


def zoom_minimize(fun: Callable, bounds: Any, *, popsize: int = 512, num_step: int = 25,
                  maxfev: int = 60_000, seed: int = 0, **options: Any) -> dict:
    """Minimise a vectorised ``fun`` by a first run in the box, then zoomed restarts.

    Args:
        fun: ``fun(X (N, D)) -> (N,)``.
        bounds: D ``(low, high)`` pairs.
        popsize, num_step: of every attempt.
        maxfev: evaluations for all attempts together.
        seed: the first attempt's seed (attempt k uses ``[seed, k]``).
        **options: passed to every :class:`DiffusionEvolution`.

    Returns:
        ``{"x", "fun", "nfev", "zooms": [best value after each attempt]}``.
    """
    box = np.asarray(bounds, dtype=np.float64)
    low, high = box[:, 0], box[:, 1]
    scale = (high - low) / np.sqrt(12.0)
    nfev, k, trace = 0, 0, []
    best_x, best_f = None, np.inf
    center, sigma = None, None
    while maxfev - nfev >= popsize * 2:
        steps = min(num_step, (maxfev - nfev) // popsize)
        es = DiffusionEvolution(popsize, center, sigma0=sigma, bounds=box, num_step=steps,
                                seed=np.random.SeedSequence([seed, k]), **options)
        x, f, used = _attempt(fun, es)
        nfev += used
        mode = find_modes(x, f, scale=scale)[0]
        if mode["fun"] < best_f:
            best_x, best_f = mode["x"], mode["fun"]
        trace.append(best_f)
        # the next attempt: centred on the best mode so far, scaled by its spread
        center = np.clip(best_x, low, high)
        sigma = np.maximum(SPREAD_FACTOR * mode["spread"], 1e-12 * scale)
        k += 1
    return {"x": best_x, "fun": best_f, "nfev": nfev, "zooms": trace}
