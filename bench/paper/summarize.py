"""Markdown tables from the JSON of bench/paper/run.py and bench/quality/run.py (for the README).

    python bench/paper/summarize.py bench/results/paper-znver4-2cpu-2026-12-02.json \
        bench/results/paper-modes-znver4-2cpu-2026-12-02.json bench/results/quality-znver4-2cpu-2026-12-02.json
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np


def _ms(v: list[float]) -> str:
    a = np.asarray(v, dtype=np.float64)
    return f"{a.mean():.3g} ({a.std(ddof=1) / np.sqrt(a.size):.2g})" if a.size > 1 else f"{a.mean():.3g}"


def paper(doc: dict) -> str:
    fns = list(doc["reference"]["T0.5"])
    rows = ["| function | reference T=0.5 err / H | reference T=1 err / H | diffevo err / H | pycma IPOP err / H |",
            "|---|---|---|---|---|"]
    for fn in fns:
        cells = [doc["reference"]["T0.5"][fn], doc["reference"]["T1"][fn]]
        cells += [doc[c][fn] for c in ("diffevo", "cma") if c in doc]
        rows.append(f"| {fn} | " + " | ".join(f"{_ms(c['err'])} / {_ms(c['H'])}" for c in cells) + " |")
    return "\n".join(rows)


def modes(doc: dict) -> str:
    rows = ["| function | optima | diffevo: runs with all found | mean found | pycma IPOP: all found | mean found |",
            "|---|---|---|---|---|---|"]
    for fn, k in doc["optima"].items():
        d = np.asarray(doc["found"]["diffevo"][fn])
        c = np.asarray(doc["found"].get("cma", {}).get(fn, [np.nan]))
        rows.append(f"| {fn} | {k} | {np.mean(d == k):.0%} of {d.size} | {d.mean():.2f} | "
                    f"{np.mean(c == k):.0%} of {c.size} | {np.nanmean(c):.2f} |")
    return "\n".join(rows)


def quality(doc: dict) -> str:
    rows = ["| D | problem | diffevo.minimize | pycma default popsize | IPOP-CMA-ES | seeds |",
            "|---|---|---|---|---|---|"]
    for dim, fns in doc["results"].items():
        for fn, sol in fns.items():
            med = [f"{sol[k]['median']:.2g}" if k in sol else "-" for k in ("diffevo", "cma", "ipop-cma")]
            n = len(next(iter(sol.values()))["best"])
            rows.append(f"| {dim[1:]} | {fn} | " + " | ".join(med) + f" | {n} |")
    return "\n".join(rows)


def main(argv: list[str]) -> int:
    for path in argv:
        doc = json.loads(Path(path).read_text())
        if "reference" in doc:
            print(paper(doc))
        elif "found" in doc:
            print(modes(doc))
        elif "results" in doc:
            print(quality(doc))
        print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
