"""HADES / CHARLES-D ask/tell: determinism, the DiffusionEvolution surface, bad input."""

from __future__ import annotations

import math

import numpy as np
import pytest

import diffevo
from diffevo.hades import (
    CHARLES,
    HADES,
    FitnessCondition,
    NoveltyCondition,
    TraitCondition,
)
from diffevo.problems import himmelblau

SMALL = dict(num_step=4, epochs=4, diffusion_steps=20)
BOX = [(-5.0, 5.0)] * 2


def _run(es, fun=himmelblau):
    pops = []
    while not es.stop():
        x = es.ask()
        pops.append(x.copy())
        es.tell(fun(x))
    return np.stack(pops)


@pytest.mark.parametrize("cls, extra", [(HADES, {}),
                                        (CHARLES, dict(conditions=[FitnessCondition(),
                                                                   NoveltyCondition(k=5)],
                                                       guidance_scale=1.5))])
def test_same_seed_same_run(cls, extra):
    a = _run(cls(32, bounds=BOX, seed=3, **SMALL, **extra))
    b = _run(cls(32, bounds=BOX, seed=3, **SMALL, **extra))
    c = _run(cls(32, bounds=BOX, seed=4, **SMALL, **extra))
    assert np.array_equal(a, b)
    assert not np.array_equal(a[1:], c[1:])


def test_surface_like_diffusion_evolution():
    es = HADES(32, bounds=BOX, seed=0, **SMALL)
    assert es.stop() == {}
    x = es.ask()
    assert x.shape == (32, 2) and x.dtype == np.float64
    assert es.ask() is x  # asking twice returns the same population
    pops = _run(es)
    assert len(pops) == 4 and np.array_equal(pops[0], x)  # the pending ask is reused
    res = es.result
    assert res.stop == {"maxiter": 4} and res.success and res.status == 0
    assert res.nit == 4 and res.nfev == 4 * 32 and len(res.history) == 4
    assert isinstance(res.history, diffevo.History)
    assert res.fun == pytest.approx(min(es.history.best))
    assert himmelblau(res.x[None])[0] == pytest.approx(res.fun)
    assert res.population.shape == (32, 2) and res.population_fun.shape == (32,)
    assert (res.population >= -5).all() and (res.population <= 5).all()
    assert math.isnan(es.alpha)
    with pytest.raises(RuntimeError, match="finished"):
        es.ask()


def test_pickle_round_trip_continues_bit_for_bit():
    """A pickled run (network, buffer, random state) continues exactly as the original."""
    import pickle

    a = CHARLES(32, bounds=BOX, seed=8, conditions=[NoveltyCondition(k=4)], reinit=False, **SMALL)
    for _ in range(2):
        a.tell(himmelblau(a.ask()))
    b = pickle.loads(pickle.dumps(a))
    assert np.array_equal(_run(a), _run(b))
    assert b.result.fun == a.result.fun


def test_ask_is_read_only():
    es = HADES(8, bounds=BOX, seed=0, **SMALL)
    with pytest.raises(ValueError):
        es.ask()[0, 0] = 1.0


def test_maximize_mirrors_minimize():
    """maximize(-f) is minimize(f) draw for draw: the strategy sees the same fitness."""
    a = HADES(32, bounds=BOX, seed=5, **SMALL)
    b = HADES(32, bounds=BOX, seed=5, maximize=True, **SMALL)
    pa, pb = _run(a), _run(b, lambda x: -himmelblau(x))
    assert np.array_equal(pa, pb)
    assert b.result.fun == pytest.approx(-a.result.fun)
    assert np.array_equal(a.result.x, b.result.x)


def test_elites_survive_and_best_never_worsens():
    es = HADES(40, bounds=BOX, seed=1, **SMALL)
    x0 = es.ask()
    f0 = himmelblau(x0)
    es.tell(f0)
    x1 = es.ask()
    n_elite = int(0.1 * 40)
    assert np.array_equal(x1[:n_elite], x0[np.argsort(f0, kind="stable")[:n_elite]])
    _run(es)
    assert np.all(np.diff(es.history.best_ever) <= 0)


def test_failed_tell_changes_nothing():
    a = HADES(32, bounds=BOX, seed=2, **SMALL)
    b = HADES(32, bounds=BOX, seed=2, **SMALL)
    x = b.ask()
    with pytest.raises(ValueError, match="fitness"):
        b.tell(np.ones(31))
    with pytest.raises(ValueError, match="NaN"):
        b.tell(np.full(32, np.nan))
    assert b.generation == 0 and b.nfev == 0
    b.tell(himmelblau(x))
    assert np.array_equal(_run(a)[1:], _run(b))


def test_nan_policy_worst():
    es = HADES(32, bounds=BOX, seed=0, nan_policy="worst", **SMALL)
    x = es.ask()
    f = himmelblau(x)
    f[:5] = np.nan
    es.tell(f)
    assert np.isfinite(es.ask()).all()
    assert es.result.fun == pytest.approx(np.nanmin(f))


def test_all_nan_generation_with_conditions():
    es = CHARLES(32, bounds=BOX, seed=0, nan_policy="worst", **SMALL)
    es.tell(himmelblau(es.ask()))
    es.ask()
    es.tell(np.full(32, np.nan))
    assert np.isfinite(es.ask()).all() and es.generation == 2


