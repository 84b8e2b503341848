"""Loses no data (issue 12): transactional tell, pickling, checkpoint/resume, interrupts,
errors carrying the partial result, honest failure, per-member fault tolerance, strict options.

Every check compares with an uninterrupted run bit for bit (same seed, same arithmetic), or
with behaviour the old code did not have (each test failed before its fix).
"""

from __future__ import annotations

import copy
import os
import pickle
import signal
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

import diffevo
from diffevo import DiffusionEvolution, problems
from diffevo import optimizer as optimizer_module
from diffevo._settings import resolve_weighting
from diffevo.shaping import Weighting

BACKEND = next(b for b in ("cpp", "numba", "numpy") if b in diffevo.available_backends("cpu"))
KW = dict(bounds=[(-5.0, 5.0)] * 2, backend=BACKEND)


def make(seed=0, popsize=24, num_step=8, **kw):
    return DiffusionEvolution(popsize, seed=seed, num_step=num_step, **{**KW, **kw})


def drive(es, fun=problems.himmelblau):
    while not es.stop():
        es.tell(fun(es.ask()))
    return es


def same_result(a, b):
    """Bit-identical outcome: best point, last population, values, every history column but time."""
    np.testing.assert_array_equal(a.x, b.x)
    assert a.fun == b.fun and a.nit == b.nit and a.nfev == b.nfev
    np.testing.assert_array_equal(a.population, b.population)
    for key, col in a.history.as_dict().items():
        if key != "time":
            np.testing.assert_array_equal(col, b.history[key], err_msg=key)


def snapshot(es):
    return (es.generation, es.nfev, len(es.history), es.best[1], es.population.copy(),
            es.ask().copy(), es._rng.bit_generator.state)


def assert_unchanged(before, es):
    after = snapshot(es)
    assert before[:4] == after[:4]
    np.testing.assert_array_equal(before[4], after[4])
    np.testing.assert_array_equal(before[5], after[5])
    assert before[6] == after[6]


class FailOnce(Weighting):
    """The default weighting, raising once on its ``at``-th call (never for at=0)."""

    def __init__(self, at=0):
        self.inner = resolve_weighting("energy")
        self.calls, self.at = 0, at

    def __call__(self, cost):
        self.calls += 1
        if self.calls == self.at:
            raise RuntimeError("weighting failed")
        return self.inner(cost)


def test_a_failed_tell_changes_nothing_and_a_retry_continues_bit_for_bit():
    reference = drive(make(fitness_shaping=FailOnce())).result
    es = make(fitness_shaping=FailOnce(at=3))
    for _ in range(2):
        es.tell(problems.himmelblau(es.ask()))
    before = snapshot(es)
    f = problems.himmelblau(es.ask())
    with pytest.raises(RuntimeError, match="weighting failed"):
        es.tell(f)
    assert_unchanged(before, es)  # the old tell had counted the generation already
    es.tell(f)  # the retry
    same_result(drive(es).result, reference)


def test_a_step_that_raises_after_drawing_restores_the_random_state(monkeypatch):
    reference = drive(make(noise=1.0)).result
    es = make(noise=1.0)
    es.tell(problems.himmelblau(es.ask()))
    real = optimizer_module.ddim_step

    def step_then_fail(*args, **kwargs):
        real(*args, **kwargs)  # draws the step noise
        raise MemoryError("out of memory after the draw")

    monkeypatch.setattr(optimizer_module, "ddim_step", step_then_fail)
    before = snapshot(es)
    f = problems.himmelblau(es.ask())
    with pytest.raises(MemoryError):
        es.tell(f)
    assert_unchanged(before, es)
    monkeypatch.setattr(optimizer_module, "ddim_step", real)
    es.tell(f)
    same_result(drive(es).result, reference)


def test_a_batched_tell_is_all_or_nothing():
    seeds = [1, 2, 3]
    alone = [drive(make(s, fitness_shaping=FailOnce())).result for s in seeds]
    runs = [make(s, fitness_shaping=FailOnce(at=2 if s == 2 else 0)) for s in seeds]
    DiffusionEvolution.tell_batch(runs, [problems.himmelblau(es.ask()) for es in runs])
    before = [snapshot(es) for es in runs]
    values = [problems.himmelblau(es.ask()) for es in runs]
    with pytest.raises(RuntimeError, match="weighting failed"):
        DiffusionEvolution.tell_batch(runs, values)
    for b, es in zip(before, runs):
        assert_unchanged(b, es)  # run 0 had already advanced in the old tell_many
    DiffusionEvolution.tell_batch(runs, values)
    while not runs[0].stop():
        DiffusionEvolution.tell_batch(runs, [problems.himmelblau(es.ask()) for es in runs])
    for a, es in zip(alone, runs):
        same_result(es.result, a)


