"""``diffevo bench``: a quick throughput table of the backends that run here.

One *generation* is what the optimiser does between two objective evaluations:
an x0 estimate (the N^2 pairwise kernel) plus a DDIM step. The table gives
seconds per generation (best of ``--repeat``) and G pairs/s = N^2 / seconds / 1e9.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np


def add_parser(subparsers) -> None:
    from ._checks import backend_list, output_path, positive_ints

    p = subparsers.add_parser(
        "bench", help="quick throughput table of the available backends",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", type=positive_ints("1024,4096"), default=[1024, 4096],
                   help="population sizes N, comma-separated (default 1024,4096)")
    p.add_argument("--dims", type=positive_ints("2,16"), default=[2, 16],
                   help="dimensions D, comma-separated (default 2,16)")
    p.add_argument("--backends", default=None, type=backend_list,
                   help="comma-separated backends to time (default: every available one)")
    p.add_argument("--dtype", choices=("float32", "float64"), default="float32",
                   help="population dtype (default float32)")
    p.add_argument("--mode", choices=("reference", "exact"), default="reference")
    p.add_argument("--repeat", type=int, default=3, help="timed repetitions, best kept (default 3)")
    p.add_argument("--max-seconds", type=float, default=5.0,
                   help="skip larger N for a backend once one generation takes longer (default 5)")
    p.add_argument("--json", default=None, metavar="PATH", type=output_path("bench.json"),
                   help="also write the rows as JSON (a folder gets bench.json)")
    p.set_defaults(func=run)


def generation(x, g, *, backend: str = "auto", path: str = "auto", mode: str = "reference",
               alpha_t: float = 0.5, alpha_prev: float = 0.6, rng=None):
    """One generation apart from the objective: the x0 estimate and one DDPM-like DDIM step.

    What ``diffevo bench``, ``bench/test_generation.py`` and ``bench/test_gpu.py`` time:
    ``x0_estimate(x, g, alpha_t)`` then ``ddim_step(x, x0, alpha_t, alpha_prev, noise=1)``
    (so the normal draw is included). A CuPy result is synchronised before returning, so
    a timer around the call measures the work, not the launch.

    Args:
        x: (N, D) population (NumPy, or CuPy for the cuda backend).
        g: (N,) non-negative mapped fitness.
        backend, path, mode: as for :func:`diffevo.x0_estimate`.
        rng: the step's generator (or seed), as for :func:`diffevo.ddim_step`.

    Returns:
        (N, D) the next population, of x's array kind.
    """
    import diffevo

    x0 = diffevo.x0_estimate(x, g, alpha_t, mode=mode, backend=backend, path=path)
    out = diffevo.ddim_step(x, x0, alpha_t, alpha_prev, noise=1.0, rng=rng)
    if type(out).__module__.split(".")[0] == "cupy":
        import cupy

        cupy.cuda.Device(out.device.id).synchronize()
    return out


def measure(backend: str, n: int, d: int, dtype: str, mode: str, repeat: int) -> float:
    """Best seconds per generation of ``backend`` at (N, D)."""
    from diffevo import backends

    mod = backends.load(backend)
    if mod is not None and getattr(mod, "DEVICE", "cpu") == "cuda":
        import cupy as xp
    else:
        xp = np
    rng = np.random.default_rng(0)
    x = xp.asarray(rng.standard_normal((n, d)), dtype=dtype)
    g = xp.asarray(rng.random(n), dtype=dtype)
    step_rng = xp.random.default_rng(1)
    generation(x, g, backend=backend, mode=mode, rng=step_rng)  # warm-up (JIT, kernel load)
    best = float("inf")
    for _ in range(max(1, repeat)):
        t = time.perf_counter()
        generation(x, g, backend=backend, mode=mode, rng=step_rng)
        best = min(best, time.perf_counter() - t)
    return best


def run(args: argparse.Namespace) -> int:
    from diffevo import backends

    names = backends.available() if args.backends is None else args.backends
    if not names:
        print("no backend available")
        return 1
    rows = []
    print(f"diffevo bench: one generation (x0 estimate + DDIM step), {args.dtype}, "
          f"{args.mode} mode, best of {args.repeat}")
    print(f"{'backend':<8} {'N':>8} {'D':>5} {'s/generation':>14} {'G pairs/s':>10}")
    for name in names:
        too_slow = False
        for d in args.dims:
            too_slow = False
            for n in sorted(args.sizes):
                if too_slow:
                    print(f"{name:<8} {n:>8} {d:>5} {'skipped':>14} {'(slow)':>10}")
                    continue
                try:
                    sec = measure(name, n, d, args.dtype, args.mode, args.repeat)
                except Exception as exc:  # noqa: BLE001 - one backend failing must not stop the table
                    print(f"{name:<8} {n:>8} {d:>5} {'error':>14}  {exc}")
                    rows.append({"backend": name, "n": n, "d": d, "error": str(exc)})
                    break
                gps = n * n / sec / 1e9
                print(f"{name:<8} {n:>8} {d:>5} {sec:>14.4g} {gps:>10.3f}", flush=True)
                rows.append({"backend": name, "n": n, "d": d, "dtype": args.dtype,
                             "mode": args.mode, "seconds_per_generation": sec, "gpairs_per_s": gps})
                too_slow = sec > args.max_seconds
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2) + "\n")
        print(f"wrote {args.json}")
    return 0
