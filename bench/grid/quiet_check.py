"""Grid vs exact numba in one run, for a quiet machine (the full sweep is run.py).

    python bench/grid/quiet_check.py [--json FILE] [--reps 3] [--no-large]

1. N = 65,536, D = 2, float64, standard normal members, reference mode (the default):
   ``approx='grid'`` against the exact numba backend at alpha 0.05 / 0.5 / 0.95 / 0.999,
   for three fitnesses -- uniform random, the two-peak bumps of run.py (width 0.5, the
   benchmark population) and the same bumps at width 0.1 (the hard case: most members sit
   in the 1e-9 floor, where a grid's bound is loosest) -- best of ``--reps`` calls each,
   the two alternating; the max error in std(x) units.
2. N = 1,048,576 (two-peak 0.5 and uniform): the grid's best-of-reps time and its ratio
   to N = 65,536 (the exact sums would be 256x).
3. A whole optimisation with 2^20 members at D = 2 (``minimize(..., approx='grid')``,
   5 generations): seconds per generation.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

import diffevo
from diffevo import backends
from diffevo.approx import GridSums

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run import timed  # noqa: E402 - the sibling script's timer

OUT = Path(__file__).resolve().parents[1] / "results" / "grid-quiet-znver4-2cpu-2026-12-02.json"
ALPHAS = (0.05, 0.5, 0.95, 0.999)


def fitnesses(x, rng):
    def bumps(width):
        return (np.exp(-((x - 1.0) ** 2).sum(1) / width)
                + np.exp(-((x + 1.0) ** 2).sum(1) / width))
    return {"uniform": rng.random(x.shape[0]), "two-peak 0.5": bumps(0.5),
            "two-peak 0.1": bumps(0.1)}


def best(fn, reps):
    return timed(fn, reps, min)


def part_small(reps):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((65536, 2))
    gs = GridSums(backends.resolve("numba", x))
    rows = []
    for name, g in fitnesses(x, rng).items():
        for a in ALPHAS:
            diffevo.x0_estimate(x[:1000], g[:1000], a, backend=gs)  # compile / warm up
            tg = te = np.inf
            for _ in range(reps):  # alternate, so that load changes hit both alike
                t, xa = best(lambda: diffevo.x0_estimate(x, g, a, backend=gs), 1)
                tg = min(tg, t)
                t, xe = best(lambda: diffevo.x0_estimate(x, g, a, backend="numba"), 1)
                te = min(te, t)
            row = dict(fitness=name, alpha=a, grid_s=tg, exact_numba_s=te, speedup=te / tg,
                       err_over_std=float(np.abs(xa - xe).max() / x.std()),
                       path=gs.last["method"], refined=gs.last.get("refined", 0),
                       rescued=gs.last.get("rescued", 0), fallback=gs.last["fallback"])
            print(json.dumps(row), flush=True)
            rows.append(row)
    return rows


def part_large(reps, small):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((1 << 20, 2))
    gs = GridSums(backends.resolve("numba", x))
    fits = fitnesses(x, rng)
    rows = []
    for name in ("uniform", "two-peak 0.5"):
        for a in ALPHAS:
            t, _ = best(lambda g=fits[name]: diffevo.x0_estimate(x, g, a, backend=gs), reps)
            ref = next(r["grid_s"] for r in small if r["fitness"] == name and r["alpha"] == a)
            row = dict(fitness=name, alpha=a, n=1 << 20, grid_s=t, ratio_to_n65536=t / ref,
                       path=gs.last["method"], rescued=gs.last.get("rescued", 0))
            print(json.dumps(row), flush=True)
            rows.append(row)
    return rows


def part_optimisation(gens=5):
    t = time.perf_counter()
    res = diffevo.minimize(lambda p: ((p - 1.0) ** 2).sum(-1), x0=np.zeros(2), sigma0=2.0,
                           popsize=1 << 20, maxiter=gens, seed=0, vectorized=True, approx="grid")
    total = time.perf_counter() - t
    row = dict(popsize=1 << 20, generations=gens, s_per_generation=total / gens, fun=float(res.fun))
    print(json.dumps(row), flush=True)
    return row


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--json", type=Path, default=OUT)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--no-large", action="store_true", help="only the N = 65,536 part")
    args = ap.parse_args()
    doc = dict(what=__doc__.split("\n")[0], command="python bench/grid/quiet_check.py",
               machine=dict(cpu=cpu_model(), cores=os.cpu_count(), load_average_start=os.getloadavg()))
    doc["n65536"] = part_small(args.reps)
    if not args.no_large:
        doc["n1048576"] = part_large(args.reps, doc["n65536"])
        doc["optimisation"] = part_optimisation()
    doc["machine"]["load_average_end"] = os.getloadavg()
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(doc, indent=1) + "\n")
    print("wrote", args.json)


if __name__ == "__main__":
    main()