@pytest.mark.parametrize("clone", [pickle.loads, copy.deepcopy], ids=["pickle", "deepcopy"])
def test_the_optimizer_pickles_and_copies_mid_run(clone):
    es = make(num_step=10, noise=1.0)
    for _ in range(4):
        es.tell(problems.himmelblau(es.ask()))
    twin = clone(pickle.dumps(es)) if clone is pickle.loads else clone(es)
    same_result(drive(twin).result, drive(es).result)


def test_ask_returns_a_population_the_caller_cannot_corrupt():
    es = make()
    x = es.ask()
    with pytest.raises(ValueError, match="read-only"):
        x[0] = 1e9
    es.tell(problems.sphere(x))
    res = drive(es).result
    assert np.all((res.x >= -5) & (res.x <= 5))


MIN = dict(bounds=[(-5.0, 5.0)] * 2, vectorized=True, popsize=16, maxiter=12, backend=BACKEND)


def interrupt_at(generation):
    """A callback raising KeyboardInterrupt after the given generation (as Ctrl-C would)."""
    def callback(res):
        if res.nit == generation:
            raise KeyboardInterrupt
    return callback


@pytest.mark.parametrize("extra", [dict(seed=3), dict(seed=4, runs=2, tolx=0.3, restarts=2)],
                         ids=["one run", "two runs with restarts"])
def test_checkpoint_resume_is_bit_identical(tmp_path, extra):
    path = tmp_path / "run.ckpt"
    reference = diffevo.minimize(problems.himmelblau, **MIN, **extra)
    stopped = diffevo.minimize(problems.himmelblau, **MIN, **extra, checkpoint=path,
                               checkpoint_every=3, callback=interrupt_at(5))
    for r in (stopped if isinstance(stopped, list) else [stopped]):
        assert not r.success and "interrupted" in r.stop and "interrupted" in r.message
    resumed = diffevo.minimize(problems.himmelblau, **MIN, **extra, checkpoint=path, resume=path)
    pairs = zip(reference, resumed) if isinstance(reference, list) else [(reference, resumed)]
    for a, b in pairs:
        same_result(b, a)
        assert b.success == a.success and b.message == a.message
    assert not [p for p in os.listdir(tmp_path) if p != "run.ckpt"]  # no temporary file left


def test_resume_inside_an_auto_restart_that_avoids_known_optima(tmp_path):
    """restarts='auto' on Himmelblau at 128 x 12: two restarts, each avoiding the minima
    known; stopped in the second attempt and resumed, the run ends bit-identical (the
    optima known, their reach and the balls are part of the checkpoint)."""
    kw = dict(bounds=[(-5.0, 5.0)] * 2, vectorized=True, popsize=128, maxiter=12, seed=0,
              backend=BACKEND)
    path = tmp_path / "run.ckpt"
    reference = diffevo.minimize(problems.himmelblau, **kw)
    assert reference.nrestarts >= 1
    diffevo.minimize(problems.himmelblau, **kw, checkpoint=path, callback=interrupt_at(17))
    resumed = diffevo.minimize(problems.himmelblau, **kw, checkpoint=path, resume=path)
    assert (resumed.fun, resumed.nfev, resumed.nrestarts) == (
        reference.fun, reference.nfev, reference.nrestarts)
    np.testing.assert_array_equal(resumed.x, reference.x)
    np.testing.assert_array_equal(resumed.population, reference.population)
    assert [m["fun"] for m in resumed.modes] == [m["fun"] for m in reference.modes]


def test_resume_inside_a_zoomed_restart(tmp_path):
    """restarts='auto' on Vincent 1-D at 128 x 12, seed 0: two restarts in the whole box,
    then one in a zoomed box (generations 37-48); stopped inside the zoom and resumed, the
    run ends bit-identical (the zoom's box, the run's own box and the zooms left are part
    of the checkpoint)."""
    def vincent(X):
        return np.mean(np.sin(10 * np.log(X)), axis=1)

    kw = dict(bounds=[(0.25, 10.0)], vectorized=True, popsize=128, maxiter=12, seed=0,
              backend=BACKEND)
    path = tmp_path / "run.ckpt"
    reference = diffevo.maximize(vincent, **kw)
    assert reference.nrestarts == 3 and reference.nit == 48
    diffevo.maximize(vincent, **kw, checkpoint=path, callback=interrupt_at(41))
    resumed = diffevo.maximize(vincent, **kw, checkpoint=path, resume=path)
    assert (resumed.fun, resumed.nfev, resumed.nrestarts) == (
        reference.fun, reference.nfev, reference.nrestarts)
    np.testing.assert_array_equal(resumed.population, reference.population)
    assert [m["fun"] for m in resumed.modes] == [m["fun"] for m in reference.modes]
    assert [m["x"].tolist() for m in resumed.modes] == [m["x"].tolist() for m in reference.modes]


