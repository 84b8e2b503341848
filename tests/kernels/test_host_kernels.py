"""The CUDA kernels' own code, executed on the host, against the NumPy oracle and golden data.

``diffevo._core.testing.simulate_block_kernel(path, ...)`` runs the block bodies of the CUDA
kernels (``csrc/include/diffevo/detail/simt_block.hpp`` and ``mma_block.hpp``, the very
templates that ``diffevo/cuda.cuh`` launches) on the host: every block of the launch
grid in turn, the block's 128 simulated threads between barriers (warp by warp, lane by
lane, so a missing barrier reads poisoned or stale shared memory), and the tensor-core
``mma.sync.m16n8k8`` TF32 emulated from the PTX ISA fragment layout. The ``cpp`` backend
(``pairwise_sums_f32/_f64``) runs the same SIMT body with host-sized tiles.

Tolerances (stated once, used everywhere; see ``weight_tolerance``):

* Raw sums are compared with a float64 oracle computed from the SAME (already rounded)
  inputs, so only the kernel's own rounding counts. A relative error ``tau`` in every
  weight ``w_ij`` bounds the error of ``B_i`` by ``tau B_i`` and of ``A_i`` by
  ``tau B_i max|v|``. With unit roundoff ``u`` (2^-24 float32, 2^-53 float64), the
  exponent ``e_ij = logc_j - ||q_i - s k_j||^2 inv`` of a pair that carries weight
  (``e_ij`` within ~40 of the row maximum ``M_i``) has magnitude at most
  ``E_i = max|logc| + |M_i| + 40``, and its rounding error is about
  ``u E_i sqrt(d + 1)`` (d-term sums); exp2 adds a few ulps and the sums
  ``u sqrt(Nk)``. We allow 8 times that:
  ``tau_i = 8 u (E_i sqrt(d + 1) + sqrt(Nk) + 16)``.
* The tensor-core path forms ``||q' - s k'||^2 = |q'|^2 + s^2 |k'|^2 - 2 s q'.k'`` on
  centred data with 3xTF32 products (about 2^-22 relative each), so its exponent error
  is about ``2^-22 inv (|q'_i|^2 + s^2 max|k'_j|^2)`` -- the cancellation that the SIMT
  path avoids at alpha near 1; ``tau`` gains 8 times that (times sqrt(d/8 + 1) for the
  k-steps).
* Reference mode (no running maximum) returns absolute sums whose weights may
  underflow: float32 weights below 2^-126 are flushed on the GPU, so an absolute floor
  of ``Nk 2^-100`` (float32) or ``Nk 2^-1000`` (float64) is added.
Measured worst cases sit at about 0.2 of these bounds; a broken kernel (see the
mutation table in the report) is off by O(1).
"""

from __future__ import annotations

import functools

import numpy as np
import pytest
from golden_data import case_ids, load_golden

_core = pytest.importorskip("diffevo._core")
hooks = _core.testing  # the test hooks: host API and kernel simulation

from diffevo.backends import numpy_backend

UNIT = {np.dtype(np.float32): 2.0**-24, np.dtype(np.float64): 2.0**-53}
FLOOR = {np.dtype(np.float32): 2.0**-100, np.dtype(np.float64): 2.0**-1000}
EPS = 1e-9

# (runner name, dtype): "host" is the fast host path, "simt"/"mma" the simulated kernels
RUNNERS = [
    ("host", np.float64),
    ("host", np.float32),
    ("simt", np.float64),
    ("simt", np.float32),
    ("mma", np.float32),
]
RUNNER_IDS = [f"{p}-{np.dtype(t).name}" for p, t in RUNNERS]


def run_sums(runner, q, k, v, logc, s, inv, online_max, reverse=False):
    if runner == "host":
        fn = _core.pairwise_sums_f32 if q.dtype == np.float32 else _core.pairwise_sums_f64
        return fn(q, k, v, logc, s, inv, online_max)
    return hooks.simulate_block_kernel(runner, q, k, v, logc, s, inv, online_max, reverse)


