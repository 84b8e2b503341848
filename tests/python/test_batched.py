"""runs=R pays off without changing a result (issue 13, item 6): the vectorised bookkeeping
of ``tell_batch`` and the lockstep polish give each run exactly what it gets alone.

The populations of the runs here differ on purpose (other seeds, other boxes, NaN members
in some runs only), so bookkeeping that let a run see another run's members -- a shared
cell grid or quantile, a pooled mean -- would change its history, weights or modes. The
numpy backend is used where results are compared bit for bit: its batched kernel adds
each run's terms in the same order as a separate call (the numba one may differ in the
last bits, see test_minimize.py).
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy.optimize import minimize as scipy_minimize

import diffevo
from diffevo import DiffusionEvolution, problems
from diffevo import polish as polish_module
from diffevo.history import (
    History,
    generation_stats,
    population_spread,
    population_spread_rows,
    position_entropy,
    position_entropy_rows,
    value_stats,
    value_stats_rows,
)
from diffevo.modes import finish_runs, run_modes
from diffevo.polish import Counted, _lbfgsb, _lbfgsb_scipy, drive
from diffevo.shaping import (
    AdaptiveEnergy,
    CenteredRank,
    FunctionWeighting,
    Weighting,
    weights_rows,
)

NP = dict(backend="numpy")


def columns(history):
    return {k: v for k, v in history.as_dict().items() if k != "time"}


def assert_same_history(a, b):
    for key, col in columns(a).items():
        np.testing.assert_array_equal(col, b[key], err_msg=key)


# ------------------------------------------------------------ the statistics, row by row
@pytest.mark.parametrize("shape", [(6, 64, 2), (3, 37, 3), (2, 200, 1)])
def test_row_statistics_equal_one_run_each_bit_for_bit(shape):
    rng = np.random.default_rng(sum(shape))
    r, n, _ = shape
    # each run on its own scale and place: a pooled statistic would show
    x = rng.standard_normal(shape) * np.arange(1, r + 1)[:, None, None] + 10 * np.arange(r)[:, None, None]
    f = rng.standard_normal((r, n)) ** 3 * np.arange(1, r + 1)[:, None]
    finite = rng.random((r, n)) > 0.2
    finite[0] = True
    for res in (0.1, 0.5):
        assert position_entropy_rows(x, res) == [position_entropy(x[k], res) for k in range(r)]
    assert population_spread_rows(x) == [population_spread(x[k]) for k in range(r)]
    for maximize in (False, True):
        assert value_stats_rows(f, maximize, finite) == [value_stats(f[k][finite[k]], maximize)
                                                         for k in range(r)]
        assert value_stats_rows(f, maximize) == [value_stats(f[k], maximize) for k in range(r)]
    stats = generation_stats(f, f, x, finite, False, 0.1)
    for k, (i, best, *_rest) in enumerate(stats):
        assert best == f[k][finite[k]].min() and f[k, i] == best and finite[k, i]


def test_entropy_rows_keep_runs_apart_in_shared_cells():
    # run 0 in cells {0, 1}, run 1 in cells {1, 2}: one bit each; pooled, cell 1 would hold half
    a = np.array([[0.0, 0.0]] * 4 + [[0.1, 0.0]] * 4)
    b = np.array([[0.1, 0.0]] * 4 + [[0.2, 0.0]] * 4)
    assert position_entropy_rows(np.stack([a, b]), 0.1) == [1.0, 1.0]
    one_cell = np.zeros((2, 8, 2))
    assert position_entropy_rows(one_cell, 0.1) == [0.0, 0.0]


def test_history_last_row_is_the_last_generation():
    h = History()
    with pytest.raises(IndexError):
        h.last_row()
    for g in (1, 2):
        h.append(generation=g, restart=0, nfev=10 * g, best=1.0 / g, best_ever=1.0 / g, mean=2.0,
                 median=2.0, worst=3.0, spread=0.5, entropy=1.0, time=0.1)
    assert h.last_row() == {k: float(v[-1]) for k, v in h.as_dict().items()}


# ------------------------------------------------------------ weights, row by row
class Spy(Weighting):
    """A user weighting without a batch(): records every row it is shown."""

    def __init__(self):
        self.seen = []

    def __call__(self, cost):
        self.seen.append(np.array(cost))
        return np.exp(-(cost - cost.min()))


@pytest.mark.parametrize("weighting", [AdaptiveEnergy(), AdaptiveEnergy(0.1, 0.25), CenteredRank(),
                                       CenteredRank(0.5), FunctionWeighting(lambda v: v - v.min()),
                                       diffevo.Identity()], ids=repr)
def test_batched_weights_equal_one_call_per_row(weighting):
    rng = np.random.default_rng(3)
    v = rng.standard_normal((5, 40)) * np.arange(1, 6)[:, None] + 100 * np.arange(5)[:, None]
    v = np.abs(v) if weighting.sense == "fitness" else v
    v[2, :10] = v[2, 0]  # ties in one row: CenteredRank's 1-D path for that row alone
    finite = np.ones(v.shape, bool)
    finite[3, ::3] = False
    w = weights_rows(weighting, v, finite)
    for k in range(5):
        expect = np.zeros(40)
        expect[finite[k]] = weighting(v[k][finite[k]])
        np.testing.assert_array_equal(w[k], expect)
    np.testing.assert_array_equal(weights_rows(weighting, v[:1]), [weighting(v[0])])


def test_a_weighting_without_batch_sees_each_run_alone():
    spy = Spy()
    v = np.arange(12.0).reshape(3, 4)
    weights_rows(spy, v)
    assert [s.tolist() for s in spy.seen] == v.tolist()


def test_a_wrong_batch_is_refused_naming_the_argument():
    class Bad(Weighting):
        def __call__(self, cost):
            return np.ones_like(cost)

        def batch(self, cost):
            return np.ones(cost.shape[1])

    with pytest.raises(ValueError, match="fitness_shaping must return one weight per member"):
        weights_rows(Bad(), np.zeros((3, 4)))


# ------------------------------------------------------------ tell_batch == separate tells
def make(seed, box, **kw):
    return DiffusionEvolution(48, bounds=[(-box, box)] * 2, seed=seed, num_step=8, **NP, **kw)


def nan_right(X):
    f = problems.himmelblau(X)
    f[X[:, 0] > 1.5] = np.nan
    return f


@pytest.mark.parametrize("kw, fun", [
    (dict(), problems.himmelblau),
    (dict(fitness_shaping="rank"), problems.himmelblau),
    (dict(maximize=True, fitness_shaping=diffevo.Power(2)), problems.sphere),
    (dict(nan_policy="worst"), nan_right),
], ids=["energy", "rank", "power-max", "nan-worst"])
def test_tell_batch_books_every_run_as_alone(kw, fun):
    specs = [(1, 5.0), (2, 1.0), (3, 50.0), (4, 2.0)]  # other seeds, other boxes, one group
    alone = [make(s, b, **kw) for s, b in specs]
    for es in alone:
        while not es.stop():
            es.tell(fun(es.ask()))
    runs = [make(s, b, **kw) for s, b in specs]
    assert len({es._key("told") for es in runs}) == 1  # all booked by one vectorised call
    while not runs[0].stop():
        DiffusionEvolution.tell_batch(runs, [fun(es.ask()) for es in runs])
    for a, b in zip(alone, runs):
        assert_same_history(a.history, b.history)
        np.testing.assert_array_equal(a.population, b.population)
        np.testing.assert_array_equal(a._x0u, b._x0u)  # the weights fed the same estimate
        assert a.best[1] == b.best[1] and a._rng.bit_generator.state == b._rng.bit_generator.state


def test_a_failing_batch_weighting_leaves_every_run_unchanged():
    class FailingBatch(AdaptiveEnergy):
        def batch(self, cost):
            raise RuntimeError("batch failed")

    runs = [make(s, 5.0, fitness_shaping=FailingBatch()) for s in (1, 2, 3)]
    before = [(es.generation, es.population.copy(), es._rng.bit_generator.state, len(es.history))
              for es in runs]
    with pytest.raises(RuntimeError, match="batch failed"):
        DiffusionEvolution.tell_batch(runs, [problems.himmelblau(es.ask()) for es in runs])
    for (g, pop, state, n), es in zip(before, runs):
        assert es.generation == g and len(es.history) == n and es._rng.bit_generator.state == state
        np.testing.assert_array_equal(es.population, pop)


# ------------------------------------------------------------ polish in lockstep
def rosen(X):
    return (1 - X[:, 0]) ** 2 + 100 * (X[:, 1] - X[:, 0] ** 2) ** 2


@pytest.mark.parametrize("x0, bounds, maxfun", [
    ((-1.2, 1.0), ((-2.0, -1.0), (2.0, 3.0)), 500),
    ((0.5, 0.5), ((0.6, -1.0), (2.0, 0.2)), 500),  # starts outside: clipped, bounds active
    ((-1.2, 1.0), None, 500),
    ((-1.2, 1.0), ((-2.0, -1.0), (2.0, 3.0)), 4),  # maxfun ends it
])
def test_lockstep_lbfgsb_is_scipys_step_for_step(x0, bounds, maxfun):
    low, high = (None, None) if bounds is None else map(np.array, bounds)
    x0 = np.clip(np.array(x0), low, high) if low is not None else np.array(x0)
    mine, ref = Counted(rosen, 10**5), Counted(rosen, 10**5)
    ok = drive([_lbfgsb(mine, x0, low, high, maxfun)], rosen)[0]
    assert ok == _lbfgsb_scipy(ref, x0, low, high, maxfun)
    assert mine.nfev == ref.nfev and mine.best_f == ref.best_f
    np.testing.assert_array_equal(mine.best_x, ref.best_x)


def test_the_reference_driver_is_scipys_public_lbfgsb():
    counted = Counted(rosen, 10**5)
    low, high, x0 = np.array([-2.0, -1.0]), np.array([2.0, 3.0]), np.array([-1.2, 1.0])
    _lbfgsb_scipy(counted, x0, low, high, 500)
    h = np.sqrt(np.finfo(float).eps)

    def fg(x):  # the forward-difference stencil the polish evaluates, written out
        step = h * np.maximum(1.0, np.abs(x))
        step = np.where(x + step > high, -step, step)
        f = rosen(np.vstack([x, x + np.diag(step)]))
        return f[0], (f[1:] - f[0]) / step

    res = scipy_minimize(fg, x0, jac=True, method="L-BFGS-B", bounds=list(zip(low, high)),
                         options={"maxfun": 500, "ftol": 1e-15, "gtol": 1e-12, "maxls": 40})
    assert counted.nfev == 3 * res.nfev
    # the best point evaluated may be a stencil point beside scipy's last iterate
    assert counted.best_f <= res.fun and np.abs(counted.best_x - res.x).max() < 1e-7


def test_drive_evaluates_every_lane_in_one_call_per_round():
    calls = []

    def fun(X):
        calls.append(X.shape[0])
        return rosen(X)

    starts = [(-1.2, 1.0), (0.0, 0.0), (1.5, 2.0)]
    alone = []
    for s in starts:
        c = Counted(rosen, 10**4)
        drive([_lbfgsb(c, np.array(s), None, None, 60)], rosen)
        alone.append(c)
    lanes = [Counted(fun, 10**4) for _ in starts]
    drive([_lbfgsb(c, np.array(s), None, None, 60) for c, s in zip(lanes, starts)], fun)
    for a, b in zip(alone, lanes):
        assert a.nfev == b.nfev and a.best_f == b.best_f
        np.testing.assert_array_equal(a.best_x, b.best_x)
    assert len(calls) == max(c.nfev for c in alone) // 3  # one call per round, 3-point stencils
    assert sum(calls) == sum(c.nfev for c in alone)


def test_the_public_fallback_gives_the_same_polish(monkeypatch):
    kw = dict(bounds=[(-4, 4)] * 2, vectorized=True, popsize=64, maxiter=10, seed=2, **NP)
    lockstep = diffevo.minimize(problems.himmelblau, **kw)
    monkeypatch.setattr(polish_module, "_LOCKSTEP", [False])
    public = diffevo.minimize(problems.himmelblau, **kw)
    assert lockstep.nfev == public.nfev and lockstep.fun == public.fun
    for a, b in zip(lockstep.modes, public.modes):
        np.testing.assert_array_equal(a["x"], b["x"])


class Calls:
    def __init__(self, fun):
        self.fun, self.calls, self.points = fun, 0, 0

    def __call__(self, X):
        self.calls += 1
        self.points += X.shape[0]
        return self.fun(X)


@pytest.mark.parametrize("maximize", [False, True])
def test_runs_with_polish_equal_separate_calls(maximize):
    fun = problems.himmelblau if not maximize else (lambda X: -problems.himmelblau(X))
    solve = diffevo.maximize if maximize else diffevo.minimize
    kw = dict(bounds=[(-4, 4)] * 2, vectorized=True, popsize=96, maxiter=12, **NP)
    together = Calls(fun)
    batched = solve(together, runs=4, seed=5, **kw)
    separate = Calls(fun)
    for r, res in enumerate(batched):
        alone = solve(separate, seed=np.random.SeedSequence(5).spawn(4)[r], **kw)
        np.testing.assert_array_equal(res.x, alone.x)
        assert res.fun == alone.fun and res.nfev == alone.nfev and len(res.modes) == len(alone.modes)
        for a, b in zip(res.modes, alone.modes):
            np.testing.assert_array_equal(a["x"], b["x"])
            assert a["fun"] == b["fun"] and a["size"] == b["size"] and a["polished"] == b["polished"]
        assert_same_history(res.history, alone.history)
    assert together.points == separate.points
    # the generations: 12 calls either way per run; polishing: one call per round for all runs
    assert together.calls < separate.calls - 3 * 12


def test_on_error_nan_polishes_each_run_alone():
    """A vectorised objective whose failures become NaN fails per call: runs are then not
    mixed in one call (a failure would blank the other runs' stencils)."""
    def fragile(X):
        if (X[:, 0] > 2.9).any() and X.shape[0] <= 3:  # only stencils near x = 3 fail
            raise ValueError("boom")
        return problems.himmelblau(X)

    kw = dict(bounds=[(-4, 4)] * 2, vectorized=True, popsize=96, maxiter=12, on_error="nan", **NP)
    batched = diffevo.minimize(fragile, runs=3, seed=8, **kw)
    for r, res in enumerate(batched):
        alone = diffevo.minimize(fragile, seed=np.random.SeedSequence(8).spawn(3)[r], **kw)
        assert res.fun == alone.fun and res.nfev == alone.nfev
        np.testing.assert_array_equal(res.x, alone.x)


def test_finish_runs_equals_run_modes_per_run():
    kw = dict(bounds=[(-4, 4)] * 2, vectorized=True, popsize=64, maxiter=8, **NP)
    from diffevo.evaluation import Evaluator
    from diffevo.runner import Run, _seeds

    state = []
    evaluate = Evaluator(problems.himmelblau, vectorized=True)
    settings = diffevo._settings.Settings(num_step=8)

    def mk(size, seed, maxfev, timeout):
        return DiffusionEvolution(size, bounds=kw["bounds"], seed=seed, num_step=8, **NP)

    for r, s in enumerate(_seeds(3, 3)):
        run = Run(r, s, mk, 64, 0, 1.0, settings)
        while not run.es.stop():
            run.es.tell(problems.himmelblau(run.es.ask()))
        run.finals.append((np.asarray(run.es.result.population), run.es.result.population_fun))
        state.append(run)
    together = finish_runs(evaluate, [(run, {"maxiter": 8}) for run in state])
    for run, (modes, used) in zip(state, together):
        alone, used_alone = run_modes(evaluate, run, {"maxiter": 8})
        assert used == used_alone > 0 and len(modes) == len(alone)
        for a, b in zip(modes, alone):
            np.testing.assert_array_equal(a["x"], b["x"])


def test_a_stateful_user_weighting_is_called_as_in_its_own_run():
    """A weighting without its own batch() is called per run, on its own object: equal
    parameters group the runs' statistics, never their weighting calls."""
    class Counting(Weighting):
        def __init__(self):
            self.calls = 0

        def __call__(self, cost):
            self.calls += 1
            return np.exp(-(cost - cost.min()) / (1 + self.calls))  # depends on its own state

    alone = [make(s, 5.0, fitness_shaping=Counting()) for s in (1, 2, 3)]
    for es in alone:
        while not es.stop():
            es.tell(problems.himmelblau(es.ask()))
    runs = [make(s, 5.0, fitness_shaping=Counting()) for s in (1, 2, 3)]
    for es in runs:  # the counters start equal: the runs are booked together
        es.tell(problems.himmelblau(es.ask()))
    while not runs[0].stop():
        DiffusionEvolution.tell_batch(runs, [problems.himmelblau(es.ask()) for es in runs])
    for a, b in zip(alone, runs):
        assert a.fitness_shaping.calls == b.fitness_shaping.calls == 7
        np.testing.assert_array_equal(a.population, b.population)


def test_runs_whose_polish_budget_binds_equal_separate_calls():
    """maxfev leaves each run a few stencils only: every run's budget is its own."""
    kw = dict(bounds=[(-4, 4)] * 2, vectorized=True, popsize=40, maxiter=10, maxfev=430, **NP)
    calls = Calls(problems.himmelblau)
    batched = diffevo.minimize(calls, runs=3, seed=9, **kw)
    for r, res in enumerate(batched):
        alone = diffevo.minimize(problems.himmelblau, seed=np.random.SeedSequence(9).spawn(3)[r], **kw)
        assert res.nfev == alone.nfev <= 430 and res.fun == alone.fun
        assert [m["polished"] for m in res.modes] == [m["polished"] for m in alone.modes]
    assert calls.points == sum(res.nfev for res in batched)
