"""Ask/tell DiffusionEvolution: the loop, the math of a generation, stop criteria, errors."""

from __future__ import annotations

import math
import time

import numpy as np
import pytest

import diffevo
from diffevo import DiffusionEvolution, problems
from diffevo.shaping import AdaptiveEnergy, Shaping

#: a fast CPU backend named explicitly: cpp has the least per-call overhead at the small
#: populations used here (numba pays a parallel launch per call); "auto" is tested once
BACKEND = next(b for b in ("cpp", "numba", "numpy") if b in diffevo.available_backends("cpu"))
BOX = [(-5.0, 5.0), (-5.0, 5.0)]


def make(popsize=32, **kw):
    kw.setdefault("bounds", BOX)
    kw.setdefault("backend", BACKEND)
    kw.setdefault("seed", 0)
    return DiffusionEvolution(popsize, **kw)


def drive(es, fun):
    while not es.stop():
        es.tell(fun(es.ask()))
    return es


def test_ask_shape_bounds_and_idempotence():
    es = make(50, num_step=5)
    x = es.ask()
    assert x.shape == (50, 2) and x.dtype == np.float64
    assert es.ask() is x  # asking again before tell gives the same population
    assert np.all((x >= -5) & (x <= 5))
    es.tell(problems.sphere(x))
    assert es.generation == 1 and es.nfev == 50
    assert not np.array_equal(es.ask(), x)


def test_tell_without_ask_and_after_the_end():
    es = make(num_step=2)
    with pytest.raises(RuntimeError, match="ask"):
        es.tell(np.zeros(32))
    drive(es, problems.sphere)
    assert es.stop() == {"maxiter": 2}
    with pytest.raises(RuntimeError, match="schedule is finished"):
        es.ask()


def test_first_population_uniform_in_the_box():
    """Uniform in [-5, 5]^2: mean 0 +- 4 standard errors (5/sqrt(3)/sqrt(N)), range near the box."""
    x = make(4000, seed=1).ask()
    se = 5 / math.sqrt(3) / math.sqrt(4000)
    assert np.all(np.abs(x.mean(axis=0)) < 4 * se)
    np.testing.assert_allclose(x.std(axis=0), 5 / math.sqrt(3), rtol=0.05)
    assert x.min() > -5 and x.max() < 5 and x.min() < -4.9 and x.max() > 4.9


def test_first_population_gaussian_around_x0():
    """N(x0, sigma0^2): per-coordinate mean within 4 standard errors, std within 5%."""
    x0, sigma0 = np.array([1.0, -2.0, 3.0]), np.array([0.5, 1.0, 2.0])
    x = DiffusionEvolution(4000, x0, sigma0=sigma0, seed=2, backend=BACKEND).ask()
    assert np.all(np.abs(x.mean(axis=0) - x0) < 4 * sigma0 / math.sqrt(4000))
    np.testing.assert_allclose(x.std(axis=0), sigma0, rtol=0.05)


