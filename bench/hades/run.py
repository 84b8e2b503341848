"""HADES and CHARLES-D against DiffusionEvolution and CMA-ES on the 2-D benchmark functions.

Usage::

    python bench/hades/run.py                      # all cells, 3 seeds (resumable)
    python bench/hades/run.py --seeds 5 --cartpole # more seeds, plus CartPole-v1
    python bench/hades/run.py --table              # print the README table

Every run: 256 members, 30 generations (7,680 evaluations), default settings of each
method. Functions: Himmelblau in [-5, 5]^2 (issue 15's acceptance box) and the
paper's five in [-4, 4]^2 (bench/paper/paper_functions.py; Ackley and Rastrigin are
maximised, their optima are the four corners). Per run, on the final population:

* ``modes``: how many of the function's global optima have a member within 0.1,
* ``err``: the best member's ``|f - target|`` (precision),
* ``entropy``: bits of the positions on a 0.1 grid (diversity),
* ``cpu_s`` / ``wall_s``: process CPU and wall seconds of the run.

CartPole-v1 (``--cartpole``): 256 members, 10 generations of ``diffevo.rl.EpisodeFitness``
(MLP policy with 8 hidden units, episodes from seed 42, 500 steps); reported is the
best training return and the best policy's mean return on 10 fresh episodes.

Results go to bench/results/hades-znver4-2cpu-2026-12-02.json (each run written as it
finishes; rerun to continue).
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

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench" / "paper"))
OUT = ROOT / "bench" / "results" / "hades-znver4-2cpu-2026-12-02.json"

from paper_functions import FUNCTIONS

import diffevo
from diffevo import problems
from diffevo.hades import CHARLES, HADES, FitnessCondition, NoveltyCondition

POP, GENS = 256, 30
METHODS = ("HADES", "CHARLES-D fitness", "CHARLES-D novelty", "DiffusionEvolution", "CMA-ES")


def _cases() -> dict:
    """name -> (fun, box half-width or bounds, optima (k, 2), target, maximize)."""
    out = {"himmelblau-5": (problems.himmelblau, 5.0, problems.HIMMELBLAU_MINIMA, 0.0, False)}
    for name, fn in FUNCTIONS.items():
        out[f"{name}-4"] = (fn.fun, 4.0, fn.optima, fn.target, fn.maximize)
    return out


def _strategy(method: str, box: float, maximize: bool, seed: int):
    kw = dict(bounds=[(-box, box)] * 2, num_step=GENS, maximize=maximize, seed=seed)
    if method == "HADES":
        return HADES(POP, **kw)
    if method == "CHARLES-D fitness":
        return CHARLES(POP, conditions=[FitnessCondition()], **kw)
    if method == "CHARLES-D novelty":
        return CHARLES(POP, conditions=[FitnessCondition(), NoveltyCondition(k=10)], **kw)
    return diffevo.DiffusionEvolution(POP, **kw)


def _cma_population(fun, box: float, maximize: bool, seed: int) -> np.ndarray:
    import cma

    es = cma.CMAEvolutionStrategy([0.0, 0.0], box / 2, {
        "popsize": POP, "bounds": [-box, box], "seed": seed + 1, "verbose": -9,
        "maxiter": GENS, "tolfun": 0, "tolx": 0, "tolfunhist": 0, "tolstagnation": 10**9})
    x = None
    for _ in range(GENS):
        x = np.asarray(es.ask())
        f = fun(x)
        es.tell(list(x), list(-f if maximize else f))
    return x


def run_cell(case: str, method: str, seed: int) -> dict:
    fun, box, optima, target, maximize = _cases()[case]
    c0, w0 = time.process_time(), time.perf_counter()
    if method == "CMA-ES":
        pop = _cma_population(fun, box, maximize, seed)
    else:
        es = _strategy(method, box, maximize, seed)
        while not es.stop():
            x = es.ask()
            es.tell(fun(x))
        pop = np.asarray(es.result.population)
    cpu, wall = time.process_time() - c0, time.perf_counter() - w0
    d = np.linalg.norm(pop[:, None, :] - optima[None], axis=2)
    return dict(case=case, method=method, seed=seed, modes=int((d.min(axis=0) < 0.1).sum()),
                n_optima=int(optima.shape[0]), err=float(np.abs(fun(pop) - target).min()),
                entropy=float(diffevo.history.position_entropy(pop, 0.1)), cpu_s=cpu, wall_s=wall)


def run_cartpole(method: str, seed: int) -> dict:
    from diffevo.rl import EpisodeFitness, evaluate

    fit = EpisodeFitness("CartPole-v1", hidden=(8,))
    d = fit.num_params
    c0, w0 = time.process_time(), time.perf_counter()
    if method == "CMA-ES":
        import cma

        es = cma.CMAEvolutionStrategy(np.zeros(d), 1.0, {"popsize": POP, "seed": seed + 1,
                                                         "verbose": -9})
        best, best_x = -np.inf, None
        for _ in range(10):
            x = np.asarray(es.ask())
            r = fit(x)
            es.tell(list(x), list(-r))
            if r.max() > best:
                best, best_x = float(r.max()), x[int(np.argmax(r))]
    else:
        kw = dict(ndim=d, sigma0=1.0, num_step=10, maximize=True, seed=seed)
        es = (HADES(POP, **kw) if method == "HADES" else
              CHARLES(POP, conditions=[FitnessCondition()], **kw) if method.startswith("CHARLES")
              else diffevo.DiffusionEvolution(POP, **kw))
        while not es.stop():
            x = es.ask()
            es.tell(fit(x))
        best, best_x = float(es.result.fun), np.asarray(es.result.x)
    cpu, wall = time.process_time() - c0, time.perf_counter() - w0
    ev = evaluate("CartPole-v1", fit.policy, best_x, episodes=10, seed=1000 + seed)
    fit.close()
    return dict(case="CartPole-v1", method=method, seed=seed, best_train=best,
                eval_mean=float(np.mean(ev)), cpu_s=cpu, wall_s=wall)


def _load() -> dict:
    if OUT.exists():
        return json.loads(OUT.read_text())
    import llvmlite.binding as llvm
    import torch

    return {"meta": {"cpu": llvm.get_host_cpu_name(), "cores": os.cpu_count(),
                     "python": platform.python_version(), "torch": torch.__version__,
                     "diffevo": diffevo.__version__, "popsize": POP, "generations": GENS,
                     "command": "python bench/hades/run.py " + " ".join(sys.argv[1:])},
            "runs": []}


def table(data: dict) -> str:
    """Markdown: per case and method, modes found / optima, err and entropy medians, times."""
    rows = {}
    for r in data["runs"]:
        rows.setdefault((r["case"], r["method"]), []).append(r)
    header = ("| function | method | runs | modes found | best err (median) | entropy bits | "
              "CPU s / run | wall s / run |")
    lines = [header, "|---|---|---|---|---|---|---|---|"]
    for (case, method), rs in rows.items():
        wall = np.mean([r["wall_s"] for r in rs])
        cpu = np.mean([r["cpu_s"] for r in rs])
        if case == "CartPole-v1":
            ev = [r["eval_mean"] for r in rs]
            lines.append(f"| {case} | {method} | {len(rs)} | eval return {np.mean(ev):.1f} "
                         f"({np.std(ev):.1f}) | train best {np.median([r['best_train'] for r in rs]):.1f}"
                         f" | - | {cpu:.1f} | {wall:.1f} |")
            continue
        modes = [r["modes"] for r in rs]
        lines.append(f"| {case} | {method} | {len(rs)} | {np.mean(modes):.1f} / {rs[0]['n_optima']} "
                     f"(min {min(modes)}) | {np.median([r['err'] for r in rs]):.2g} | "
                     f"{np.median([r['entropy'] for r in rs]):.2f} | {cpu:.1f} | {wall:.1f} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--first-seed", type=int, default=0, help="start at this seed (parallel workers)")
    ap.add_argument("--out", type=Path, default=None, help="JSON file (default: bench/results/...)")
    ap.add_argument("--cases", nargs="*", default=None, help="subset of the cases")
    ap.add_argument("--methods", nargs="*", default=list(METHODS))
    ap.add_argument("--cartpole", action="store_true")
    ap.add_argument("--no-functions", action="store_true", help="only CartPole (with --cartpole)")
    ap.add_argument("--table", action="store_true")
    args = ap.parse_args()
    global OUT
    OUT = args.out or OUT
    data = _load()
    if args.table:
        print(table(data))
        return
    import torch

    torch.set_num_threads(1)
    done = {(r["case"], r["method"], r["seed"]) for r in data["runs"]}
    cases = args.cases or list(_cases())
    todo = [] if args.no_functions else [
        (c, m, s) for s in range(args.first_seed, args.seeds) for c in cases for m in args.methods]
    if args.cartpole:
        todo += [("CartPole-v1", m, s) for s in range(args.first_seed, args.seeds)
                 for m in ("HADES", "CHARLES-D fitness", "DiffusionEvolution", "CMA-ES")]
    for case, method, seed in todo:
        if (case, method, seed) in done:
            continue
        r = run_cartpole(method, seed) if case == "CartPole-v1" else run_cell(case, method, seed)
        data["runs"].append(r)
        OUT.write_text(json.dumps(data, indent=1))
        print(json.dumps(r), flush=True)


if __name__ == "__main__":
    main()
