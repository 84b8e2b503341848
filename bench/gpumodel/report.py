"""The model of a built module, its markdown table, the resource report and the command
line (``python bench/gpu_model.py``)."""

from __future__ import annotations

import argparse
import dataclasses
import datetime as _dt
import json
import sys
from pathlib import Path
from typing import Any

from . import newpaths
from .hardware import CASES, GPUS, TARGETS
from .predict import floors, predict
from .profile import (
    KernelProfile,
    auto_path,
    load_profiles,
    read_tilings,
    tensor_core_min_d,
)
from .sass import (
    cuda_module_path,
    dump_sass,
    has_local_memory,
    list_archs,
    resource_usage,
)

RESULTS = Path(__file__).resolve().parents[1] / "results"


def _res_for(resources: list[dict], prof: KernelProfile) -> dict:
    for r in resources:
        if r["arch"] == prof.arch and (r["demangled"] == prof.name or r["kernel"] == prof.name):
            return r
    return {}


def model(module: Path, cases=None, gpus=None) -> dict[str, Any]:
    cases = CASES + [(100000, 1024)] if cases is None else cases
    gpus = list(GPUS.values()) if gpus is None else gpus
    tilings = read_tilings()
    profiles, resources = load_profiles(module)
    preds = []
    for n, d in cases:
        for gpu in gpus:
            for path in ("simt", "mma"):
                prof = profiles.get((gpu.sass, path, False))
                if prof is None:
                    continue
                p = predict(prof, _res_for(resources, prof), tilings[path], gpu, n, d)
                row = p.as_dict()
                row["dv"] = d
                row["auto"] = path == auto_path(d)
                row["target_s"] = TARGETS.get((n, d)) if gpu.name.startswith("H100") else None
                preds.append(row)
    new = new_path_predictions(module, gpus)
    taken = {(r["gpu"], r["n"], r["d"], r["dv"]) for r in new}
    for row in preds:  # where a new body runs on sm_90a (the table below), it replaces this path
        row["replaced_on_sm_90a"] = (row["gpu"], row["n"], row["d"], row["dv"]) in taken
    return {
        "kind": "model from machine code (SASS), not a measurement",
        "module": module.name,
        "date": _dt.date.today().isoformat(),
        "gpus": {g.name: dataclasses.asdict(g) for g in gpus},
        "tilings": {k: dataclasses.asdict(v) for k, v in tilings.items()},
        "auto_mma_min_d": tensor_core_min_d(),
        "profiles": {f"{a}/{p}/{'online' if o else 'reference'}": prof.as_dict()
                     for (a, p, o), prof in sorted(profiles.items())},
        "predictions": preds,
        "new_paths": new,
        "floors": {f"{n}x{d}": floors(GPUS["H100-SXM5-80GB"], n, d) for (n, d) in TARGETS},
    }


def new_path_predictions(module: Path, gpus) -> list[dict]:
    """Issue 17's bodies (gpumodel.newpaths) on the GPUs whose code has them (sm_90a),
    for newpaths.NEW_CASES; entries carry n, d, dv and the H100 target."""
    try:
        from diffevo import _core

        cfg = _core.kernel_configs()
        shared, min_rows = cfg["wgmma_f32"]["shared_bytes"], cfg["simt_small_f32"]["min_rows"]
    except (ImportError, KeyError):
        return []
    rows = []
    for gpu in gpus:
        if gpu.sass != "sm_90a":
            continue
        small, wg = newpaths.load(module, shared, gpu.sass)
        for n, d, dv in newpaths.NEW_CASES:
            row = newpaths.predict_new(small, wg, gpu, n, d, dv, min_rows)
            if row is None:
                continue
            row["auto"] = True
            row["target_s"] = newpaths.NEW_TARGETS.get((n, d, dv)) if gpu.name.startswith("H100") else None
            rows.append(row)
    return rows


def resources_report(module: Path) -> dict[str, Any]:
    """Registers per thread and shared memory per block, per kernel and arch."""
    funcs = {(f.arch, f.name): f for f in dump_sass(module)}
    rows = []
    for r in resource_usage(module):
        fn = funcs.get((r["arch"], r["kernel"]))
        row = dict(r)
        row["ldl_stl"] = len(has_local_memory(fn)) if fn else None
        row["mufu_ex2"] = sum(1 for i in fn.instrs if i.opcode.startswith("MUFU.EX2")) if fn else None
        row["hmma"] = sum(1 for i in fn.instrs if i.base in ("HMMA", "HGMMA")) if fn else None
        rows.append(row)
    return {"module": module.name, "date": _dt.date.today().isoformat(),
            "archs": list_archs(module), "kernels": rows}



