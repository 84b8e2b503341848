"""The installed CMake package: a standalone C++ project finds diffevo and gets our numbers.

examples/cpp is configured against the INSTALLED package (never the source tree), two
ways a C++ user would: ``-Ddiffevo_DIR=$(python -c 'import diffevo;
print(diffevo.get_cmake_dir())')`` and ``CMAKE_PREFIX_PATH`` from the ``cmake.root``
entry point (what scikit-build-core hands a project that builds against diffevo). The
program prints the host x0 estimate of a tiny population; every number is compared
with diffevo's NumPy backend.

Tolerance 1e-12 relative to the case's scale: both sides are float64 and evaluate the
same formula (SPEC section 3); only the summation order and exp's last ulp differ. The
case has a zero-fitness member and a far straggler whose estimate the eps floors decide
(reference 1.08 vs exact 30): a wrong floor or mode moves numbers by 0.1 to 29.

Fast: host-only compile (the CUDA part of the example, which compiles kernels for two
architectures, is built only where a CUDA device is present, and then its numbers are
checked too: float64 on the device, 1e-9 relative -- CUDA's double exp is within 2 ulp
and the device sums in tiles, a different order than the host).
"""

from __future__ import annotations

import importlib
import os
import re
import shutil
import subprocess
from importlib import metadata
from pathlib import Path

import numpy as np
import pytest

import diffevo
from diffevo.backends import cuda_backend as cb

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "cpp"
CMAKE = shutil.which("cmake")
NINJA = shutil.which("ninja")
RTOL = 1e-12
RTOL_CUDA = 1e-9

pytestmark = pytest.mark.skipif(CMAKE is None, reason="cmake is not installed")


def _installed_prefixes() -> list[Path]:
    """Prefixes from the cmake.root entry point: the directories of the module it names."""
    eps = [ep for ep in metadata.entry_points(group="cmake.root") if ep.name == "diffevo"]
    assert eps, "diffevo declares no cmake.root entry point"
    mod = importlib.import_module(eps[0].value)
    return [Path(p) for p in getattr(mod, "__path__", [Path(mod.__file__).parent])]


def _configure_build_run(tmp_path: Path, defines: dict[str, str]) -> str:
    build = tmp_path / "build"
    args = [CMAKE, "-S", str(EXAMPLE), "-B", str(build), "-DCMAKE_BUILD_TYPE=Release"]
    if NINJA:
        args += ["-G", "Ninja"]
    want_cuda = cb.device_count() > 0 and cb.build_has_cuda()
    args.append(f"-DDIFFEVO_EXAMPLE_CUDA={'AUTO' if want_cuda else 'OFF'}")
    args += [f"-D{k}={v}" for k, v in defines.items()]
    env = dict(os.environ)
    env.pop("CMAKE_PREFIX_PATH", None)  # only what this test passes may find diffevo
    run = lambda cmd: subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=900, check=False)
    conf = run(args)
    assert conf.returncode == 0, f"configure failed:\n{conf.stdout}\n{conf.stderr}"
    # the package found must be the installed one, not the source tree
    found = re.search(r"diffevo example: diffevo \S* from (\S+)", conf.stdout)
    assert found, conf.stdout
    assert not Path(found.group(1)).resolve().is_relative_to(ROOT / "csrc"), found.group(1)
    built = run([CMAKE, "--build", str(build), "--parallel", "2"])
    assert built.returncode == 0, f"build failed:\n{built.stdout}\n{built.stderr}"
    exe = build / "diffevo_example"
    out = run([str(exe)])
    assert out.returncode == 0, f"example failed:\n{out.stdout}\n{out.stderr}"
    return out.stdout


