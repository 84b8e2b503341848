"""A million-member population on one GPU: a full optimisation, D = 2 and D = 64.

    python bench/million.py                       # both dimensions, 20 generations each
    python bench/million.py --dims 64 --steps 50 --n 1048576 --json out.json

Runs the reference optimiser's loop (what ``DiffEvo.optimize`` does per step: fitness on
the device, Energy mapping, x0 estimate, DDPM-like DDIM step) on a float32 CuPy
population, synchronising after every generation, and prints seconds per generation
(median and mean after the first, which pays for loading the CUDA module) and peak
device memory: CuPy's pool high-water mark (every allocation is tracked) and the
driver's used-memory reading. The target (CUDA issue) is under 1 GB at N = 2^20, D = 64.

Fitness: a sum of two Gaussian bumps at +1 and -1 in every coordinate (the two-peak
example of SPEC section 7 generalised to D dimensions, width 0.5 sqrt(D)).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import diffevo


def _tracking_allocator(cp):
    """Route CuPy allocations through the pool and remember the high-water mark."""
    pool = cp.get_default_memory_pool()
    peak = {"bytes": 0}

    def malloc(size):
        mem = pool.malloc(size)
        used = pool.used_bytes()
        if used > peak["bytes"]:
            peak["bytes"] = used
        return mem

    cp.cuda.set_allocator(malloc)
    return pool, peak


def run(n: int, d: int, steps: int, seed: int = 0) -> dict:
    import cupy as cp

    pool, peak = _tracking_allocator(cp)
    dev = cp.cuda.Device()
    free0, total = cp.cuda.runtime.memGetInfo()
    rng = cp.random.default_rng(seed)
    x = rng.standard_normal((n, d), dtype=cp.float32)
    width2 = 2 * (0.5 * d**0.5) ** 2

    def fitness(pop):
        a = ((pop - 1) ** 2).sum(axis=1)
        b = ((pop + 1) ** 2).sum(axis=1)
        return cp.exp(-a / width2) + cp.exp(-b / width2)

    mapping = diffevo.Energy(temperature=1.0)
    times = []
    driver_peak = 0
    dev.synchronize()
    for _, (alpha_t, alpha_prev) in diffevo.DDIMScheduler(steps + 1):
        t0 = time.perf_counter()
        raw = fitness(x)
        g = mapping(-raw)  # Energy: lower is better; -fitness makes higher bumps better
        gen = diffevo.BayesianGenerator(x, g, (alpha_t, alpha_prev), backend="cuda", rng=rng)
        x = gen(noise=1.0)
        dev.synchronize()
        times.append(time.perf_counter() - t0)
        free, _ = cp.cuda.runtime.memGetInfo()
        driver_peak = max(driver_peak, free0 - free)
    props = cp.cuda.runtime.getDeviceProperties(dev.id)
    name = props["name"].decode() if isinstance(props["name"], bytes) else str(props["name"])
    steady = times[1:] or times
    near = float(((x - 1) ** 2).sum(axis=1).min() ** 0.5)
    return {
        "N": n, "D": d, "generations": len(times), "dtype": "float32", "device": name,
        "seconds_per_generation_median": statistics.median(steady),
        "seconds_per_generation_mean": statistics.fmean(steady),
        "first_generation_seconds": times[0],
        "gpairs_per_s": n * n / statistics.median(steady) / 1e9,
        "peak_pool_bytes": peak["bytes"], "pool_reserved_bytes": pool.total_bytes(),
        "peak_driver_bytes_used": int(driver_peak), "device_memory_bytes": int(total),
        "population_bytes": n * d * 4, "closest_member_to_peak": near,
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=1 << 20)
    ap.add_argument("--dims", type=int, nargs="+", default=[2, 64])
    ap.add_argument("--steps", type=int, default=20, help="generations per run")
    ap.add_argument("--json", type=Path, help="write the results here")
    args = ap.parse_args(argv)
    try:
        import cupy  # noqa: F401
    except ImportError:
        print("million.py needs CuPy: pip install 'diffevo[cuda13]'", file=sys.stderr)
        return 2
    from diffevo.backends import cuda_backend as cb

    if not cb.is_available():
        print(f"million.py: the cuda backend is not available: {cb.unavailable_reason()}", file=sys.stderr)
        return 2
    results = []
    print("| N | D | s/generation (median) | G pairs/s | peak pool memory | driver peak |")
    print("|---|---|---|---|---|---|")
    for d in args.dims:
        r = run(args.n, d, args.steps)
        results.append(r)
        print(f"| {r['N']:,} | {d} | {r['seconds_per_generation_median']:.3f} | "
              f"{r['gpairs_per_s']:.1f} | {r['peak_pool_bytes'] / 2**20:.0f} MiB | "
              f"{r['peak_driver_bytes_used'] / 2**20:.0f} MiB |", flush=True)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"million": results}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