def test_one_generation_is_shaping_then_x0_then_ddim():
    """The first tell equals the core functions applied by hand in u = (x - c) / s coordinates."""
    es = make(40, num_step=10, seed=5, latent_dim=None, noise=0.5)
    x = es.ask()
    f = problems.himmelblau(x)
    center, scale = np.zeros(2), np.full(2, 10 / math.sqrt(12))
    u = (x - center) / scale  # no member is clipped in the first generation
    alpha = es.alphas
    a_t, a_prev = alpha[9], alpha[8]
    assert es.alpha == a_t
    g = AdaptiveEnergy()(f)
    x0u = diffevo.x0_estimate(u, g, a_t, backend=BACKEND)
    state = np.random.default_rng(5)
    state.random((40, 2))  # the draw of the first population
    expected = diffevo.ddim_step(u, x0u, a_t, a_prev, noise=0.5, rng=state)
    es.tell(f)
    np.testing.assert_allclose(es._u, expected, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(es.result.x0_estimate, np.clip(center + scale * x0u, -5, 5),
                               rtol=1e-12, atol=1e-12)


def test_a_centred_generation_steps_in_the_frame_of_the_weighted_mean():
    """centre='weighted': the first tell equals the core functions applied by hand in the
    frame u - m, m the fitness-weighted mean of u (and x0_estimate reported in u again);
    the origin's frame gives another population."""
    kw = dict(bounds=[(-5, 5)] * 5, num_step=10, seed=5, noise=0.5)
    es, plain = make(40, centre="weighted", **kw), make(40, centre="origin", **kw)
    x = es.ask()
    f = problems.rastrigin(x - 2.0)
    scale = np.full(5, 10 / math.sqrt(12))
    u = x / scale
    a_t, a_prev = es.alphas[9], es.alphas[8]
    g = AdaptiveEnergy()(f)
    m = (g @ u) / g.sum()
    np.testing.assert_allclose(diffevo.weighted_centre(u, g), m, rtol=1e-13)
    lat = (u - m) @ es._proj.T
    x0c = diffevo.x0_estimate(u - m, g, a_t, latent=lat, backend=BACKEND)
    state = np.random.default_rng(5)
    state.random((40, 5))  # the first population, then the latent's projection
    state.standard_normal((2, 5))
    expected = diffevo.ddim_step(u - m, x0c, a_t, a_prev, noise=0.5, rng=state) + m
    es.tell(f)
    np.testing.assert_allclose(es._u, expected, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(es.result.x0_estimate, np.clip(scale * (x0c + m), -5, 5),
                               rtol=1e-12, atol=1e-12)
    plain.ask()
    plain.tell(f)
    assert not np.allclose(plain._u, es._u, atol=1e-6)


def test_centre_auto_is_the_weighted_frame_above_three_dimensions():
    assert [make(8, bounds=[(-1, 1)] * d).centred for d in (1, 2, 3, 4, 10)] == [
        False, False, False, True, True]
    assert make(8, bounds=[(-1, 1)] * 2, centre="weighted").centred
    assert not make(8, bounds=[(-1, 1)] * 10, centre="origin").centred


def test_weighted_centre_of_a_batch_is_each_populations_and_zero_weights_give_the_mean():
    rng = np.random.default_rng(0)
    x, w = rng.standard_normal((3, 50, 4)), rng.random((3, 50))
    w[1] = 0.0
    m = diffevo.weighted_centre(x, w)
    for r in range(3):
        assert np.array_equal(m[r], diffevo.weighted_centre(x[r], w[r]))
    np.testing.assert_allclose(m[0], (w[0] @ x[0]) / w[0].sum(), rtol=1e-13)
    np.testing.assert_allclose(m[1], x[1].mean(axis=0), rtol=1e-13)
    assert diffevo.weighted_centre(x[0].astype(np.float32), w[0]).dtype == np.float32


def test_centred_batched_runs_equal_separate_runs():
    """runs=R with the weighted frame (D = 5): run r is the separate call, bit for bit."""
    def cost(X):
        return problems.rastrigin(X - 1.0)

    kw = dict(bounds=[(-5, 5)] * 5, vectorized=True, popsize=96, maxiter=12)
    batched = diffevo.minimize(cost, runs=3, seed=7, **kw)
    for res, seed in zip(batched, np.random.SeedSequence(7).spawn(3)):
        alone = diffevo.minimize(cost, seed=seed, **kw)
        assert np.array_equal(alone.x, res.x) and alone.fun == res.fun
        assert alone.nfev == res.nfev and np.array_equal(alone.population, res.population)


def test_denoise_final_lands_on_the_x0_estimate():
    """With alpha_prev = 1 the DDIM step returns x0 exactly: last population == last x0 estimate."""
    es = drive(make(64, num_step=6, seed=3), problems.himmelblau)
    assert es.alphas[0] == 1.0
    res = es.result
    np.testing.assert_allclose(res.population, res.x0_estimate, rtol=0, atol=1e-12)
    es_raw = drive(make(64, num_step=6, seed=3, denoise_final=False), problems.himmelblau)
    assert es_raw.alphas[0] < 1.0
    assert not np.allclose(es_raw.result.population, es_raw.result.x0_estimate)


def test_result_fields_and_best_ever():
    es = drive(make(32, num_step=8), problems.sphere)
    res = es.result
    assert res.nit == 8 and res.nfev == 256 and res.success and res.status == 0
    assert res.stop == {"maxiter": 8}
    assert res.population.shape == (32, 2) and res.population_fun.shape == (32,)
    np.testing.assert_array_equal(res.population_fun, problems.sphere(res.population))
    assert res.fun == problems.sphere(res.x)
    assert res.fun == es.history.best.min() == es.history.best_ever[-1]
    assert np.all(np.diff(es.history.best_ever) <= 0)
    assert len(es.history) == 8 and es.history.nfev[-1] == 256
    assert res.x0_estimate.shape == (32, 2)


def test_maximize_tracks_the_highest_value_and_negates_for_shaping():
    seen = []

    class Recorder(Shaping):
        def __call__(self, cost):
            seen.append(cost.copy())
            return np.ones_like(cost)

    es = make(16, num_step=3, maximize=True, fitness_shaping=Recorder())
    x = es.ask()
    f = problems.sphere(x)
    es.tell(f)
    np.testing.assert_array_equal(seen[0], -f)  # shapings always get costs (lower is better)
    assert es.best[1] == f.max()
    np.testing.assert_array_equal(es.best[0], x[np.argmax(f)])


def test_mappings_get_raw_values():
    seen = []

    def mapping(values):
        seen.append(values.copy())
        return np.exp(-values)

    es = make(16, num_step=3, maximize=True, fitness_shaping=mapping)
    f = problems.sphere(es.ask())
    es.tell(f)
    np.testing.assert_array_equal(seen[0], f)
    es = make(16, num_step=3, fitness_shaping=diffevo.Energy(temperature=2.0))
    drive(es, problems.sphere)  # the reference mappings still work


def test_negative_weights_from_a_user_mapping_are_refused():
    es = make(16, num_step=3, fitness_shaping=lambda f: f - 100.0)
    with pytest.raises(ValueError, match="fitness_shaping.*negative weights"):
        es.tell(problems.sphere(es.ask()))
    es = make(16, num_step=3, fitness_shaping="identity")  # Identity needs f >= 0
    with pytest.raises(ValueError, match="negative weights"):
        es.tell(-1.0 - problems.sphere(es.ask()))


def test_nan_policy():
    es = make(8, num_step=3)
    f = problems.sphere(es.ask())
    f[3] = np.nan
    with pytest.raises(ValueError, match="fitness contains NaN or inf.*nan_policy='worst'"):
        es.tell(f)
    seen = []

    class Recorder(AdaptiveEnergy):
        def __call__(self, cost):
            seen.append(len(cost))
            return super().__call__(cost)

    es = make(8, num_step=3, nan_policy="worst", fitness_shaping=Recorder())
    x = es.ask()
    f = problems.sphere(x)
    f[[1, 5]] = [np.nan, -np.inf]  # -inf would be "best": it still counts as worst
    es.tell(f)
    assert seen == [6]  # only finite values are shaped; the others weigh 0
    finite = np.isfinite(f)
    assert es.best[1] == f[finite].min()
    es.ask()
    es.tell(np.full(8, np.nan))  # nothing finite at all: the run goes on
    assert es.generation == 2 and math.isnan(es.history.best[-1])


def test_avoided_members_weigh_as_nan_under_worst_but_keep_their_values():
    """avoid(points, radii): the step is the one NaN for those members would give under
    nan_policy='worst' (weight 0, not shown to the shaping), bit for bit; their values
    still count for the best point and the history."""
    points, radii = np.array([[1.0, 1.0], [-2.0, 0.5]]), np.array([0.6, 0.4])
    avoiding = make(64, num_step=4, seed=3)
    avoiding.avoid(points, radii)
    blanked = make(64, num_step=4, seed=3, nan_policy="worst")
    for _ in range(3):
        x = avoiding.ask()
        np.testing.assert_array_equal(x, blanked.ask())
        f = problems.sphere(x)
        inside = avoiding.avoided(x)
        unit = np.asarray(avoiding.box.scale)
        near = (((x[:, None] - points[None]) / unit) ** 2).sum(-1) <= radii**2
        np.testing.assert_array_equal(inside, near.any(axis=1))
        assert 0 < inside.sum() < 64
        avoiding.tell(f)
        blanked.tell(np.where(inside, np.nan, f))
        np.testing.assert_array_equal(avoiding._u, blanked._u)
    assert avoiding.history.best[0] == f.min() or avoiding.best[1] <= blanked.best[1]
    assert avoiding.best[1] == min(avoiding.history.best)


def test_avoid_moves_the_population_to_the_other_optimum():
    """Two equal minima: avoiding one, most of the population gathers at the other
    (seeds 5-7: 41-64 % of the final members nearer (2, 2) without, 76-100 % with)."""
    def two(x):
        return np.minimum(((x - 2.0) ** 2).sum(1), ((x + 2.0) ** 2).sum(1))

    def share_near_plus(es):
        pop = drive(es, two).result.population
        return float((np.linalg.norm(pop - 2.0, axis=1) < np.linalg.norm(pop + 2.0, axis=1)).mean())

    free = share_near_plus(make(256, num_step=30, seed=5))
    es = make(256, num_step=30, seed=5)
    es.avoid([[-2.0, -2.0]], [0.5])  # 1.44 in x: the box's scale is 10 / sqrt(12)
    avoiding = share_near_plus(es)
    assert avoiding > 0.7 and avoiding > free + 0.2
    es = make(8)
    es.avoid([[0.0, 0.0]], [1.0])
    es.avoid(None)  # cleared
    assert es.avoided(es.ask()) is None


@pytest.mark.parametrize("points, radii, match", [
    ([[0.0, 0.0, 0.0]], [1.0], "points must be finite, shape"),
    ([[np.nan, 0.0]], [1.0], "points must be finite"),
    ([[0.0, 0.0]], [0.0], "radii must be"),
    ([[0.0, 0.0]], [1.0, 2.0], "radii must be"),
])
def test_avoid_refuses_bad_arguments(points, radii, match):
    with pytest.raises(ValueError, match=match):
        make(8).avoid(points, radii)


def test_tell_validates_fitness():
    es = make(8, num_step=3)
    es.ask()
    with pytest.raises(ValueError, match=r"fitness must have shape \(8,\)"):
        es.tell(np.zeros(7))
    with pytest.raises(ValueError, match="fitness must have shape"):
        es.tell(np.zeros((8, 2)))
    with pytest.raises(TypeError, match="fitness must be real"):
        es.tell(np.array(["a"] * 8))
    es.tell(list(range(8)))  # any real sequence of the right length
    es.ask()
    es.tell(np.zeros((8, 1)))  # a column vector is accepted


def test_stop_criteria_each_fire():
    sph = problems.sphere
    assert drive(make(16, num_step=4), sph).stop() == {"maxiter": 4}
    es = drive(make(16, num_step=50, maxfev=40), sph)
    assert es.stop() == {"maxfev": 40} and es.nfev == 48  # checked after each generation
    assert not es.result.success and es.result.status == 1
    es = drive(make(16, num_step=50, ftarget=1.0), sph)
    assert "ftarget" in es.stop() and es.best[1] <= 1.0 and es.result.success
    es = drive(make(16, num_step=50, maximize=True, ftarget=30.0), sph)
    assert "ftarget" in es.stop() and es.best[1] >= 30.0
    es = drive(make(16, num_step=50, tolx=100.0), sph)  # any population is tighter than 100
    assert es.stop() == {"tolx": 100.0} and es.generation == 1
    es = drive(make(16, num_step=50, tolfun=1e-9), lambda x: np.full(len(x), 2.5))  # flat
    assert es.stop() == {"tolfun": 1e-9} and es.generation == 1
    es = make(16, num_step=50, timeout=0.05)
    time.sleep(0.06)
    assert "timeout" in es.stop()


def test_tolx_and_tolfun_do_not_fire_early():
    es = make(16, num_step=5, tolx=1e-6, tolfun=1e-12)
    es.tell(problems.sphere(es.ask()))
    assert es.stop() == {}


def test_tell_batch_equals_separate_tells():
    """Batched x0 estimates over R runs give the R separate runs (same per-run arithmetic)."""
    seeds = [11, 12, 13]
    alone = [drive(make(24, num_step=6, seed=s), problems.himmelblau) for s in seeds]
    together = [make(24, num_step=6, seed=s) for s in seeds]
    while not together[0].stop():
        DiffusionEvolution.tell_batch(together, [problems.himmelblau(es.ask()) for es in together])
    for a, b in zip(alone, together):
        np.testing.assert_allclose(b.result.population, a.result.population, rtol=1e-10, atol=1e-12)
        assert b.result.fun == pytest.approx(a.result.fun, rel=1e-9, abs=1e-15)


def test_latent_dim_auto_and_explicit():
    assert make(8, bounds=[(-1, 1)] * 2).latent_dim is None
    assert make(8, bounds=[(-1, 1)] * 5).latent_dim == 2
    assert make(8, bounds=[(-1, 1)] * 5, latent_dim=None).latent_dim is None
    es = make(8, bounds=[(-1, 1)] * 5, latent_dim=3)
    assert es._proj.shape == (3, 5)
    np.testing.assert_allclose(np.linalg.norm(es._proj, axis=1), 1.0, rtol=1e-12)
    drive(es, problems.sphere)
    assert make(8, bounds=[(-1, 1)] * 5).noise == 1.0 and make(8).noise == 0.1
    # D = 3: distances in the full space (the latent merged basins), the high-D noise
    three = make(8, bounds=[(-1, 1)] * 3)
    assert three.latent_dim is None and three._proj is None and three.noise == 1.0
    assert make(8, bounds=[(-1, 1)] * 4).latent_dim == 2


def test_dimension_from_x0_ndim_or_bounds():
    assert DiffusionEvolution(4, np.zeros(3), backend=BACKEND).ndim == 3
    assert DiffusionEvolution(4, ndim=4, backend=BACKEND).ndim == 4
    assert DiffusionEvolution(4, bounds=[(0, 1)] * 5, backend=BACKEND).ndim == 5
    assert DiffusionEvolution(4, ndim=3, bounds=(0, 1), backend=BACKEND).bounds[0].shape == (3,)

    class Bounds:  # scipy.optimize.Bounds-like
        lb = np.zeros(2)
        ub = np.ones(2)

    assert DiffusionEvolution(4, bounds=Bounds(), backend=BACKEND).ndim == 2


@pytest.mark.parametrize("kwargs,exc,match", [
    (dict(popsize=1, ndim=2), ValueError, "popsize must be >= 2"),
    (dict(popsize=2.5, ndim=2), TypeError, "popsize must be an integer"),
    (dict(popsize=8), ValueError, "give x0, ndim"),
    (dict(popsize=8, bounds=[(1, 0), (0, 1)]), ValueError, "bounds must have low < high.*coordinate 0"),
    (dict(popsize=8, bounds=[(0, 0)]), ValueError, "bounds must have low < high"),
    (dict(popsize=8, bounds=[(0, 1, 2)]), ValueError, r"bounds must be \(low, high\)"),
    (dict(popsize=8, bounds=[(0, np.inf)]), ValueError, "bounds must be finite"),
    (dict(popsize=8, ndim=3, bounds=[(0, 1)] * 2), ValueError, "bounds has 2 .* ndim=3"),
    (dict(popsize=8, x0=np.zeros(2), ndim=3), ValueError, "ndim=3 disagrees with x0"),
    (dict(popsize=8, x0=np.zeros((2, 2))), ValueError, "x0 must be a 1-D array"),
    (dict(popsize=8, x0=np.array([0.0, np.nan])), ValueError, "x0 contains NaN"),
    (dict(popsize=8, ndim=2, sigma0=-1.0), ValueError, "sigma0 must be positive"),
    (dict(popsize=8, ndim=2, sigma0=np.ones(3)), ValueError, "sigma0 must be a scalar or shape"),
    (dict(popsize=8, ndim=2, num_step=1), ValueError, "num_step must be >= 2"),
    (dict(popsize=8, ndim=2, schedule="exponential"), ValueError, "schedule must be one of"),
    (dict(popsize=8, ndim=2, schedule=3), TypeError, "schedule must be a name"),
    (dict(popsize=8, ndim=2, noise=2.0), ValueError, "noise must be in"),
    (dict(popsize=8, ndim=2, noise="lots"), ValueError, "noise must be one of"),
    (dict(popsize=8, ndim=2, fitness_shaping="softmax"), ValueError, "fitness_shaping must be one of"),
    (dict(popsize=8, ndim=2, latent_dim=0), ValueError, "latent_dim must be >= 1"),
    (dict(popsize=8, ndim=2, latent_dim="big"), ValueError, "latent_dim must be one of"),
    (dict(popsize=8, ndim=2, centre="middle"), ValueError, "centre must be one of"),
    (dict(popsize=8, ndim=2, nan_policy="omit"), ValueError, "nan_policy must be one of"),
    (dict(popsize=8, ndim=2, mode="fast"), ValueError, "mode must be one of"),
    (dict(popsize=8, ndim=2, backend="gpu"), ValueError, "backend must be one of"),
    (dict(popsize=8, ndim=2, density="knn"), ValueError, "density must be one of"),
    (dict(popsize=8, ndim=2, dtype=np.int32), ValueError, "dtype must be float32 or float64"),
    (dict(popsize=8, ndim=2, maxfev=0), ValueError, "maxfev must be >= 1"),
    (dict(popsize=8, ndim=2, tolx=-1.0), ValueError, "tolx must be a positive"),
    (dict(popsize=8, ndim=2, ftarget="low"), TypeError, "ftarget must be a real number"),
    (dict(popsize=8, ndim=2, sigma=1.0), TypeError, "sigma"),
])
def test_bad_arguments_name_themselves(kwargs, exc, match):
    kwargs.setdefault("backend", BACKEND)
    with pytest.raises(exc, match=match):
        DiffusionEvolution(**kwargs)


def test_float32_population():
    es = drive(make(32, num_step=5, dtype=np.float32), problems.sphere)
    assert es.ask.__self__.population.dtype == np.float32
    assert es.result.x.dtype == np.float32


@pytest.mark.gpu
def test_cupy_population_stays_on_the_device():
    """The whole loop on CuPy arrays (x0 on the GPU) matches the NumPy loop's behaviour."""
    cupy = pytest.importorskip("cupy")
    if "cuda" not in diffevo.available_backends():
        pytest.skip("the cuda backend is not available (not built, or no device)")
    es = DiffusionEvolution(256, cupy.zeros(2), sigma0=3.0, num_step=30, seed=0)
    while not es.stop():
        x = es.ask()
        assert isinstance(x, cupy.ndarray)
        es.tell(problems.himmelblau(x))
    assert isinstance(es.result.x, cupy.ndarray)
    assert float(es.result.fun) < 1e-2  # Himmelblau's minima are 0; 256 members reach 1e-3
