"""Functions with several global optima: how many of them ``result.modes`` holds.

    python bench/quality/multiglobal.py --seeds 20 \
        --json bench/results/multiglobal-znver4-2cpu-2026-12-03.json
    python bench/quality/multiglobal.py --seeds 20 \
        --functions rastrigin_max_3d,ackley_max_3d,rastrigin_3d,ackley_3d \
        --json bench/results/multiglobal-3d-znver4-2cpu-2026-12-03.json
    python bench/quality/multiglobal.py --seeds 5 --functions shubert_3d \
        --json bench/results/multiglobal-cec3d-znver4-2cpu-2026-12-03.json

For each function (the niching benchmarks of CEC 2013 and two classics) every global
optimum is found first by a dense grid and L-BFGS-B (scipy); a run finds an optimum when
one of its modes lies within 1e-3 of it (Euclidean, objective coordinates) with a value
within 1e-6 of the global value -- the check of issue 13 for Himmelblau. ``minimize`` /
``maximize`` run with the defaults (and ``vectorized=True``) on the function's box, and with
one attempt (``restarts=0``: the defaults restart while new global optima turn up); the
functions with many optima are also run with restarts (the modes of every attempt are
merged), at the budget CEC 2013 gives them; those with hundreds of basins, with a maxfev that
leaves polishing more than its default quarter of the run.
The 3-D functions also run with :data:`NICHING` (distances in the full space, step noise 0.1
instead of the default 1.0, 2048 x 25): it keeps the corner maxima and loses minima.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np
from scipy.optimize import minimize as scipy_minimize

import diffevo
import diffevo.modes
from diffevo import problems


def himmelblau(x):
    return (x[:, 0] ** 2 + x[:, 1] - 11) ** 2 + (x[:, 0] + x[:, 1] ** 2 - 7) ** 2


def camel(x):  # six-hump camel back
    a, b = x[:, 0], x[:, 1]
    return (4 - 2.1 * a**2 + a**4 / 3) * a**2 + a * b + (-4 + 4 * b**2) * b**2


def branin(x):
    a, b = x[:, 0], x[:, 1]
    return ((b - 5.1 / (4 * np.pi**2) * a**2 + 5 / np.pi * a - 6) ** 2
            + 10 * (1 - 1 / (8 * np.pi)) * np.cos(a) + 10)


def five_uneven_peak_trap(x):  # CEC 2013 F1 (maximised): two global maxima, at the bounds
    x = x[:, 0]
    return np.select([x < 2.5, x < 5, x < 7.5, x < 12.5, x < 17.5, x < 22.5, x < 27.5],
                     [80 * (2.5 - x), 64 * (x - 2.5), 64 * (7.5 - x), 28 * (x - 7.5),
                      28 * (17.5 - x), 32 * (x - 17.5), 32 * (27.5 - x)], 80 * (x - 27.5))


def equal_maxima(x):  # CEC 2013 F2 (maximised)
    return np.sin(5 * np.pi * x[:, 0]) ** 6


def uneven_decreasing_maxima(x):  # CEC 2013 F3 (maximised): one global maximum, at 0.08
    z = x[:, 0]
    return np.exp(-2 * np.log(2) * ((z - 0.08) / 0.854) ** 2) * np.sin(5 * np.pi * (z**0.75 - 0.05)) ** 6


def modified_rastrigin(x):  # CEC 2013 F10, k = (3, 4) (maximised): 12 global maxima
    return -(10 + 9 * np.cos(2 * np.pi * np.array([3.0, 4.0]) * x)).sum(axis=1)


def shubert(x):  # CEC 2013 F6, 2-D: 18 global minima
    out = np.ones(x.shape[0])
    for d in range(x.shape[1]):
        out *= sum(i * np.cos((i + 1) * x[:, d] + i) for i in range(1, 6))
    return out


def vincent(x):  # CEC 2013 F7, 2-D (maximised): 36 global maxima
    return np.mean(np.sin(10 * np.log(x)), axis=1)


def cross_in_tray(x):  # four global minima at (+-1.349, +-1.349)
    a, b = x[:, 0], x[:, 1]
    r = np.sqrt(a * a + b * b)
    return -1e-4 * (np.abs(np.sin(a) * np.sin(b) * np.exp(np.abs(100 - r / np.pi))) + 1) ** 0.1


def holder_table(x):  # four global minima at (+-8.055, +-9.665)
    a, b = x[:, 0], x[:, 1]
    return -np.abs(np.sin(a) * np.cos(b) * np.exp(np.abs(1 - np.sqrt(a * a + b * b) / np.pi)))


def bird(x):  # two global minima
    a, b = x[:, 0], x[:, 1]
    return (np.sin(a) * np.exp((1 - np.cos(b)) ** 2) + np.cos(b) * np.exp((1 - np.sin(a)) ** 2)
            + (a - b) ** 2)


def schaffer_n4(x):  # four global minima at (0, +-1.253), (+-1.253, 0), ends of hyperbolic valleys
    a, b = x[:, 0], x[:, 1]
    r2 = a * a + b * b
    return 0.5 + (np.cos(np.sin(np.abs(a * a - b * b))) ** 2 - 0.5) / (1 + 1e-3 * r2) ** 2


# name: (function, box per coordinate, dimensions, maximise, the CEC budget or None,
#        a larger maxfev to run with too, or None)
FUNCTIONS = {
    "himmelblau": (himmelblau, (-6.0, 6.0), 2, False, None, None),
    "six_hump_camel": (camel, ((-3.0, 3.0), (-2.0, 2.0)), 2, False, None, None),
    "branin": (branin, ((-5.0, 10.0), (0.0, 15.0)), 2, False, None, None),
    "five_uneven_peak_trap": (five_uneven_peak_trap, (0.0, 30.0), 1, True, None, None),
    "equal_maxima": (equal_maxima, (0.0, 1.0), 1, True, None, None),
    "uneven_decreasing_maxima": (uneven_decreasing_maxima, (0.0, 1.0), 1, True, None, None),
    "vincent_1d": (vincent, (0.25, 10.0), 1, True, None, None),
    "modified_rastrigin": (modified_rastrigin, (0.0, 1.0), 2, True, None, None),
    "cross_in_tray": (cross_in_tray, (-10.0, 10.0), 2, False, None, None),
    "holder_table": (holder_table, (-10.0, 10.0), 2, False, None, None),
    "bird": (bird, (-2 * np.pi, 2 * np.pi), 2, False, None, None),
    "schaffer_n4": (schaffer_n4, (-10.0, 10.0), 2, False, None, 102_400),
    # maximised in its usual box: four global maxima near the corners
    "ackley_max_32": (problems.ackley, (-32.768, 32.768), 2, True, None, 150_000),
    "shubert": (shubert, (-10.0, 10.0), 2, False, 200_000, None),
    "vincent": (vincent, (0.25, 10.0), 2, True, 200_000, None),
    # three dimensions: the paper's corner maxima (8 each), and the minima of the same
    # functions, where the niching settings' low step noise loses the one optimum
    "rastrigin_max_3d": (problems.rastrigin, (-4.0, 4.0), 3, True, None, None),
    "ackley_max_3d": (problems.ackley, (-4.0, 4.0), 3, True, None, None),
    "rastrigin_3d": (problems.rastrigin, (-5.12, 5.12), 3, False, None, None),
    "ackley_3d": (problems.ackley, (-32.768, 32.768), 3, False, None, None),
    # CEC 2013 F8: 81 global minima in 3-D (its budget: 400,000). (F9, Vincent 3-D, is left
    # out: the 61^3 grid of known_optima finds 82 of its 216 maxima, not a count to rely on)
    "shubert_3d": (shubert, (-10.0, 10.0), 3, False, 400_000, None),
}

#: the 3-D functions also run with distances in the full space (as the defaults) and the
#: low-D step noise, 2048 x 25 members (the same 51,200 evaluations): what keeps basins
NICHING = {"latent_dim": None, "noise": 0.1, "popsize": 2048, "maxiter": 25}


def box(spec, d: int) -> list[tuple[float, float]]:
    return list(spec) if isinstance(spec[0], tuple) else [spec] * d


def known_optima(f, bounds, maximize: bool, grid: int = 400) -> tuple[float, np.ndarray]:
    """(global value, (k, D) every global optimum) by a grid and L-BFGS-B from its best."""
    sign = -1.0 if maximize else 1.0
    # 3-D: 61^3 = 226,981 points (odd: the centre of a symmetric box is one of them)
    per_axis = {1: 20 * grid, 2: grid}.get(len(bounds), 61)
    axes = [np.linspace(lo, hi, per_axis) for lo, hi in bounds]
    pts = np.stack(np.meshgrid(*axes), -1).reshape(-1, len(bounds))
    start = pts[np.argsort(sign * f(pts))[:4000]]
    found = []
    for x in start:
        r = scipy_minimize(lambda z: sign * f(z[None])[0], x, method="L-BFGS-B", bounds=bounds,
                           options={"ftol": 1e-15, "gtol": 1e-12})
        found.append((r.fun, r.x))
    best = min(v for v, _ in found)
    optima: list[np.ndarray] = []
    for v, x in found:
        if v < best + 1e-8 and all(np.linalg.norm(x - o) > 1e-3 for o in optima):
            optima.append(x)
    return sign * best, np.array(optima)


def count(res, optima: np.ndarray, value: float) -> int:
    xs = np.array([m["x"] for m in res.modes]).reshape(len(res.modes), -1)
    fs = np.array([m["fun"] for m in res.modes])
    good = xs[np.abs(fs - value) < 1e-6]
    if not len(good):
        return 0
    return int(sum(np.min(np.linalg.norm(good - o, axis=1)) < 1e-3 for o in optima))


def write(path: Path, out: dict) -> None:
    """Write the bench's JSON (with this machine's facts) and say where."""
    out["machine"] = {"cpu_count": os.cpu_count(), "python": platform.python_version(),
                      "diffevo": diffevo.__version__}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=1))
    print(f"wrote {path}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", type=int, default=20)
    ap.add_argument("--functions", default=",".join(k for k, v in FUNCTIONS.items() if v[2] < 3),
                    help="comma-separated names (default: the 1-D and 2-D ones; the 3-D ones "
                         "have a JSON of their own, see above)")
    ap.add_argument("--json", type=Path, required=True)
    a = ap.parse_args(argv)
    out: dict = {"what": __doc__.split("\n\n")[0], "seeds": a.seeds, "results": {}}
    for name in a.functions.split(","):
        f, spec, d, maximize, budget, maxfev = FUNCTIONS[name]
        bounds = box(spec, d)
        value, optima = known_optima(f, bounds, maximize)
        solve = diffevo.maximize if maximize else diffevo.minimize
        # the defaults restart while new global optima turn up (restarts='auto'); one attempt
        # alone is what the defaults did before
        settings = {"defaults": {}, "one_attempt": {"restarts": 0}}
        if budget is not None:  # attempts of the default 1024 x 50 that fit the CEC budget,
            # with the quarter of their evaluations polishing may add (modes.POLISH_SHARE)
            attempts = int(budget // (51_200 * (1 + diffevo.modes.POLISH_SHARE)))
            settings["restarts"] = {"restarts": attempts - 1, "restart_popsize_factor": 1.0}
        if maxfev is not None:  # the modes outnumber the default polish budget
            settings["maxfev"] = {"maxfev": maxfev}
        if d == 3:
            settings["niching"] = NICHING
        cells = {}
        for label, kw in settings.items():
            t = time.perf_counter()
            found, nfev = [], []
            for s in range(a.seeds):
                res = solve(f, bounds=bounds, vectorized=True, seed=s, **kw)
                found.append(count(res, optima, value))
                nfev.append(int(res.nfev))
            cells[label] = {"options": kw, "found": found, "mean_found": float(np.mean(found)),
                            "all_found": int(sum(k == len(optima) for k in found)),
                            "max_nfev": max(nfev), "seconds": time.perf_counter() - t}
            print(f"{name:19s} {label:8s} optima {len(optima):2d}: all found in "
                  f"{cells[label]['all_found']}/{a.seeds} runs, mean {np.mean(found):.1f} "
                  f"(max nfev {max(nfev)})", flush=True)
        out["results"][name] = {"optima": len(optima), "value": value, "box": bounds, **cells}
    write(a.json, out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
