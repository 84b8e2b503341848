"""Fitness shaping: closed forms, invariances, and the errors users see."""

from __future__ import annotations

import math

import numpy as np
import pytest

import diffevo
from diffevo._settings import resolve_weighting
from diffevo.shaping import AdaptiveEnergy, CenteredRank, FunctionWeighting, Shaping, weights_from


def test_centered_rank_closed_form():
    """Weights are ((N-1-rank)/(N-1))**power exactly (rank 0 = lowest cost)."""
    cost = np.array([3.0, -1.0, 10.0, 0.5, 7.0])
    rank = np.argsort(np.argsort(cost))  # no ties here
    for power in (1.0, 2.0, 8.0):
        w = CenteredRank(power)(cost)
        np.testing.assert_allclose(w, ((4 - rank) / 4.0) ** power, rtol=0, atol=1e-15)
    w = CenteredRank(1.0)(cost)
    assert w[np.argmin(cost)] == 1.0 and w[np.argmax(cost)] == 0.0


def test_centered_rank_ties_share_the_mean_rank():
    cost = np.array([1.0, 2.0, 2.0, 3.0])  # ranks 0, 1.5, 1.5, 3
    np.testing.assert_allclose(CenteredRank(1.0)(cost), [1.0, 0.5, 0.5, 0.0], atol=1e-15)


def test_centered_rank_is_invariant_to_monotone_transforms():
    rng = np.random.default_rng(3)
    cost = rng.normal(size=50)
    w = CenteredRank()(cost)
    np.testing.assert_array_equal(w, CenteredRank()(np.exp(3 * cost) - 7))


def test_adaptive_energy_closed_form_and_invariances():
    """g = exp(-(f - min)/T), T = scale * (median - min); shift/scale invariant."""
    f = np.array([-5.0, -4.0, 0.0, 2.0, 100.0])
    shp = AdaptiveEnergy(scale=0.1)
    t = 0.1 * (np.median(f) - f.min())
    assert shp.temperature(f) == pytest.approx(t, rel=1e-15)
    np.testing.assert_allclose(shp(f), np.exp(-(f - f.min()) / t), rtol=1e-14)
    # shifting or positively scaling the objective changes nothing (up to rounding)
    np.testing.assert_allclose(shp(f + 1e6), shp(f), rtol=1e-8, atol=1e-300)
    np.testing.assert_allclose(shp(f * 1e-6), shp(f), rtol=1e-8, atol=1e-300)
    # the median member weighs exp(-1/scale) of the best
    assert shp(f)[2] == pytest.approx(math.exp(-10.0), rel=1e-12)


def test_adaptive_energy_degenerate_spreads():
    shp = AdaptiveEnergy()
    np.testing.assert_array_equal(shp(np.full(4, 3.0)), np.ones(4))  # constant: uniform
    # more than half tied at the minimum: the temperature falls back to the range
    f = np.array([0.0, 0.0, 0.0, 1.0])
    np.testing.assert_allclose(shp(f), [1, 1, 1, math.exp(-1 / shp.scale)], rtol=1e-14)
    assert shp.scale == 0.3  # the default (see AdaptiveEnergy's docstring for why)


@pytest.mark.parametrize("spec,cls,sense", [
    (None, AdaptiveEnergy, "cost"), ("energy", AdaptiveEnergy, "cost"), ("rank", CenteredRank, "cost"),
    ("centered_rank", CenteredRank, "cost"), ("centred_rank", CenteredRank, "cost"),
    ("identity", diffevo.Identity, "fitness"),
])
def test_resolve_names(spec, cls, sense):
    fn = resolve_weighting(spec)
    assert isinstance(fn, cls) and fn.sense == sense


def test_resolve_objects():
    """One protocol: every weighting declares what it receives; SPEC mappings get raw values."""
    energy = diffevo.Energy(2.0)
    assert resolve_weighting(energy) is energy and energy.sense == "fitness"
    mine = CenteredRank(3)
    assert resolve_weighting(mine) is mine and mine.sense == "cost"

    def fn(f):
        return f * 0 + 1

    wrapped = resolve_weighting(fn)
    assert isinstance(wrapped, FunctionWeighting) and wrapped.fn is fn and wrapped.sense == "fitness"
    np.testing.assert_array_equal(wrapped(np.array([3.0, -1.0])), [1.0, 1.0])


def test_resolve_errors_name_the_argument():
    with pytest.raises(ValueError, match="fitness_shaping"):
        resolve_weighting("softmax")
    with pytest.raises(TypeError, match="fitness_shaping"):
        resolve_weighting(3.0)
    with pytest.raises(ValueError, match="power"):
        CenteredRank(-1)
    with pytest.raises(ValueError, match="scale"):
        AdaptiveEnergy(scale=0)
    with pytest.raises(ValueError, match="quantile"):
        AdaptiveEnergy(quantile=1.5)


def test_weights_from_rejects_bad_weights():
    with pytest.raises(ValueError, match="fitness_shaping.*negative weights"):
        weights_from(lambda f: f, np.array([1.0, -2.0, 3.0]), 3)
    with pytest.raises(ValueError, match="fitness_shaping.*shape"):
        weights_from(lambda f: f[:2], np.array([1.0, 2.0, 3.0]), 3)
    with pytest.raises(ValueError, match="NaN or inf"):
        weights_from(lambda f: f * np.nan, np.array([1.0, 2.0]), 2)
    np.testing.assert_array_equal(weights_from(lambda f: f, np.array([0.0, 2.0]), 2), [0.0, 2.0])


def test_shaping_base_is_subclassable():
    class Top1(Shaping):
        def __call__(self, cost):
            return (cost == cost.min()).astype(float)

    assert resolve_weighting(Top1()).sense == "cost"
    assert repr(CenteredRank(2)) == "CenteredRank(power=2.0)"
