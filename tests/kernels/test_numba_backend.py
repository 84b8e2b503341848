"""The numba backend against the NumPy oracle (float64) and against closed forms.

Tolerances, relative to the case's scale (``max |expected|``):

* float64, direct form: 1e-12. Both sides sum up to a few thousand terms in a
  different order (~1e-15 each) and the fast exp is good to a few ulp.
* float64, dot-product form: 1e-9. The logits come from differences of squared
  norms, ~eps * (max a + max b) / (2 sigma^2) absolute: the bound the backend
  checks (DOT_TOL = 1e-10) is the relative error of each weight, and the sums
  carry at most that times the cancellation among values of mixed sign.
* float32 (the inputs rounded to float32 once, the reference in float64), direct
  form: 2e-4. The logits here reach ~100 in magnitude, so float32 rounding of
  x (6e-8 relative) moves them by ~1e-5 and a weight by as much; the fast exp adds
  1.6e-7. Terms below float32's smallest normal number (1.2e-38 of exp(M)) are
  flushed to zero, so an absolute allowance of N times that is added.
* float32, dot-product form: 5e-3, from the weights' bound DOT_TOL = 2e-3 with the
  same allowance for cancellation.

Every tolerance is orders of magnitude below what a wrong formula gives (a missing
eps floor or a wrong s moves results by 1e-1 or more, SPEC section 3).
"""

from __future__ import annotations

import math
import threading

import numpy as np
import pytest

import diffevo
from diffevo import backends

nb_module = pytest.importorskip("diffevo.backends.numba_backend")
from diffevo.backends import _fastexp  # noqa: E402  (needs numba)

pytestmark = pytest.mark.skipif(not nb_module.is_available(), reason="numba is not importable")

#: the backends as the dispatch point hands them out (2-D or batched inputs)
nb_backend = backends.resolve("numba", np.zeros((1, 1)))
numpy_backend = backends.resolve("numpy", np.zeros((1, 1)))

TOL = {
    ("float64", "direct"): 1e-12,
    ("float64", "dot"): 1e-9,
    ("float32", "direct"): 2e-4,
    ("float32", "dot"): 5e-3,
}


def assert_close(actual, expected, tol, what="", floor=0.0):
    """max |actual - expected| <= tol * max |expected| + floor (an absolute allowance)."""
    expected = np.asarray(expected, dtype=np.float64)
    scale = float(np.max(np.abs(expected))) if expected.size else 1.0
    err = float(np.max(np.abs(np.asarray(actual, dtype=np.float64) - expected))) if expected.size else 0.0
    assert err <= tol * scale + floor, (
        f"{what}: max error {err:.3e} > {tol:.1e} * scale {scale:.3e} + {floor:.1e}")


def oracle(q, k, v, logc, s, inv, online):
    """The NumPy backend in float64, per batch; returns A, B scaled back by exp(M), and M."""
    q, k, v, logc = (np.asarray(a, dtype=np.float64) for a in (q, k, v, logc))
    if q.ndim == 2:
        a, b, m = numpy_backend.pairwise_sums(q, k, v, logc, s, inv, online)
        return a, b, m
    outs = [numpy_backend.pairwise_sums(q[r], k[r], v[r], logc[r], s, inv, online) for r in range(q.shape[0])]
    return tuple(np.stack([o[i] for o in outs]) for i in range(3))


