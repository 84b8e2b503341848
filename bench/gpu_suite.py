"""One command for a person with a GPU: validate diffevo's CUDA path and measure it.

    python bench/gpu_suite.py                 # everything, ~10-20 minutes on an H100
    python bench/gpu_suite.py --quick         # fewer benchmark rounds, no million-member runs
    python bench/gpu_suite.py --skip-sanitizer --skip-million

Steps (each recorded, none stops the others):

1. environment: device, driver, CuPy, diffevo build (``diffevo._core.cuda_built``);
2. the GPU tests: ``pytest -m "gpu or cuda_build"`` over tests/ (golden cases, random
   cases, both kernel paths, both ends of the schedule, torch/CAI interop, SASS checks,
   the CMake package with its CUDA example);
3. ``compute-sanitizer --tool memcheck`` and ``--tool racecheck`` over a selection of the
   kernel tests (both paths, tails, batches, KDE, exact mode), when compute-sanitizer is
   installed (CUDA toolkit);
4. the GPU benchmarks (bench/test_gpu.py, pytest-benchmark, synchronised) and
   bench/million.py (a million members, D = 2 and 64: seconds per generation, peak memory);
5. issue 17's bodies (the sm_90a warpgroup path, the small-D SIMT body) checked against a
   float64 oracle on shapes that take them, and the issue's target cases timed on them;
6. the performance model (bench/gpumodel, run as bench/gpu_model.py) of the same module for the same cases.

Writes ONE JSON, ``bench/results/gpu-suite-<device>-<date>.json``: the measured figures
beside the model's predictions (measured / model per case), test and sanitizer outcomes.
Exit status 0 only when the tests and the sanitizers passed.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RESULTS = HERE / "results"

import gpumodel

#: kernel tests run under compute-sanitizer (regexes over test node ids): both paths,
#: tails (primes), batches, KDE, exact mode, both schedule ends -- small sizes, since
#: the sanitizers slow kernels down by 10-100x
SANITIZER_SELECTION = [
    r"test_pairwise_sums_batched_equals_numpy_per_batch\[",
    r"test_random_reference_mode\[(7-2|257-2|509-33|1031-128)-(1e-06|0.9999)-",
    r"test_random_exact_mode\[31-5-",
    r"test_random_latent_and_kde\[101-64-2-",
    r"test_kde_density\[97-2-",
    r"test_batched_x0_on_device\[",
]


def _run(cmd, timeout, env=None, log=None) -> subprocess.CompletedProcess:
    t0 = time.perf_counter()
    print(f"$ {' '.join(map(str, cmd))}", flush=True)
    try:
        out = subprocess.run(list(map(str, cmd)), cwd=ROOT, capture_output=True, text=True,
                             timeout=timeout, env=env)
    except subprocess.TimeoutExpired as err:
        out = subprocess.CompletedProcess(err.cmd, 124, err.stdout or "", (err.stderr or "") + "\nTIMEOUT")
        if isinstance(out.stdout, bytes):
            out.stdout = out.stdout.decode(errors="replace")
    out.seconds = time.perf_counter() - t0  # type: ignore[attr-defined]
    if log is not None:
        log.write_text(f"$ {' '.join(map(str, cmd))}\n\n{out.stdout}\n{out.stderr}")
    tail = (out.stdout or "").strip().splitlines()[-3:]
    print("   " + "\n   ".join(tail) + f"\n   (exit {out.returncode}, {out.seconds:.0f} s)", flush=True)
    return out


def _junit_counts(path: Path) -> dict:
    if not path.is_file():
        return {"error": "no junit report"}
    root = ET.parse(path).getroot()
    suites = [root] if root.tag == "testsuite" else list(root)
    keys = ("tests", "failures", "errors", "skipped")
    counts = {k: sum(int(s.get(k, 0)) for s in suites) for k in keys}
    failed = []
    for case in root.iter("testcase"):
        if case.find("failure") is not None or case.find("error") is not None:
            failed.append(f"{case.get('classname')}::{case.get('name')}")
    counts["passed"] = counts["tests"] - counts["failures"] - counts["errors"] - counts["skipped"]
    counts["failed_tests"] = failed[:50]
    return counts


def environment() -> dict:
    env = {"python": sys.version.split()[0], "platform": platform.platform(), "date": _dt.date.today().isoformat()}
    try:
        import diffevo
        from diffevo import _core
        from diffevo.backends import cuda_backend as cb

        env.update(diffevo=diffevo.__version__, cuda_built=bool(getattr(_core, "cuda_built", False)),
                   cuda_unavailable_reason=cb.unavailable_reason(), device_count=cb.device_count())
    except Exception as err:  # report, never stop
        env["diffevo_error"] = repr(err)
    try:
        import cupy as cp

        dev = cp.cuda.Device()
        props = cp.cuda.runtime.getDeviceProperties(dev.id)
        name = props["name"].decode() if isinstance(props["name"], bytes) else str(props["name"])
        env.update(device=name, compute_capability=f"{props['major']}.{props['minor']}",
                   sms=props["multiProcessorCount"], clock_khz=props.get("clockRate"),
                   memory_bytes=props["totalGlobalMem"], l2_bytes=props.get("l2CacheSize"),
                   driver=cp.cuda.runtime.driverGetVersion(), runtime=cp.cuda.runtime.runtimeGetVersion(),
                   cupy=cp.__version__)
    except Exception as err:
        env["cupy_error"] = repr(err)
    try:
        import torch

        env["torch"] = torch.__version__
    except Exception:
        env["torch"] = None
    smi = shutil.which("nvidia-smi")
    if smi:
        out = subprocess.run([smi, "--query-gpu=name,driver_version,clocks.max.sm,clocks.max.mem",
                              "--format=csv,noheader"], capture_output=True, text=True)
        env["nvidia_smi"] = out.stdout.strip()
    return env


def model_gpu_for(device_name: str | None) -> str | None:
    """The modelled GPU a device name corresponds to (H100 PCIe and others: none)."""
    name = (device_name or "").upper()
    if "H200" in name:
        return "H200-SXM-141GB"
    if "H100" in name and "PCIE" not in name:
        return "H100-SXM5-80GB"
    if "A100" in name and "PCIE" not in name:
        return "A100-SXM4-80GB"
    return None


def find_sanitizer() -> str | None:
    found = shutil.which("compute-sanitizer")
    if found:
        return found
    for cand in [Path(os.environ.get("CUDA_HOME", "/usr/local/cuda")) / "bin" / "compute-sanitizer",
                 *Path("/opt/nvidia").glob("**/compute-sanitizer"),
                 *Path("/usr/local").glob("cuda*/bin/compute-sanitizer")]:
        if cand.is_file() and os.access(cand, os.X_OK):
            return str(cand)
    return None


def sanitizer_targets(workdir: Path) -> list[str]:
    out = _run([sys.executable, "-m", "pytest", "tests/kernels/test_cuda_numerics.py", "-m", "gpu", "--collect-only",
                "-q", "-p", "no:cacheprovider"], timeout=300, log=workdir / "collect.log")
    ids = [line.strip() for line in out.stdout.splitlines() if "::" in line]
    chosen = [i for i in ids if any(re.search(p, i) for p in SANITIZER_SELECTION)]
    return chosen


def run_sanitizers(workdir: Path, timeout: int) -> dict:
    exe = find_sanitizer()
    if exe is None:
        return {"skipped": "compute-sanitizer not found (install the CUDA toolkit)"}
    targets = sanitizer_targets(workdir)
    if not targets:
        return {"skipped": "no GPU kernel tests collected (is a device present?)"}
    results = {"tool": exe, "tests": targets}
    for tool in ("memcheck", "racecheck"):
        junit = workdir / f"sanitizer-{tool}.xml"
        cmd = [exe, "--tool", tool, "--error-exitcode", "86", "--print-limit", "20",
               sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "-x", f"--junitxml={junit}",
               *targets]
        out = _run(cmd, timeout=timeout, log=workdir / f"sanitizer-{tool}.log")
        summary = re.findall(r"=========\s+(ERROR SUMMARY: .*|RACECHECK SUMMARY: .*)", out.stdout + out.stderr)
        results[tool] = {"exit": out.returncode, "seconds": round(out.seconds, 1),
                         "summary": summary[-3:], "pytest": _junit_counts(junit),
                         "ok": out.returncode == 0}
    return results


def run_benchmarks(workdir: Path, quick: bool, timeout: int) -> dict:
    bench_json = workdir / "bench.json"
    cmd = [sys.executable, "-m", "pytest", "bench/test_gpu.py", "-p", "no:cacheprovider", "-q",
           "--benchmark-enable", f"--benchmark-json={bench_json}", f"--junitxml={workdir / 'bench.xml'}",
           # all skipped (no device): pytest-benchmark warns that it saved nothing
           "-W", "ignore::pytest_benchmark.logger.PytestBenchmarkWarning"]
    if quick:
        cmd += ["-k", "not 1048576 and not 100000"]
    out = _run(cmd, timeout=timeout, log=workdir / "bench.log")
    rows = []
    try:
        benchmarks = json.loads(bench_json.read_text()).get("benchmarks", [])
    except (OSError, ValueError):
        benchmarks = []
    if benchmarks:
        for b in benchmarks:
            info = b.get("extra_info", {})
            rows.append({"name": b["name"], "what": info.get("what"), "N": info.get("N"), "D": info.get("D"),
                         "path": info.get("path"), "seconds_mean": b["stats"]["mean"],
                         "seconds_min": b["stats"]["min"], "rounds": b["stats"]["rounds"],
                         "gpairs_per_s": info.get("gpairs_per_s"), "target_s": info.get("target_s")})
    return {"exit": out.returncode, "pytest": _junit_counts(workdir / "bench.xml"), "cases": rows}


def run_million(workdir: Path, timeout: int) -> dict:
    out_json = workdir / "million.json"
    out = _run([sys.executable, "bench/million.py", "--json", out_json], timeout=timeout,
               log=workdir / "million.log")
    if out_json.is_file():
        return {"exit": out.returncode, **json.loads(out_json.read_text())}
    return {"exit": out.returncode, "error": (out.stderr or "")[-2000:]}


#: the Python kernel-path names (diffevo.backends.PATHS) -> the model's (the C++ kernels')
MODEL_PATH = {"direct": "simt", "dot": "mma"}


def attach_model(result: dict) -> None:
    """Model predictions for the measured cases, and measured / model ratios."""
    module = gpumodel.cuda_module_path()
    if module is None:
        result["model"] = {"skipped": "no diffevo/_cuda module"}
        return
    try:
        cases = sorted({(c["N"], c["D"]) for c in result.get("benchmarks", {}).get("cases", []) if c.get("N")}
                       | set(gpumodel.CASES))
        model = gpumodel.model(module, cases=cases)
    except Exception as err:
        result["model"] = {"error": repr(err)}
        return
    result["model"] = {"kind": model["kind"], "predictions": model["predictions"],
                       "new_paths": model.get("new_paths", []), "markdown": gpumodel.markdown(model)}
    for t in result.get("new_paths", {}).get("timings", []):  # the pairwise sums alone: kernel_seconds
        for p in model.get("new_paths", []):
            if p["gpu"] == model_gpu_for(result["environment"].get("device")) and (p["n"], p["d"], p["dv"]) == (
                    t["n"], t["d"], t["dv"]):
                t["model_kernel_seconds"] = p["kernel_seconds"]
                t["measured_over_model"] = t["seconds"] / p["kernel_seconds"] if p["kernel_seconds"] else None
    target_gpu = model_gpu_for(result["environment"].get("device"))
    result["model"]["matched_gpu"] = target_gpu
    if target_gpu is None:
        return
    pred = {(p["n"], p["d"], p["path"]): p for p in model["predictions"] if p["gpu"] == target_gpu}
    for case in result.get("benchmarks", {}).get("cases", []):
        path = case.get("path")
        if path in (None, "auto"):
            path = gpumodel.auto_path(case["D"])
        path = MODEL_PATH.get(path, path)
        p = pred.get((case["N"], case["D"], path))
        if p is None:
            continue
        model_s = p["seconds"] if case.get("what") == "generation" else p["kernel_seconds"]
        case["model_seconds"] = model_s
        case["model_bound"] = p["bound"]
        case["measured_over_model"] = case["seconds_mean"] / model_s if model_s else None


#: issue 17's bodies, each on a shape that takes it (diffevo::cuda chooses by arch and shape):
#: (what, nq, nk, d, dv, online_max, path); checked against a float64 oracle, then timed
NEW_PATH_CHECKS = [
    ("wgmma distances", 300, 300, 64, 64, True, "mma"),
    ("wgmma distances, wide values", 200, 200, 100, 300, False, "mma"),
    ("wgmma latent", 300, 300, 2, 300, True, "simt"),
    ("simt_small D=2", 2**19 + 5, 5, 2, 2, False, "simt"),
]
#: the issue's target cases on these bodies, timed: (what, n, d, dv, path)
NEW_PATH_TIMINGS = [("D=2", 1048576, 2, 2, "simt"), ("D=64", 1048576, 64, 64, "mma"),
                    ("D=1024", 100000, 1024, 1024, "mma"), ("latent 2-D over 1024", 100000, 2, 1024, "simt")]


def _device_sums(cp, mod, q, k, v, logc, s, inv, online, path):
    nq, d = q.shape
    nk, dv = v.shape
    a, b, m = cp.empty((nq, dv), cp.float32), cp.empty(nq, cp.float32), cp.empty(nq, cp.float32)
    mod.pairwise_sums(q.data.ptr, k.data.ptr, v.data.ptr, logc.data.ptr, a.data.ptr, b.data.ptr, m.data.ptr, 1, nq,
                      nk, d, dv, s, inv, online, False, cp.cuda.get_current_stream().ptr, path)
    return a, b, m


def run_new_paths(quick: bool) -> dict:
    """Issue 17's bodies on this device: x0 = A / B against float64 (error in std(v) units,
    issue 17's 1e-5 bound), then seconds per pairwise-sums call of the target cases."""
    try:
        import cupy as cp

        from diffevo import _cuda
    except Exception as err:  # noqa: BLE001 -- reported, not fatal
        return {"skipped": repr(err)}
    import numpy as np

    rng = np.random.default_rng(0)
    checks = []
    for what, nq, nk, d, dv, online, path in NEW_PATH_CHECKS:
        k = rng.standard_normal((nk, d)).astype(np.float32)
        q = k[:nq] if nq <= nk else rng.standard_normal((nq, d)).astype(np.float32)
        v = (k[:, :dv] if dv == d else rng.standard_normal((nk, dv))).astype(np.float32)
        logc = np.log(rng.uniform(0.05, 1, nk)).astype(np.float32)
        s, inv = 0.8**0.5, 1.0 / (d * 0.2)
        a, b, _ = (x.get() for x in _device_sums(cp, _cuda, *(cp.asarray(t) for t in (q, k, v, logc)), s, inv,
                                                 online, path))
        e = logc.astype(np.float64)[None] - inv * (
            (q.astype(np.float64)[:, None] - s * k.astype(np.float64)[None]) ** 2).sum(-1)
        w = np.exp(e - e.max(1, keepdims=True))
        x0 = (w @ v.astype(np.float64)) / w.sum(1, keepdims=True)
        err = float(np.abs(a / b[:, None] - x0).max() / v.std())
        checks.append({"what": what, "nq": nq, "nk": nk, "d": d, "dv": dv, "x0_error_over_std": err,
                       "ok": bool(err <= 1e-5 + 2.0**-22 * np.abs(x0).max() / v.std())})
    timings = []
    for what, n, d, dv, path in NEW_PATH_TIMINGS[:2] if quick else NEW_PATH_TIMINGS:
        z = cp.random.standard_normal((n, d), dtype=cp.float32)
        v = z if dv == d else cp.random.standard_normal((n, dv), dtype=cp.float32)
        logc = cp.zeros(n, cp.float32)
        _device_sums(cp, _cuda, z, z, v, logc, 0.5**0.5, 1.0, False, path)  # warm-up (and the probe)
        start, stop = cp.cuda.Event(), cp.cuda.Event()
        start.record()
        _device_sums(cp, _cuda, z, z, v, logc, 0.5**0.5, 1.0, False, path)
        stop.record()
        stop.synchronize()
        timings.append({"what": what, "n": n, "d": d, "dv": dv,
                        "seconds": cp.cuda.get_elapsed_time(start, stop) / 1e3})
    return {"checks": checks, "ok": all(c["ok"] for c in checks), "timings": timings}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="skip the largest benchmark cases and million.py")
    ap.add_argument("--skip-tests", action="store_true")
    ap.add_argument("--skip-sanitizer", action="store_true")
    ap.add_argument("--skip-bench", action="store_true")
    ap.add_argument("--skip-million", action="store_true")
    ap.add_argument("--out", type=Path, help="the JSON to write (default bench/results/gpu-suite-<device>-<date>.json)")
    ap.add_argument("--timeout", type=int, default=3600, help="seconds per step")
    args = ap.parse_args(argv)

    workdir = Path(tempfile.mkdtemp(prefix="diffevo-gpu-suite-"))
    print(f"diffevo GPU suite; logs in {workdir}", flush=True)
    result: dict = {"kind": "measured on a GPU, beside the SASS model's predictions", "logs": str(workdir)}
    result["environment"] = environment()
    print(json.dumps(result["environment"], indent=1), flush=True)
    ok = True
    if not args.skip_tests:
        junit = workdir / "tests.xml"
        out = _run([sys.executable, "-m", "pytest", "tests", "-m", "gpu or cuda_build", "-p", "no:cacheprovider",
                    "-q", f"--junitxml={junit}"], timeout=args.timeout, log=workdir / "tests.log")
        result["tests"] = {"exit": out.returncode, **_junit_counts(junit)}
        ok &= out.returncode == 0
    if not args.skip_sanitizer:
        result["sanitizer"] = run_sanitizers(workdir, args.timeout)
        ok &= all(v.get("ok", True) for v in result["sanitizer"].values() if isinstance(v, dict))
    if not args.skip_bench:
        result["benchmarks"] = run_benchmarks(workdir, args.quick, args.timeout)
    if not (args.skip_million or args.quick):
        result["million"] = run_million(workdir, args.timeout)
    result["new_paths"] = run_new_paths(args.quick)
    ok &= result["new_paths"].get("ok", True)
    attach_model(result)

    device = result["environment"].get("device") or "unknown-device"
    slug = re.sub(r"[^a-z0-9]+", "-", device.lower()).strip("-")
    out_path = args.out or RESULTS / f"gpu-suite-{slug}-{_dt.date.today().isoformat()}.json"
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text(json.dumps(result, indent=1, default=str) + "\n")

    print("\n| case | measured s | model s | measured/model | bound (model) | target |")
    print("|---|---|---|---|---|---|")
    for c in result.get("benchmarks", {}).get("cases", []):
        ratio = c.get("measured_over_model")
        print(f"| {c['name']} | {c['seconds_mean']:.4g} | {c.get('model_seconds', float('nan')):.4g} | "
              f"{'-' if ratio is None else f'{ratio:.2f}'} | {c.get('model_bound', '-')} | {c.get('target_s') or ''} |")
    for m in result.get("million", {}).get("million", []):
        print(f"million N={m['N']:,} D={m['D']}: {m['seconds_per_generation_median']:.3f} s/generation, "
              f"peak pool {m['peak_pool_bytes'] / 2**20:.0f} MiB")
    print(f"\ntests: {result.get('tests', {}).get('passed', '-')} passed, "
          f"{result.get('tests', {}).get('failures', '-')} failed; "
          f"sanitizer: {json.dumps({k: v.get('ok') for k, v in result.get('sanitizer', {}).items() if isinstance(v, dict)})}")
    print(f"wrote {out_path}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
