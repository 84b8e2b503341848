"""The paper's benchmark protocol, batched: R runs of one function advance as one (R, N, 2) array.

The published settings (issue 13, item 4): N = 512 members drawn from N(0, I), the cosine
DDIM schedule of 25 steps (24 generations), step noise 0.1, fitness evaluated at 4 x, the
``Identity`` mapping of ``p = exp(-|f - target| / (T scale))``, uniform density, float32.
Each generation is exactly :class:`diffevo.DiffEvo`'s (a :class:`diffevo.BayesianGenerator`:
x0 estimate, then a DDIM step) -- the same public kernels, called once for all R runs
(``diffevo.x0_estimate`` accepts (R, N, D)); with R = 1 and the same seed the final
population equals ``DiffEvo.optimize`` (tests/quality/test_paper.py checks it).

Metrics, on the x0 estimate of the last generation times 4: the mean ``|f - target|`` of
the 64 best, and the entropy (bits) of those 64 positions on a 0.1 grid.
"""

from __future__ import annotations

import numpy as np
from paper_functions import PaperFunction, best_metrics

import diffevo

N, STEPS, NOISE, SCALING, TOP = 512, 25, 0.1, 4.0, 64


def mapped_fitness(fn: PaperFunction, x: np.ndarray, temperature: float) -> np.ndarray:
    """p = exp(-|f(4 x) - target| / (T scale)) for (..., 2) unscaled points, in x's dtype."""
    return np.exp(-fn.err(SCALING * x) / (temperature * fn.scale)).astype(x.dtype)


def run_reference(fn: PaperFunction, temperature: float, runs: int, seed: int,
                  n: int = N, steps: int = STEPS) -> tuple[np.ndarray, np.ndarray]:
    """R runs of the published protocol at once.

    Returns:
        (x (R, n, 2) final population, x0 (R, n, 2) the last generation's x0 estimate),
        both unscaled float32.
    """
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((runs, n, 2), dtype=np.float32)
    mapping = diffevo.Identity()
    x0 = x
    for _, (at, ap) in diffevo.DDIMSchedulerCosine(steps):
        g = np.asarray(mapping(mapped_fitness(fn, x, temperature)), dtype=np.float32)
        x0 = diffevo.x0_estimate(x, g, at, density="uniform")
        x = diffevo.ddim_step(x, x0, at, ap, noise=NOISE, rng=rng)
    return x, x0


def reference_cell(fn: PaperFunction, temperature: float, runs: int, seed: int) -> dict:
    """{"err": [per run], "H": [per run]} of the protocol."""
    _, x0 = run_reference(fn, temperature, runs, seed)
    pts = SCALING * x0.astype(np.float64)
    err, ent = zip(*(best_metrics(p, fn.err(p), TOP) for p in pts))
    return {"err": list(err), "H": list(ent)}
