"""The paper's large controller at population 4096: time per generation and peak memory.

Usage::

    python bench/rl/memory.py [--popsize 4096] [--generations 2] [--env CartPole-v1]

Runs the first generations of the paper's latent loop (``DDIMSchedulerCosine(10)``,
``LatentBayesianGenerator`` with a 2-D ``RandomProjection``) on the (128, 128) MLP,
17,410 parameters on CartPole. The published code builds an N x N x D array for the
x0 estimate (4096^2 * 17,410 float32 = 1.17 TB); the library streams over key tiles
and holds O(N * D). Writes bench/results/rl-memory-znver4-2cpu-2026-12-02.json.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "bench" / "results" / "rl-memory-znver4-2cpu-2026-12-02.json"


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: KiB


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--popsize", type=int, default=4096)
    ap.add_argument("--generations", type=int, default=2, help="generations to time (of 10)")
    ap.add_argument("--env", default="CartPole-v1")
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args(argv)

    import diffevo  # noqa: PLC0415
    from diffevo.rl import EpisodeFitness, paper_weights  # noqa: PLC0415

    rss0 = peak_rss_mb()
    fit = EpisodeFitness(args.env, hidden=(128, 128))
    n, d = args.popsize, fit.num_params
    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, d))
    proj = diffevo.RandomProjection(d, 2, normalize=True, rng=rng)
    # warm the JIT on a small problem so the timings are of the work, not of compiling
    diffevo.x0_estimate(x[:64], np.ones(64), 0.5, latent=proj(x[:64]))
    gens = []
    for k, (_, alpha) in enumerate(diffevo.DDIMSchedulerCosine(10)):
        if k == args.generations:
            break
        t0 = time.perf_counter()
        r = fit(x)
        t1 = time.perf_counter()
        gen = diffevo.LatentBayesianGenerator(x, proj(x), paper_weights(r, 1.0), alpha, rng=rng)
        x = gen(noise=1.0)
        t2 = time.perf_counter()
        gens.append({"generation": k + 1, "rollout_s": t1 - t0, "x0_and_step_s": t2 - t1,
                     "total_s": t2 - t0, "best": float(r.max()), "mean": float(r.mean()),
                     "peak_rss_mb": peak_rss_mb()})
        print(f"generation {k + 1}: rollouts {t1 - t0:.1f} s, x0 + step {t2 - t1:.1f} s, "
              f"best {r.max():.0f}, peak RSS {peak_rss_mb():.0f} MB", flush=True)
    fit.close()
    dense_bytes = float(n) * n * d * 4
    doc = {
        "what": "large controller (128,128) at population N: time per generation, peak RSS",
        "env": args.env, "popsize": n, "num_params": d, "generations": gens,
        "peak_rss_mb": peak_rss_mb(), "rss_before_mb": rss0,
        "population_mb_float64": n * d * 8 / 2**20,
        "published_code_dense_array_tb_float32": dense_bytes / 1e12,
        "loadavg_at_end": os.getloadavg(), "cpu_count": os.cpu_count(),
        "backend_default": diffevo.available_backends("cpu"),
    }
    args.out.write_text(json.dumps(doc, indent=1) + "\n")
    print(f"peak RSS {doc['peak_rss_mb']:.0f} MB for a {doc['population_mb_float64']:.0f} MB "
          f"population (the dense N x N x D array would be {doc['published_code_dense_array_tb_float32']:.2f} TB)"
          f"; wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
