"""diffevo.minimize against pycma at the same budget (issue 13, "done when" item 2).

    python bench/quality/run.py --json bench/results/quality-emeraldrapids-2cpu-2026-12-06.json
    python bench/quality/run.py --shift 1.23 --dims 10,30 --seeds 10,5 \
        --json bench/results/quality-shifted-emeraldrapids-2cpu-2026-12-06.json
    python bench/quality/run.py --shift 1.23 --dims 10,30 --seeds 10,5 --solvers diffevo-origin \
        --json bench/results/quality-shifted-origin-emeraldrapids-2cpu-2026-12-06.json

Every run: bounds [-5, 5]^D, ``maxfev=60000``; diffevo with every default (popsize, maxiter,
polish), pycma 4.x with its default popsize (``cma.fmin2``, no restarts) and IPOP-CMA-ES
(``restarts=9, incpopsize=2``), both from x0 uniform in the box with sigma0 = 2.5 (a quarter of
the width) and the box as pycma ``bounds``. Fixed seeds 0..S-1; the JSON keeps every run's best
value and evaluations, and the median per cell. ``--shift S`` evaluates f(x - S): every
optimum moved by S in each coordinate (Rosenbrock's from 1 to 1 + S), so a method drawn to
the box's centre is no longer helped by it.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

import diffevo
from diffevo import problems

BUDGET = 60_000
BOX = 5.0


def ellipsoid(x):
    """Ill-conditioned ellipsoid: sum_i 10^(6 i / (D - 1)) x_i^2 (condition number 1e6)."""
    x = np.asarray(x, dtype=np.float64)
    d = x.shape[-1]
    return (10.0 ** (6.0 * np.arange(d) / max(d - 1, 1)) * x * x).sum(axis=-1)


FUNCTIONS = {"sphere": problems.sphere, "ellipsoid": ellipsoid, "rosenbrock": problems.rosenbrock,
             "rastrigin": problems.rastrigin, "ackley": problems.ackley}


def run_diffevo(f, d: int, seed: int, **options) -> tuple[float, int]:
    r = diffevo.minimize(f, bounds=[(-BOX, BOX)] * d, vectorized=True, maxfev=BUDGET, seed=seed,
                         **options)
    return float(r.fun), int(r.nfev)


def run_cma(f, d: int, seed: int, ipop: bool) -> tuple[float, int]:
    import cma

    rng = np.random.default_rng([seed, d])
    best = [np.inf]

    def objective(X):
        v = np.asarray(f(np.asarray(X, dtype=np.float64)), dtype=np.float64)
        best[0] = min(best[0], float(v.min()))
        return v.tolist()

    opts = {"bounds": [-BOX, BOX], "maxfevals": BUDGET, "verbose": -9,
            "seed": int(rng.integers(1, 2**31))}
    _, es = cma.fmin2(None, rng.uniform(-BOX, BOX, d), BOX / 2, opts,
                      restarts=9 if ipop else 0, incpopsize=2, parallel_objective=objective)
    return best[0], int(es.countevals)


def shifted(f, shift: float):
    """``f(x - shift)``: its optima moved by ``shift`` in each coordinate (f itself at 0)."""
    if shift == 0:
        return f
    return lambda X: f(np.asarray(X, dtype=np.float64) - shift)


SOLVERS = {"diffevo": run_diffevo,
           "diffevo-origin": lambda f, d, s: run_diffevo(f, d, s, centre="origin"),
           "cma": lambda f, d, s: run_cma(f, d, s, False),
           "ipop-cma": lambda f, d, s: run_cma(f, d, s, True)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--json", type=Path, required=True)
    ap.add_argument("--dims", default="10,30,100")
    ap.add_argument("--seeds", default="10,5,3", help="seeds per dimension, same order")
    ap.add_argument("--functions", default=",".join(FUNCTIONS))
    ap.add_argument("--solvers", default="diffevo,cma,ipop-cma",
                    help=f"comma-separated, of {', '.join(SOLVERS)} (diffevo-origin: the frame "
                         "at the box's centre, centre='origin')")
    ap.add_argument("--shift", type=float, default=0.0,
                    help="evaluate f(x - SHIFT): every optimum moved by SHIFT per coordinate")
    a = ap.parse_args(argv)
    dims = [int(v) for v in a.dims.split(",")]
    seeds = [int(v) for v in a.seeds.split(",")]
    out: dict = {"budget": BUDGET, "box": [-BOX, BOX], "shift": a.shift, "results": {}}
    for d, ns in zip(dims, seeds):
        for name in a.functions.split(","):
            for solver in a.solvers.split(","):
                t = time.perf_counter()
                with threadpool_limits(limits=1, user_api="blas"):
                    runs = [SOLVERS[solver](shifted(FUNCTIONS[name], a.shift), d, s)
                            for s in range(ns)]
                best = [r[0] for r in runs]
                cell = {"best": best, "nfev": [r[1] for r in runs], "median": float(np.median(best)),
                        "seconds": time.perf_counter() - t}
                out["results"].setdefault(f"D{d}", {}).setdefault(name, {})[solver] = cell
                print(f"D={d} {name:10s} {solver:8s} median {cell['median']:.3g} "
                      f"(max nfev {max(cell['nfev'])}, {cell['seconds']:.0f} s)", flush=True)
                a.json.write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