def compare(q, k, v, logc, s, inv, online, path, what=""):
    """numba (given path) vs the float64 oracle: absolute sums in reference mode,
    the row maximum and the shifted sums in exact mode."""
    dt = q.dtype.name
    a, b, m = nb_backend.pairwise_sums(q, k, v, logc, s, inv, online, path=path)
    assert a.dtype == b.dtype == m.dtype == q.dtype
    assert a.shape == q.shape[:-1] + (v.shape[-1],) and b.shape == m.shape == q.shape[:-1]
    ea, eb, em = oracle(q, k, v, logc, s, inv, online)
    tol = TOL[(dt, path)]
    if online:
        # M is the row maximum of the logits: compare it in absolute terms on the
        # scale of the logits, then the sums, which are relative to it
        assert_close(m, em, tol, f"{what} M")
        ratio_a = a / np.where(b == 0, 1, b)[..., None]
        ratio_e = ea / np.where(eb == 0, 1, eb)[..., None]
        assert_close(b, eb, tol * 10, f"{what} B")
        assert_close(ratio_a, ratio_e, tol * 10, f"{what} A/B")
    else:
        scale = np.exp(m.astype(np.float64) - em)
        # the weights are 2^y <= 1 relative to exp(M): terms below the smallest normal
        # number of the dtype are flushed to 0, N of them at most
        nk = k.shape[-2]
        floor = nk * float(np.finfo(q.dtype).tiny) * float(np.max(np.exp(m.astype(np.float64))))
        assert_close(b * scale, eb, tol, f"{what} B", floor)
        assert_close(a * scale[..., None], ea, tol, f"{what} A", floor * float(np.max(np.abs(v), initial=0)))


def case(rng, n, d, dt, *, zero_frac=0.0, offset=0.0):
    """A population (n, d) around ``offset`` and fitness in [0, 3) with some zeros."""
    x = (offset + rng.standard_normal((n, d))).astype(dt)
    g = rng.random(n) * 3
    g[rng.random(n) < zero_frac] = 0.0
    return x, g


def logc_of(g, dt, online):
    with np.errstate(divide="ignore"):
        return (np.log(g) if online else np.log(g + 1e-9)).astype(dt)


# --------------------------------------------------------------------- fast exp


@pytest.mark.parametrize("dt", [np.float32, np.float64])
def test_exp2_accuracy(dt):
    """exp(x) = exp2(x log2 e) against np.exp in float64 on [-80, 0] (float32) /
    [-700, 0] (float64). Tolerance: a few ulp of the result plus the rounding of the
    argument x*log2(e) (one ulp of |y|, i.e. eps * |x| relative)."""
    lo = -80.0 if dt == np.float32 else -700.0
    x = np.linspace(lo, 0, 400_001).astype(dt)
    got = _fastexp.exp_array(x).astype(np.float64)
    ref = np.exp(x.astype(np.float64))
    eps = float(np.finfo(dt).eps)
    ok = ref > np.finfo(dt).tiny * 4  # the normal range (below it: flushed to 0)
    rel = np.abs(got[ok] / ref[ok] - 1)
    assert np.all(rel <= 4 * eps + 1.5 * eps * np.abs(x[ok].astype(np.float64))), rel.max()


@pytest.mark.parametrize("dt", [np.float32, np.float64])
def test_exp2_edges(dt):
    """-inf and anything below the normal range give exactly 0 (zero-fitness members
    weigh nothing), 0 gives 1 to one ulp, and the function is monotone."""
    x = np.array([-np.inf, -1e30, -1e4, -2000.0, 0.0, -0.0], dtype=dt)
    y = _fastexp.exp_array(x)
    assert np.all(y[:4] == 0)
    assert abs(float(y[4]) - 1) <= np.finfo(dt).eps and abs(float(y[5]) - 1) <= np.finfo(dt).eps
    grid = np.linspace(-30, 0, 100_001).astype(dt)
    assert np.all(np.diff(_fastexp.exp_array(grid).astype(np.float64)) >= 0)


@pytest.mark.parametrize("dt", [np.float32, np.float64])
def test_row_max(dt):
    """The integer-key maximum equals np.max, with -inf, signed zeros and tails."""
    rng = np.random.default_rng(0)
    for n in (1, 2, 15, 16, 17, 100, 1031):
        y = (rng.standard_normal(n) * 10.0 ** rng.integers(-3, 6)).astype(dt)
        assert _fastexp.row_max_array(y) == y.max()
        y[rng.random(n) < 0.7] = -np.inf
        assert _fastexp.row_max_array(y) == y.max()
    assert _fastexp.row_max_array(np.full(5, -np.inf, dt)) == -np.inf
    assert np.signbit(_fastexp.row_max_array(np.array([-0.0, -1.0], dt)))
    assert _fastexp.row_max_array(np.array([-0.0, 0.0, -3.0], dt)) == 0