def oracle(q, k, v, logc, s, inv):
    """float64 direct sums with the row maximum (numpy backend) on the given inputs."""
    f = lambda z: np.asarray(z, np.float64)
    if np.ndim(q) == 3:  # the backend contract is batched
        return numpy_backend.pairwise_sums(f(q), f(k), f(v), f(logc), s, inv, True)
    a, b, m = numpy_backend.pairwise_sums(f(q)[None], f(k)[None], f(v)[None], f(logc)[None], s, inv, True)
    return a[0], b[0], m[0]


def weight_tolerance(q, k, logc, s, inv, m0, dtype, runner):
    """Relative error allowed in every weight of each row (see the module docstring)."""
    q = np.asarray(q, np.float64)
    k = np.asarray(k, np.float64)
    lc = np.asarray(logc, np.float64)
    d = q.shape[1]
    finite = lc[np.isfinite(lc)]
    lmax = float(np.abs(finite).max()) if finite.size else 0.0
    e_scale = lmax + np.abs(m0) + 40.0
    tau = 8 * UNIT[np.dtype(dtype)] * (e_scale * np.sqrt(d + 1) + np.sqrt(k.shape[0]) + 16)
    if runner == "mma":
        mu = k.mean(axis=0) if k.shape[0] else np.zeros(d)
        qn = ((q - s * mu) ** 2).sum(axis=1)
        kn = ((k - mu) ** 2).sum(axis=1).max(initial=0.0)
        tau = tau + 8 * 2.0**-22 * (inv * (qn + s * s * kn) * np.sqrt(d / 8 + 1) + 1)
    return tau


def assert_sums_close(got, q, k, v, logc, s, inv, online_max, runner, want=None):
    """Check (A, B, M) of one batch against the float64 oracle within weight_tolerance."""
    dtype = np.dtype(q.dtype)
    a, b, m = (np.asarray(z, np.float64) for z in got)
    a0, b0, m0 = oracle(q, k, v, logc, s, inv) if want is None else want
    assert a.shape == a0.shape and b.shape == b0.shape and m.shape == m0.shape
    tau = weight_tolerance(q, k, logc, s, inv, m0, dtype, runner)
    vmax = float(np.abs(np.asarray(v, np.float64)).max()) if v.size else 1.0
    if online_max:
        # the shift is the row maximum (up to its own rounding); compare at the oracle's shift
        assert np.all(np.abs(m - m0) <= tau * (np.abs(m0) + 1) + 1e-300), "running maximum M"
        f = np.exp(m - m0)
        bn, an, bref, aref, slack = b * f, a * f[:, None], b0, a0, tau * b0
    else:
        assert np.all(m == 0), "reference mode returns M = 0"
        scale = np.exp(m0)  # may underflow to 0 in float64 too: then only the floor counts
        bn, an, bref, aref = b, a, b0 * scale, a0 * scale[:, None]
        slack = tau * bref + FLOOR[dtype] * k.shape[0]
    assert np.all(np.isfinite(a)) and np.all(np.isfinite(b)), "non-finite sums"
    err_b = np.abs(bn - bref) - slack
    assert err_b.max(initial=-1) <= 0, f"B off by {np.abs(bn - bref).max():.3e} (rows {np.argsort(-err_b)[:5]})"
    if a.shape[1]:
        err_a = np.abs(an - aref) - (slack * vmax)[:, None]
        assert err_a.max() <= 0, f"A off by {np.abs(an - aref).max():.3e}"


def make_case(rng, n, d, dv, nk=None, *, zero_frac=0.0, spread=1.0):
    nk = n if nk is None else nk
    x = rng.standard_normal((max(n, nk), max(d, dv, 1))) * spread
    q = np.ascontiguousarray(x[:n, :d])
    k = np.ascontiguousarray(x[:nk, :d]) if nk == n else rng.standard_normal((nk, d)) * spread
    v = np.ascontiguousarray(x[:nk, :dv]) if nk == n else rng.standard_normal((nk, dv)) * spread
    g = rng.random(nk) * 2
    if zero_frac:
        g[rng.random(nk) < zero_frac] = 0.0
    with np.errstate(divide="ignore"):
        logc = np.log(g if zero_frac else g + EPS)
    return q, k, v, logc