def _parse(stdout: str):
    head = re.search(r"N=(\d+) D=(\d+) alpha=(\S+) bandwidth=(\S+)", stdout)
    assert head, stdout
    n, d = int(head.group(1)), int(head.group(2))
    alpha, h = float(head.group(3)), float(head.group(4))
    x = np.array([[float(v) for v in re.search(rf"^x {i}: (.*)$", stdout, re.MULTILINE).group(1).split()]
                  for i in range(n)])
    g = np.array([float(v) for v in re.search(r"^g: (.*)$", stdout, re.MULTILINE).group(1).split()])
    blocks = {}
    for label in sorted(set(re.findall(r"^(x0 \w+ \w+ \w+) \d+:", stdout, re.MULTILINE))):
        rows = [re.search(rf"^{label} {i}: (.*)$", stdout, re.MULTILINE).group(1).split() for i in range(n)]
        blocks[label] = np.array([[float(v) for v in r] for r in rows])
    assert x.shape == (n, d) and g.shape == (n,)
    return x, g, alpha, h, blocks


def _check_numbers(stdout: str):
    x, g, alpha, h, blocks = _parse(stdout)
    want = {
        "reference uniform": diffevo.x0_estimate(x, g, alpha, backend="numpy"),
        "reference kde": diffevo.x0_estimate(x, g, alpha, density="kde", bandwidth=h, backend="numpy"),
        "exact uniform": diffevo.x0_estimate(x, g, alpha, mode="exact", backend="numpy"),
    }
    host = {k[len("x0 host "):]: v for k, v in blocks.items() if k.startswith("x0 host ")}
    assert set(host) == set(want), sorted(blocks)
    for key, ref in want.items():
        scale = max(1.0, float(np.abs(ref).max()))
        np.testing.assert_allclose(host[key], ref, rtol=0, atol=RTOL * scale, err_msg=key)
    cuda = {k[len("x0 cuda "):]: v for k, v in blocks.items() if k.startswith("x0 cuda ")}
    if cb.device_count() > 0 and cb.build_has_cuda():
        assert cuda, "a device is present but the example printed no CUDA result"
    for key, got in cuda.items():  # float64 on the device (see RTOL_CUDA)
        ref = want[key]
        np.testing.assert_allclose(got, ref, rtol=0, atol=RTOL_CUDA * max(1.0, float(np.abs(ref).max())),
                                   err_msg=f"cuda {key}")


def test_example_via_cmake_root_entry_point(tmp_path):
    prefixes = _installed_prefixes()
    configs = [p for p in prefixes if (p / "share" / "cmake" / "diffevo" / "diffevoConfig.cmake").is_file()]
    assert configs, f"no installed diffevoConfig.cmake under {prefixes}"
    stdout = _configure_build_run(tmp_path, {"CMAKE_PREFIX_PATH": ";".join(map(str, prefixes))})
    _check_numbers(stdout)


def test_get_cmake_dir_points_at_the_installed_config():
    """``-Ddiffevo_DIR=$(python -c 'import diffevo; print(diffevo.get_cmake_dir())')``
    must name a directory holding diffevoConfig.cmake (in an editable install too)."""
    cmake_dir = Path(diffevo.get_cmake_dir())
    assert (cmake_dir / "diffevoConfig.cmake").is_file(), cmake_dir
    include = Path(diffevo.get_include()) / "diffevo"
    assert (include / "host.hpp").is_file(), diffevo.get_include()
    # the public headers declare, detail/ defines; the tests' simulation harness is not shipped
    assert (include / "detail" / "host_impl.hpp").is_file()
    assert not (include / "simulate.hpp").exists() and not (include / "detail" / "simulate.hpp").exists()


def test_example_via_diffevo_dir(tmp_path):
    cmake_dir = Path(diffevo.get_cmake_dir())
    if not (cmake_dir / "diffevoConfig.cmake").is_file():
        pytest.fail(f"diffevo.get_cmake_dir() = {cmake_dir} holds no diffevoConfig.cmake")
    _check_numbers(_configure_build_run(tmp_path, {"diffevo_DIR": str(cmake_dir)}))
