"""Above two dimensions: the latent and the step noise against corner maxima and one minimum.

    python bench/quality/latent_noise.py --seeds 10 \
        --json bench/results/latent-noise-znver4-2cpu-2026-12-03.json      # ~10 min

Per setting (``minimize``/``maximize`` options on top of the defaults, ``vectorized=True``):
how many of the 2^D corner maxima of Rastrigin and Ackley in [-4, 4]^D ``result.modes`` holds
(a mode within 1e-3 of the corner, its value within 1e-6: the check of issue 13), and the best
value of the same functions minimised in their usual boxes (one optimum, value 0). The
defaults: step noise 1.0 above D = 2, distances in the full space at D = 3 and in a random
2-D latent above (the latent at D = 3 too before this bench); the rows show what the latent
and the noise each do.
"""

from __future__ import annotations

import argparse
import itertools
import sys
from pathlib import Path

import numpy as np
from scipy.optimize import minimize as scipy_minimize

import diffevo
from diffevo import problems

sys.path.insert(0, str(Path(__file__).resolve().parent))
from multiglobal import count, write  # noqa: E402 - the check of issue 13, the JSON writer

FULL = {"latent_dim": None}
#: (D, label, options)
SETTINGS = [
    (3, "defaults", {}),
    *[(3, f"full space, noise {v}", dict(FULL, noise=v)) for v in (0.1, 0.2, 0.35, 0.5, 1.0)],
    (3, "2-D latent, noise 1.0 (D = 3's default before)", {"latent_dim": 2}),
    (3, "2-D latent, noise 0.1", {"latent_dim": 2, "noise": 0.1}),
    (3, "3-D random latent, noise 1.0", {"latent_dim": 3}),
    (3, "full space, noise 0.1, 2048 x 25", dict(FULL, noise=0.1, popsize=2048, maxiter=25)),
    (4, "defaults", {}),
    (4, "full space, noise 0.1", dict(FULL, noise=0.1)),
    (4, "full space, noise 1.0", FULL),
    (5, "defaults", {}),
    (5, "full space, noise 0.1", dict(FULL, noise=0.1)),
]
#: minimised: the usual boxes
MIN_BOX = {"rastrigin": 5.12, "ackley": 32.768}


def corners(f, d: int) -> tuple[np.ndarray, float]:
    """The 2^D corner maxima of f in [-4, 4]^D (one solve, then the symmetry) and their value."""
    r = scipy_minimize(lambda z: -f(z[None])[0], np.full(d, 3.5), method="L-BFGS-B",
                       bounds=[(-4, 4)] * d, options={"ftol": 1e-15, "gtol": 1e-12})
    c = abs(float(r.x[0]))
    optima = np.array(list(itertools.product([-c, c], repeat=d)))
    return optima, float(f(optima)[0])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--json", type=Path, required=True)
    a = ap.parse_args(argv)
    rows = []
    for d, label, kw in SETTINGS:
        row: dict = {"D": d, "setting": label, "options": kw}
        for name in ("rastrigin", "ackley"):
            f = getattr(problems, name)
            optima, value = corners(f, d)
            hits = [count(diffevo.maximize(f, bounds=[(-4, 4)] * d, vectorized=True, seed=s, **kw),
                          optima, value) for s in range(a.seeds)]
            b = MIN_BOX[name]
            best = [float(diffevo.minimize(f, bounds=[(-b, b)] * d, vectorized=True, seed=s,
                                           **kw).fun) for s in range(a.seeds)]
            row[name] = {"corners": len(optima), "found": hits, "mean_found": float(np.mean(hits)),
                         "all_found": int(sum(h == len(optima) for h in hits)),
                         "min_best": best, "min_median": float(np.median(best)),
                         "min_worst": float(np.max(best))}
        rows.append(row)
        print(f"D={d} {label:34s} " + "  ".join(
            f"{n}: corners {row[n]['mean_found']:.1f}/{row[n]['corners']} "
            f"min median {row[n]['min_median']:.2g} worst {row[n]['min_worst']:.2g}"
            for n in ("rastrigin", "ackley")), flush=True)
    write(a.json, {"what": __doc__.split("\n\n")[0], "seeds": a.seeds, "rows": rows})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
