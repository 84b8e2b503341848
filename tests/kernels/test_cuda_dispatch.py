"""The CUDA backend's dispatch: lazy loading, availability, errors by argument name and
the shared kernel-path vocabulary (runs everywhere); argument handling on a GPU."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest

import diffevo
from diffevo import backends
from diffevo.backends import cuda_backend as cb
from gpu_common import (CUDA_BUILT, DEVICES, HAVE_CUPY, FakeDeviceArray,
                        cuda_build, gpu)



def _cp():
    import cupy

    return cupy


def test_import_never_touches_cuda():
    """gsplat's rule: import diffevo (and CPU work) imports neither CuPy nor diffevo._cuda."""
    code = textwrap.dedent("""
        import sys, numpy as np, diffevo
        loaded = [m for m in ("cupy", "diffevo._cuda") if m in sys.modules]
        diffevo.x0_estimate(np.ones((4, 2)), np.ones(4), 0.5, backend="numpy")
        diffevo.available_backends()   # asks cuda_backend.is_available(): no CuPy import
        loaded += [m for m in ("cupy",) if m in sys.modules]
        print(loaded)
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_backend_module_contract():
    assert cb.DEVICE == "cuda"
    assert isinstance(cb.is_available(), bool)
    reason = cb.unavailable_reason()
    assert (reason is None) == cb.is_available()
    if not CUDA_BUILT:
        assert "DIFFEVO_ENABLE_CUDA=ON" in reason
    elif DEVICES == 0 and HAVE_CUPY:
        assert "no CUDA device present" in reason


@pytest.mark.parametrize("backend", ["numpy", "cpp"])
def test_device_array_given_to_cpu_backend_names_x(backend):
    if backend not in diffevo.available_backends("cpu"):
        pytest.skip(f"backend {backend!r} not built here")
    fake = FakeDeviceArray()
    with pytest.raises(ValueError, match=r"\bx\b.*GPU array.*" + backend):
        diffevo.x0_estimate(fake, np.ones(8), 0.5, backend=backend)
    with pytest.raises(ValueError, match="GPU array"):
        diffevo.kde_density(fake, backend=backend)


@pytest.fixture
def cpu_only_build(monkeypatch):
    """Pretend the compiled module was built without CUDA (the CUDA build is AUTO here)."""
    from diffevo import _core

    monkeypatch.setattr(_core, "cuda_built", False)
    monkeypatch.delitem(sys.modules, "diffevo._cuda", raising=False)
    cb.reset_availability_cache()
    yield
    cb.reset_availability_cache()


def test_backend_cuda_on_cpu_only_build_is_clear(cpu_only_build):
    assert not cb.is_available()
    assert "built without CUDA" in cb.unavailable_reason()
    for x in (np.ones((8, 2)), FakeDeviceArray()):
        with pytest.raises(RuntimeError, match=r"'cuda' is not available.*DIFFEVO_ENABLE_CUDA=ON"):
            diffevo.x0_estimate(x, np.ones(8), 0.5, backend="cuda")
    # 'auto' sends a device array to cuda, which says the same
    with pytest.raises(RuntimeError, match="DIFFEVO_ENABLE_CUDA=ON"):
        diffevo.x0_estimate(FakeDeviceArray(), np.ones(8), 0.5)
    # calling the backend directly names the fix too
    with pytest.raises(RuntimeError, match="built without CUDA.*DIFFEVO_ENABLE_CUDA=ON"):
        cb.pairwise_sums(None, None, None, None, 1.0, 1.0, False)


@pytest.mark.skipif(CUDA_BUILT, reason="checks the real CPU-only build; this one has CUDA")
def test_real_cpu_only_build_refuses_cuda():
    with pytest.raises(RuntimeError, match="DIFFEVO_ENABLE_CUDA=ON"):
        diffevo.x0_estimate(np.ones((8, 2)), np.ones(8), 0.5, backend="cuda")


@pytest.mark.skipif(DEVICES > 0 or not HAVE_CUPY, reason="needs a machine with CuPy and no CUDA device")
def test_device_fitness_without_a_device_is_clear():
    # a host x with a "device" fitness on a machine without a device: a clear error naming fitness
    with pytest.raises((RuntimeError, ValueError), match=r"\bfitness\b"):
        diffevo.x0_estimate(np.ones((8, 2)), FakeDeviceArray(shape=(8,)), 0.5, backend="numpy")


def test_path_is_an_argument_with_one_vocabulary():
    """One set of kernel-path names on every device, passed per call (no global state)."""
    x, g = np.random.default_rng(0).normal(size=(16, 3)), np.ones(16)
    with pytest.raises(ValueError, match="path must be one of 'auto', 'direct', 'dot'"):
        diffevo.x0_estimate(x, g, 0.5, path="tensor")
    with pytest.raises(ValueError, match="not a kernel path of backend 'numpy'"):
        diffevo.x0_estimate(x, g, 0.5, backend="numpy", path="dot")
    assert cb.PATHS == backends.PATHS
    ref = diffevo.x0_estimate(x, g, 0.5, backend="numpy", path="direct")
    np.testing.assert_array_equal(ref, diffevo.x0_estimate(x, g, 0.5, backend="numpy"))


@cuda_build
def test_pairwise_sums_refuses_host_arrays():
    if not HAVE_CUPY:
        pytest.skip("CuPy is not installed")
    z = np.ones((4, 2))
    with pytest.raises(TypeError, match=r"\bq must be a CuPy array"):
        cb.pairwise_sums(z, z, z, np.zeros(4), 1.0, 1.0, False)


@cuda_build
def test_compiled_module_imports_without_a_device():
    """Statically linked cudart: diffevo._cuda imports on a machine with no driver/device."""
    mod = cb._cuda_module()
    assert int(mod.device_count()) == DEVICES >= 0
    names = cb.kernel_names()
    assert isinstance(names, list)


@gpu
def test_pairwise_sums_argument_errors():
    cp = _cp()
    q = cp.ones((16, 4))
    logc = cp.zeros(16)
    be = backends.resolve("cuda", q)
    # the dispatch point normalises once: a transposed (non-contiguous) q is made contiguous
    t = cp.ones((4, 16)).T
    got = be.pairwise_sums(t, q, q, logc, 1.0, 1.0, False)
    want = be.pairwise_sums(cp.ascontiguousarray(t), q, q, logc, 1.0, 1.0, False)
    for u, w in zip(got, want):
        cp.testing.assert_array_equal(u, w)
    with pytest.raises(ValueError, match="inconsistent shapes"):
        be.pairwise_sums(q, q, q, cp.zeros(15), 1.0, 1.0, False)
    with pytest.raises(ValueError, match="path must be one of"):
        be.pairwise_sums(q, q, q, logc, 1.0, 1.0, False, path="wgmma")


@gpu
def test_auto_dispatch_and_results_stay_on_device():
    cp = _cp()
    x = cp.asarray(np.random.default_rng(0).normal(size=(64, 3)))
    assert backends.resolve("auto", x).impl is cb
    assert "cuda" in diffevo.available_backends("cuda")
    out = diffevo.x0_estimate(x, cp.ones(64), 0.5)
    assert isinstance(out, cp.ndarray) and out.dtype == x.dtype

