"""Modes and polish (issue 13): closed-form optima, the evaluation budget, de-duplication,
batched runs equal to separate ones. Tolerances are stated where they are used."""

from __future__ import annotations

import numpy as np
import pytest

import diffevo
from diffevo import problems
from diffevo.modes import find_modes, merge_modes
from diffevo.polish import Counted, _Exhausted, finish, polish_modes
from diffevo.runner import child_seed

MINIMA = problems.HIMMELBLAU_MINIMA


class Calls:
    """A vectorised objective that counts every point it is given."""

    def __init__(self, f):
        self.f, self.n = f, 0

    def __call__(self, X):
        X = np.atleast_2d(X)
        self.n += X.shape[0]
        return self.f(X)


def _clumps(rng, centres, sizes, spread=0.02, stragglers=40, box=5.0):
    pts = [c + spread * rng.standard_normal((n, 2)) for c, n in zip(centres, sizes)]
    pts.append(rng.uniform(-box, box, (stragglers, 2)))
    return np.vstack(pts)


def test_find_modes_returns_one_mode_per_clump_sorted_by_value():
    # four clumps of different sizes around Himmelblau's minima, 40 uniform stragglers:
    # nearest-better clustering must give four big basins whose best members are the
    # members closest to the minima (the clumps have spread 0.02, so within 0.1)
    rng = np.random.default_rng(3)
    x = _clumps(rng, MINIMA, (200, 120, 60, 30))
    modes = find_modes(x, problems.himmelblau(x), scale=10 / 12 ** 0.5)
    big = [m for m in modes if m["size"] >= 20]
    assert len(big) == 4
    assert [m["fun"] for m in modes] == sorted(m["fun"] for m in modes)
    for m in big:
        assert np.abs(MINIMA - m["x"]).max(axis=1).min() < 0.1
    # every member (NaN-free) is in exactly one basin
    assert sum(m["size"] for m in modes) == x.shape[0]


def test_find_modes_ignores_non_finite_members_and_checks_shapes():
    x = np.array([[0.0, 0.0], [1.0, 1.0], [np.nan, 0.0]])
    modes = find_modes(x, np.array([0.0, np.inf, 1.0]))
    assert len(modes) == 1 and modes[0]["size"] == 1
    with pytest.raises(ValueError, match="cost"):
        find_modes(x, np.zeros(2))
    with pytest.raises(ValueError, match="x must"):
        find_modes(np.zeros(3), np.zeros(3))


def test_minimize_returns_all_four_himmelblau_minima_polished():
    # the closed-form minima (problems.HIMMELBLAU_MINIMA, 1e-15-exact): polished modes agree
    # to 1e-6 in x and 1e-10 in f (L-BFGS-B with forward differences reaches ~1e-8 and ~1e-14)
    res = diffevo.minimize(problems.himmelblau, bounds=[(-5, 5)] * 2, vectorized=True, seed=1)
    assert len(res.modes) >= 4
    top = np.array([m["x"] for m in res.modes[:4]])
    for xm in MINIMA:
        assert np.abs(top - xm).max(axis=1).min() < 1e-6
    assert all(m["fun"] < 1e-10 and m["polished"] for m in res.modes[:4])
    assert res.fun == res.modes[0]["fun"] and np.array_equal(res.x, res.modes[0]["x"])
    assert sum(m["size"] for m in res.modes[:4]) > 0.9 * 1024


def test_maximize_reports_modes_in_the_objectives_sign():
    res = diffevo.maximize(lambda X: -problems.himmelblau(X), bounds=[(-5, 5)] * 2,
                           vectorized=True, seed=2, popsize=256, maxiter=30)
    assert res.modes[0]["fun"] == res.fun > -1e-10
    assert [m["fun"] for m in res.modes] == sorted((m["fun"] for m in res.modes), reverse=True)