# ------------------------------------------------------- pairwise sums vs oracle

DIRECT_SHAPES = [(1, 1), (2, 2), (7, 3), (97, 4), (64, 5), (300, 33), (1031, 2), (2053, 7)]


@pytest.mark.parametrize("online", [False, True], ids=["reference", "exact"])
@pytest.mark.parametrize("dt", ["float32", "float64"])
@pytest.mark.parametrize("n, d", DIRECT_SHAPES)
def test_direct_matches_oracle(n, d, dt, online):
    """Direct form: N = 1, primes, and 1031 / 2053 keys (tile tails of the 1024-key
    tiles and of the 64-row blocks); d = 1..5 (unrolled loops, including d = 5 =
    4 + 1) and 33; a third of the members with zero fitness."""
    rng = np.random.default_rng(n * 100 + d)
    x, g = case(rng, n, d, dt, zero_frac=0.3)
    if online and not (g > 0).any():
        g[0] = 1.0
    for alpha in (1e-3, 0.5, 0.999):
        s, inv = math.sqrt(alpha), 1 / (2 * (1 - alpha))
        compare(x, x, x, logc_of(g, dt, online), s, inv, online, "direct", f"alpha={alpha}")


@pytest.mark.parametrize("online", [False, True], ids=["reference", "exact"])
@pytest.mark.parametrize("dt", ["float32", "float64"])
@pytest.mark.parametrize("n, d", [(1, 24), (300, 24), (1500, 64), (1100, 40)])
def test_dot_matches_oracle(n, d, dt, online):
    """Dot-product form (forced): one block, several 1024-blocks with tails, with
    and without Gram symmetry (q is k or a copy), values of another width."""
    rng = np.random.default_rng(n + d)
    x, g = case(rng, n, d, dt, zero_frac=0.2, offset=2.0)
    if online and not (g > 0).any():
        g[0] = 1.0
    logc = logc_of(g, dt, online)
    v = rng.standard_normal((n, 3)).astype(dt)
    # alpha = 0.5 and 1e-3: the bound holds here (see test_auto_path_bound)
    for alpha in (1e-3, 0.5):
        s, inv = math.sqrt(alpha), 1 / (2 * (1 - alpha))
        compare(x, x, x, logc, s, inv, online, "dot", f"same alpha={alpha}")
        compare(x, x.copy(), v, logc, s, inv, online, "dot", f"copy alpha={alpha}")


@pytest.mark.parametrize("dt", ["float32", "float64"])
def test_dot_bound_covers_alpha_near_one(dt):
    """At alpha = 0.999 the dot form is as accurate as its bound says: a population
    of small spread passes the bound and matches the float64 oracle; a wide one
    fails it (and 'auto' then takes the direct form, see test_auto_path_bound)."""
    from diffevo.backends._numba_gemm import centred, dot_error_bound

    rng = np.random.default_rng(7)
    alpha = 0.999
    s, inv = math.sqrt(alpha), 1 / (2 * (1 - alpha))
    tol = nb_module.DOT_TOL[np.dtype(dt)]
    narrow = (1.0 + (0.02 if dt == "float32" else 1.0) * rng.standard_normal((600, 32))).astype(dt)
    wide = (5.0 * rng.standard_normal((600, 32))).astype(dt)
    _, _, a, b = centred(wide, wide, s, True)
    assert dot_error_bound(a, b, inv, np.dtype(dt)) > tol
    _, _, a, b = centred(narrow, narrow, s, True)
    assert dot_error_bound(a, b, inv, np.dtype(dt)) <= tol
    g = rng.random(600)
    compare(narrow, narrow, narrow, logc_of(g, dt, False), s, inv, False, "dot", "narrow alpha=0.999")