# N from 1 to a few thousand (primes among them), d from 1 to 300, Dv: = d, latent
# (small d, wide values), narrow values, 0 (the KDE pass); Nk != Nq twice.
SHAPES = [
    # (N, d, Dv, Nk)
    (1, 1, 1, None),
    (2, 3, 3, None),
    (7, 2, 2, None),
    (31, 5, 5, None),
    (33, 17, 17, None),
    (129, 2, 2, None),
    (257, 33, 33, None),
    (97, 64, 64, None),
    (61, 300, 300, None),
    (200, 1, 40, None),  # latent-like: 1-D code, 40 value columns
    (150, 40, 3, None),
    (500, 2, 0, None),  # KDE: no values
    (101, 33, 0, None),
    (1009, 2, 2, None),
    (2003, 3, 3, None),
    (40, 9, 9, 300),  # more keys than queries
    (300, 9, 9, 41),  # fewer keys than queries
]
ALPHAS = [1e-3, 0.5, 0.999]



@functools.cache
def shared_case(n, d, dv, nk, alpha_index):
    """One random case per (shape, alpha), rounded to float32 so that every runner (float32
    and float64) sees the same values and the float64 oracle is computed once."""
    rng = np.random.default_rng([n, d, dv, nk or 0, alpha_index])
    spread = float(rng.choice([0.3, 1.0, 3.0]))
    case = tuple(z.astype(np.float32) for z in make_case(rng, n, d, dv, nk, spread=spread))
    alpha = ALPHAS[alpha_index]
    s, inv = float(np.sqrt(alpha)), 1.0 / (2.0 * (1.0 - alpha))
    return case, s, inv, oracle(*case, s, inv)


def combos(runner, n, nk):
    """(alpha index, online_max) pairs to run: all six, or both ends of the schedule only
    where the emulated tensor cores make a case slow (N * Nk > 400k)."""
    if runner == "mma" and n * (nk or n) > 4e5:
        return [(0, False), (2, True)]
    return [(i, om) for i in range(len(ALPHAS)) for om in (False, True)]


@pytest.mark.parametrize("runner, dtype", RUNNERS, ids=RUNNER_IDS)
@pytest.mark.parametrize("n, d, dv, nk", SHAPES, ids=[f"N{s[0]}d{s[1]}v{s[2]}k{s[3]}" for s in SHAPES])
def test_random_shapes(runner, dtype, n, d, dv, nk):
    for alpha_index, online_max in combos(runner, n, nk):
        case, s, inv, want = shared_case(n, d, dv, nk, alpha_index)
        q, k, v, logc = (z.astype(dtype) for z in case)
        got = run_sums(runner, q, k, v, logc, s, inv, online_max)
        assert_sums_close(got, q, k, v, logc, s, inv, online_max, runner, want=want)


@pytest.mark.parametrize("runner, dtype", RUNNERS, ids=RUNNER_IDS)
def test_batched(runner, dtype):
    """R independent populations: rows of batch r see only the keys of batch r."""
    rng = np.random.default_rng(7)
    r, n, d, dv = 3, 45, 5, 5
    q, k, v, logc = (np.stack(z).astype(dtype) for z in zip(*[make_case(rng, n, d, dv, spread=1 + i) for i in range(r)]))
    for alpha, online_max in ((0.2, False), (0.95, True)):
        s, inv = np.sqrt(alpha), 1.0 / (2.0 * (1.0 - alpha))
        a, b, m = run_sums(runner, q, k, v, logc, s, inv, online_max)
        assert a.shape == (r, n, dv) and b.shape == (r, n) and m.shape == (r, n)
        for i in range(r):
            assert_sums_close((a[i], b[i], m[i]), q[i], k[i], v[i], logc[i], s, inv, online_max, runner)


@pytest.mark.parametrize("runner, dtype", RUNNERS, ids=RUNNER_IDS)
def test_zero_weights(runner, dtype):
    """Keys with logc = -inf (zero fitness in exact mode) weigh nothing; a row whose keys
    all weigh nothing gives A = B = 0 and M = 0, as the numpy backend does."""
    rng = np.random.default_rng(3)
    q, k, v, logc = (z.astype(dtype) for z in make_case(rng, 70, 3, 3, zero_frac=0.5))
    for online_max in (False, True):
        got = run_sums(runner, q, k, v, logc, 0.8, 2.0, online_max)
        assert_sums_close(got, q, k, v, logc, 0.8, 2.0, online_max, runner)
    dead = np.full(70, -np.inf, dtype)
    a, b, m = run_sums(runner, q, k, v, dead, 0.8, 2.0, True)
    assert not a.any() and not b.any() and not m.any()


