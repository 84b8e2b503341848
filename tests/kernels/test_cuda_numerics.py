"""The CUDA backend's numbers against the NumPy oracle (on a GPU) and the host simulation.

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
* the tensor-core path ("dot") forced where ``path="auto"`` would not take it (the exponent's
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

import numpy as np
import pytest

import diffevo
from diffevo import backends
from diffevo.backends import cuda_backend as cb
from golden_data import case_ids, load_golden
from gpu_common import (RTOL32, RTOL64, gpu, random_case, scale_err)


#: the NumPy oracle as the dispatch point hands it out (2-D inputs)
NUMPY = backends.resolve("numpy", np.zeros((1, 1)))


GEN = load_golden("generator")
LAT = load_golden("latent")
OPT = load_golden("optimize")
#: (path, dtype) combinations: the tensor-core path is float32 only (float64 + "dot" is
#: refused: test_mma_refuses_float64); "auto" is what users get
PATH_DTYPES = [("direct", np.float64), ("direct", np.float32), ("dot", np.float32),
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


def _tol(dtype, path="direct", z=None, alpha=None):
    """The tolerance of a case (see the module docstring); for the forced tensor-core path
    beyond MMA_MAX_SPREAD, its characterised error MMA_ERROR_PER_SPREAD x spread."""
    if dtype == np.float64:
        return RTOL64
    if path == "dot" and z is not None:
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
    x0 = diffevo.x0_estimate(xd, fd, alpha_t, density=density, bandwidth=h, path=path)
    x_next = diffevo.ddim_step(xd, x0, alpha_t, alpha_prev, noise=0)
    assert isinstance(x0, cp.ndarray) and x0.dtype == dtype and x0.device.id == xd.device.id
    tol = _tol(dtype, path, x, alpha_t)
    assert scale_err(x0.get(), GEN[f"c{case}_x0"]) <= tol
    assert scale_err(x_next.get(), GEN[f"c{case}_xnext_noise0"]) <= tol
    if path == "auto":  # the reference-compatible generator runs the same kernels
        gen = diffevo.BayesianGenerator(xd, fd, (alpha_t, alpha_prev), density, h, backend="cuda")
        x_gen, x0_gen = gen(noise=0, return_x0=True)
        assert scale_err(x0_gen.get(), GEN[f"c{case}_x0"]) <= tol
        assert scale_err(x_gen.get(), GEN[f"c{case}_xnext_noise0"]) <= tol


@gpu
@path_dtype
@pytest.mark.parametrize("case", case_ids(LAT))
def test_golden_latent(case, dtype, path):
    cp = _cp()
    x, z, f = (cp.asarray(LAT[f"c{case}_{k}"].astype(dtype)) for k in ("x", "latent", "fitness"))
    alpha_t, alpha_prev = LAT[f"c{case}_alphas"]
    x0 = diffevo.x0_estimate(x, f, alpha_t, latent=z, path=path)
    x_next = diffevo.ddim_step(x, x0, alpha_t, alpha_prev, noise=0)
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


def _check_random(got, x, g, alpha, dtype, path="direct", **kw):
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
    got = diffevo.x0_estimate(cp.asarray(x), cp.asarray(g), alpha, backend="cuda", path=path)
    _check_random(got.get(), x, g, alpha, dtype, path)


@gpu
@path_dtype
@pytest.mark.parametrize("alpha", ALPHAS)
@pytest.mark.parametrize("n, d", [(31, 5), (257, 64), (1031, 300)])
def test_random_exact_mode(n, d, alpha, dtype, path):
    cp = _cp()
    x, g = random_case(n, d, 7 + n, dtype)
    got = diffevo.x0_estimate(cp.asarray(x), cp.asarray(g), alpha, mode="exact", backend="cuda",
                              path=path)
    _check_random(got.get(), x, g, alpha, dtype, path, mode="exact")


@gpu
@path_dtype
@pytest.mark.parametrize("n, d, dz", [(101, 64, 2), (1000, 300, 16), (2053, 8, 3)])
def test_random_latent_and_kde(n, d, dz, dtype, path):
    cp = _cp()
    x, g = random_case(n, d, 11 + n, dtype)
    z = diffevo.RandomProjection(d, dz, rng=1)(x).astype(dtype)
    for alpha in (1e-4, 0.9):
        got = diffevo.x0_estimate(cp.asarray(x), cp.asarray(g), alpha, latent=cp.asarray(z),
                                  density="kde", bandwidth=0.3, backend="cuda", path=path)
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
        ra, rb, rm = NUMPY.pairwise_sums(*(t[i].astype(np.float64) for t in (q, k, v, logc)),
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


def _simulate():
    """diffevo._core's host simulation of the CUDA block code (a test hook), or None."""
    try:
        from diffevo import _core
    except ImportError:
        return None
    hooks = getattr(_core, "testing", _core)
    return getattr(hooks, "simulate_block_kernel", None)