@pytest.mark.parametrize("dt", ["float32", "float64"])
def test_auto_path_bound(dt):
    """'auto' takes the dot form where it pays (wide, many pairs) and falls back to
    the direct form (bit for bit: both are deterministic) when the bound fails."""
    rng = np.random.default_rng(3)
    n, d = 1100, 64
    assert nb_module.dot_pays(d, d, n * n)
    assert not nb_module.dot_pays(2, 2, 1 << 40) and not nb_module.dot_pays(512, 512, 1000)
    x = (3 * rng.standard_normal((n, d))).astype(dt)
    logc = logc_of(rng.random(n), dt, False)
    for alpha, want in ((0.3, "dot"), (0.999, "direct")):
        s, inv = math.sqrt(alpha), 1 / (2 * (1 - alpha))
        auto = nb_backend.pairwise_sums(x, x, x, logc, s, inv, False)
        forced = nb_backend.pairwise_sums(x, x, x, logc, s, inv, False, path=want)
        for got, exp in zip(auto, forced):
            np.testing.assert_array_equal(got, exp, err_msg=f"alpha={alpha} should take {want}")


@pytest.mark.parametrize("path", ["direct", "dot"])
@pytest.mark.parametrize("online", [False, True], ids=["reference", "exact"])
def test_batched_sees_only_own_keys(path, online):
    """(R, N, d): each batch equals its own 2-D call (bitwise, direct form) or the
    oracle, and batches never mix (batch 1 is far away from batch 0)."""
    rng = np.random.default_rng(11)
    dt = np.float64
    x = rng.standard_normal((3, 130, 24))
    x[1] += 50.0
    g = rng.random((3, 130))
    logc = logc_of(g, dt, online)
    s, inv = math.sqrt(0.4), 1 / (2 * 0.6)
    compare(x, x, x, logc, s, inv, online, path, "batched")
    a, b, m = nb_backend.pairwise_sums(x, x, x, logc, s, inv, online, path=path)
    for r in range(3):
        a1, b1, m1 = nb_backend.pairwise_sums(x[r], x[r], x[r], logc[r], s, inv, online, path=path)
        # 1e-10: the same arithmetic, but BLAS may round differently at another
        # memory alignment of the centred copies
        np.testing.assert_allclose(a[r] * np.exp(m[r] - m1)[:, None], a1, rtol=1e-10, atol=0)
        np.testing.assert_allclose(b[r] * np.exp(m[r] - m1), b1, rtol=1e-10, atol=0)


@pytest.mark.parametrize("path", ["direct", "dot"])
def test_exact_mode_minus_inf(path):
    """Exact mode with logc = -inf (zero fitness): those keys weigh exactly 0; a row
    whose only finite key is far away still gets its weight (no underflow to 0/0);
    an all -inf batch returns A = B = 0, M = 0 (the oracle's convention)."""
    rng = np.random.default_rng(5)
    n, d = 300, 30
    x = rng.standard_normal((2, n, d))
    logc = np.full((2, n), -np.inf)
    logc[0, 17] = 0.0  # one member with fitness: every row's weight is on it
    s, inv = math.sqrt(0.999), 1 / (2 * 0.001)  # far rows: logits ~ -1e4, exp underflows
    a, b, m = nb_backend.pairwise_sums(x, x, x, logc, s, inv, True, path=path)
    assert np.all(np.isfinite(a)) and np.all(np.isfinite(b)) and np.all(np.isfinite(m))
    np.testing.assert_allclose(b[0], 1.0, rtol=1e-12)
    np.testing.assert_allclose(a[0], np.broadcast_to(x[0, 17], (n, d)), rtol=1e-12)
    assert np.all(np.delete(m[0], 17) < -100)  # the maximum really is that far down
    assert not np.any(a[1]) and not np.any(b[1]) and not np.any(m[1])


