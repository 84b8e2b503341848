"""``diffevo demo``: Diffusion Evolution finds both peaks of a two-peak landscape."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from diffevo import backends
from diffevo._device import to_numpy
from diffevo.examples import two_peak_density
from diffevo.core import x0_estimate
from diffevo.reference import DiffEvo

from ._checks import backend_name, int_at_least, output_path

PEAKS = np.array([[-1.0, -1.0], [1.0, 1.0]])
STD = 0.1  # width of each peak; members within 0.1 of a peak count as "on" it


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("demo", help="find both peaks of the two-peak landscape",
                              description=__doc__)
    p.add_argument("--popsize", type=int_at_least(2), default=512,
                   help="population size (default 512)")
    p.add_argument("--steps", type=int_at_least(2), default=100,
                   help="schedule length (default 100)")
    p.add_argument("--seed", type=int_at_least(0), default=0, help="random seed (default 0)")
    p.add_argument("--backend", default="auto", type=backend_name,
                   help="auto, numpy, cpp, numba or cuda (must run here; default auto)")
    p.add_argument("--plot", default="demo.png", type=output_path("demo.png"),
                   help="PNG to write ('' for none; a folder gets demo.png; default demo.png)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    rng = np.random.default_rng(args.seed)
    x_init = rng.normal(size=(args.popsize, 2))
    be = backends.resolve("auto", x_init).name if args.backend == "auto" else args.backend
    x_run = x_init
    if be == "cuda":  # the cuda backend works on device arrays: run the population there
        import cupy  # noqa: PLC0415

        x_run = cupy.asarray(x_init)

    def fitness(x):
        return two_peak_density(x, std=STD)

    opt = DiffEvo(num_step=args.steps, noise=1.0, backend=be, seed=rng)
    # one untimed estimate first, so that the time per generation excludes Numba's
    # one-off compilation (cached on disk after the first run)
    x0_estimate(x_run, fitness(x_run), 0.5, backend=be)
    start = time.perf_counter()
    final = to_numpy(opt.optimize(fitness, x_run))
    elapsed = time.perf_counter() - start

    dist = np.linalg.norm(final[:, None, :] - PEAKS[None], axis=-1)  # (N, 2)
    on_peak = [(dist[:, k] < STD).sum() for k in range(len(PEAKS))]
    values = fitness(final)
    print("Diffusion Evolution on the two-peak landscape (peaks at (-1,-1) and (1,1), std 0.1)")
    print(f"  population {args.popsize}, {args.steps - 1} generations, seed {args.seed}, "
          f"backend {be}")
    for k, peak in enumerate(PEAKS):
        print(f"  members within {STD} of peak ({peak[0]:+.0f}, {peak[1]:+.0f}): {on_peak[k]}")
    print(f"  best fitness {values.max():.6f} (1 on a peak), median {np.median(values):.6f}")
    print(f"  time per generation {1e3 * elapsed / (args.steps - 1):.2f} ms "
          f"(including fitness evaluation)")
    if args.plot:
        _plot(x_init, final, fitness, args.plot)
    return 0


def _plot(initial: np.ndarray, final: np.ndarray, fitness, path: Path) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("  no picture: matplotlib is missing -- pip install 'diffevo[plot]'")
        return
    grid = np.linspace(-2.5, 2.5, 301)
    gx, gy = np.meshgrid(grid, grid)
    values = fitness(np.stack([gx.ravel(), gy.ravel()], axis=1)).reshape(gx.shape)
    fig, ax = plt.subplots(figsize=(5.5, 5))
    ax.contourf(gx, gy, values, levels=30, cmap="viridis")
    ax.scatter(initial[:, 0], initial[:, 1], s=4, c="0.75", alpha=0.5, linewidths=0,
               label="initial population")
    ax.scatter(final[:, 0], final[:, 1], s=6, c="white", edgecolors="black", linewidths=0.3,
               label=f"final population ({len(final)})")
    ax.set(xlim=(-2.5, 2.5), ylim=(-2.5, 2.5), aspect="equal", xlabel="$x_1$", ylabel="$x_2$",
           title="diffevo demo: two peaks, one run")
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    print(f"  picture written to {path}")
