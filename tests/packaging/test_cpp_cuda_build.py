"""The CUDA module as built (no device needed): import, flags, names, argument errors.

Marked ``cuda_build``: skipped, with the reason, when this diffevo was built without
CUDA. The numerics of the kernels are tested on the host in test_host_kernels.py (the
same block bodies), and on a device by the GPU tests.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from diffevo import _core


def test_import_diffevo_never_loads_cuda():
    """`import diffevo` (and its backends' dispatch module) must not load diffevo._cuda."""
    code = "import sys, diffevo, diffevo.backends; sys.exit('diffevo._cuda' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


def test_cuda_built_flag_matches_module():
    assert _core.cuda_built == (importlib.util.find_spec("diffevo._cuda") is not None)


needs_cuda_build = pytest.mark.skipif(not _core.cuda_built, reason="diffevo was built without CUDA (DIFFEVO_ENABLE_CUDA)")


def _cuobjdump() -> str | None:
    found = shutil.which("cuobjdump")
    if found:
        return found
    try:
        import nvidia  # the nvidia-cuda-cuobjdump wheel

        for base in nvidia.__path__:
            for cand in Path(base).glob("*/bin/cuobjdump"):
                return str(cand)
    except ImportError:
        pass
    cand = Path(os.environ.get("CUDA_HOME", "/usr/local/cuda")) / "bin" / "cuobjdump"
    return str(cand) if cand.exists() else None


@pytest.mark.cuda_build
@needs_cuda_build
def test_module_imports_without_driver():
    from diffevo import _cuda

    n = _cuda.device_count()
    assert isinstance(n, int) and n >= 0
    assert _cuda.__version__ == _core.__version__
    assert _cuda.choose_path(False, 64) == "mma"
    assert _cuda.choose_path(False, 2) == "simt"
    assert _cuda.choose_path(True, 1024) == "simt"


@pytest.mark.cuda_build
@needs_cuda_build
def test_kernel_names_in_machine_code():
    """kernel_names() are the mangled names in the module's sm_80 and sm_90a code."""
    from diffevo import _cuda

    tool = _cuobjdump()
    if tool is None:
        pytest.skip("cuobjdump not found (pip install nvidia-cuda-cuobjdump)")
    sass = subprocess.run([tool, "-sass", _cuda.__file__], capture_output=True, text=True, check=True).stdout
    for arch in ("sm_80", "sm_90a"):  # the default build (CMakeLists.txt: 80;90a)
        section = sass.split(f"arch = {arch}")
        assert len(section) > 1, f"no {arch} code in {_cuda.__file__}"
    names = _cuda.kernel_names()
    assert len(names) == 26 and len(set(names)) == 26  # 6 simt/mma + 12 wgmma + 8 simt_small (issue 17)
    functions = {line.split(":", 1)[1].strip() for line in sass.splitlines() if line.strip().startswith("Function :")}
    missing = [n for n in names if n not in functions]
    assert not missing, f"kernel_names() not in the SASS: {missing}"
    kinds = {(k["path"], k["dtype"], k["online_max"]) for k in _cuda.kernels()}
    assert kinds == {(p, t, o) for p, t in (("simt", "float32"), ("simt", "float64"), ("mma", "float32"),
                                            ("wgmma", "float32")) for o in (False, True)} | {
        ("simt_small", "float32", False)}


@pytest.mark.cuda_build
@needs_cuda_build
def test_argument_errors_are_value_errors():
    """Bad arguments fail with ValueError (file:line in the message) before any CUDA call."""
    from diffevo import _cuda

    args = dict(batch=1, nq=4, nk=4, d=2, dv=2, s=1.0, inv2sigma2=1.0, online_max=False, stream_ptr=0)
    ptrs = [8] * 7
    with pytest.raises(ValueError, match="path"):
        _cuda.pairwise_sums(*ptrs, is_double=False, path="tensor", **args)
    with pytest.raises(ValueError, match=r"cuda_impl\.cuh:\d+: .*float32 only"):
        _cuda.pairwise_sums(*ptrs, is_double=True, path="mma", **args)
    with pytest.raises(ValueError, match="non-negative"):
        _cuda.pairwise_sums(*ptrs, is_double=False, **{**args, "nq": -1})
    # nothing to compute: returns without touching the device
    assert _cuda.pairwise_sums(*ptrs, is_double=False, **{**args, "nq": 0}) is None
    with pytest.raises(ValueError, match=r"checks\.hpp:\d+: pairwise_sums: q is null"):
        _cuda.pairwise_sums(0, *ptrs[1:], is_double=False, **args)


@pytest.mark.cuda_build
@needs_cuda_build
def test_cuda_api_checks_every_argument_before_any_cuda_call():
    """The CUDA entry points refuse null arrays, D = 0 and the step rules of the Python
    API (noise in [0, 1], alpha_prev >= alpha_t with noise) by name, with file:line."""
    from diffevo import _cuda

    x0 = {"n": 4, "D": 2, "dl": 0, "alpha": 0.5, "kde": False, "bandwidth": 0.1, "exact": False,
          "is_double": False, "stream_ptr": 0}
    for args, name in (((0, 8, 0, 8), "x"), ((8, 0, 0, 8), "g"), ((8, 8, 0, 0), "x0")):
        with pytest.raises(ValueError, match=rf"\.hpp:\d+: x0_estimate: {name} is null"):
            _cuda.x0_estimate(*args, **x0)
    with pytest.raises(ValueError, match="D "):
        _cuda.x0_estimate(8, 8, 0, 8, **{**x0, "D": 0})
    with pytest.raises(ValueError, match="bandwidth"):
        _cuda.x0_estimate(8, 8, 0, 8, **{**x0, "kde": True, "bandwidth": 1e-160})
    step = {"count": 4, "alpha_t": 0.4, "alpha_prev": 0.7, "noise": 1.0, "is_double": False, "stream_ptr": 0}
    with pytest.raises(ValueError, match="noise"):
        _cuda.ddim_step(8, 8, 8, 8, **{**step, "noise": 1.5})
    with pytest.raises(ValueError, match="alpha_prev"):
        _cuda.ddim_step(8, 8, 8, 8, **{**step, "alpha_t": 0.7, "alpha_prev": 0.4})
    with pytest.raises(ValueError, match="z is null"):
        _cuda.ddim_step(8, 8, 0, 8, **step)
    with pytest.raises(ValueError, match="d "):
        _cuda.kde_density(8, 8, n=4, d=0, bandwidth=0.5, is_double=False, stream_ptr=0)


@pytest.mark.cuda_build
@needs_cuda_build
def test_launch_without_device_is_runtime_error():
    from diffevo import _cuda

    if _cuda.device_count() > 0:
        pytest.skip("a CUDA device is present (this checks the error path without one)")
    with pytest.raises(RuntimeError, match=r"cuda_impl\.cuh:\d+: .*cuda"):
        _cuda.pairwise_sums(8, 8, 8, 8, 8, 8, 8, batch=1, nq=4, nk=4, d=2, dv=2, s=1.0, inv2sigma2=1.0,
                            online_max=False, is_double=False, stream_ptr=0)