def test_reference_mode_large_logc():
    """Reference mode subtracts max(logc): huge fitness (logc ~ 80, float32 exp would
    overflow at 88) stays finite and M carries the scale."""
    rng = np.random.default_rng(2)
    x = rng.standard_normal((200, 2)).astype(np.float32)
    logc = (80 + rng.random(200)).astype(np.float32)
    a, b, m = nb_backend.pairwise_sums(x, x, x, logc, 0.8, 1.0, False)
    assert np.all(np.isfinite(a)) and np.all(np.isfinite(b))
    ea, eb, _ = oracle(x, x, x, logc, 0.8, 1.0, False)
    assert_close(b * np.exp(m.astype(np.float64)), eb, 2e-4, "B")


def test_empty_values_and_kde_shape():
    """Dv = 0 (the KDE call) gives A of shape (N, 0) and the oracle's B."""
    rng = np.random.default_rng(1)
    z = rng.standard_normal((50, 3))
    v = np.empty((50, 0))
    a, b, m = nb_backend.pairwise_sums(z, z, v, np.zeros(50), 1.0, 12.5, False)
    assert a.shape == (50, 0)
    _, eb, _ = oracle(z, z, v, np.zeros(50), 1.0, 12.5, False)
    assert_close(b * np.exp(m), eb, 1e-12, "B")


def test_dot_deterministic_and_restores_threads():
    """The threaded dot form gives identical results on every call (fixed deal of
    blocks, fixed merge order) and leaves Numba's and BLAS's thread settings alone."""
    import numba

    rng = np.random.default_rng(9)
    x = rng.standard_normal((2100, 64)).astype(np.float32)
    logc = logc_of(rng.random(2100), "float32", False)
    before = numba.get_num_threads()
    r1 = nb_backend.pairwise_sums(x, x, x, logc, 0.7, 1.0, False, path="dot")
    r2 = nb_backend.pairwise_sums(x, x, x, logc, 0.7, 1.0, False, path="dot")
    for u, w in zip(r1, r2):
        np.testing.assert_array_equal(u, w)
    assert numba.get_num_threads() == before
    out = {}

    def other_thread():  # kernels called from a second Python thread work too
        out["r"] = nb_backend.pairwise_sums(x, x, x, logc, 0.7, 1.0, False, path="dot")

    t = threading.Thread(target=other_thread)
    t.start()
    t.join()
    np.testing.assert_array_equal(out["r"][1], r1[1])


def test_path_argument_checked():
    x = np.zeros((3, 2))
    with pytest.raises(ValueError, match="path"):
        nb_backend.pairwise_sums(x, x, x, np.zeros(3), 1.0, 1.0, False, path="fast")


# ---------------------------------------------------- public API vs numpy backend


@pytest.mark.parametrize("dt", ["float32", "float64"])
@pytest.mark.parametrize("mode", ["reference", "exact"])
@pytest.mark.parametrize("density", ["uniform", "kde"])
@pytest.mark.parametrize("alpha", [1e-3, 0.999])
def test_x0_estimate_matches_numpy(alpha, density, mode, dt):
    """x0_estimate(backend='numba') vs backend='numpy' in float64, both ends of the
    schedule, both densities and modes, zero-fitness members, and D = 2 and 64
    (N = 1100: 'auto' may take the dot form at D = 64). Tolerances as above, on
    the x0 scale."""
    rng = np.random.default_rng(int(alpha * 1000) + len(density) + len(mode))
    for n, d in ((1, 2), (97, 2), (1100, 64)):
        x = (0.5 + rng.standard_normal((n, d))).astype(dt)
        g = rng.random(n)
        g[rng.random(n) < 0.25] = 0.0
        got = diffevo.x0_estimate(x, g, alpha, density=density, bandwidth=0.3, mode=mode, backend="numba")
        ref = diffevo.x0_estimate(x.astype(np.float64), g, alpha, density=density, bandwidth=0.3,
                                  mode=mode, backend="numpy")
        assert got.dtype == x.dtype and got.shape == x.shape
        path = "dot" if nb_module.dot_pays(d, d, n * n) else "direct"
        assert_close(got, ref, TOL[(dt, path)] * 10, f"N={n} D={d}")


