"""The paper's 2-D benchmark (issue 13, item 4): the reference protocol, diffevo's defaults, pycma.

    python bench/paper/run.py --runs 100 --cma-runs 10 \
        --json bench/results/paper-znver4-2cpu-2026-12-03.json \
        --modes-json bench/results/paper-modes-znver4-2cpu-2026-12-03.json

Columns (JSON: ``{"reference": {"T0.5": {fn: {"err": [...], "H": [...]}}, "T1": ...},
"diffevo": {fn: ...}, "cma": {fn: ...}}``):

* ``reference``: the published protocol (paper_protocol.py), all R runs of a cell in one
  (R, 512, 2) kernel call per generation; metrics on the last generation's x0 estimates.
* ``diffevo``: ``diffevo.minimize(err, bounds=[(-4, 4)] * 2)`` with every default (err =
  ``|f - target|``, which for the maximised functions is ``target - f`` in the box, so it is
  the maximisation; AdaptiveEnergy is shift-invariant); metrics on the final population.
* ``cma``: pycma's IPOP-CMA-ES (restarts with doubling population) with the same 51,200
  evaluations, x0 uniform in the box, sigma0 = 2, the box kept by the protocol's penalty (a
  point outside scores the largest in-box distance; pycma's own ``bounds`` repair every
  solution in Python: 26 s per run); metrics on the 64 best points it evaluated. About 12 s per
  run (pycma's per-solution bookkeeping), so the committed table has fewer cma runs
  (``--cma-runs``).

``--modes-json`` adds the modes table: per run, how many of the known optima are found
with x within 1e-3 and fun within 1e-6 -- for diffevo among ``result.modes``, for pycma among
every point it evaluated (it reports one point per restart; this is its best case).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))

from paper_functions import BOX, FUNCTIONS, PaperFunction, best_metrics
from paper_protocol import TOP, reference_cell

import diffevo

BUDGET = 51_200
XTOL, FTOL = 1e-3, 1e-6


def found(fn: PaperFunction, points: np.ndarray) -> int:
    """How many of fn's optima have a point within XTOL (max-norm) and FTOL of the target."""
    if len(points) == 0:
        return 0
    pts = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    good = pts[fn.err(pts) <= FTOL]
    return int(sum(bool((np.abs(good - o).max(axis=1) <= XTOL).any()) for o in fn.optima))


def diffevo_cells(fn: PaperFunction, runs: int, seed: int) -> tuple[dict, list[int]]:
    res = diffevo.minimize(fn.err, bounds=[(-BOX, BOX)] * 2, vectorized=True, runs=runs,
                           seed=seed)
    res = res if isinstance(res, list) else [res]
    cell = {"err": [], "H": []}
    for r in res:
        e, h = best_metrics(r.population, fn.err(r.population), TOP)
        cell["err"].append(e)
        cell["H"].append(h)
    return cell, [found(fn, np.array([m["x"] for m in r.modes])) for r in res]


def cma_cells(fn: PaperFunction, runs: int, seed: int) -> tuple[dict, list[int]]:
    import cma
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1, user_api="blas"):  # pycma's small matrices: one thread
        return _cma_cells(cma, fn, runs, seed)


def _cma_cells(cma, fn: PaperFunction, runs: int, seed: int) -> tuple[dict, list[int]]:
    cell, hits = {"err": [], "H": []}, []
    for r in range(runs):
        rng = np.random.default_rng([seed, r])
        seen_x, seen_f = [], []

        def objective(X, seen_x=seen_x, seen_f=seen_f):
            X = np.asarray(X, dtype=np.float64)
            e = fn.err(X)
            seen_x.append(X)
            seen_f.append(e)
            return e.tolist()

        opts = {"maxfevals": BUDGET, "verbose": -9,
                "seed": int(rng.integers(1, 2**31))}
        cma.fmin2(None, rng.uniform(-BOX, BOX, 2), 2.0, opts, restarts=9, incpopsize=2,
                          parallel_objective=objective)
        x, f = np.concatenate(seen_x), np.concatenate(seen_f)
        e, h = best_metrics(x, f, TOP)
        cell["err"].append(e)
        cell["H"].append(h)
        hits.append(found(fn, x[f <= FTOL]))
    return cell, hits


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=100)
    ap.add_argument("--cma-runs", type=int, default=None, help="default: --runs")
    ap.add_argument("--json", type=Path, required=True)
    ap.add_argument("--modes-json", type=Path, default=None)
    ap.add_argument("--columns", default="reference,diffevo,cma")
    ap.add_argument("--seed", type=int, default=2024)
    a = ap.parse_args(argv)
    cols = a.columns.split(",")
    out: dict = {}
    modes: dict = {}
    timing: dict = {}
    if "reference" in cols:
        t = time.perf_counter()
        out["reference"] = {f"T{T:g}": {name: reference_cell(fn, T, a.runs, a.seed + k)
                                         for k, (name, fn) in enumerate(FUNCTIONS.items())}
                            for T in (0.5, 1.0)}
        timing["reference"] = time.perf_counter() - t
        print(f"reference table: {timing['reference']:.2f} s", flush=True)
    for col, cells, n in (("diffevo", diffevo_cells, a.runs),
                          ("cma", cma_cells, a.cma_runs or a.runs)):
        if col not in cols:
            continue
        t = time.perf_counter()
        out[col], modes[col] = {}, {}
        for k, (name, fn) in enumerate(FUNCTIONS.items()):
            out[col][name], modes[col][name] = cells(fn, n, a.seed + k)
            print(f"{col} {name}: err {np.mean(out[col][name]['err']):.3g} "
                  f"H {np.mean(out[col][name]['H']):.3g} found {np.mean(modes[col][name]):.2f}"
                  f"/{len(fn.optima)} ({time.perf_counter() - t:.0f} s)", flush=True)
        timing[col] = time.perf_counter() - t
    a.json.write_text(json.dumps(out, indent=1))
    if a.modes_json is not None:
        a.modes_json.write_text(json.dumps(
            {"found": modes, "optima": {k: len(f.optima) for k, f in FUNCTIONS.items()},
             "xtol": XTOL, "ftol": FTOL, "seconds": timing}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