@pytest.mark.parametrize("runner", ["simt", "mma"])
@pytest.mark.parametrize("online_max", [False, True])
def test_thread_order_is_irrelevant(runner, online_max):
    """Correct barriers make the result independent of the order in which the simulated
    warps and lanes run: forward and reverse must agree bit for bit."""
    rng = np.random.default_rng(11)
    q, k, v, logc = (z.astype(np.float32) for z in make_case(rng, 150, 20, 20))
    fwd = hooks.simulate_block_kernel(runner, q, k, v, logc, 0.9, 3.0, online_max, False)
    rev = hooks.simulate_block_kernel(runner, q, k, v, logc, 0.9, 3.0, online_max, True)
    for x, y in zip(fwd, rev):
        np.testing.assert_array_equal(x, y)


def test_no_rows():
    q = np.zeros((0, 3))
    k = np.ones((4, 3))
    for runner in ("host", "simt"):
        a, b, m = run_sums(runner, q, k, k, np.zeros(4), 0.5, 1.0, True)
        assert a.shape == (0, 3) and b.shape == (0,) and m.shape == (0,)


# ---- golden data: the x0 estimate through each runner --------------------------------

GEN = load_golden("generator")
LAT = load_golden("latent")
STEP = load_golden("ddim_step")

# float64 on the SIMT path reorders float64 sums only: 1e-10 of the case's scale, as the
# other golden tests. float32: the inputs themselves are rounded to 2^-24 relative and
# the exponents carry u * |e| (|e| up to ~1e3 here): 1e-5. The tensor-core path at
# alpha = 0.97 adds the dot-product cancellation (see the module docstring): 1e-4.
GOLDEN_RTOL = {("host", "float64"): 1e-10, ("simt", "float64"): 1e-10, ("host", "float32"): 1e-5,
               ("simt", "float32"): 1e-5, ("mma", "float32"): 1e-4}


def assert_close_scaled(actual, expected, rtol):
    scale = max(1.0, float(np.max(np.abs(expected)))) if expected.size else 1.0
    np.testing.assert_allclose(actual, expected, rtol=0, atol=rtol * scale)


def x0_from_sums(runner, x, f, alpha, z=None, kde=False, h=0.1):
    """SPEC section 3 (reference mode) around the runner's pairwise sums."""
    dt = x.dtype.type
    z = x if z is None else z
    n = x.shape[0]
    s, inv = np.sqrt(alpha), 1.0 / (2.0 * (1.0 - alpha))
    c = f + dt(EPS)
    a, b, m = run_sums(runner, z, z, x, np.log(c), s, inv, False)
    scale = np.exp(m)
    a, b = a * scale[:, None], b * scale
    if kde:
        _, kk, km = run_sums(runner, z, z, np.empty((n, 0), x.dtype), np.zeros(n, x.dtype), 1.0, 1 / (2 * h * h), False)
        kk = kk * np.exp(km)
        p = n * kk / kk.sum()
    else:
        p = np.full(n, 1.0 / n, x.dtype)
    return (a + dt(EPS) * (c @ x)) / (b + dt(EPS) * c.sum() + dt(EPS) * (p + dt(EPS)))[:, None]


@pytest.mark.parametrize("runner, dtype", RUNNERS, ids=RUNNER_IDS)
def test_golden_generator(runner, dtype):
    rtol = GOLDEN_RTOL[(runner, np.dtype(dtype).name)]
    for case in case_ids(GEN):
        alpha_t, _, h, is_kde = GEN[f"c{case}_meta"]
        x, f = GEN[f"c{case}_x"].astype(dtype), GEN[f"c{case}_fitness"].astype(dtype)
        x0 = x0_from_sums(runner, x, f, alpha_t, kde=bool(is_kde), h=h)
        assert_close_scaled(x0, GEN[f"c{case}_x0"], rtol)