def test_checkpoint_and_resume_arguments_are_checked(tmp_path):
    with pytest.raises(ValueError, match="checkpoint: the folder"):
        diffevo.minimize(problems.sphere, **MIN, checkpoint=tmp_path / "missing" / "c.ckpt")
    with pytest.raises(ValueError, match="checkpoint must be a file path, not a directory"):
        diffevo.minimize(problems.sphere, **MIN, checkpoint=tmp_path)
    with pytest.raises(ValueError, match="resume: no checkpoint"):
        diffevo.minimize(problems.sphere, **MIN, resume=tmp_path / "none.ckpt")
    (tmp_path / "junk").write_bytes(b"not a pickle")
    with pytest.raises(ValueError, match="resume: .* not a readable diffevo checkpoint"):
        diffevo.minimize(problems.sphere, **MIN, resume=tmp_path / "junk")
    diffevo.minimize(problems.sphere, **MIN, seed=0, checkpoint=tmp_path / "c.ckpt")
    with pytest.raises(ValueError, match="resume: the checkpoint holds 1 runs but runs=2"):
        diffevo.minimize(problems.sphere, **MIN, runs=2, resume=tmp_path / "c.ckpt")
    with pytest.raises(ValueError, match="checkpoint_every must be >= 1"):
        diffevo.minimize(problems.sphere, **MIN, checkpoint_every=0)


def _skip_without_sigint() -> None:
    """Skip where a SIGINT cannot reach the run: off the main thread, or where the process
    ignores it (a job started with ``&`` by a non-interactive shell inherits SIG_IGN, and the
    runner rightly keeps a handler it did not install)."""
    if threading.current_thread() is not threading.main_thread():
        pytest.skip("signals reach the main thread only")
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        pytest.skip("this process ignores SIGINT (a background job)")


def test_ctrl_c_during_the_objective_returns_the_best_so_far():
    """A real SIGINT while fun runs: the generations before it are kept, success=False."""
    calls = []

    def objective(x):
        calls.append(1)
        if len(calls) == 4:
            signal.raise_signal(signal.SIGINT)
        return problems.sphere(x)

    _skip_without_sigint()
    res = diffevo.minimize(objective, **MIN, seed=0)
    assert res.nit == 3 and res.stop == {"interrupted": "KeyboardInterrupt"}
    assert not res.success and res.x is not None and res.fun == res.history.best_ever[-1]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # handler restored


def test_an_error_carries_the_partial_result_and_writes_the_checkpoint(tmp_path):
    calls = []

    def objective(x):
        calls.append(1)
        if len(calls) == 5:
            raise ZeroDivisionError("the simulator broke")
        return problems.sphere(x)

    path = tmp_path / "c.ckpt"
    with pytest.raises(ZeroDivisionError) as info:
        diffevo.minimize(objective, **MIN, seed=1, checkpoint=path, checkpoint_every=100)
    res = info.value.result
    assert res.nit == 4 and not res.success and res.stop == {"error": "ZeroDivisionError"}
    assert res.x is not None and np.isfinite(res.fun)
    resumed = diffevo.minimize(problems.sphere, **MIN, seed=1, resume=path)
    same_result(resumed, diffevo.minimize(problems.sphere, **MIN, seed=1))


def test_no_finite_value_is_no_success():
    res = diffevo.minimize(lambda x: np.full(len(x), np.nan), **MIN, nan_policy="worst", seed=0)
    assert not res.success and res.x is None and "finite" in res.message
    es = drive(make(nan_policy="worst"), lambda x: np.full(len(x), np.inf))
    assert not es.result.success and "finite" in es.result.message


def flaky(x):
    if x[0] > 2.0:
        raise RuntimeError("solver diverged")
    return float(problems.sphere(x[None])[0])


def flaky_rows(x):
    if (x[:, 0] > 4.0).any():
        raise RuntimeError("solver diverged")
    return problems.sphere(x)


