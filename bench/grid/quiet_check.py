"""Grid vs exact numba at N = 65,536, D = 2, one call each after a warm-up, in one run.

A short check for a quiet machine (the full sweep is run.py):
``python bench/grid/quiet_check.py [--json FILE]``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np

import diffevo

OUT = Path(__file__).resolve().parents[1] / "results" / "grid-quiet-znver4-2cpu-2026-12-02.json"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--json", type=Path, default=OUT)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    n = 65536
    x = rng.standard_normal((n, 2))
    g = np.exp(-((x - 1) ** 2).sum(1) / 0.1) + np.exp(-((x + 1) ** 2).sum(1) / 0.1)
    rows = []
    for a in (0.05, 0.5, 0.95, 0.999):
        diffevo.x0_estimate(x[:1000], g[:1000], a, approx="grid")
        t = time.perf_counter()
        xa = diffevo.x0_estimate(x, g, a, approx="grid")
        tg = time.perf_counter() - t
        t = time.perf_counter()
        xe = diffevo.x0_estimate(x, g, a, backend="numba")
        te = time.perf_counter() - t
        err = float(np.abs(xa - xe).max() / x.std())
        rows.append(dict(alpha=a, grid_s=tg, exact_numba_s=te, speedup=te / tg, err_over_std=err))
        print(f"alpha {a}: grid {tg:.3f} s, exact {te:.2f} s, {te / tg:.1f}x, err {err:.1e} std")
    doc = dict(what="grid vs exact numba, N=65536, D=2, float64, one call each", n=n, d=2,
               machine=dict(cpu=platform.processor() or platform.machine(), cores=os.cpu_count(),
                            load_average=os.getloadavg()), rows=rows)
    args.json.write_text(json.dumps(doc, indent=1) + "\n")


if __name__ == "__main__":
    main()
