"""``diffevo info``: version, backends, whether CUDA was built, devices seen."""

from __future__ import annotations

import argparse
import json
import platform
import sys
import warnings
from importlib import metadata


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "info", help="show the version, the available backends and the CUDA status",
        description="Show diffevo's version, which backends run here, whether the CUDA "
                    "module was built, and which CUDA devices are seen. Never needs a GPU.")
    p.add_argument("--json", action="store_true", help="print the same as JSON")
    p.set_defaults(func=run)


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def collect() -> dict:
    """Everything ``diffevo info`` prints, as a dict (no exception escapes)."""
    import diffevo  # noqa: PLC0415
    from diffevo import backends  # noqa: PLC0415

    info: dict = {
        "diffevo": diffevo.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "numpy": _version("numpy"),
        "numba": _version("numba"),
        "cupy": _version("cupy-cuda13x") or _version("cupy-cuda12x") or _version("cupy"),
        "matplotlib": _version("matplotlib"),
        "dask.distributed": _version("distributed"),
    }
    rows = []
    for name in backends.BACKENDS[1:]:
        row = {"name": name, "available": False, "device": None, "note": ""}
        try:
            mod = backends.load(name)
            if mod is None:
                row["note"] = "cannot be imported"
            else:
                row["device"] = getattr(mod, "DEVICE", None)
                row["available"] = bool(mod.is_available())
                if not row["available"]:
                    reason = getattr(mod, "unavailable_reason", None)
                    row["note"] = (reason() if callable(reason) else None) or "not available"
        except Exception as exc:  # noqa: BLE001 - info must never crash
            row["note"] = f"error: {exc}"
        rows.append(row)
    info["backends"] = rows
    try:
        with warnings.catch_warnings():  # the numba-missing fallback warning: reported below
            warnings.simplefilter("ignore")
            default = backends.resolve("auto", __import__("numpy").empty((1, 1)))
        info["default_cpu_backend"] = default.name
    except Exception as exc:  # noqa: BLE001
        info["default_cpu_backend"] = f"none ({exc})"
    cuda = {"built": False, "devices": []}
    try:
        cb = backends.load("cuda")
        if cb is not None:
            built = getattr(cb, "build_has_cuda", None)
            cuda["built"] = bool(built()) if callable(built) else False
            count = getattr(cb, "device_count", None)
            n = int(count()) if callable(count) else 0
            cuda["devices"] = _device_names(n)
    except Exception as exc:  # noqa: BLE001
        cuda["error"] = str(exc)
    info["cuda"] = cuda
    return info


def _device_names(n: int) -> list[str]:
    names = []
    for i in range(n):
        try:
            import cupy  # noqa: PLC0415 - only when the CUDA module reports devices

            props = cupy.cuda.runtime.getDeviceProperties(i)
            name = props["name"]
            names.append(name.decode() if isinstance(name, bytes) else str(name))
        except Exception:  # noqa: BLE001
            names.append(f"device {i}")
    return names


def run(args: argparse.Namespace) -> int:
    info = collect()
    if args.json:
        json.dump(info, sys.stdout, indent=2)
        print()
        return 0
    print(f"diffevo {info['diffevo']}  (Python {info['python']}, {info['platform']})")
    libs = ", ".join(f"{k} {v}" for k, v in info.items()
                     if k in ("numpy", "numba", "cupy", "matplotlib", "dask.distributed") and v)
    print(f"  libraries: {libs}")
    print("  backends:")
    for row in info["backends"]:
        state = "available" if row["available"] else "not available"
        note = f" -- {row['note']}" if row["note"] and not row["available"] else ""
        print(f"    {row['name']:<6} {row['device'] or '?':<5} {state}{note}")
    print(f"  default CPU backend: {info['default_cpu_backend']}")
    cuda = info["cuda"]
    print(f"  CUDA module built: {'yes' if cuda['built'] else 'no'}")
    if cuda["devices"]:
        for i, name in enumerate(cuda["devices"]):
            print(f"  CUDA device {i}: {name}")
    else:
        print("  CUDA devices seen: none")
    return 0
