"""The NumPy parts of HADES against brute-force definitions: novelty, buffer, weights."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.distance import cdist

from diffevo.hades.conditions import ConditionState, NoveltyCondition, knn_log_novelty
from diffevo.hades.selection import Buffer, adaptive_pressure, selection_weights


def test_knn_novelty_equals_brute_force():
    rng = np.random.default_rng(0)
    pts = rng.standard_normal((300, 3))
    d = np.sort(cdist(pts, pts), axis=1)[:, 1:11]  # column 0: the point itself
    np.testing.assert_allclose(knn_log_novelty(pts, 10), np.log(d.mean(axis=1) + 1e-8),
                               rtol=1e-12)


def test_novelty_values_see_the_buffer():
    rng = np.random.default_rng(1)
    buf = rng.standard_normal((50, 2))
    new = rng.standard_normal((7, 2)) + 10.0  # far away: their neighbours are each other
    st = ConditionState(buf, np.zeros(50), np.zeros(50), np.zeros(7), np.zeros(1), rng)
    v = NoveltyCondition(k=3).values(new, np.zeros(7), st)
    both = np.concatenate([new, buf])
    d = np.sort(cdist(new, both), axis=1)[:, 1:4]
    np.testing.assert_allclose(v, np.log(d.mean(axis=1) + 1e-8), rtol=1e-12)


def test_quality_buffer_keeps_the_best():
    b = Buffer(5, 1, 0, "quality")
    rng = np.random.default_rng(2)
    allx, allf = [], []
    for _ in range(4):
        x, f = rng.standard_normal((3, 1)), rng.standard_normal(3)
        b = b.pushed(x, f, np.empty((3, 0)))
        allx.append(x)
        allf.append(f)
    f = np.concatenate(allf)
    assert sorted(b.fitness) == sorted(np.sort(f)[-5:])


def test_diversity_buffer_replaces_the_nearest_when_fitter():
    rng = np.random.default_rng(3)
    b = Buffer(20, 2, 1, "diversity").pushed(rng.random((20, 2)), rng.random(20),
                                              rng.random((20, 1)))
    x, f = rng.random((15, 2)), rng.random(15) + 0.3
    v = rng.random((15, 1))
    out = b.pushed(x, f, v)
    # brute force: nearest slot per newcomer; per slot the fittest newcomer, if fitter
    ref_x, ref_f = b.x.copy(), b.fitness.copy()
    slot = cdist(x, b.x).argmin(axis=1)
    for s in np.unique(slot):
        cand = np.flatnonzero(slot == s)
        i = cand[np.argmax(f[cand])]
        if f[i] > b.fitness[s]:
            ref_x[s], ref_f[s] = x[i], f[i]
    np.testing.assert_array_equal(out.x, ref_x)
    np.testing.assert_array_equal(out.fitness, ref_f)
    assert len(out) == 20 and len(b) == 20  # the old buffer is untouched


def test_buffer_drops_non_finite():
    b = Buffer(10, 1).pushed(np.zeros((3, 1)), np.array([1.0, -np.inf, np.nan]), np.empty((3, 0)))
    assert len(b) == 1


def test_selection_weights_definitions():
    f = np.array([0.0, 1.0, 1.0, 3.0, 4.0])
    fn = f / 4.0
    np.testing.assert_allclose(selection_weights(f, "roulette", 3.0), np.exp(3 * (fn - 1)))
    np.testing.assert_allclose(selection_weights(f, "boltzmann", 2.0), np.exp(-2 * abs(f - 4)))
    u = np.array([0.0, 0.25, 0.75, 1.0])  # distinct values, normalised
    cum = np.cumsum(np.exp(3 * (u - 1)))
    np.testing.assert_allclose(selection_weights(f, "cumulative", 3.0),
                               cum[[0, 1, 1, 2, 3]] / cum[-1])
    r = np.array([0, 1, 1, 2, 3]) / 3
    np.testing.assert_allclose(selection_weights(f, "rank", 3.0), np.exp(3 * (r - 1)))
    assert selection_weights(np.ones(4), "roulette", 3.0).tolist() == [1.0] * 4


def test_adaptive_pressure_gives_the_elites_their_share():
    f = np.random.default_rng(4).standard_normal(200)
    s = adaptive_pressure(f, 0.1)
    w = selection_weights(f, "roulette", s)
    top = np.sort(w)[::-1][:20]
    assert top.sum() / w.sum() == pytest.approx(0.9, abs=1e-6)
    assert adaptive_pressure(np.arange(10.0), 0.1, hi=1.0) == 1.0  # capped at the bound
