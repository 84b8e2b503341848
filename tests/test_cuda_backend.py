"""The CUDA backend: interop and dispatch here; numbers against the NumPy oracle on a GPU.

Gating (faiss's pattern, twice): tests marked ``gpu`` skip with "diffevo was built
without CUDA" or "no CUDA device present" (or "CuPy is not installed"); everything
else -- parsing ``__cuda_array_interface__``, the dispatch errors, the lazy loading --
runs on any machine.

Tolerances (GPU tests), relative to the case's scale ``max(1, max|expected|)``:

* float64: 1e-9. Both sides are float64 with correctly rounded-ish exp (CUDA's
  double exp is within 1 ulp); only the summation order differs (tiles, merges), which
  moves results by a few ulps times the number of terms -- the CPU golden tests use
  1e-10; the 10x margin covers the GPU's different reduction tree.
* float32: 5e-5, as the CPU float32 golden tests (tests/test_float32_golden.py): float32
  rounds at 6e-8, the Gaussian's exponent (|e| up to ~1e2 in the golden cases)
  multiplies it, the fast exp (MUFU.EX2, 2 ulp) adds ~2e-7, and the tensor-core path
  must reach float32 accuracy (3xTF32; a plain TF32 product, 10-bit mantissa, misses
  this by orders of magnitude and fails). For random cases where float32 itself is
  ill-conditioned (large D, alpha near 1) the bound is ``max(5e-5, 8 x the NumPy
  backend's own float32 error)`` on the same float32 inputs: the GPU may not be
  worse than 8x what float32 arithmetic inherently loses on that case. A wrong
  formula, a lost tail or a wrong tile bound moves results by 1e-2 or more.
* the tensor-core path forced where ``path="auto"`` would not take it (the exponent's
  spread ``inv2sigma2 * max|z - mean|^2`` above cuda_backend.MMA_MAX_SPREAD, i.e. alpha
  near 1): ``1e-7 x spread``. Its dot-product exponent loses absolute accuracy in
  proportion to the spread; the host simulation of its block code (emulated TF32
  mma.sync) measured x0 errors of 1e-9..5e-8 x spread on the golden and random cases.
* device vs the host simulation of the same block code (_core.simulate_block_kernel):
  8 ulps of the largest |exponent| per weight (FMA contraction, MUFU.EX2's 2 ulp and
  the hardware's TF32 accumulation differ from the host's; nothing else may).

These tests were pre-run here with the host simulation standing in for the device
(golden: 660 of 660 and random: 180 of 180 within these tolerances).
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest

import diffevo
from conftest import case_ids, load_golden
from diffevo import backends
from diffevo.backends import cuda_backend as cb
from diffevo.backends import numpy_backend

CUDA_BUILT = cb.build_has_cuda()
DEVICES = cb.device_count()
try:
    import cupy as _cupy_probe  # noqa: F401

    HAVE_CUPY = True
except ImportError:  # pragma: no cover - cupy is an optional extra
    HAVE_CUPY = False


def gpu(fn):
    """Mark a test ``gpu`` and skip it, with the reason, when it cannot run here."""
    # the first skipif applied is the first pytest evaluates: build, then device, then CuPy
    fn = pytest.mark.skipif(not CUDA_BUILT, reason="diffevo was built without CUDA")(fn)
    fn = pytest.mark.skipif(DEVICES < 1, reason="no CUDA device present")(fn)
    fn = pytest.mark.skipif(not HAVE_CUPY, reason="CuPy is not installed")(fn)
    return pytest.mark.gpu(fn)


def cuda_build(fn):
    fn = pytest.mark.skipif(not CUDA_BUILT, reason="diffevo was built without CUDA")(fn)
    return pytest.mark.cuda_build(fn)


RTOL64 = 1e-9
RTOL32 = 5e-5


def scale_err(actual, expected) -> float:
    """max |a - e| / max(1, max |e|)."""
    actual = np.asarray(actual, dtype=np.float64)
    expected = np.asarray(expected, dtype=np.float64)
    scale = max(1.0, float(np.max(np.abs(expected)))) if expected.size else 1.0
    return float(np.max(np.abs(actual - expected))) / scale if expected.size else 0.0


class FakeDeviceArray:
    """Speaks the CUDA array interface (a device pointer nobody may touch) and nothing else."""

    def __init__(self, shape=(8, 2), typestr="<f8", ptr=0xDEAD0000, stream=None):
        self.shape = shape
        self.ndim = len(shape)
        self.__cuda_array_interface__ = {"shape": shape, "typestr": typestr, "data": (ptr, False),
                                         "version": 3, "strides": None}
        if stream is not None:
            self.__cuda_array_interface__["stream"] = stream


# ---------------------------------------------------------------------------
# runs everywhere: CAI parsing
# ---------------------------------------------------------------------------


def cai(**over):
    base = {"shape": (4, 3), "typestr": "<f4", "data": (0x1000, False), "version": 3}
    base.update(over)
    return base


def test_parse_cai_c_contiguous_default_strides():
    info = cb.parse_cai(cai())
    assert info.ptr == 0x1000 and info.shape == (4, 3) and info.dtype == np.float32
    assert info.strides == (12, 4) and info.c_contiguous
    assert (info.lo, info.hi) == (0, 48) and info.stream is None and not info.readonly


def test_parse_cai_explicit_strides_transposed_and_negative():
    t = cb.parse_cai(cai(shape=(3, 4), strides=(4, 12)))  # a transposed (4, 3) array
    assert not t.c_contiguous and (t.lo, t.hi) == (0, 48)
    n = cb.parse_cai(cai(shape=(4,), typestr="<f8", strides=(-8,)))  # x[::-1]
    assert not n.c_contiguous and (n.lo, n.hi) == (-24, 8)
    one = cb.parse_cai(cai(shape=(1, 3), strides=(999, 4)))  # a length-1 axis' stride is free
    assert one.c_contiguous


def test_parse_cai_stream_and_readonly():
    info = cb.parse_cai(cai(stream=2, data=(0x2000, True)))
    assert info.stream == 2 and info.readonly
    assert cb.parse_cai(cai(version=2)).stream is None  # v2 has no stream: no sync asked


def test_parse_cai_empty_array_may_have_null_pointer():
    info = cb.parse_cai(cai(shape=(0, 3), data=(0, False)))
    assert info.size == 0 and (info.lo, info.hi) == (0, 0)


@pytest.mark.parametrize(
    "bad, exc, pattern",
    [
        ({"shape": None}, ValueError, "shape"),
        ({"shape": (4, -1)}, ValueError, "negative"),
        ({"typestr": "<zz"}, ValueError, "typestr"),
        ({"typestr": ">f4" if sys.byteorder == "little" else "<f4"}, ValueError, "byte order"),
        ({"data": 0x1000}, ValueError, "data"),
        ({"data": (0, False)}, ValueError, "null pointer"),
        ({"mask": object()}, ValueError, "masked"),
        ({"stream": 0}, ValueError, "stream"),
        ({"strides": (4,)}, ValueError, "strides"),
    ],
)
def test_parse_cai_rejects(bad, exc, pattern):
    with pytest.raises(exc, match=pattern) as info:
        cb.parse_cai(cai(**bad), "latent")
    assert "latent" in str(info.value)  # the error names the argument


def test_parse_cai_requires_entries():
    with pytest.raises(ValueError, match="'version'"):
        cb.parse_cai({"shape": (1,), "typestr": "<f4", "data": (1, False)}, "x")
    with pytest.raises(TypeError, match="dict"):
        cb.parse_cai([("shape", (1,))], "x")


# ---------------------------------------------------------------------------
# runs everywhere: lazy loading and dispatch errors
# ---------------------------------------------------------------------------


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


def test_use_path_validates_and_restores():
    assert cb.default_path() == "auto"
    with cb.use_path("mma"):
        assert cb.default_path() == "mma"
        with pytest.raises(ValueError, match="path must be one of"):
            with cb.use_path("tensor"):
                pass
        assert cb.default_path() == "mma"
    assert cb.default_path() == "auto"


def test_to_caller_kind_keeps_other_kinds():
    out = object()
    assert cb.to_caller_kind(out, FakeDeviceArray()) is out
    assert not cb.is_foreign_device_array(np.ones(3))
    assert cb.is_foreign_device_array(FakeDeviceArray())


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


# ---------------------------------------------------------------------------
# GPU: numbers against the NumPy oracle
# ---------------------------------------------------------------------------

GEN = load_golden("generator")
LAT = load_golden("latent")
OPT = load_golden("optimize")
#: (path, dtype) combinations: the tensor-core path is float32 only (float64 + "mma" is
#: refused: test_mma_refuses_float64); "auto" is what users get
PATH_DTYPES = [("simt", np.float64), ("simt", np.float32), ("mma", np.float32),
               ("auto", np.float64), ("auto", np.float32)]
PATH_DTYPE_IDS = [f"{p}-{np.dtype(t).name}" for p, t in PATH_DTYPES]
#: the tensor-core path's measured x0 error is at most ~5e-8 x the exponent's spread
#: (cuda_backend.MMA_MAX_SPREAD); forced beyond the spread where "auto" takes it, it is
#: held to 1e-7 x the spread (twice the worst seen in the host simulation of its code)
MMA_ERROR_PER_SPREAD = 1e-7


def path_dtype(fn):
    return pytest.mark.parametrize("path, dtype", PATH_DTYPES, ids=PATH_DTYPE_IDS)(fn)


def _cp():
    import cupy

    return cupy


def _tol(dtype, path="simt", z=None, alpha=None):
    """The tolerance of a case (see the module docstring); for the forced tensor-core path
    beyond MMA_MAX_SPREAD, its characterised error MMA_ERROR_PER_SPREAD x spread."""
    if dtype == np.float64:
        return RTOL64
    if path == "mma" and z is not None:
        z = np.asarray(z, np.float64)
        spread = cb.exponent_spread(z, z, alpha**0.5, 1.0 / (2.0 * (1.0 - alpha)))
        if spread > cb.MMA_MAX_SPREAD:
            return max(RTOL32, MMA_ERROR_PER_SPREAD * spread)
    return RTOL32


@gpu
@path_dtype
@pytest.mark.parametrize("case", case_ids(GEN))
def test_golden_generator(case, dtype, path):
    cp = _cp()
    x, f, meta = GEN[f"c{case}_x"], GEN[f"c{case}_fitness"], GEN[f"c{case}_meta"]
    alpha_t, alpha_prev, h, is_kde = meta
    density = "kde" if is_kde else "uniform"
    xd, fd = cp.asarray(x.astype(dtype)), cp.asarray(f.astype(dtype))
    with cb.use_path(path):
        gen = diffevo.BayesianGenerator(xd, fd, (alpha_t, alpha_prev), density, h, backend="cuda")
        x_next, x0 = gen(noise=0, return_x0=True)
        x0_fn = diffevo.x0_estimate(xd, fd, alpha_t, density=density, bandwidth=h)
    assert isinstance(x0, cp.ndarray) and x0.dtype == dtype and x0.device.id == xd.device.id
    tol = _tol(dtype, path, x, alpha_t)
    assert scale_err(x0.get(), GEN[f"c{case}_x0"]) <= tol
    assert scale_err(x_next.get(), GEN[f"c{case}_xnext_noise0"]) <= tol
    assert scale_err(x0_fn.get(), GEN[f"c{case}_x0"]) <= tol


@gpu
@path_dtype
@pytest.mark.parametrize("case", case_ids(LAT))
def test_golden_latent(case, dtype, path):
    cp = _cp()
    x, z, f = (cp.asarray(LAT[f"c{case}_{k}"].astype(dtype)) for k in ("x", "latent", "fitness"))
    alpha_t, alpha_prev = LAT[f"c{case}_alphas"]
    with cb.use_path(path):
        gen = diffevo.LatentBayesianGenerator(x, z, f, (alpha_t, alpha_prev), backend="cuda")
        x_next, x0 = gen(noise=0, return_x0=True)
    tol = _tol(dtype, path, LAT[f"c{case}_latent"], alpha_t)
    assert scale_err(x0.get(), LAT[f"c{case}_x0"]) <= tol
    assert scale_err(x_next.get(), LAT[f"c{case}_xnext_noise0"]) <= tol


@gpu
@pytest.mark.parametrize("run", case_ids(OPT, "r"))
def test_golden_optimize(run):
    """Whole runs (up to 29 generations) on the device, float64: 1e-8 of the scale."""
    import json

    cp = _cp()
    from diffevo import examples

    meta = json.loads(str(OPT[f"r{run}_meta"]))
    mapping = {None: None, "power3": diffevo.Power(3)}[meta["mapping"]]
    fn = examples.two_peak_density if meta["fitness"] == "two_peak" else examples.two_peak_density_step
    opt = diffevo.DiffEvo(num_step=meta["num_step"], noise=meta["noise"], scaling=meta["scaling"],
                          fitness_mapping=mapping, backend="cuda")
    final = opt.optimize(lambda x: fn(x, std=meta["std"]), cp.asarray(OPT[f"r{run}_init"]))
    assert isinstance(final, cp.ndarray)
    assert scale_err(final.get(), OPT[f"r{run}_final"]) <= 1e-8


# random cases: N including primes and tile tails, D from 1 to 300, both schedule ends
RANDOM_SHAPES = [(1, 1), (2, 3), (7, 2), (31, 5), (64, 64), (127, 16), (257, 2), (509, 33),
                 (1000, 100), (2053, 2), (1031, 128), (300, 300), (4099, 64)]
ALPHAS = (1e-6, 0.5, 0.9999)  # noisiest end (global average), middle, cleanest end


def random_case(n, d, seed, dtype):
    rng = np.random.default_rng(seed)
    x = rng.normal(loc=0.3, size=(n, d)).astype(dtype)
    g = rng.random(n).astype(dtype)
    g[rng.random(n) < 0.1] = 0  # zero-fitness members: the eps floors matter
    return x, g


def _check_random(got, x, g, alpha, dtype, path="simt", **kw):
    """Compare with the NumPy oracle in float64 on the same (rounded) inputs."""
    ref = diffevo.x0_estimate(x.astype(np.float64), g.astype(np.float64), alpha, backend="numpy", **kw)
    err = scale_err(got, ref)
    if dtype == np.float64:
        assert err <= RTOL64, err
    else:
        own = scale_err(diffevo.x0_estimate(x, g, alpha, backend="numpy", **kw), ref)
        z = kw.get("latent", x)
        tol = max(_tol(dtype, path, z, alpha), 8 * own)
        assert err <= tol, (err, own, tol, cb.last_path())


@gpu
@path_dtype
@pytest.mark.parametrize("alpha", ALPHAS)
@pytest.mark.parametrize("n, d", RANDOM_SHAPES)
def test_random_reference_mode(n, d, alpha, dtype, path):
    cp = _cp()
    x, g = random_case(n, d, n * 1000 + d, dtype)
    with cb.use_path(path):
        got = diffevo.x0_estimate(cp.asarray(x), cp.asarray(g), alpha, backend="cuda")
    _check_random(got.get(), x, g, alpha, dtype, path)


@gpu
@path_dtype
@pytest.mark.parametrize("alpha", ALPHAS)
@pytest.mark.parametrize("n, d", [(31, 5), (257, 64), (1031, 300)])
def test_random_exact_mode(n, d, alpha, dtype, path):
    cp = _cp()
    x, g = random_case(n, d, 7 + n, dtype)
    with cb.use_path(path):
        got = diffevo.x0_estimate(cp.asarray(x), cp.asarray(g), alpha, mode="exact", backend="cuda")
    _check_random(got.get(), x, g, alpha, dtype, path, mode="exact")


@gpu
@path_dtype
@pytest.mark.parametrize("n, d, dz", [(101, 64, 2), (1000, 300, 16), (2053, 8, 3)])
def test_random_latent_and_kde(n, d, dz, dtype, path):
    cp = _cp()
    x, g = random_case(n, d, 11 + n, dtype)
    z = diffevo.RandomProjection(d, dz, rng=1)(x).astype(dtype)
    for alpha in (1e-4, 0.9):
        with cb.use_path(path):
            got = diffevo.x0_estimate(cp.asarray(x), cp.asarray(g), alpha, latent=cp.asarray(z),
                                      density="kde", bandwidth=0.3, backend="cuda")
        _check_random(got.get(), x, g, alpha, dtype, path, latent=z, density="kde", bandwidth=0.3)


@gpu
@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("n, d", [(1, 2), (97, 2), (2053, 17)])
def test_kde_density(n, d, dtype):
    cp = _cp()
    z, _ = random_case(n, d, 5, dtype)
    got = diffevo.kde_density(cp.asarray(z), 0.2)
    ref = diffevo.kde_density(z.astype(np.float64), 0.2, backend="numpy")
    assert scale_err(got.get(), ref) <= _tol(dtype)


@gpu
@path_dtype
@pytest.mark.parametrize("online_max", [False, True])
def test_pairwise_sums_batched_equals_numpy_per_batch(online_max, dtype, path):
    """The backend contract itself, batched: (R, Nq, d) x (R, Nk, d) -> A, B, M."""
    cp = _cp()
    rng = np.random.default_rng(3)
    r, nq, nk, d, dv = 3, 130, 257, 7, 65
    q = rng.normal(size=(r, nq, d)).astype(dtype)
    k = rng.normal(size=(r, nk, d)).astype(dtype)
    v = rng.normal(size=(r, nk, dv)).astype(dtype)
    logc = np.log(rng.random((r, nk)) + 1e-3).astype(dtype)
    s, inv = 0.8, 1.0 / (2 * 0.36)
    a, b, m = (t.get() for t in cb.pairwise_sums(*map(cp.asarray, (q, k, v, logc)), s, inv,
                                                   online_max, path=path))
    assert a.shape == (r, nq, dv) and b.shape == (r, nq) and m.shape == (r, nq)
    for i in range(r):
        ra, rb, rm = numpy_backend.pairwise_sums(*(t[i].astype(np.float64) for t in (q, k, v, logc)),
                                                  s, inv, online_max)
        if online_max:  # M is the row maximum: compare the three outputs as they are
            np.testing.assert_allclose(m[i], rm, rtol=_tol(dtype), atol=_tol(dtype))
        # the true sums exp(M) (A, B) whatever shift each side used
        want_a, want_b = ra * np.exp(rm)[:, None], rb * np.exp(rm)
        got_a, got_b = a[i] * np.exp(m[i].astype(np.float64))[:, None], b[i] * np.exp(m[i].astype(np.float64))
        np.testing.assert_allclose(got_b, want_b, rtol=4 * _tol(dtype))
        assert scale_err(got_a / got_b[:, None], want_a / want_b[:, None]) <= _tol(dtype)


@gpu
@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])
def test_batched_x0_on_device(dtype):
    cp = _cp()
    rng = np.random.default_rng(4)
    x = rng.normal(size=(4, 301, 6)).astype(dtype)
    g = rng.random((4, 301)).astype(dtype)
    got = diffevo.x0_estimate(cp.asarray(x), cp.asarray(g), 0.3, density="kde").get()
    for r in range(4):
        ref = diffevo.x0_estimate(x[r].astype(np.float64), g[r].astype(np.float64), 0.3,
                                  density="kde", backend="numpy")
        assert scale_err(got[r], ref) <= _tol(dtype)


class _SimulatedDevice:
    """The CUDA block code run on the host (diffevo._core.simulate_block_kernel), as a
    backend module: the device's numerics without a device (emulated TF32 mma.sync)."""

    DEVICE = "cpu"

    def __init__(self, path):
        self.path = path

    def pairwise_sums(self, q, k, v, logc, s, inv, online_max):
        from diffevo import _core

        c = np.ascontiguousarray
        return _core.simulate_block_kernel(self.path, c(q), c(k), c(v), c(logc), s, inv, online_max)


