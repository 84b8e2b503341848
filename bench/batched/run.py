"""``minimize(runs=R)`` against R separate ``minimize`` calls (issue 13, item 6).

    python bench/batched/run.py                 # R = 100; 512 x 25 and 512 x 100 (~1.5 min)
    python bench/batched/run.py --runs 20 --repeats 2 --json /tmp/b.json

Writes bench/results/batched-znver4-2cpu-2026-12-03.json (or --json PATH).

The problem is the one of the issue: Himmelblau in 2-D, bounds [(-4, 4)] * 2, a vectorised
objective, popsize 512, maxiter 25 (and 100), polish on and off. "batched" is ONE call
``minimize(..., runs=R, seed=0)``; "separate" is R calls ``minimize(..., seed=s_r)`` with
``s_r = SeedSequence(0).spawn(R)[r]``, the seed run r of the batched call uses -- so the
bench also checks that run r of the batched call IS the separate call (x, fun, nfev and
the modes equal). The two are timed alternately, ``--repeats`` times each, in this one
process: the machine is shared, so the JSON holds every time, the medians and their ratio,
and the ratio of the fastest repeats (the least disturbed ones).
The seconds inside the x0 estimates (the kernel, the same work either way) are clocked
apart: "beyond_x0_estimate" is the bookkeeping, mode finding and polishing batching cuts;
"end_of_runs" clocks the mode finding and the polishing, and counts the local solves (one
L-BFGS-B per mode before merging), so polishing's cost per solve is measured, not inferred.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np

import diffevo
from diffevo import modes as modes_module
from diffevo import optimizer as optimizer_module
from diffevo import polish as polish_module
from diffevo import runner as runner_module

OUT = Path(__file__).resolve().parents[1] / "results" / "batched-znver4-2cpu-2026-12-03.json"


def himmelblau(X):
    x, y = X[:, 0], X[:, 1]
    return (x * x + y - 11) ** 2 + (x + y * y - 7) ** 2


def machine() -> dict:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    info = {"cpu_model": cpu, "cpu_count": os.cpu_count(), "python": platform.python_version(),
            "numpy": np.__version__, "diffevo": diffevo.__version__,
            "env": {k: os.environ.get(k) for k in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE",
                                                   "OMP_NUM_THREADS", "NUMBA_NUM_THREADS")}}
    try:
        import scipy
        info["scipy"] = scipy.__version__
        import llvmlite.binding as llvm
        info["llvm_host_cpu"] = llvm.get_host_cpu_name()
        import numba
        import threadpoolctl
        info["numba"] = {"version": numba.__version__, "threads": numba.get_num_threads()}
        info["threadpools"] = [{k: p.get(k) for k in ("internal_api", "num_threads",
                                                      "architecture", "version")}
                               for p in threadpoolctl.threadpool_info()]
    except Exception as err:  # noqa: BLE001 - informational only
        info["note"] = repr(err)
    return info


def same(a, b) -> bool:
    """Run r of the batched call equals the separate call (bit for bit)."""
    if not (np.array_equal(a.x, b.x) and a.fun == b.fun and a.nfev == b.nfev
            and len(a.modes) == len(b.modes)):
        return False
    return all(np.array_equal(m["x"], n["x"]) and m["fun"] == n["fun"]
               for m, n in zip(a.modes, b.modes))


class Clock:
    """Seconds spent in (and calls of) ``module.name``, wrapped while a case runs. The x0
    estimates (the kernel: the same work either way, so ``total - kernel`` is what batching
    can cut), the end of the runs (modes found and polished) and the mode finding alone."""

    def __init__(self, module, name: str):
        self.module, self.name = module, name
        self.real = getattr(module, name)
        self.seconds, self.calls = 0.0, 0

    def __call__(self, *args, **kw):
        t = time.perf_counter()
        try:
            return self.real(*args, **kw)
        finally:
            self.seconds += time.perf_counter() - t
            self.calls += 1

    def __enter__(self):
        setattr(self.module, self.name, self)
        return self

    def __exit__(self, *exc):
        setattr(self.module, self.name, self.real)

    def take(self) -> tuple[float, int]:
        out = (self.seconds, self.calls)
        self.seconds, self.calls = 0.0, 0
        return out


def clocks() -> dict[str, Clock]:
    return {"x0_estimate": Clock(optimizer_module, "x0_estimate"),
            "finish": Clock(runner_module, "modes_of_runs"),
            "find_modes": Clock(modes_module, "find_modes_many"),
            "lbfgsb_solves": Clock(polish_module, "_polish_mode")}


def case(runs: int, maxiter: int, polish: bool, repeats: int) -> dict:
    kw = dict(bounds=[(-4.0, 4.0)] * 2, popsize=512, maxiter=maxiter, vectorized=True,
              polish=polish)
    seeds = np.random.SeedSequence(0).spawn(runs)
    times: dict[str, list[float]] = {"batched": [], "separate": []}
    parts: dict[str, dict[str, list]] = {k: {} for k in times}
    with contextlib.ExitStack() as stack:
        clock = {k: stack.enter_context(c) for k, c in clocks().items()}
        for _ in range(repeats):  # alternately: a load change hits both kinds alike
            for kind in ("batched", "separate"):
                t = time.perf_counter()
                if kind == "batched":
                    batched = diffevo.minimize(himmelblau, runs=runs, seed=0, **kw)
                else:
                    separate = [diffevo.minimize(himmelblau, seed=s, **kw) for s in seeds]
                times[kind].append(time.perf_counter() - t)
                for name, c in clock.items():
                    parts[kind].setdefault(name, []).append(c.take())
    kernel = {k: [sec for sec, _ in parts[k]["x0_estimate"]] for k in times}
    polish = {}
    for k in times:  # what polishing costs per local solve: the end of the runs minus mode finding
        sec = statistics.median(f[0] - m[0] for f, m in zip(parts[k]["finish"], parts[k]["find_modes"]))
        solves = parts[k]["lbfgsb_solves"][0][1]
        polish[k] = {"seconds": sec, "solves": solves,
                     "ms_per_solve": 1e3 * sec / solves if solves else None,
                     "find_modes_s": statistics.median(m[0] for m in parts[k]["find_modes"])}
    med = {k: statistics.median(v) for k, v in times.items()}
    best = {k: min(v) for k, v in times.items()}  # the least disturbed repeat of each kind
    rest = {k: statistics.median(t - c for t, c in zip(times[k], kernel[k])) for k in times}
    return {"runs": runs, "popsize": 512, "maxiter": maxiter, "polish": polish,
            "times_s": times, "x0_estimate_s": kernel, "median_s": med,
            "ratio": med["separate"] / med["batched"], "min_s": best,
            "ratio_of_min": best["separate"] / best["batched"],
            "median_beyond_x0_estimate_s": rest,
            "ratio_beyond_x0_estimate": rest["separate"] / rest["batched"], "end_of_runs": polish,
            "modes_polished": sum(m["polished"] for r in batched for m in r.modes),
            "nfev": sum(r.nfev for r in batched),
            "identical": all(same(a, b) for a, b in zip(batched, separate))}


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=100)
    ap.add_argument("--maxiter", type=int, nargs="+", default=[25, 100])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--json", type=Path, default=OUT)
    args = ap.parse_args(argv)
    diffevo.minimize(himmelblau, bounds=[(-4.0, 4.0)] * 2, popsize=64, maxiter=5, runs=2,
                     vectorized=True, seed=0)  # compile and load everything first
    out = {"what": "minimize(runs=R) vs R separate minimize calls, Himmelblau 2-D",
           "machine": machine(), "loadavg_before": os.getloadavg(), "cases": []}
    t0 = time.perf_counter()
    for maxiter in args.maxiter:
        for polish in (False, True):
            row = case(args.runs, maxiter, polish, args.repeats)
            out["cases"].append(row)
            print(f"{args.runs} x 512 x {maxiter}, polish={polish}: batched "
                  f"{row['median_s']['batched']:.2f} s, separate {row['median_s']['separate']:.2f} s, "
                  f"ratio {row['ratio']:.2f} (of the fastest repeats {row['ratio_of_min']:.2f}; "
                  f"beyond the x0 estimates "
                  f"{row['ratio_beyond_x0_estimate']:.2f}), identical {row['identical']}",
                  file=sys.stderr)
    out["loadavg_after"] = os.getloadavg()
    out["total_s"] = time.perf_counter() - t0
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(out, indent=1))
    print(f"wrote {args.json}", file=sys.stderr)
    return out


if __name__ == "__main__":
    main()
