"""Shared pieces of the CPU benchmarks: machine and BLAS information for the JSON.

Not collected by the default ``pytest`` run (``testpaths = ["tests"]``); run with
``python -m pytest bench --benchmark-enable ...`` (bench/README.md).
"""

from __future__ import annotations

import os
import platform


def blas_info() -> list[dict]:
    """The BLAS libraries loaded in this process, as threadpoolctl reports them."""
    try:
        import numpy  # noqa: F401 - loads NumPy's BLAS so that threadpoolctl sees it
        from threadpoolctl import threadpool_info
    except ImportError:
        return []
    keep = ("internal_api", "version", "architecture", "num_threads", "threading_layer")
    return [{k: lib.get(k) for k in keep} for lib in threadpool_info() if lib.get("user_api") == "blas"]


def blas_summary() -> str:
    """One line for extra_info, e.g. 'openblas 0.3.31 SkylakeX x2'."""
    libs = blas_info()
    return "; ".join(
        f"{b['internal_api']} {b['version']} {b['architecture']} x{b['num_threads']}" for b in libs
    ) or "unknown"


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def pytest_benchmark_update_machine_info(config, machine_info):
    """Record what the figures depend on: CPU, cores, BLAS and its overrides, Numba."""
    machine_info["cpu_model"] = cpu_model()
    machine_info["logical_cpus"] = os.cpu_count()
    machine_info["blas"] = blas_info()
    machine_info["blas_env"] = {k: os.environ.get(k) for k in
                                ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "OPENBLAS_NUM_THREADS",
                                 "OMP_NUM_THREADS", "NUMBA_NUM_THREADS")}
    try:
        import numba

        machine_info["numba"] = {
            "version": numba.__version__,
            "threads": numba.config.NUMBA_NUM_THREADS,
            "llvm_cpu": numba.config.CPU_NAME or _llvm_cpu(),
            "svml": bool(getattr(numba.config, "USING_SVML", False)),
        }
    except ImportError:
        machine_info["numba"] = None
    try:
        machine_info["load_average_at_start"] = os.getloadavg()
    except OSError:
        pass


def _llvm_cpu() -> str:
    try:
        import llvmlite.binding as ll

        return ll.get_host_cpu_name()
    except Exception:  # pragma: no cover - informational only
        return "unknown"