def _has_simulation():
    try:
        from diffevo import _core
    except ImportError:
        return False
    return hasattr(_core, "simulate_block_kernel")


@pytest.mark.skipif(not _has_simulation(), reason="diffevo._core has no simulate_block_kernel")
def test_mma_spread_policy_holds_on_the_simulated_tensor_core_path():
    """Runs here (no GPU): the claim behind cuda_backend.MMA_MAX_SPREAD, checked on the
    host simulation of the tensor-core block code. float32, every golden case and random
    cases from the middle to the clean end of the schedule: within the spread that
    ``path="auto"`` allows, the x0 error is within RTOL32; beyond it, within
    MMA_ERROR_PER_SPREAD x spread (the tolerance the GPU tests give a forced "mma")."""
    from diffevo.core import _x0

    mma = _SimulatedDevice("mma")
    cases = []
    for case in case_ids(GEN):
        x, f, meta = GEN[f"c{case}_x"], GEN[f"c{case}_fitness"], GEN[f"c{case}_meta"]
        a, _, h, kde = meta
        cases.append((f"c{case}", x, f, a, "kde" if kde else "uniform", h, GEN[f"c{case}_x0"]))
    for n, d, alpha in [(257, 64, 0.5), (257, 64, 0.97), (257, 64, 0.999), (127, 16, 0.9999),
                        (300, 300, 0.9), (300, 300, 0.99)]:
        x, g = random_case(n, d, 5, np.float64)
        ref = diffevo.x0_estimate(x, g, alpha, backend="numpy")
        cases.append((f"{n}x{d}@{alpha}", x, g, alpha, "uniform", 0.1, ref))
    inside = beyond = 0
    for label, x, f, a, density, h, ref in cases:
        x32, f32 = x.astype(np.float32), f.astype(np.float32)
        got = _x0(x32, f32, a, x32, density, h, "reference", mma)
        spread = cb.exponent_spread(x, x, a**0.5, 1.0 / (2.0 * (1.0 - a)))
        err = scale_err(got, ref)
        if spread <= cb.MMA_MAX_SPREAD:
            inside += 1
            assert err <= RTOL32, (label, spread, err)
        else:
            beyond += 1
            assert err <= MMA_ERROR_PER_SPREAD * spread, (label, spread, err)
    assert inside >= 100 and beyond >= 4, (inside, beyond)