class _SimulatedDevice:
    """The CUDA block code run on the host (the simulate_block_kernel test hook), as a
    backend object: the device's numerics without a device (emulated TF32 mma.sync)."""

    DEVICE = "cpu"
    PATHS = ("auto", "direct", "dot")

    def __init__(self, kernel):
        self.kernel = kernel  # the compiled module's kernel family: "simt" or "mma"

    def pairwise_sums(self, q, k, v, logc, s, inv, online_max, *, path="auto"):
        parts = [_simulate()(self.kernel, *args, s, inv, online_max) for args in zip(q, k, v, logc)]
        return tuple(np.stack(p) for p in zip(*parts))


@pytest.mark.skipif(_simulate() is None, reason="diffevo._core has no simulate_block_kernel")
def test_mma_spread_policy_holds_on_the_simulated_tensor_core_path():
    """Runs here (no GPU): the claim behind cuda_backend.MMA_MAX_SPREAD, checked on the
    host simulation of the tensor-core block code. float32, every golden case and random
    cases from the middle to the clean end of the schedule: within the spread that
    ``path="auto"`` allows, the x0 error is within RTOL32; beyond it, within
    MMA_ERROR_PER_SPREAD x spread (the tolerance the GPU tests give a forced "mma")."""
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
        got = diffevo.x0_estimate(x32, f32, a, density=density, bandwidth=h, backend=mma)
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
        cb.pairwise_sums(q[None], q[None], q[None], cp.zeros((1, 16)), 1.0, 1.0, False, path="dot")


@gpu
@pytest.mark.parametrize("alpha, want", [(0.5, "dot"), (0.9999, "direct")])
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
@pytest.mark.parametrize("path, dtype", [("direct", np.float64), ("direct", np.float32), ("dot", np.float32)],
                         ids=["direct-float64", "direct-float32", "dot-float32"])
@pytest.mark.parametrize("online_max", [False, True])
@pytest.mark.parametrize("nq, nk, d, dv", [(130, 257, 7, 3), (67, 130, 40, 70), (300, 65, 33, 1)])
def test_device_runs_the_simulated_block_code(nq, nk, d, dv, online_max, dtype, path):
    """The GPU kernels agree with diffevo._core.simulate_block_kernel -- the same block
    bodies run on the host (tests/test_host_kernels.py) -- on the same inputs: what the
    host tests prove about tiles, tails, barriers and fragments holds on the device."""
    cp = _cp()
    rng = np.random.default_rng(nq + nk + d)
    q = rng.normal(0.2, 1.0, size=(nq, d)).astype(dtype)
    k = rng.normal(-0.1, 1.0, size=(nk, d)).astype(dtype)
    v = rng.normal(size=(nk, dv)).astype(dtype)
    logc = np.log(rng.random(nk) + 1e-3).astype(dtype)
    s, inv = 0.9, 0.5
    sim = _simulate()({"direct": "simt", "dot": "mma"}[path], q, k, v, logc, s, inv, online_max)
    be = backends.resolve("cuda", cp.asarray(q))
    dev = [t.get() for t in be.pairwise_sums(*map(cp.asarray, (q, k, v, logc)), s, inv, online_max,
                                               path=path)]
    tol = _sim_tolerance(q, k, logc, s, inv, dtype)
    np.testing.assert_allclose(dev[2], sim[2], rtol=tol, atol=tol)  # shifts (row maxima or 0)
    b_dev = dev[1] * np.exp(dev[2].astype(np.float64))
    b_sim = sim[1] * np.exp(sim[2].astype(np.float64))
    np.testing.assert_allclose(b_dev, b_sim, rtol=2 * tol)
    assert scale_err(dev[0] / dev[1][:, None], sim[0] / sim[1][:, None]) <= 2 * tol


