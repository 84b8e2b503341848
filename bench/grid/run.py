"""approx='grid' against the exact numba sums: error across the schedule, time, scaling.

    python bench/grid/run.py                  # everything (~10 min on 2 cores)
    python bench/grid/run.py --quick          # N = 65,536 part only

Writes bench/results/grid-znver4-2cpu-2026-12-02.json (or --json PATH). Parts:

1. N = 65,536, D = 2, float64: at the four checked alphas and at alphas of the default
   100-step cosine schedule, the x0 error of ``approx='grid'`` against the exact numba
   estimate (max over members, in std(x) units, both modes), the path it chose, the rows
   that fell back to the exact sums, and the time of both (median of ``--reps``, exact
   and grid in the same run).
2. N = 1,048,576: the grid's time at the four alphas (and its ratio to N = 65,536), and
   its error on 4,096 sampled rows against the exact sums of those rows.
3. A whole optimisation with 2^20 members at D = 2 (``minimize(..., approx='grid')``,
   ``--gens`` generations): seconds per generation.

Population: standard normal in 2-D (the spread at the noisy end of the schedule; the
clustered late populations are easier for both paths), fitness: the two-peak example
(Gaussian bumps at (1, 1) and (-1, -1), width 0.5), mapped as the optimiser does not --
the raw values are the weights.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np

import diffevo
from diffevo import backends
from diffevo.approx import GridSums

CHECKED = (0.05, 0.5, 0.95, 0.999)
OUT = Path(__file__).resolve().parents[1] / "results" / "grid-znver4-2cpu-2026-12-02.json"


def two_peak(x):
    return (np.exp(-((x - 1.0) ** 2).sum(-1) / 0.5) + np.exp(-((x + 1.0) ** 2).sum(-1) / 0.5))


def population(n, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, 2))
    return x, two_peak(x)


def timed(fn, reps, stat=statistics.median):
    """(stat of the wall times of ``reps`` calls, the last result)."""
    times, out = [], None
    for _ in range(reps):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return stat(times), out


def schedule_alphas(count):
    alphas = np.sort(diffevo.DDIMSchedulerCosine(num_step=100).alpha)
    picks = np.unique(np.linspace(0, len(alphas) - 1, count).round().astype(int))
    return [float(alphas[i]) for i in picks]


def part_small(n, reps, extra):
    x, g = population(n)
    exact = backends.resolve("numba", x)
    rows = []
    for alpha in list(CHECKED) + schedule_alphas(extra):
        row = {"alpha": alpha}
        for mode in ("reference", "exact"):
            gs = GridSums(exact)
            r = reps if (alpha in CHECKED and mode == "reference") else 1
            t_grid, got = timed(lambda a=alpha, m=mode, b=gs: diffevo.x0_estimate(x, g, a, mode=m, backend=b), r)
            t_exact, want = timed(lambda a=alpha, m=mode: diffevo.x0_estimate(x, g, a, mode=m, backend="numba"), r)
            err = float(np.abs(got - want).max() / x.std())
            row[mode] = {"err_std_units": err, "method": gs.last["method"],
                         "fallback_rows": gs.last["fallback"], "eta": gs.last.get("eta"),
                         "t_grid_s": t_grid, "t_exact_s": t_exact, "speedup": t_exact / t_grid}
        print(json.dumps(row), flush=True)
        rows.append(row)
    return rows


def part_large(n, reps, sample=4096):
    x, g = population(n, seed=1)
    exact = backends.resolve("numba", x)
    rng = np.random.default_rng(2)
    rows_idx = rng.choice(n, sample, replace=False)
    lc = np.log(g + 1e-9)
    lc -= lc.max()
    out = []
    for alpha in CHECKED:
        gs = GridSums(exact)
        t_grid, _ = timed(lambda a=alpha, b=gs: diffevo.x0_estimate(x, g, a, backend=b), reps)
        info = dict(gs.last)
        s, inv = alpha ** 0.5, 0.5 / (1.0 - alpha)
        # the sampled rows' error: grid sums on all keys vs exact sums, rows only
        a, b, _ = GridSums(exact).pairwise_sums(x, x, x, lc, s, inv, False)
        ea, eb, _ = exact.pairwise_sums(np.ascontiguousarray(x[rows_idx]), x, x, lc, s, inv, False)
        err = float(np.abs(a[rows_idx] / b[rows_idx, None] - ea / eb[:, None]).max() / x.std())
        row = {"alpha": alpha, "t_grid_s": t_grid, "method": info["method"],
               "fallback_rows": info["fallback"], "err_std_units_sampled": err}
        print(json.dumps(row), flush=True)
        out.append(row)
    return out


def part_optimisation(n, gens):
    f = lambda x: ((x - 1.0) ** 2).sum(-1)
    t = time.perf_counter()
    res = diffevo.minimize(f, x0=np.zeros(2), sigma0=2.0, popsize=n, maxiter=gens, seed=0,
                           vectorized=True, approx="grid")
    total = time.perf_counter() - t
    row = {"popsize": n, "generations": gens, "total_s": total, "s_per_generation": total / gens,
           "fun": float(res.fun)}
    print(json.dumps(row), flush=True)
    return row


def host():
    try:
        import llvmlite.binding as llb

        cpu = llb.get_host_cpu_name()
    except Exception:  # noqa: BLE001 - informational only
        cpu = "unknown"
    import os

    return {"cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version(),
            "numpy": np.__version__, "load_avg_at_start": os.getloadavg()}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--extra", type=int, default=8, help="schedule alphas besides the checked four")
    ap.add_argument("--gens", type=int, default=10)
    ap.add_argument("--json", type=Path, default=OUT)
    args = ap.parse_args(argv)
    result = {"host": host(), "command": " ".join(["python", "bench/grid/run.py", *sys.argv[1:]]),
              "tol": 1e-3}
    x, g = population(4096)
    diffevo.x0_estimate(x, g, 0.5, backend=GridSums(backends.resolve("numba", x), method="fft"))
    diffevo.x0_estimate(x, g, 0.999, backend=GridSums(backends.resolve("numba", x), method="cells"))
    result["n65536"] = part_small(65536, args.reps, args.extra)
    if not args.quick:
        result["n1048576"] = part_large(1 << 20, args.reps)
        small = {r["alpha"]: r["reference"]["t_grid_s"] for r in result["n65536"]}
        for r in result["n1048576"]:
            r["ratio_to_n65536"] = r["t_grid_s"] / small[r["alpha"]]
        result["optimisation"] = part_optimisation(1 << 20, args.gens)
    result["host"]["load_avg_at_end"] = __import__("os").getloadavg()
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=1) + "\n")
    print("wrote", args.json)


if __name__ == "__main__":
    main()
