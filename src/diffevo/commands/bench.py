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


def _ints(text: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers; got {text!r}") from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected positive integers; got {text!r}")
    return values


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "bench", help="quick throughput table of the available backends",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", type=_ints, default=[1024, 4096],
                   help="population sizes N, comma-separated (default 1024,4096)")
    p.add_argument("--dims", type=_ints, default=[2, 16],
                   help="dimensions D, comma-separated (default 2,16)")
    p.add_argument("--backends", default=None,
                   help="comma-separated backends to time (default: every available one)")
    p.add_argument("--dtype", choices=("float32", "float64"), default="float32",
                   help="population dtype (default float32)")
    p.add_argument("--mode", choices=("reference", "exact"), default="reference")
    p.add_argument("--repeat", type=int, default=3, help="timed repetitions, best kept (default 3)")
    p.add_argument("--max-seconds", type=float, default=5.0,
                   help="skip larger N for a backend once one generation takes longer (default 5)")
    p.add_argument("--json", default=None, metavar="PATH", help="also write the rows as JSON")
    p.set_defaults(func=run)


def _generation(backend: str, x, g, xp, mode: str, rng):
    import diffevo  # noqa: PLC0415

    x0 = diffevo.x0_estimate(x, g, 0.5, mode=mode, backend=backend)
    out = diffevo.ddim_step(x, x0, 0.5, 0.6, noise=1.0, rng=rng)
    if xp is not np:
        xp.cuda.Device().synchronize()
    return out


def measure(backend: str, n: int, d: int, dtype: str, mode: str, repeat: int) -> float:
    """Best seconds per generation of ``backend`` at (N, D)."""
    from diffevo import backends  # noqa: PLC0415

    mod = backends.load(backend)
    if mod is not None and getattr(mod, "DEVICE", "cpu") == "cuda":
        import cupy as xp  # noqa: PLC0415 - only for the cuda backend
    else:
        xp = np
    rng = np.random.default_rng(0)
    x = xp.asarray(rng.standard_normal((n, d)), dtype=dtype)
    g = xp.asarray(rng.random(n), dtype=dtype)
    step_rng = xp.random.default_rng(1)
    _generation(backend, x, g, xp, mode, step_rng)  # warm-up (JIT, kernel load)
    best = float("inf")
    for _ in range(max(1, repeat)):
        t = time.perf_counter()
        _generation(backend, x, g, xp, mode, step_rng)
        best = min(best, time.perf_counter() - t)
    return best


def run(args: argparse.Namespace) -> int:
    from diffevo import backends  # noqa: PLC0415

    names = backends.available() if args.backends is None else [
        b.strip() for b in args.backends.split(",") if b.strip()]
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