@pytest.mark.parametrize("dt", ["float32", "float64"])
def test_latent_and_batched_x0_match_numpy(dt):
    """Latent variant (distances in d = 3, the average over D = 40) and a batch of
    R = 3 populations through the public API."""
    rng = np.random.default_rng(4)
    x = rng.standard_normal((3, 257, 40)).astype(dt)
    w = rng.standard_normal((3, 40)) / np.sqrt(40)
    z = (x @ w.T.astype(dt)).astype(dt)
    g = rng.random((3, 257))
    for alpha in (1e-3, 0.6, 0.999):
        got = diffevo.x0_estimate(x, g, alpha, latent=z, density="kde", backend="numba")
        ref = diffevo.x0_estimate(x.astype(np.float64), g, alpha, latent=z.astype(np.float64),
                                  density="kde", backend="numpy")
        assert_close(got, ref, TOL[(dt, "direct")] * 10, f"alpha={alpha}")


def test_auto_prefers_numba_and_falls_back_with_one_warning(monkeypatch):
    """'auto' resolves to numba on the CPU; without numba it warns once and uses numpy."""
    x = np.zeros((2, 2))
    assert backends.resolve("auto", x).impl is nb_module
    real_load = backends.load
    monkeypatch.setattr(backends, "load", lambda name: None if name == "numba" else real_load(name))
    monkeypatch.setattr(backends, "_warned_fallback", False)
    with pytest.warns(RuntimeWarning, match="numba is not importable"):
        assert backends.resolve("auto", x).name == "numpy"
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert backends.resolve("auto", x).name == "numpy"  # only once


_SAME_BITS_SCRIPT = """
import hashlib, sys
import numpy as np
from diffevo.backends import numba_backend as nb
rng = np.random.default_rng(0)
out = []
for dt in (np.float64,):  # (each variant compiles for seconds: two of them)
    for d, dv, online in ((1, 1, True), (2, 5, False)):
        q = rng.standard_normal((2, 700, d)).astype(dt)
        v = q if dv == d else rng.standard_normal((2, 700, dv)).astype(dt)
        logc = rng.standard_normal((2, 700)).astype(dt)
        a, b, m = nb.pairwise_sums(q, q, v, logc, 0.9, 2.0, online, path="direct")
        out.append(hashlib.sha256(a.tobytes() + b.tobytes() + m.tobytes()).hexdigest())
print(" ".join(out))
"""


@pytest.mark.slow
def test_the_process_that_compiles_a_kernel_gets_the_bits_of_those_that_load_it(tmp_path):
    """A seed must give the same bits in the process that compiles the kernels as in every
    later one, which loads them from Numba's on-disk cache. A loop that both stored and
    summed (``_exp_sum``) compiled to other code in the compiling process: the pair sums
    of the non-fused variants (exact mode, or values other than the keys) differed in the
    last bits, and a run's result with them (rosenbrock 10-D, 5.4e-11 against 1.3e-11).
    Two processes on an empty cache directory: the first compiles, the second loads."""
    import os
    import subprocess
    import sys

    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path / "numba-cache"))
    runs = [subprocess.run([sys.executable, "-c", _SAME_BITS_SCRIPT], env=env, check=True,
                           capture_output=True, text=True).stdout.split() for _ in range(2)]
    assert len(runs[0]) == 2
    assert any((tmp_path / "numba-cache").rglob("*.nbi")), "the first process cached nothing"
    assert runs[0] == runs[1]