@pytest.mark.parametrize("runner, dtype", RUNNERS, ids=RUNNER_IDS)
def test_golden_latent(runner, dtype):
    rtol = GOLDEN_RTOL[(runner, np.dtype(dtype).name)]
    for case in case_ids(LAT):
        alpha_t, _ = LAT[f"c{case}_alphas"]
        x, z, f = (LAT[f"c{case}_{key}"].astype(dtype) for key in ("x", "latent", "fitness"))
        assert_close_scaled(x0_from_sums(runner, x, f, alpha_t, z=z), LAT[f"c{case}_x0"], rtol)


# ---- the C++ host API: x0 estimate, KDE density, DDIM step ---------------------------


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_cpp_x0_estimate_golden(dtype):
    rtol = 1e-10 if dtype == np.float64 else 1e-5
    for case in case_ids(GEN):
        alpha_t, _, h, is_kde = GEN[f"c{case}_meta"]
        x, f = GEN[f"c{case}_x"].astype(dtype), GEN[f"c{case}_fitness"].astype(dtype)
        x0 = hooks.x0_estimate(x, f, alpha_t, density="kde" if is_kde else "uniform", bandwidth=h)
        assert x0.dtype == dtype
        assert_close_scaled(x0, GEN[f"c{case}_x0"], rtol)
    for case in case_ids(LAT):
        alpha_t, _ = LAT[f"c{case}_alphas"]
        x, z, f = (LAT[f"c{case}_{key}"].astype(dtype) for key in ("x", "latent", "fitness"))
        assert_close_scaled(hooks.x0_estimate(x, f, alpha_t, latent=z), LAT[f"c{case}_x0"], rtol)


def test_cpp_x0_exact_mode_and_kde():
    """Exact mode (eps = 0, log space) and the KDE density against the numpy backend
    (float64: both reorder float64 sums only, 1e-10 of the scale)."""
    import diffevo

    rng = np.random.default_rng(5)
    x = rng.standard_normal((120, 4))
    f = rng.random(120)
    f[:30] = 0.0
    for alpha in (0.01, 0.9, 0.999):
        want = diffevo.x0_estimate(x, f, alpha, mode="exact", backend="numpy")
        assert_close_scaled(hooks.x0_estimate(x, f, alpha, mode="exact"), want, 1e-10)
    want = diffevo.x0_estimate(x, np.zeros(120), 0.5, mode="exact", backend="numpy")  # all-zero: uniform
    assert_close_scaled(hooks.x0_estimate(x, np.zeros(120), 0.5, mode="exact"), want, 1e-10)
    for h in (0.05, 0.5, 3.0):
        assert_close_scaled(hooks.kde_density(x, h), diffevo.kde_density(x, h, backend="numpy"), 1e-10)


def test_cpp_ddim_step_golden():
    for case in case_ids(STEP):
        alpha_t, alpha_prev, noise = STEP[f"c{case}_meta"]
        out = hooks.ddim_step(STEP[f"c{case}_xt"], STEP[f"c{case}_x0"], alpha_t, alpha_prev, noise, STEP[f"c{case}_z"])
        assert_close_scaled(out, STEP[f"c{case}_xnext"], 1e-10)


# ---- argument checking: ValueError naming the problem, never a silent cast ------------


def test_bad_arguments():
    q = np.zeros((4, 2), np.float32)
    with pytest.raises(ValueError, match="path"):
        hooks.simulate_block_kernel("tensor", q, q, q, np.zeros(4, np.float32), 1.0, 1.0, False)
    with pytest.raises(ValueError, match="float32 only"):
        qd = q.astype(np.float64)
        hooks.simulate_block_kernel("mma", qd, qd, qd, np.zeros(4), 1.0, 1.0, False)
    with pytest.raises(ValueError, match="one dtype"):
        hooks.simulate_block_kernel("simt", q, q, q, np.zeros(4), 1.0, 1.0, False)
    with pytest.raises(ValueError, match="float32"):
        qd = q.astype(np.float64)
        _core.pairwise_sums_f32(qd, qd, qd, np.zeros(4), 1.0, 1.0, False)
    with pytest.raises(ValueError, match="columns"):
        _core.pairwise_sums_f32(q, np.zeros((4, 3), np.float32), q, np.zeros(4, np.float32), 1.0, 1.0, False)
    with pytest.raises(ValueError, match="C-contiguous"):
        _core.pairwise_sums_f32(np.zeros((2, 4), np.float32).T, q, q, np.zeros(4, np.float32), 1.0, 1.0, False)
    with pytest.raises(ValueError, match="batch"):
        b3 = np.zeros((2, 4, 2), np.float32)
        _core.pairwise_sums_f32(b3, np.zeros((3, 4, 2), np.float32), b3, np.zeros((2, 4), np.float32), 1, 1, False)
    with pytest.raises(ValueError, match="alpha"):
        hooks.x0_estimate(np.zeros((3, 2)), np.ones(3), 1.5)
    with pytest.raises(ValueError, match="non-negative"):
        hooks.x0_estimate(np.zeros((3, 2)), -np.ones(3), 0.5)


