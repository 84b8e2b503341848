"""diffevo.distributed on a LocalCluster with 1 and 2 workers: per-block cost and scatter size.

    python bench/distributed/run.py                      # N = 65,536, D = 2 (~3 min)
    python bench/distributed/run.py --n 32768 --reps 3

Writes bench/results/distributed-znver4-2cpu-2026-12-02.json (or --json PATH).

For each cluster (1 and 2 single-threaded worker processes) it times the local estimate
(numba, in this process, both cores), the sharded one end to end, and the blocks alone
(``block_sums`` on one worker, from the worker's own clock), and records the bytes
scattered per call. What to expect on k machines follows from those numbers:

    t(k) ~= scatter_bytes / bandwidth + (pairs / k) / rate_per_worker + overhead(blocks)

the keys go to every worker once per generation (O(N D) bytes each), the rows split k
ways. The JSON's "model" section evaluates this for k = 1..64 at the measured rate.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

import diffevo

OUT = Path(__file__).resolve().parents[1] / "results" / "distributed-znver4-2cpu-2026-12-02.json"


def timed(fn, reps):
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times), times


def block_cost(client, x, g, alpha, rows):
    """Seconds one worker spends on ``rows`` query rows against all keys (worker clock)."""
    from diffevo.distributed._sums import block_sums

    def work(q, k, v, lc):
        t = time.perf_counter()
        block_sums(q, k, v, lc, alpha ** 0.5, 0.5 / (1 - alpha), False, "auto", "auto")
        return time.perf_counter() - t

    q = np.ascontiguousarray(x[None, :rows])
    lc = np.log(g + 1e-9)[None]
    client.submit(work, q, x[None], x[None], lc, pure=False).result()  # warm (numba load)
    return statistics.median(client.submit(work, q, x[None], x[None], lc, pure=False).result()
                             for _ in range(3))


def main(argv=None):
    from distributed import Client, LocalCluster

    import diffevo.distributed as dd

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=65536)
    ap.add_argument("--d", type=int, default=2)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--alpha", type=float, default=0.5)
    ap.add_argument("--json", type=Path, default=OUT)
    args = ap.parse_args(argv)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((args.n, args.d))
    g = rng.random(args.n)
    diffevo.x0_estimate(x[:1024], g[:1024], args.alpha)
    t_local, _ = timed(lambda: diffevo.x0_estimate(x, g, args.alpha), args.reps)
    want = diffevo.x0_estimate(x, g, args.alpha)
    out = {"n": args.n, "d": args.d, "alpha": args.alpha, "t_local_s": t_local,
           "command": " ".join(["python", "bench/distributed/run.py", *sys.argv[1:]]),
           "load_avg_at_start": os.getloadavg(), "clusters": []}
    for workers in (1, 2):
        with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                          dashboard_address=":0") as cluster, Client(cluster) as client:
            be = dd.DaskSums(client)
            diffevo.x0_estimate(x[:1024], g[:1024], args.alpha, backend=be)  # workers load numba
            t_dist, times = timed(lambda b=be: diffevo.x0_estimate(x, g, args.alpha, backend=b), args.reps)
            got = diffevo.x0_estimate(x, g, args.alpha, backend=be)
            rows = be.last["rows_per_block"]
            per_block = block_cost(client, x, g, args.alpha, rows)
            row = {"workers": workers, "t_sharded_s": t_dist, "times_s": times,
                   "blocks": be.last["blocks"], "rows_per_block": rows,
                   "t_block_s": per_block, "scatter_bytes": be.last["scatter_bytes"],
                   "max_abs_diff_vs_local": float(np.abs(got - want).max()),
                   "pairs_per_s_per_worker": rows * args.n / per_block}
            print(json.dumps(row), flush=True)
            out["clusters"].append(row)
    rate = out["clusters"][0]["pairs_per_s_per_worker"]
    one = out["clusters"][0]
    overhead = max(one["t_sharded_s"] - one["blocks"] * one["t_block_s"], 0.0)
    out["model"] = {
        "assumes": "1 GB/s network to every worker, rate_per_worker measured here (one core), "
                   "the overhead measured on the 1-worker cluster",
        "overhead_s": overhead,
        "k": {k: one["scatter_bytes"] / 1e9 + args.n * args.n / (k * rate) + overhead
              for k in (1, 2, 4, 8, 16, 32, 64)},
    }
    out["load_avg_at_end"] = os.getloadavg()
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(out, indent=1) + "\n")
    print("wrote", args.json)


if __name__ == "__main__":
    main()