@pytest.mark.parametrize("executor", [None, "threads"])
def test_on_error_nan_turns_failed_evaluations_into_nan(executor):
    kw = dict(MIN, vectorized=False, nan_policy="worst", seed=2)
    with pytest.raises(RuntimeError, match="solver diverged"):
        diffevo.minimize(flaky, **kw)
    with ThreadPoolExecutor(2) if executor else _nothing() as pool:
        res = diffevo.minimize(flaky, **kw, on_error="nan", executor=pool)
        chunked = diffevo.minimize(flaky_rows, **dict(kw, vectorized=True), on_error="nan",
                                   executor=pool, chunksize=4)
    assert res.success and res.x[0] <= 2.0 and np.isnan(res.history.worst).sum() == 0
    assert np.isnan(res.population_fun).any() or res.population[:, 0].max() <= 2.0
    assert chunked.success and np.isfinite(chunked.fun)
    with pytest.raises(ValueError, match="on_error must be one of"):
        diffevo.minimize(flaky, **kw, on_error="ignore")


class _nothing:
    def __enter__(self):
        return None

    def __exit__(self, *exc):
        return False


@pytest.mark.parametrize("kwargs,exc,match", [
    (dict(timeout=True), TypeError, "timeout must be a positive number"),
    (dict(tolx="0.1"), TypeError, "tolx must be a positive number"),
    (dict(bandwidth="0.5"), TypeError, "bandwidth must be a positive number"),
    (dict(noise="0.5"), ValueError, "noise must be one of 'auto'"),
    (dict(noise=True), TypeError, "noise must be a number"),
    (dict(ftarget="1"), TypeError, "ftarget must be a real number"),
    (dict(maximize=1), TypeError, "maximize must be True or False"),
    (dict(seed="abc"), TypeError, "seed must be"),
    (dict(seed=1.5), TypeError, "seed must be"),
    (dict(seed=-1), ValueError, "seed must be"),
])
def test_bad_options_are_refused_by_name(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        DiffusionEvolution(8, **{**KW, **kwargs})


@pytest.mark.parametrize("kwargs,exc,match", [
    (dict(args=5), TypeError, "args must be a tuple"),
    (dict(seed="abc"), TypeError, "seed must be"),
    (dict(runs=2, seed="abc"), TypeError, "seed must be"),
    (dict(timeout=True), TypeError, "timeout must be a positive number"),
    (dict(num_step=5), TypeError, "unexpected keyword argument 'num_step'"),
    (dict(method="cmaes"), ValueError, "method must be one of"),
])
def test_bad_minimize_arguments_are_refused_by_name(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        diffevo.minimize(problems.sphere, **{**MIN, **kwargs})


def test_an_unpicklable_option_fails_before_the_run(tmp_path):
    calls = []

    def objective(x):
        calls.append(1)
        return problems.sphere(x)

    with pytest.raises(TypeError, match="checkpoint: the run's state cannot be pickled"):
        diffevo.minimize(objective, **MIN, checkpoint=tmp_path / "c.ckpt",
                         fitness_shaping=lambda f: np.exp(-f))
    assert not calls


def test_reference_diffevo_names_a_bad_seed():
    with pytest.raises(TypeError, match="seed must be"):
        diffevo.DiffEvo(num_step=3, seed="abc").optimize(lambda x: np.ones(len(x)), np.zeros((4, 2)))


def test_an_objective_writing_into_its_input_cannot_move_the_run():
    def vandal(x):
        f = problems.sphere(x)
        x[:] = 1e6  # outside the box
        return f

    # polish=False: this checks the generations' evaluations (the polish evaluates its own points)
    res = diffevo.minimize(vandal, **MIN, seed=5, polish=False)
    same_result(res, diffevo.minimize(problems.sphere, **MIN, seed=5, polish=False))
    assert np.all(np.abs(res.population) <= 5)


def test_ctrl_c_during_the_bookkeeping_waits_for_the_generation_boundary(tmp_path):
    """A SIGINT outside the objective (here: in the callback) ends the run at the next
    boundary: the generation it arrived in is complete, and a resume continues bit for bit."""
    _skip_without_sigint()

    def callback(res):
        if res.nit == 3:
            signal.raise_signal(signal.SIGINT)  # delivered at once in CPython: not raised here

    path = tmp_path / "c.ckpt"
    res = diffevo.minimize(problems.himmelblau, **MIN, seed=6, callback=callback, checkpoint=path)
    assert res.nit == 3 and res.stop == {"interrupted": "KeyboardInterrupt"}
    resumed = diffevo.minimize(problems.himmelblau, **MIN, seed=6, resume=path)
    same_result(resumed, diffevo.minimize(problems.himmelblau, **MIN, seed=6))