# ---- the C++ host API's guards (issue 12): refuse, never NaN or a crash ----------------


def _x0_longdouble(x, g, alpha):
    """SPEC section 3, unscaled, uniform density, in long double (no overflow at 1e307 x 64)."""
    x = np.asarray(x, np.longdouble)
    c = np.asarray(g, np.longdouble) + np.longdouble(EPS)
    s, inv = np.sqrt(np.longdouble(alpha)), 1 / (2 * (1 - np.longdouble(alpha)))
    w = c[None, :] * np.exp(-(((x[:, None, :] - s * x[None, :, :]) ** 2).sum(-1)) * inv)
    num = w @ x + EPS * (c @ x)[None, :]
    den = w.sum(1) + EPS * c.sum() + EPS * (1 / np.longdouble(len(c)) + EPS)
    return (num / den[:, None]).astype(np.float64)


@pytest.mark.parametrize("dtype, n, gmax, rtol", [(np.float32, 1024, 1e37, 2e-5), (np.float64, 64, 1e307, 1e-12)])
def test_cpp_reference_mode_does_not_overflow(dtype, n, gmax, rtol):
    """Finite fitness whose sum overflows the dtype: the estimate is scaled by max c (a
    float32 sum of 1024 x 1e37 overflows; unscaled this gave zeros or NaN)."""
    rng = np.random.default_rng(3)
    x = rng.standard_normal((n, 2)).astype(dtype)
    g = (rng.random(n) * gmax).astype(dtype)
    g[::7] = 0
    g[0] = dtype(gmax)
    got = hooks.x0_estimate(x, g, 0.5)
    assert np.isfinite(got).all()
    assert_close_scaled(got, _x0_longdouble(x, g, 0.5), rtol)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_cpp_host_api_refuses_what_it_cannot_compute(dtype):
    x = np.random.default_rng(0).standard_normal((5, 2)).astype(dtype)
    g = np.ones(5, dtype)
    for bad in (np.inf, np.nan):
        gb = g.copy()
        gb[2] = bad
        with pytest.raises(ValueError, match=r"\.hpp:\d+: x0_estimate: g "):
            hooks.x0_estimate(x, gb, 0.5)
        xb = x.copy()
        xb[1, 1] = bad
        with pytest.raises(ValueError, match=r"x0_estimate: x contains NaN or inf"):
            hooks.x0_estimate(xb, g, 0.5)
        with pytest.raises(ValueError, match=r"ddim_step: x_t contains NaN or inf"):
            hooks.ddim_step(xb, x, 0.4, 0.7, 1.0, x)
    with pytest.raises(ValueError, match="D "):
        hooks.x0_estimate(np.zeros((5, 0), dtype), g, 0.5)
    with pytest.raises(ValueError, match="bandwidth"):
        hooks.x0_estimate(x, g, 0.5, density="kde", bandwidth=1e-160)
    with pytest.raises(ValueError, match="bandwidth"):
        hooks.kde_density(x, 1e-300)
    with pytest.raises(ValueError, match="noise"):
        hooks.ddim_step(x, x, 0.4, 0.7, 1.5, x)
    with pytest.raises(ValueError, match="alpha_prev"):
        hooks.ddim_step(x, x, 0.7, 0.4, 0.5, x)
    far = np.array([[0, 0], [1e30, 1e30], [-1e30, 1e30]], dtype) * (1e270 if dtype == np.float64 else 1)
    with pytest.raises(ValueError, match="x is too large"):
        hooks.x0_estimate(far, np.ones(3, dtype), 0.5, mode="exact")
