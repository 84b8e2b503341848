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
    """kernel_names() are the mangled names in the module's sm_80 and sm_90 code."""
    from diffevo import _cuda

    tool = _cuobjdump()
    if tool is None:
        pytest.skip("cuobjdump not found (pip install nvidia-cuda-cuobjdump)")
    sass = subprocess.run([tool, "-sass", _cuda.__file__], capture_output=True, text=True, check=True).stdout
    for arch in ("sm_80", "sm_90"):
        section = sass.split(f"arch = {arch}")
        assert len(section) > 1, f"no {arch} code in {_cuda.__file__}"
    names = _cuda.kernel_names()
    assert len(names) == 6 and len(set(names)) == 6
    functions = {line.split(":", 1)[1].strip() for line in sass.splitlines() if line.strip().startswith("Function :")}
    missing = [n for n in names if n not in functions]
    assert not missing, f"kernel_names() not in the SASS: {missing}"
    kinds = {(k["path"], k["dtype"], k["online_max"]) for k in _cuda.kernels()}
    assert kinds == {(p, t, o) for p, t in (("simt", "float32"), ("simt", "float64"), ("mma", "float32"))
                     for o in (False, True)}


@pytest.mark.cuda_build
@needs_cuda_build
def test_argument_errors_are_value_errors():
    """Bad arguments fail with ValueError (file:line in the message) before any CUDA call."""
    from diffevo import _cuda

    args = dict(batch=1, nq=4, nk=4, d=2, dv=2, s=1.0, inv2sigma2=1.0, online_max=False, stream_ptr=0)
    ptrs = [8] * 7
    with pytest.raises(ValueError, match="path"):
        _cuda.pairwise_sums(*ptrs, is_double=False, path="tensor", **args)
    with pytest.raises(ValueError, match=r"cuda\.cuh:\d+: .*float32 only"):
        _cuda.pairwise_sums(*ptrs, is_double=True, path="mma", **args)
    with pytest.raises(ValueError, match="non-negative"):
        _cuda.pairwise_sums(*ptrs, is_double=False, **{**args, "nq": -1})
    # nothing to compute: returns without touching the device
    assert _cuda.pairwise_sums(*ptrs, is_double=False, **{**args, "nq": 0}) is None


@pytest.mark.cuda_build
@needs_cuda_build
def test_launch_without_device_is_runtime_error():
    from diffevo import _cuda

    if _cuda.device_count() > 0:
        pytest.skip("a CUDA device is present (this checks the error path without one)")
    with pytest.raises(RuntimeError, match=r"cuda\.cuh:\d+: .*cuda"):
        _cuda.pairwise_sums(8, 8, 8, 8, 8, 8, 8, batch=1, nq=4, nk=4, d=2, dv=2, s=1.0, inv2sigma2=1.0,
                            online_max=False, is_double=False, stream_ptr=0)