@gpu
def test_mma_refuses_float64():
    cp = _cp()
    q = cp.ones((16, 40))
    with pytest.raises(ValueError, match="float32 only"):
        cb.pairwise_sums(q, q, q, cp.zeros(16), 1.0, 1.0, False, path="mma")


@gpu
@pytest.mark.parametrize("alpha, want", [(0.5, "mma"), (0.9999, "simt")])
def test_auto_takes_tensor_cores_only_where_they_are_accurate(alpha, want):
    """float32, D = 64: auto runs the tensor cores mid-schedule and the direct form near
    alpha = 1 (spread above MMA_MAX_SPREAD), and is float32-accurate at both ends."""
    cp = _cp()
    x, g = random_case(513, 64, 3, np.float32)
    got = diffevo.x0_estimate(cp.asarray(x), cp.asarray(g), alpha)
    assert cb.last_path() == want
    _check_random(got.get(), x, g, alpha, np.float32, "auto")


def _sim_tolerance(q, k, logc, s, inv, dtype):
    """Relative tolerance between the device and the host simulation of the same block
    code: the exponent rounds differently (FMA contraction, MUFU.EX2 at 2 ulp vs std::exp2,
    hardware vs emulated TF32 accumulation), a few ulps of |e| in every weight."""
    q64, k64 = np.asarray(q, np.float64), np.asarray(k, np.float64)
    d2 = ((q64[:, None, :] - s * k64[None, :, :]) ** 2).sum(-1)
    emax = float(np.abs(np.asarray(logc, np.float64)[None, :] - d2 * inv).max())
    ulp = np.finfo(dtype).eps
    return 8 * ulp * (1.0 + emax)


