"""Turn a pytest-benchmark JSON of bench/test_generation.py into a markdown table.

    python bench/summarize.py bench/results/<machine>-<date>.json [--stat median|min]

One row per (N, D): G pairs/s of each backend (N^2 / seconds per generation) and
its speed-up over numpy in the same run ("-" where a case was skipped), numba's
time per generation and the form it took (direct / dot).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict

BACKENDS = ("numpy", "cpp", "numba")


def load(path: str, stat: str) -> tuple[dict, dict]:
    with open(path, encoding="utf-8") as fh:
        data = json.load(fh)
    rows: dict = defaultdict(dict)
    for bench in data["benchmarks"]:
        info = bench.get("extra_info", {})
        if "N" not in info or "backend" not in info:
            continue
        seconds = bench["stats"][stat]
        rows[(info["N"], info["D"])][info["backend"]] = {
            "gpairs": info["N"] ** 2 / seconds / 1e9,
            "seconds": seconds,
            "path": info.get("path", ""),
        }
    return rows, data.get("machine_info", {})


def fmt_rate(x: float) -> str:
    return f"{x:.3g}" if x < 100 else f"{x:.0f}"


def fmt_time(s: float) -> str:
    return f"{s * 1e3:.3g} ms" if s < 1 else f"{s:.3g} s"


def table(rows: dict) -> str:
    head = ["N", "D"]
    for b in BACKENDS:
        head.append(f"{b} Gpairs/s" + ("" if b == "numpy" else " (x numpy)"))
    head += ["numba s/generation", "numba path"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for (n, d) in sorted(rows):
        r = rows[(n, d)]
        base = r.get("numpy", {}).get("gpairs")
        cells = [f"{n:,}", str(d)]
        for b in BACKENDS:
            if b not in r:
                cells.append("-")
                continue
            g = r[b]["gpairs"]
            cell = fmt_rate(g)
            if b != "numpy" and base:
                cell += f" ({g / base:.0f}x)" if g / base >= 10 else f" ({g / base:.1f}x)"
            cells.append(cell)
        nb = r.get("numba")
        cells.append(fmt_time(nb["seconds"]) if nb else "-")
        cells.append(nb["path"] if nb else "-")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("json", help="a pytest-benchmark JSON written by --benchmark-json")
    ap.add_argument("--stat", default="median", choices=("median", "min", "mean"),
                    help="which statistic of the rounds to report (default: median)")
    args = ap.parse_args(argv)
    rows, machine = load(args.json, args.stat)
    if not rows:
        print(f"{args.json}: no bench/test_generation.py results in it", file=sys.stderr)
        return 1
    cpu = machine.get("cpu_model") or machine.get("cpu", {}).get("brand_raw", "?")
    blas = "; ".join(f"{b.get('internal_api')} {b.get('version')} {b.get('architecture')}"
                     for b in machine.get("blas", []))
    print(f"Machine: {cpu}, {machine.get('logical_cpus', '?')} logical CPUs; BLAS: {blas or '?'}; "
          f"statistic: {args.stat} of the rounds\n")
    print(table(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