def markdown(result: dict[str, Any]) -> str:
    """The README table: seconds per generation by GPU, the path auto takes, the bound."""
    gpus = list(result["gpus"])
    by_case: dict[tuple[int, int], dict[str, dict]] = {}
    for row in result["predictions"]:
        if row["auto"]:
            by_case.setdefault((row["n"], row["d"]), {})[row["gpu"]] = row
    lines = [
        ("Model from machine code (SASS of the built module), not a measurement: seconds per "
         "generation (x0 estimate + DDIM step), float32, the path `auto` takes (tensor cores "
         f"from D = {result['auto_mma_min_d']}; a unit-variance population at alpha = 0.5 stays "
         "within cuda_backend.MMA_MAX_SPREAD)."),
        "",
        "| N | D | path | " + " | ".join(f"{g} s/gen" for g in gpus) + " | bound (H100) | H100 target |",
        "|---|---|---|" + "---|" * len(gpus) + "---|---|",
    ]
    h100 = next((g for g in gpus if g.startswith("H100")), gpus[0])
    for (n, d), rows in sorted(by_case.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        h = rows.get(h100)
        target = h.get("target_s") if h else None
        verdict = "" if target is None else (f"{target} s: " + ("met" if h["seconds"] <= target else "**missed**"))
        cells = " | ".join(f"{rows[g]['seconds']:.3g}" if g in rows else "-" for g in gpus)
        lines.append(f"| {n:,} | {d} | {h['path'] if h else '?'} | {cells} | "
                     f"{h['bound'] if h else '-'} | {verdict} |")
    new = result.get("new_paths", [])
    if new:
        lines += ["", ("Issue 17's bodies on sm_90a (what `auto` takes there; `dv` = value columns): seconds per "
                       "generation, `overlap` = the slowest unit (this model's lower bound), `serial` = issue + "
                       "tensor time (one warpgroup per SM waiting on each HGMMA group: nothing hides the other)."),
                  "", "| N | D | dv | path | H100 overlap | H100 serial | bound | H100 target |",
                  "|---|---|---|---|---|---|---|---|"]
        for r in new:
            if not r["gpu"].startswith("H100"):
                continue
            t = r.get("target_s")
            verdict = "" if t is None else (f"{t} s: " + ("met" if r["seconds"] <= t else "**missed**")
                                            + ("" if r["seconds_serial"] <= t else " (serial: missed)"))
            lines.append(f"| {r['n']:,} | {r['d']} | {r['dv']} | {r['path']} | {r['seconds']:.3g} | "
                         f"{r['seconds_serial']:.3g} | {r['bound']} | {verdict} |")
    fl = result.get("floors", {})
    if fl:
        lines += ["", ("Floors on the H100 SXM for the target cases (seconds; one unit alone, zero "
                       "overhead -- what no kernel of that form can beat):"), "",
                  "| N | D | " + " | ".join(next(iter(fl.values())).keys()) + " |",
                  "|---|---|" + "---|" * len(next(iter(fl.values()))) ]
        for key, row in fl.items():
            n, d = map(int, key.split("x"))
            lines.append(f"| {n:,} | {d} | " + " | ".join(f"{v:.3g}" for v in row.values()) + " |")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="A performance model of diffevo's CUDA kernels, read from their "
                                 "machine code (SASS): a model, not a measurement.")
    ap.add_argument("--module", type=Path, help="the built diffevo/_cuda*.so (default: the installed one)")
    ap.add_argument("--json", type=Path, help="write the model here "
                    "(default bench/results/gpu-model-<date>.json)")
    ap.add_argument("--resources", action="store_true",
                    help="also write bench/results/sass-resources-<date>.json")
    ap.add_argument("--no-write", action="store_true", help="print only")
    args = ap.parse_args(argv)
    module = args.module or cuda_module_path()
    if module is None:
        print("gpu_model: diffevo was built without CUDA (no diffevo/_cuda*.so); rebuild with "
              "DIFFEVO_ENABLE_CUDA=ON", file=sys.stderr)
        return 2
    result = model(module)
    print(markdown(result))
    if not args.no_write:
        today = result["date"]
        out = args.json or RESULTS / f"gpu-model-{today}.json"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result, indent=1, default=str) + "\n")
        print(f"\nwrote {out}")
        if args.resources:
            res_out = RESULTS / f"sass-resources-{today}.json"
            res_out.write_text(json.dumps(resources_report(module), indent=1) + "\n")
            print(f"wrote {res_out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