@gpu
@pytest.mark.parametrize("path, dtype", [("simt", np.float64), ("simt", np.float32), ("mma", np.float32)],
                         ids=["simt-float64", "simt-float32", "mma-float32"])
@pytest.mark.parametrize("online_max", [False, True])
@pytest.mark.parametrize("nq, nk, d, dv", [(130, 257, 7, 3), (67, 130, 40, 70), (300, 65, 33, 1)])
def test_device_runs_the_simulated_block_code(nq, nk, d, dv, online_max, dtype, path):
    """The GPU kernels agree with diffevo._core.simulate_block_kernel -- the same block
    bodies run on the host (tests/test_host_kernels.py) -- on the same inputs: what the
    host tests prove about tiles, tails, barriers and fragments holds on the device."""
    from diffevo import _core

    cp = _cp()
    rng = np.random.default_rng(nq + nk + d)
    q = rng.normal(0.2, 1.0, size=(nq, d)).astype(dtype)
    k = rng.normal(-0.1, 1.0, size=(nk, d)).astype(dtype)
    v = rng.normal(size=(nk, dv)).astype(dtype)
    logc = np.log(rng.random(nk) + 1e-3).astype(dtype)
    s, inv = 0.9, 0.5
    sim = _core.simulate_block_kernel(path, q, k, v, logc, s, inv, online_max)
    dev = [t.get() for t in cb.pairwise_sums(*map(cp.asarray, (q, k, v, logc)), s, inv, online_max,
                                               path=path)]
    tol = _sim_tolerance(q, k, logc, s, inv, dtype)
    np.testing.assert_allclose(dev[2], sim[2], rtol=tol, atol=tol)  # shifts (row maxima or 0)
    b_dev = dev[1] * np.exp(dev[2].astype(np.float64))
    b_sim = sim[1] * np.exp(sim[2].astype(np.float64))
    np.testing.assert_allclose(b_dev, b_sim, rtol=2 * tol)
    assert scale_err(dev[0] / dev[1][:, None], sim[0] / sim[1][:, None]) <= 2 * tol