@pytest.mark.parametrize("maxfev", [0, 1, 3, 4, 50, 500])
def test_polish_never_exceeds_its_budget_and_counts_every_call(maxfev):
    f = Calls(problems.rosenbrock)
    modes = [{"x": np.full(2, -1.2), "fun": 24.2, "size": 1}, {"x": np.full(2, 2.0), "fun": 401.0, "size": 1}]
    out, used = polish_modes(f, modes, maxfev=maxfev, bounds=(np.full(2, -5.0), np.full(2, 5.0)))
    assert used == f.n <= maxfev
    if maxfev >= 500:  # enough for L-BFGS-B from (-1.2, -1.2): the minimum (1, 1) to 1e-5
        assert np.abs(out[0]["x"] - 1).max() < 1e-5


def test_counted_refuses_a_batch_beyond_the_budget_before_evaluating():
    f = Calls(problems.sphere)
    c = Counted(f, 5)
    c(np.zeros((3, 2)))
    with pytest.raises(_Exhausted):
        c(np.zeros((3, 2)))
    assert f.n == c.nfev == 3


def test_minimize_counts_polish_in_nfev_and_respects_maxfev():
    f = Calls(problems.sphere)
    res = diffevo.minimize(f, bounds=[(-5, 5)] * 3, vectorized=True, popsize=64, maxiter=20,
                           maxfev=1500, seed=0)
    assert res.nfev == f.n <= 1500 and res.nfev > 64 * 20  # the schedule, then polish
    assert res.fun < 1e-12  # a 3-D quadratic: L-BFGS-B converges in a few stencils
    g = Calls(problems.sphere)
    off = diffevo.minimize(g, bounds=[(-5, 5)] * 3, vectorized=True, popsize=64, maxiter=20,
                           seed=0, polish=False)
    assert off.nfev == g.n == 64 * 20 and not any(m["polished"] for m in off.modes)


def test_modes_that_polish_to_one_point_are_merged():
    # two clumps inside the same (sphere) basin: two modes before polishing, one after,
    # with the summed size
    rng = np.random.default_rng(0)
    x = _clumps(rng, np.array([[1.0, 1.0], [-1.0, 1.0]]), (50, 50), stragglers=0)
    c = problems.sphere(x)
    assert len(find_modes(x, c, scale=1.0)) == 2
    modes, used = finish(problems.sphere, [(x, c)], bounds=None, scale=1.0, maxfev=400)
    assert len(modes) == 1 and modes[0]["size"] == 100 and modes[0]["fun"] < 1e-12
    assert 0 < used <= 400
    # without polishing they stay two
    assert len(finish(problems.sphere, [(x, c)], bounds=None, scale=1.0, maxfev=400,
                      polish=False)[0]) == 2


def test_merge_modes_keeps_the_best_and_sums_sizes():
    a = {"x": np.array([1.0, 2.0]), "fun": 0.5, "size": 3}
    b = {"x": np.array([1.0, 2.0 + 1e-9]), "fun": 0.1, "size": 4}
    c = {"x": np.array([3.0, 2.0]), "fun": 0.2, "size": 5}
    out = merge_modes([a, b, c], scale=1.0)
    assert [m["fun"] for m in out] == [0.1, 0.2] and [m["size"] for m in out] == [7, 5]


def test_batched_runs_equal_separate_runs_including_modes():
    kw = {"bounds": [(-5, 5)] * 2, "vectorized": True, "popsize": 128, "maxiter": 20}
    batched = diffevo.minimize(problems.himmelblau, runs=3, seed=7, **kw)
    for r, one in enumerate(batched):
        alone = diffevo.minimize(problems.himmelblau, seed=child_seed(7, r), **kw)
        assert one.fun == alone.fun and one.nfev == alone.nfev
        assert len(one.modes) == len(alone.modes)
        for a, b in zip(one.modes, alone.modes):
            assert np.array_equal(a["x"], b["x"]) and a["size"] == b["size"]


def test_a_target_reached_by_polishing_counts_as_reached():
    # 16 members x 20 generations stay far from 1e-12 on the sphere; L-BFGS-B gets there
    res = diffevo.minimize(problems.sphere, bounds=[(-5, 5)] * 2, vectorized=True, popsize=16,
                           maxiter=20, ftarget=1e-12, seed=0)
    assert min(res.history.best_ever) > 1e-12
    assert res.fun <= 1e-12 and res.success and res.stop.get("ftarget") == 1e-12
