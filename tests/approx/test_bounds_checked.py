"""The Numba kernels of the grid, of mode finding and of the generation statistics under
NUMBA_BOUNDSCHECK=1, in a fresh process and cache: an out-of-range index there is silent
memory corruption (a query beyond the cell table once read past a row of cells and crashed
a fresh CI run), here an IndexError."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest


def run_bounds_checked(script: str, tmp_path) -> None:
    """Run ``script`` in a fresh interpreter with bounds checks and its own Numba cache
    (cached machine code was compiled without them); it must print "ok" last."""
    env = dict(os.environ, NUMBA_BOUNDSCHECK="1", NUMBA_CACHE_DIR=str(tmp_path / "cache"))
    result = subprocess.run([sys.executable, "-c", script], check=False,
                            capture_output=True, text=True, env=env, timeout=900)
    assert result.returncode == 0 and result.stdout.strip().endswith("ok"), result.stderr[-3000:]


GRID_SCRIPT = textwrap.dedent("""
    import numpy as np
    import diffevo
    from diffevo import backends
    from diffevo.approx import GridSums
    from diffevo.approx._cells import Cells

    rng = np.random.default_rng(0)
    for d in (1, 2, 3):
        y = rng.standard_normal((1500, d))
        v = rng.standard_normal((1500, 2))
        lw = np.log(rng.random(1500))
        lw[:50] = -np.inf
        lw -= lw[np.isfinite(lw)].max()
        q = np.concatenate([rng.standard_normal((300, d)) * 3.0, np.full((5, d), 40.0),
                            np.full((5, d), -40.0)])  # far beyond the table on both sides
        cells = Cells(y, 0.4, lw, v)
        for outer in (None, 0.4, 2.0):
            cells.sums(q, 20.0, outer=outer)
        cells.sums(q, 20.0, np.full(q.shape[0], 0.9), 3.0)
    x = rng.standard_normal((3000, 2))
    g = np.exp(-((x - 1.0) ** 2).sum(1) / 0.1)
    for method in ("fft", "cells"):
        for alpha in (0.3, 0.95, 0.999):
            for mode in ("reference", "exact"):
                gs = GridSums(backends.resolve("numba", x), method=method)
                diffevo.x0_estimate(x, g, alpha, backend=gs, mode=mode)
    print("ok")
""")


NEAREST_SCRIPT = textwrap.dedent("""
    import numpy as np
    from diffevo._nearest import nearest_better
    from diffevo.modes import find_modes_many

    rng = np.random.default_rng(0)
    for d in (1, 2, 3):
        sizes = [0, 1, 2, 0, 129, 300, 1, 5]
        u = np.round(rng.standard_normal((sum(sizes), d)), 1)
        u[-5:] = 0.0  # all identical
        offsets = np.concatenate([[0], np.cumsum(sizes)])
        for rows in (1, 7, 128, 1000):
            nearest_better(u, offsets, rows=rows)
        nearest_better(np.zeros((0, d)), [0])
        nearest_better(np.zeros((1, d)), [0, 1])
        items = [(u[a:b], (u[a:b] ** 2).sum(axis=1), None) for a, b in zip(offsets[:-1], offsets[1:])]
        find_modes_many(items, min_size=2)
    print("ok")
""")


GENSTATS_SCRIPT = textwrap.dedent("""
    import numpy as np
    from diffevo._genstats import stats_rows

    rng = np.random.default_rng(0)
    for r, n, d in ((1, 0, 2), (3, 1, 1), (2, 7, 0), (40, 600, 2), (5, 64, 9)):  # serial, parallel
        x = rng.standard_normal((r, n, d))
        x[:, : n // 2] = np.round(x[:, : n // 2], 1)  # shared cells: probes of the hash table
        f = rng.standard_normal((r, n))
        finite = rng.random((r, n)) > 0.3
        stats_rows(f, f, x, finite, False, 0.1)
        stats_rows(f, f, x, None, True, 1e-300)  # every member its own cell
    print("ok")
""")


@pytest.mark.slow
@pytest.mark.parametrize("script", [GRID_SCRIPT, NEAREST_SCRIPT, GENSTATS_SCRIPT],
                         ids=["grid", "nearest_better", "generation_statistics"])
def test_kernels_stay_in_bounds(script, tmp_path):
    run_bounds_checked(script, tmp_path)