@gpu
def test_pairwise_sums_argument_errors():
    cp = _cp()
    q = cp.ones((16, 4))
    logc = cp.zeros(16)
    with pytest.raises(ValueError, match=r"\bq must be C-contiguous"):
        cb.pairwise_sums(cp.ones((4, 16)).T, q, q, logc, 1.0, 1.0, False)
    with pytest.raises(TypeError, match=r"\bk has dtype float32"):
        cb.pairwise_sums(q, q.astype(cp.float32), q, logc, 1.0, 1.0, False)
    with pytest.raises(ValueError, match=r"\blogc must have shape"):
        cb.pairwise_sums(q, q, q, cp.zeros(15), 1.0, 1.0, False)
    with pytest.raises(ValueError, match="path must be one of"):
        cb.pairwise_sums(q, q, q, logc, 1.0, 1.0, False, path="wgmma")


@gpu
def test_wrong_device_is_named():
    cp = _cp()
    if cp.cuda.runtime.getDeviceCount() < 2:
        pytest.skip("needs two CUDA devices")
    with cp.cuda.Device(1):
        x1 = cp.ones((8, 2))
    with cp.cuda.Device(0):
        with pytest.raises(ValueError, match=r"\bx is on CUDA device 1 but the current device is 0"):
            diffevo.x0_estimate(x1, cp.ones(8), 0.5)
        with pytest.raises(ValueError, match=r"\bfitness is on CUDA device 1"):
            diffevo.x0_estimate(cp.ones((8, 2)), x1[:, 0], 0.5)


