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
import sys
import time
from pathlib import Path

import numpy as np


def add_parser(subparsers) -> None:
    from diffevo import backends  # noqa: PLC0415
    from diffevo.problems import PROBLEMS  # noqa: PLC0415

    p = subparsers.add_parser(
        "run", help="optimise a benchmark problem (sphere, himmelblau, rastrigin, ...)",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--problem", required=True, choices=sorted(PROBLEMS),
                   help="benchmark function to optimise")
    p.add_argument("--dim", type=int, default=None,
                   help="dimension D (default 2; beale and himmelblau are 2-D only)")
    p.add_argument("--popsize", type=int, default=512, help="population size (default 512)")
    p.add_argument("--steps", type=int, default=100,
                   help="generations = schedule length (default 100)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--maximize", action="store_true",
                   help="maximise instead of minimise (the known optima are minima)")
    p.add_argument("--schedule", choices=("cosine", "linear", "ddpm"), default="cosine")
    p.add_argument("--noise", default="auto",
                   help="step noise in [0, 1] or 'auto' (0.1 for D <= 2, else 1; default auto)")
    p.add_argument("--shaping", default="energy", choices=("energy", "rank"),
                   help="fitness shaping (default energy)")
    p.add_argument("--restarts", type=int, default=0, help="restarts with new seeds (default 0)")
    p.add_argument("--backend", default="auto", choices=backends.BACKENDS)
    p.add_argument("--mode", default="reference", choices=("reference", "exact"))
    p.add_argument("--radius", type=float, default=0.1,
                   help="a member counts as 'at' an optimum within this distance (default 0.1)")
    p.add_argument("--plot", default=None, metavar="PNG",
                   help="draw the final population over the landscape (needs diffevo[plot])")
    p.add_argument("--convergence", default=None, metavar="PNG",
                   help="draw the convergence curves (needs diffevo[plot])")
    p.add_argument("--json", default=None, metavar="PATH", help="write the result as JSON")
    p.add_argument("--csv", default=None, metavar="PATH", help="write the history as CSV")
    p.add_argument("--progress", action="store_true", help="show a progress bar")
    p.set_defaults(func=run)


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
        noise = args.noise if args.noise == "auto" else float(args.noise)
    except ValueError as exc:
        print(f"diffevo run: error: {exc}", file=sys.stderr)
        return 2
    bounds = prob.bounds(dim)
    be = backends.resolve(args.backend, np.empty((1, 1)))
    be_name = be.__name__.rsplit(".", 1)[-1].removesuffix("_backend")
    solve = diffevo.maximize if args.maximize else diffevo.minimize
    start = time.perf_counter()
    try:
        res = solve(prob.fun, bounds=bounds, vectorized=True, popsize=args.popsize,
                    maxiter=args.steps, seed=args.seed, schedule=args.schedule, noise=noise,
                    fitness_shaping=args.shaping, restarts=args.restarts, backend=args.backend,
                    mode=args.mode, progress=args.progress)
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

    if args.plot:
        try:
            from diffevo import plot  # noqa: PLC0415

            plot.population(res, prob.fun, bounds, args.plot,
                            optima=None if args.maximize else optima, radius=args.radius,
                            title=f"{prob.name} ({dim}-D): final population, seed {args.seed}")
            print(f"  wrote {args.plot}")
        except ImportError as exc:
            print(f"  no picture: {exc}", file=sys.stderr)
    if args.convergence:
        try:
            from diffevo import plot  # noqa: PLC0415

            plot.convergence(res, args.convergence,
                             fmin=None if args.maximize else prob.fmin(dim),
                             title=f"{prob.name} ({dim}-D) convergence")
            print(f"  wrote {args.convergence}")
        except ImportError as exc:
            print(f"  no picture: {exc}", file=sys.stderr)
    if args.csv:
        res.history.to_csv(args.csv)
        print(f"  wrote {args.csv}")
    if args.json:
        doc = {
            "problem": prob.name, "dim": dim, "popsize": args.popsize, "steps": args.steps,
            "seed": args.seed, "maximize": args.maximize, "backend": be_name,
            "x": np.asarray(res.x).tolist(), "fun": float(res.fun), "nfev": int(res.nfev),
            "nit": int(res.nit), "success": bool(res.success), "message": res.message,
            "seconds": elapsed, "radius": args.radius,
            "optima": [{"x": o.tolist(), "members_within_radius": int(c)}
                       for o, c in zip(optima, near)] if not args.maximize else [],
            "history": {k: v.tolist() for k, v in res.history.as_dict().items()},
        }
        Path(args.json).write_text(json.dumps(doc, indent=2) + "\n")
        print(f"  wrote {args.json}")
    return 0
