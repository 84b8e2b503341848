"""The paper's neuroevolution table (5 tasks x 4 columns) plus the library's own optimiser.

Usage::

    python bench/rl/run.py --seeds 10 --jobs 2          # runs what is missing, resumable
    python bench/rl/run.py --table                      # prints the README table

Every run is ``diffevo.rl.evolve`` at the paper's settings (256 members, 10 generations,
T = 1, noise 1, scaling 1, training episodes from seed 42, capped at 500 steps). Runs
go seed by seed over all cells, so a partial file already holds every cell; each
finished run is written to the JSON at once (rerun to continue). Per cell it reports

* the paper's number: mean (std) of the last generation's training returns, pooled
  over the members of all runs (what the published table shows), and
* ours: mean (std) over runs of the best policy's mean return on 10 fresh episodes.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "bench" / "results" / "rl-znver4-2cpu-2026-12-02.json"

TASKS = ("CartPole-v1", "Acrobot-v1", "MountainCar-v0", "MountainCarContinuous-v0", "Pendulum-v1")
#: column -> evolve() arguments
COLUMNS = {
    "DiffEvo (no latent)": dict(method="reference", latent_dim=None, hidden=(8,)),
    "latent DiffEvo": dict(method="reference", latent_dim=2, hidden=(8,)),
    "large latent": dict(method="reference", latent_dim=2, hidden=(128, 128)),
    "CMA-ES": dict(method="cma", latent_dim=None, hidden=(8,)),
    "DiffusionEvolution (library)": dict(method="diffevo", latent_dim=2, hidden=(8,)),
}
#: the published table (mean (std) of the final population's returns; Pendulum and
#: the non-CartPole rows give means only in the paper's text, std from its fitness table)
PAPER = {
    "CartPole-v1": [(482.9, 73.2), (491.6, 50.2), (445.0, 124.2), (77.7, 127.3)],
    "Acrobot-v1": [(-199.9, 160.3), (-127.0, 93.1), (-147.6, 107.2), (-471.0, 81.5)],
    "MountainCar-v0": [(-134.7, 34.8), (-130.6, 33.3), (-134.8, 37.5), (-194.7, 18.3)],
    "MountainCarContinuous-v0": [(56.0, 47.9), (78.6, 39.1), (88.6, 21.7), (33.9, 63.8)],
    "Pendulum-v1": [(-1262.0, 330.4), (-1186.6, 408.5), (-1094.4, 532.6), (-1397.1, 217.4)],
}


def machine() -> dict:
    info = {"python": sys.version.split()[0], "platform": platform.platform(),
            "cpu_count": os.cpu_count()}
    try:
        import llvmlite.binding as llvm  # noqa: PLC0415

        info["cpu"] = llvm.get_host_cpu_name()
    except Exception:  # noqa: BLE001 - informational only
        pass
    import cma  # noqa: PLC0415
    import gymnasium  # noqa: PLC0415

    info.update(numpy=np.__version__, gymnasium=gymnasium.__version__, cma=cma.__version__)
    try:
        from threadpoolctl import threadpool_info  # noqa: PLC0415

        info["blas"] = [{k: d.get(k) for k in ("internal_api", "version", "architecture",
                                                "num_threads")} for d in threadpool_info()]
    except Exception:  # noqa: BLE001
        pass
    return info


def one_run(task: str, column: str, seed: int) -> dict:
    from diffevo.rl import evolve  # noqa: PLC0415

    res = evolve(task, seed=seed, **COLUMNS[column])
    d = res.to_dict()
    keep = ("eval_mean_reward", "eval_std_reward", "eval_rewards", "train_reward",
            "final_mean_reward", "final_std_reward", "evaluations", "train_time", "eval_time",
            "wall_time")
    out = {k: d[k] for k in keep}
    out.update(task=task, column=column, seed=seed, num_params=d["policy"]["num_params"],
               final_rewards=[round(v, 3) for v in d["final_rewards"]],
               curve=[{k: c[k] for k in ("best", "mean", "median")} for c in d["curve"]])
    return out


def load(path: Path) -> dict:
    if path.exists():
        return json.loads(path.read_text())
    return {"what": "diffevo.rl neuroevolution table (bench/rl/run.py)", "runs": []}


def save(doc: dict, path: Path) -> None:
    doc["summary"] = summarize(doc["runs"])
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(doc, indent=1) + "\n")
    tmp.replace(path)


def summarize(runs: list[dict]) -> dict:
    cells: dict = {}
    for r in runs:
        cells.setdefault(r["task"], {}).setdefault(r["column"], []).append(r)
    out: dict = {}
    for task, cols in cells.items():
        for col, rs in cols.items():
            pooled = np.concatenate([np.asarray(r["final_rewards"]) for r in rs])
            ev = np.array([r["eval_mean_reward"] for r in rs])
            out.setdefault(task, {})[col] = {
                "runs": len(rs), "seeds": sorted(r["seed"] for r in rs),
                "final_population_mean": float(pooled.mean()),
                "final_population_std": float(pooled.std()),
                "eval_mean": float(ev.mean()), "eval_std": float(ev.std()),
                "wall_time_mean_s": float(np.mean([r["wall_time"] for r in rs])),
                "num_params": rs[0]["num_params"]}
    return out


def table(doc: dict) -> str:
    """Two markdown tables: the paper's metric beside the paper's numbers, then the best
    policy on fresh episodes with the wall time per run."""
    s = doc.get("summary", {})
    cols = list(COLUMNS)
    head = "| task | " + " | ".join(cols) + " |\n|---|" + "---|" * len(cols)
    paper_rows, eval_rows = [head], [head]
    for task in TASKS:
        if task not in s:
            continue
        pc, ec = [], []
        for k, col in enumerate(cols):
            c = s[task].get(col)
            paper = f" (paper {PAPER[task][k][0]:g})" if k < len(PAPER[task]) else ""
            if c is None:
                pc.append("not run" + paper)
                ec.append("not run")
                continue
            pc.append(f"{c['final_population_mean']:.1f} ({c['final_population_std']:.0f}){paper}")
            ec.append(f"{c['eval_mean']:.1f} ({c['eval_std']:.0f}), {c['wall_time_mean_s']:.0f} s, "
                      f"n={c['runs']}")
        paper_rows.append(f"| {task} | " + " | ".join(pc) + " |")
        eval_rows.append(f"| {task} | " + " | ".join(ec) + " |")
    return "\n".join(paper_rows) + "\n\n" + "\n".join(eval_rows)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, default=10, help="runs per cell (seeds 0..n-1)")
    ap.add_argument("--jobs", type=int, default=1, help="worker processes")
    ap.add_argument("--tasks", nargs="*", default=list(TASKS))
    ap.add_argument("--columns", nargs="*", default=list(COLUMNS))
    ap.add_argument("--out", type=Path, default=OUT)
    ap.add_argument("--table", action="store_true", help="print the table of --out and exit")
    ap.add_argument("--merge", nargs="*", type=Path, default=[],
                    help="add the runs of these files (written by parallel invocations) to --out")
    args = ap.parse_args(argv)
    doc = load(args.out)
    if args.merge:
        have = {(r["task"], r["column"], r["seed"]) for r in doc["runs"]}
        for path in args.merge:
            other = load(path)
            doc.setdefault("machine", other.get("machine"))
            for r in other["runs"]:
                if (r["task"], r["column"], r["seed"]) not in have:
                    doc["runs"].append(r)
                    have.add((r["task"], r["column"], r["seed"]))
        save(doc, args.out)
        print(f"{len(doc['runs'])} runs in {args.out}")
        return 0
    if args.table:
        print(table(doc))
        return 0
    doc["machine"] = machine()
    done = {(r["task"], r["column"], r["seed"]) for r in doc["runs"]}
    todo = [(t, c, s) for s in range(args.seeds) for t in args.tasks for c in args.columns
            if (t, c, s) not in done]
    print(f"{len(todo)} runs to do ({len(done)} in {args.out})", flush=True)
    t0 = time.perf_counter()
    with ProcessPoolExecutor(max_workers=args.jobs) as pool:
        futures = {pool.submit(one_run, *job): job for job in todo}
        for k, fut in enumerate(as_completed(futures), 1):
            run = fut.result()
            doc["runs"].append(run)
            save(doc, args.out)
            print(f"[{k}/{len(todo)} {time.perf_counter() - t0:.0f} s] {run['task']:<25} "
                  f"{run['column']:<29} seed {run['seed']}: eval {run['eval_mean_reward']:.1f}, "
                  f"final {run['final_mean_reward']:.1f} ({run['final_std_reward']:.0f}), "
                  f"{run['wall_time']:.1f} s", flush=True)
    print(table(doc))
    return 0


if __name__ == "__main__":
    sys.exit(main())