class CaiProducer:
    """A foreign array: only the CUDA array interface of a CuPy array, with a stream."""

    def __init__(self, arr, stream_ptr):
        self._arr = arr
        desc = dict(arr.__cuda_array_interface__)
        desc["stream"] = stream_ptr
        self.__cuda_array_interface__ = desc


@gpu
def test_cai_producer_stream_is_honoured_without_copy():
    cp = _cp()
    producer = cp.cuda.Stream(non_blocking=True)
    n, d = 2053, 8
    with producer:  # the producer fills x on its own stream; nobody synchronises the host
        x = cp.random.default_rng(0).standard_normal((n, d))
        for _ in range(20):  # a slow chain of kernels: the consumer must wait for all of them
            x = x * 1.0 + 0.0
        g = cp.ones(n)
    fx, fg = CaiProducer(x, producer.ptr), CaiProducer(g, producer.ptr)
    view = cb.as_cupy(fx, "x")
    assert view.data.ptr == x.data.ptr  # zero copy
    got = diffevo.x0_estimate(fx, fg, 0.5)  # on CuPy's current (null) stream
    assert isinstance(got, cp.ndarray)  # an unknown producer gets CuPy arrays back
    producer.synchronize()
    ref = diffevo.x0_estimate(x.get(), g.get(), 0.5, backend="numpy")
    assert scale_err(got.get(), ref) <= RTOL64


