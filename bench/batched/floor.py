"""What ``minimize(runs=R)`` could cost at best: the same numerics with no bookkeeping at all.

    python bench/batched/floor.py                 # R = 100, 512 x 25, 2-D Himmelblau (~1 min)
    python bench/batched/floor.py --json /tmp/f.json

Writes bench/results/batched-floor-znver4-2cpu-2026-12-03.json (or --json PATH).

"floor" is a bare loop over (R, N, D) arrays doing only what every generation of R runs must
compute -- the clipped points, one objective call, the statistics of the history row (one
compiled pass), the energy weights (one quantile over axis 1), one batched x0 estimate, the
step noise drawn from each run's own generator and one DDIM step -- with none of the runner's
objects, checks or history. "batched" is ``minimize(runs=R, polish=False)``, "separate" R
calls with ``polish=False``; the three are timed alternately, ``--repeats`` times, in one
process (the machine is shared). ``separate / floor`` is the most batching could ever give
with today's per-generation statistics; each part of the floor is clocked apart.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np

import diffevo
from diffevo._genstats import stats_rows
from diffevo.core import ddim_step, x0_estimate
from diffevo.shaping import AdaptiveEnergy

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run import himmelblau, machine  # noqa: E402 - the bench's own problem and machine info

OUT = Path(__file__).resolve().parents[1] / "results" / "batched-floor-znver4-2cpu-2026-12-03.json"
BOX = 4.0


def floor(runs: int, popsize: int, maxiter: int) -> dict[str, float]:
    """Seconds of each part of the bare loop (one full schedule of ``runs`` runs)."""
    alphas = diffevo.DiffusionEvolution(popsize, bounds=[(-BOX, BOX)] * 2, num_step=maxiter).alphas
    rngs = [np.random.default_rng(s) for s in range(runs)]
    scale = 2 * BOX / np.sqrt(12.0)  # the box's standard deviation: u has unit variance
    weigh = AdaptiveEnergy()
    parts = dict.fromkeys(("evaluate", "statistics", "weights", "x0_estimate", "noise", "step"), 0.0)
    u = np.random.default_rng(0).uniform(-np.sqrt(3), np.sqrt(3), (runs, popsize, 2))
    for g in range(maxiter - 1):
        t = time.perf_counter()
        x = np.clip(u * scale, -BOX, BOX)
        f = himmelblau(x.reshape(-1, 2)).reshape(runs, popsize)
        parts["evaluate"] += time.perf_counter() - t
        t = time.perf_counter()
        stats_rows(f, f, x, None, False, 0.1)
        parts["statistics"] += time.perf_counter() - t
        t = time.perf_counter()
        w = weigh.batch(f)
        parts["weights"] += time.perf_counter() - t
        at, ap = alphas[maxiter - 1 - g], alphas[maxiter - 2 - g]
        t = time.perf_counter()
        x0 = x0_estimate(u, w, at)
        parts["x0_estimate"] += time.perf_counter() - t
        t = time.perf_counter()
        z = np.empty_like(u)
        for rng, zr in zip(rngs, z):
            rng.standard_normal(out=zr)
        parts["noise"] += time.perf_counter() - t
        t = time.perf_counter()
        u = ddim_step(u, x0, at, ap, noise=0.1, z=z)
        parts["step"] += time.perf_counter() - t
    parts["total"] = sum(parts.values())
    return parts


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=100)
    ap.add_argument("--popsize", type=int, default=512)
    ap.add_argument("--maxiter", type=int, default=25)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--json", type=Path, default=OUT)
    a = ap.parse_args(argv)
    kw = dict(bounds=[(-BOX, BOX)] * 2, vectorized=True, popsize=a.popsize, maxiter=a.maxiter,
              polish=False)
    seeds = np.random.SeedSequence(0).spawn(a.runs)
    diffevo.minimize(himmelblau, runs=2, seed=0, **kw)  # compile and warm everything once
    floor(2, a.popsize, a.maxiter)
    times: dict[str, list] = {"floor": [], "batched": [], "separate": []}
    parts = []
    for _ in range(a.repeats):
        parts.append(floor(a.runs, a.popsize, a.maxiter))
        times["floor"].append(parts[-1]["total"])
        t = time.perf_counter()
        diffevo.minimize(himmelblau, runs=a.runs, seed=0, **kw)
        times["batched"].append(time.perf_counter() - t)
        t = time.perf_counter()
        for s in seeds:
            diffevo.minimize(himmelblau, seed=s, **kw)
        times["separate"].append(time.perf_counter() - t)
    med = {k: statistics.median(v) for k, v in times.items()}
    fastest = {k: min(v) for k, v in times.items()}
    out = {"what": __doc__.split("\n\n")[0], "runs": a.runs, "popsize": a.popsize,
           "maxiter": a.maxiter, "seconds": times, "median": med, "fastest": fastest,
           "floor_parts_median": {k: statistics.median(p[k] for p in parts) for k in parts[0]},
           "ratios_median": {"separate/batched": med["separate"] / med["batched"],
                             "separate/floor": med["separate"] / med["floor"],
                             "batched/floor": med["batched"] / med["floor"]},
           "ratios_fastest": {"separate/batched": fastest["separate"] / fastest["batched"],
                              "separate/floor": fastest["separate"] / fastest["floor"]},
           "machine": machine()}
    a.json.parent.mkdir(parents=True, exist_ok=True)
    a.json.write_text(json.dumps(out, indent=1))
    print(json.dumps({k: out[k] for k in ("median", "floor_parts_median", "ratios_median",
                                          "ratios_fastest")}, indent=1))
    print(f"wrote {a.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
