"""``diffevo run``: optimise a benchmark problem and report what was found.

Example::

    diffevo run --problem himmelblau --dim 2 --plot h.png

minimises Himmelblau's function with the default settings, prints the best point
and how many members of the final population sit within ``--radius`` of each of
the problem's known optima, and draws the final population over the landscape.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np


def add_parser(subparsers) -> None:
    from diffevo.problems import PROBLEMS  # noqa: PLC0415

    from diffevo.runner import DEFAULT_MAXITER, DEFAULT_POPSIZE  # noqa: PLC0415

    from ._checks import backend_name, int_at_least, output_path, real_in  # noqa: PLC0415

    p = subparsers.add_parser(
        "run", help="optimise a benchmark problem (sphere, himmelblau, rastrigin, ...)",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--problem", required=True, choices=sorted(PROBLEMS),
                   help="benchmark function to optimise")
    p.add_argument("--dim", type=int_at_least(1), default=None,
                   help="dimension D (default 2; beale and himmelblau are 2-D only)")
    p.add_argument("--popsize", type=int_at_least(2), default=DEFAULT_POPSIZE,
                   help=f"population size (default {DEFAULT_POPSIZE}, minimize's)")
    p.add_argument("--steps", type=int_at_least(2), default=DEFAULT_MAXITER,
                   help=f"generations = schedule length (default {DEFAULT_MAXITER}, minimize's)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--maximize", action="store_true",
                   help="maximise instead of minimise (the known optima are minima)")
    p.add_argument("--method", choices=("diffevo", "hades", "charles"), default="diffevo",
                   help="diffevo (closed-form x0, default), hades or charles (a learned diffusion "
                        "model: pip install 'diffevo[hades]'); --schedule/--noise/--shaping/"
                        "--backend/--mode apply to diffevo only")
    p.add_argument("--schedule", choices=("cosine", "linear", "ddpm"), default="cosine")
    p.add_argument("--noise", default="auto", type=real_in(0.0, 1.0, words=("auto",)),
                   help="step noise in [0, 1] or 'auto' (0.1 for D <= 2, else 1; default auto)")
    p.add_argument("--shaping", default="energy", choices=("energy", "rank"),
                   help="fitness shaping (default energy)")
    p.add_argument("--restarts", type=int_at_least(0, words=("auto",)), default="auto",
                   help="restarts with new seeds, or 'auto': while new global optima turn "
                        "up, at most 4 (default auto)")
    p.add_argument("--backend", default="auto", type=backend_name,
                   help="auto, numpy, cpp, numba or cuda (must run here; default auto)")
    p.add_argument("--mode", default="reference", choices=("reference", "exact"))
    p.add_argument("--radius", type=real_in(0.0, math.inf, open_low=True), default=0.1,
                   help="a member counts as 'at' an optimum within this distance (default 0.1)")
    p.add_argument("--plot", default=None, metavar="PNG", type=output_path("population.png"),
                   help="draw the final population over the landscape (needs diffevo[plot]); "
                        "a folder gets population.png")
    p.add_argument("--convergence", default=None, metavar="PNG",
                   type=output_path("convergence.png"),
                   help="draw the convergence curves (needs diffevo[plot]); a folder gets "
                        "convergence.png")
    p.add_argument("--json", default=None, metavar="PATH", type=output_path("result.json"),
                   help="write the result as JSON (a folder gets result.json)")
    p.add_argument("--csv", default=None, metavar="PATH", type=output_path("history.csv"),
                   help="write the history as CSV (a folder gets history.csv)")
    p.add_argument("--progress", action="store_true", help="show a progress bar")
    p.set_defaults(func=run, parser=p)


#: modes listed on the terminal (the JSON has all of them)
MODES_SHOWN = 10


def members_near(population: np.ndarray, optima: np.ndarray, radius: float) -> np.ndarray:
    """(k,) number of members within ``radius`` (Euclidean) of each optimum."""
    dist = np.linalg.norm(population[:, None, :] - optima[None, :, :], axis=-1)
    return (dist < radius).sum(axis=0)


def _fmt_point(x: np.ndarray, digits: int = 4) -> str:
    return "(" + ", ".join(f"{v:.{digits}f}" for v in x[:6]) + (", ...)" if x.size > 6 else ")")


def run(args: argparse.Namespace) -> int:
    import diffevo  # noqa: PLC0415
    from diffevo import backends, problems  # noqa: PLC0415

    prob = problems.get(args.problem)
    try:
        dim = prob.check_dim(args.dim if args.dim is not None else prob.default_dim)
    except ValueError as exc:
        args.parser.error(f"argument --dim: {exc}")  # exits 2
    bounds = prob.bounds(dim)
    be_name = (backends.resolve("auto", np.empty((1, 1))).name if args.backend == "auto"
               else args.backend)
    solve = diffevo.maximize if args.maximize else diffevo.minimize
    start = time.perf_counter()
    try:
        kernel = dict(schedule=args.schedule, noise=args.noise, fitness_shaping=args.shaping,
                      backend=args.backend, mode=args.mode) if args.method == "diffevo" else {}
        res = solve(prob.fun, bounds=bounds, vectorized=True, popsize=args.popsize,
                    maxiter=args.steps, seed=args.seed, restarts=args.restarts,
                    progress=args.progress, method=args.method, **kernel)
    except ImportError as exc:  # method hades/charles without torch
        print(f"diffevo run: error: argument --method: {exc}", file=sys.stderr)
        return 2
    except (TypeError, ValueError) as exc:
        print(f"diffevo run: error: {exc}", file=sys.stderr)
        return 2
    elapsed = time.perf_counter() - start
    pop = np.asarray(res.population)
    optima = prob.optima(dim)
    near = members_near(pop, optima, args.radius)

    goal = "maximise" if args.maximize else "minimise"
    print(f"diffevo run: {goal} {prob.name} in {dim}-D, {args.popsize} members x {args.steps} "
          f"generations, seed {args.seed}, backend {be_name}")
    print(f"  best f = {res.fun:.6g} at x = {_fmt_point(np.asarray(res.x))}"
          + ("" if args.maximize else f"   (known minimum {prob.fmin(dim):.6g})"))
    print(f"  {res.nfev} evaluations, {res.nit} generations in {elapsed:.2f} s "
          f"({1e3 * elapsed / max(res.nit, 1):.2f} ms per generation); {res.message}")
    if not args.maximize:
        print(f"  final population near the known minima (within {args.radius}):")
        for opt, count in zip(optima, near):
            print(f"    {_fmt_point(opt):<34} {int(count):>6} members")
        found = int((near > 0).sum())
        print(f"  {found} of {len(optima)} known minim{'um' if len(optima) == 1 else 'a'} found"
              + (" (all)" if found == len(optima) else ""))
    print(f"  entropy of the final positions: {res.history.entropy[-1]:.2f} bits")
    modes = res.get("modes") or []
    if modes:
        shown = modes[:MODES_SHOWN]
        print(f"  {len(modes)} mode{'s' if len(modes) > 1 else ''} (distinct optima of the final "
              f"population{', polished' if modes[0]['polished'] else ''}; best first"
              + (f", {len(shown)} shown" if len(shown) < len(modes) else "") + "):")
        for m in shown:
            print(f"    {_fmt_point(np.asarray(m['x']), 6):<40} f = {m['fun']:<14.6g} "
                  f"{m['size']:>6} members")

    # data first, pictures last: a failing picture cannot cost the numbers
    if args.csv:
        res.history.to_csv(args.csv)
        print(f"  wrote {args.csv}")
    if args.json:
        doc = {
            "problem": prob.name, "dim": dim, "popsize": args.popsize, "steps": args.steps,
            "seed": args.seed, "maximize": args.maximize, "backend": be_name,
            "x": np.asarray(res.x).tolist(), "fun": float(res.fun), "nfev": int(res.nfev),
            "nrestarts": int(res.nrestarts),
            "nit": int(res.nit), "success": bool(res.success), "message": res.message,
            "seconds": elapsed, "radius": args.radius,
            "optima": [{"x": o.tolist(), "members_within_radius": int(c)}
                       for o, c in zip(optima, near)] if not args.maximize else [],
            "modes": [{"x": np.asarray(m["x"]).tolist(), "fun": float(m["fun"]),
                       "size": int(m["size"]), "polished": bool(m["polished"])}
                      for m in res.get("modes") or []],
            "history": {k: v.tolist() for k, v in res.history.as_dict().items()},
        }
        Path(args.json).write_text(json.dumps(doc, indent=2) + "\n")
        print(f"  wrote {args.json}")
    from diffevo import plot  # noqa: PLC0415 - matplotlib loads only when a picture is drawn

    ok = _picture(args.plot, lambda path: plot.population(
        res, prob.fun, bounds, path, optima=None if args.maximize else optima,
        radius=args.radius, title=f"{prob.name} ({dim}-D): final population, seed {args.seed}"))
    ok &= _picture(args.convergence, lambda path: plot.convergence(
        res, path, fmin=None if args.maximize else prob.fmin(dim),
        title=f"{prob.name} ({dim}-D) convergence"))
    return 0 if ok else 1


def _picture(path: Path | None, draw) -> bool:
    """Draw one picture (when asked for); a failure is reported, not raised: False."""
    if path is None:
        return True
    try:
        draw(path)
    except (ImportError, OSError) as exc:
        print(f"  no picture {path}: {exc}", file=sys.stderr)
        return False
    print(f"  wrote {path}")
    return True
