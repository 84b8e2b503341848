"""Evaluation through executors: thread pools and a Dask distributed cluster.

An executor only changes *where* the objective runs; values come back in member
order, so every path must give exactly (bit for bit) the vectorised path's run.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

import diffevo
from diffevo import problems
from diffevo.evaluation import Evaluator, as_executor

BACKEND = next(b for b in ("cpp", "numba", "numpy") if b in diffevo.available_backends("cpu"))
KW = dict(bounds=[(-5.0, 5.0)] * 2, popsize=40, maxiter=8, seed=11, backend=BACKEND, polish=False)


def himmelblau_one(x):
    """Per-member objective: one (D,) point -> float (module level: picklable)."""
    return float(problems.himmelblau(x))


@pytest.fixture(scope="module")
def vectorised_run():
    return diffevo.minimize(problems.himmelblau, vectorized=True, **KW)


def _same(a, b):
    np.testing.assert_array_equal(a.population, b.population)
    np.testing.assert_array_equal(a.history.best, b.history.best)
    assert a.fun == b.fun and a.nfev == b.nfev


def test_thread_pool_per_member_equals_vectorised(vectorised_run):
    with ThreadPoolExecutor(max_workers=2) as pool:
        res = diffevo.minimize(himmelblau_one, executor=pool, **KW)
    _same(res, vectorised_run)


def test_thread_pool_chunks_equal_vectorised(vectorised_run):
    sizes = []

    def fun(x):
        sizes.append(len(x))
        return problems.himmelblau(x)

    with ThreadPoolExecutor(max_workers=2) as pool:
        res = diffevo.minimize(fun, executor=pool, vectorized=True, chunksize=7, **KW)
    _same(res, vectorised_run)
    assert max(sizes) == 7 and sum(sizes) == 40 * 8  # 6 chunks of 7 rows (the last of 5) per generation


def test_dask_local_cluster_equals_vectorised(vectorised_run):
    """A Dask distributed Client (in-process LocalCluster, 1 worker, 2 threads) as executor."""
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(processes=False, n_workers=1, threads_per_worker=2,
                                  dashboard_address=":0") as cluster, \
            distributed.Client(cluster) as client:
        per_member = diffevo.minimize(himmelblau_one, executor=client, **KW)
        chunked = diffevo.minimize(problems.himmelblau, vectorized=True,
                                   executor=client.get_executor(), chunksize=16, **KW)
    _same(per_member, vectorised_run)
    _same(chunked, vectorised_run)


def test_evaluator_counts_and_adapts():
    ev = Evaluator(problems.sphere, vectorized=True)
    x = np.arange(12.0).reshape(6, 2)
    np.testing.assert_array_equal(ev(x), problems.sphere(x))
    assert ev.nfev == 6

    class MapOnly:  # the least an executor needs: map(fn, iterable)
        def map(self, fn, items):
            return [fn(i) for i in items]

    ev = Evaluator(lambda p: float(p.sum()), executor=MapOnly())
    np.testing.assert_array_equal(ev(x), x.sum(axis=1))

    class FakeClient:
        def get_executor(self):
            return "the executor"

    assert as_executor(FakeClient()) == "the executor"
    assert as_executor(None) is None
    with pytest.raises(TypeError, match="executor must be"):
        as_executor(42)


def test_evaluator_rejects_bad_returns():
    x = np.zeros((4, 2))
    with pytest.raises(ValueError, match=r"expected shape \(4,\)"):
        Evaluator(lambda p: np.zeros(3), vectorized=True)(x)
    with pytest.raises(TypeError, match="real values"):
        Evaluator(lambda p: np.array(["a"] * 4), vectorized=True)(x)
    with pytest.raises(TypeError, match="real number"):
        Evaluator(lambda p: "a")(x)