def test_tell_without_ask():
    es = HADES(8, bounds=BOX, seed=0, **SMALL)
    with pytest.raises(RuntimeError, match="ask"):
        es.tell(np.zeros(8))


def test_trait_condition_moves_the_population_to_its_target():
    """On a flat objective only the condition says where to go: CHARLES asked for
    x_0 = 3 puts most members near it, HADES with the same seed stays spread."""
    flat = lambda x: np.zeros(x.shape[0])
    opts = dict(num_step=6, epochs=30, bounds=BOX, seed=0)
    ch = CHARLES(128, conditions=[TraitCondition(lambda X: X[:, 0], target=3.0)], **opts)
    ha = HADES(128, **opts)
    _run(ch, flat)
    _run(ha, flat)
    xc, xh = ch.result.population[:, 0], ha.result.population[:, 0]
    assert (xc > 2).mean() > 0.6 and abs(np.median(xc) - 3.0) < 0.5
    assert (xh > 2).mean() < 0.4


def test_novelty_and_fitness_conditions_run_with_guidance():
    es = CHARLES(48, bounds=BOX, seed=0, conditions=[FitnessCondition(greedy=True),
                                                    NoveltyCondition(k=10)],
                 guidance_scale=2.0, **SMALL)
    _run(es)
    assert np.isfinite(es.result.population).all() and es.result.nit == 4


@pytest.mark.parametrize("opts", [
    dict(process="rectified_flow", time_embedding=4),
    dict(mutation_rate=0.3, eta=0.0, reinit=False),
    dict(selection="boltzmann", adaptive_pressure=True, buffer_policy="quality"),
    dict(selection="cumulative", elite_ratio=0.0, random_ratio=0.0),
])
def test_model_options_run(opts):
    es = HADES(32, bounds=BOX, seed=0, **SMALL, **opts)
    pops = _run(es)
    assert np.isfinite(pops).all() and (np.abs(pops) <= 5).all()
    assert es.result.fun <= himmelblau(pops[0]).min()


def test_x0_sigma0_and_unbounded():
    es = HADES(16, np.array([1.0, -1.0, 0.5]), sigma0=0.1, seed=0, **SMALL)
    x = es.ask()
    assert x.shape == (16, 3) and abs(x.mean(axis=0) - [1, -1, 0.5]).max() < 0.2
    _run(es, lambda x: (x ** 2).sum(axis=1))


@pytest.mark.parametrize("kwargs, exc, name", [
    (dict(popsize=2), ValueError, "popsize"),
    (dict(popsize=8.0), TypeError, "popsize"),
    (dict(epochs=0), ValueError, "epochs"),
    (dict(schedule="linear"), TypeError, "schedule"),
    (dict(process="ddpm"), ValueError, "process"),
    (dict(selection="tournament"), ValueError, "selection"),
    (dict(buffer_policy="fifo"), ValueError, "buffer_policy"),
    (dict(elite_ratio=1.5), ValueError, "elite_ratio"),
    (dict(lr=-1.0), ValueError, "lr"),
    (dict(hidden=()), ValueError, "hidden"),
    (dict(maxfev=0), ValueError, "maxfev"),
    (dict(seed="x"), TypeError, "seed"),
    (dict(bounds=[(1, 0)] * 2), ValueError, "bounds"),
    (dict(num_step=5, generations=5), TypeError, "generations"),
    (dict(guidance_scale=1.0), TypeError, "guidance_scale"),
])
def test_hades_bad_input_names_the_argument(kwargs, exc, name):
    kw = dict(popsize=16, bounds=BOX, seed=0)
    kw.update(kwargs)
    with pytest.raises(exc, match=name):
        HADES(kw.pop("popsize"), **kw)


@pytest.mark.parametrize("make, exc, name", [
    (lambda: CHARLES(16, bounds=BOX, conditions=[]), ValueError, "conditions"),
    (lambda: CHARLES(16, bounds=BOX, conditions=[3]), TypeError, "conditions"),
    (lambda: CHARLES(16, bounds=BOX, conditions=[FitnessCondition()], guidance_scale=-1),
     ValueError, "guidance_scale"),
    (lambda: TraitCondition("x0", 1.0), TypeError, "fn"),
    (lambda: TraitCondition(abs, float("nan")), ValueError, "target"),
    (lambda: NoveltyCondition(k=0), ValueError, "k"),
    (lambda: FitnessCondition(scale=0), ValueError, "scale"),
])
def test_charles_bad_input_names_the_argument(make, exc, name):
    with pytest.raises(exc, match=name):
        make()


def test_trait_function_with_a_wrong_shape_is_named_and_changes_nothing():
    es = CHARLES(16, bounds=BOX, seed=0, conditions=[TraitCondition(lambda X: X, 1.0)], **SMALL)
    x = es.ask()
    with pytest.raises(ValueError, match="TraitCondition: fn"):
        es.tell(himmelblau(x))
    assert es.generation == 0


def test_minimize_method_hades_if_registered():
    """Through the strategy registry (another module's), when it is there."""
    strategies = pytest.importorskip("diffevo.strategies")
    if "hades" not in getattr(strategies, "STRATEGIES", {}):
        pytest.skip("no 'hades' in diffevo.strategies")
    res = diffevo.minimize(himmelblau, bounds=BOX, popsize=32, maxiter=3, vectorized=True,
                           seed=0, method="hades", epochs=3, diffusion_steps=10)
    assert res.nit == 3 and np.isfinite(res.fun)