@gpu
def test_torch_tensors_in_torch_tensors_out():
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("torch was built without CUDA")
    cp = _cp()
    stream = torch.cuda.Stream()
    with torch.cuda.stream(stream):  # the producer works on its own stream
        x = torch.randn(1031, 33, device="cuda", dtype=torch.float32)
        g = torch.rand(1031, device="cuda", dtype=torch.float32)
        view = cb.as_cupy(x, "x")
        assert view.data.ptr == x.data_ptr()  # zero copy
        x0 = diffevo.x0_estimate(x, g, 0.7, density="kde")
        x_next = diffevo.ddim_step(x, x0, 0.7, 0.8, noise=0)
        kde = diffevo.kde_density(x, 0.5)
    for t in (x0, x_next, kde):
        assert isinstance(t, torch.Tensor) and t.device == x.device and t.dtype == torch.float32
    stream.synchronize()
    xh, gh = x.cpu().numpy(), g.cpu().numpy()
    _check_random(x0.cpu().numpy(), xh, gh, 0.7, np.float32, density="kde")
    ref_kde = diffevo.kde_density(xh.astype(np.float64), 0.5, backend="numpy")
    assert scale_err(kde.cpu().numpy(), ref_kde) <= RTOL32
    assert isinstance(view, cp.ndarray)


@gpu
def test_auto_dispatch_and_results_stay_on_device():
    cp = _cp()
    x = cp.asarray(np.random.default_rng(0).normal(size=(64, 3)))
    assert backends.resolve("auto", x) is cb
    assert "cuda" in diffevo.available_backends("cuda")
    out = diffevo.x0_estimate(x, cp.ones(64), 0.5)
    assert isinstance(out, cp.ndarray) and out.dtype == x.dtype

