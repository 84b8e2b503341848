"""Evaluating an objective on a population: vectorised, one call per member, or an executor.

Three ways, chosen by :func:`diffevo.minimize`'s ``vectorized`` and ``executor``:

* ``vectorized=True``: ``fun(X)`` gets the whole (N, D) population and returns (N,)
  values -- the fastest path for NumPy-expressible objectives.
* ``vectorized=False`` (default): ``fun(x)`` gets one (D,) member at a time and
  returns a scalar, like ``scipy.optimize.minimize``.
* ``executor=``: any object with a ``concurrent.futures.Executor``-style
  ``map(fn, iterable)`` -- a ``ThreadPoolExecutor``, a ``ProcessPoolExecutor``, a Dask
  ``distributed.Client`` (its ``get_executor()`` is used) or
  ``client.get_executor()`` itself. Members (or, with ``vectorized=True``, chunks of
  rows) are mapped over it, so an expensive objective runs on many cores or a
  cluster. Results come back in order, so the executor path gives exactly the
  values of the in-process path.

Example with a Dask cluster::

    from distributed import Client, LocalCluster
    with LocalCluster(n_workers=4) as cluster, Client(cluster) as client:
        res = diffevo.minimize(expensive, bounds=[(-5, 5)] * 8, executor=client)
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from ._array import namespace, to_numpy

__all__ = ["Evaluator", "as_executor"]


def as_executor(executor: Any):
    """The ``map``-capable object behind ``executor`` (a Dask Client becomes its executor).

    Raises:
        TypeError: naming ``executor`` when it has neither ``map`` nor ``get_executor``.
    """
    if executor is None:
        return None
    if callable(getattr(executor, "get_executor", None)):
        # distributed.Client: map/submit return futures, get_executor() an Executor
        return executor.get_executor()
    if not callable(getattr(executor, "map", None)):
        raise TypeError(
            "executor must be a concurrent.futures.Executor-like object with a map(fn, iterable) "
            f"method (or a dask distributed Client); got {type(executor).__name__}")
    return executor


class _Chunk:
    """Picklable wrapper: applies a vectorised objective to one chunk of rows."""

    def __init__(self, fun: Callable):
        self.fun = fun

    def __call__(self, rows):
        return np.asarray(self.fun(rows), dtype=np.float64).reshape(-1)


class Evaluator:
    """Evaluate ``fun`` on (N, D) populations; returns (N,) float64 values (NumPy or CuPy).

    Args:
        fun: the objective.
        vectorized: ``fun`` takes (N, D) and returns (N,).
        executor: optional Executor-like object (see the module docstring).
        chunksize: rows per task when ``vectorized`` and ``executor`` are both given
            (default: the population split into about 4 tasks per worker, at most 64).
        args: extra positional arguments passed to ``fun`` after x.
    """

    def __init__(self, fun: Callable, *, vectorized: bool = False, executor: Any = None,
                 chunksize: int | None = None, args: tuple = ()):
        if not callable(fun):
            raise TypeError(f"fun must be callable; got {type(fun).__name__}")
        if chunksize is not None and (isinstance(chunksize, bool) or
                                      not isinstance(chunksize, (int, np.integer)) or chunksize < 1):
            raise ValueError(f"chunksize must be a positive integer; got {chunksize!r}")
        self.fun = fun
        self.vectorized = bool(vectorized)
        self.executor = as_executor(executor)
        self.chunksize = chunksize
        self.args = tuple(args)
        self.nfev = 0

    def _call(self, x):
        return self.fun(x, *self.args) if self.args else self.fun(x)

    def __call__(self, x) -> Any:
        """Values of ``fun`` on every row of x (N, D) -> (N,) float64."""
        n = x.shape[0]
        xp = namespace(x)
        if self.executor is not None:
            host = to_numpy(x)
            if self.vectorized:
                size = self.chunksize or max(1, min(64, math.ceil(n / (4 * _workers(self.executor)))))
                chunks = [host[i:i + size] for i in range(0, n, size)]
                fn = _Chunk(self.fun if not self.args else _with_args(self.fun, self.args))
                parts = list(self.executor.map(fn, chunks))
                values = np.concatenate(parts) if parts else np.empty(0)
            else:
                fn = self.fun if not self.args else _with_args(self.fun, self.args)
                values = np.array([_scalar(v) for v in self.executor.map(fn, list(host))],
                                  dtype=np.float64)
            values = xp.asarray(values)
        elif self.vectorized:
            values = xp.asarray(self._call(x))
            if values.dtype.kind not in "biuf":
                raise TypeError(f"fun must return real values; got dtype {values.dtype}")
            values = values.astype(xp.float64, copy=False).reshape(-1) if values.size == n else values
        else:
            values = xp.asarray(np.array([_scalar(self._call(row)) for row in x], dtype=np.float64))
        if values.shape != (n,):
            raise ValueError(
                f"fun must return one value per member: expected shape ({n},), got "
                f"{tuple(values.shape)} (pass vectorized=True only if fun takes the whole "
                "(N, D) population)")
        self.nfev += n
        return values


class _with_args:
    """Picklable ``lambda x: fun(x, *args)``."""

    def __init__(self, fun, args):
        self.fun, self.args = fun, args

    def __call__(self, x):
        return self.fun(x, *self.args)


def _scalar(v) -> float:
    a = np.asarray(to_numpy(v) if not isinstance(v, (int, float)) else v)
    if a.size != 1:
        raise ValueError(
            f"fun must return a scalar per member; got an array of shape {a.shape} "
            "(pass vectorized=True if fun takes the whole (N, D) population)")
    if a.dtype.kind not in "biuf":
        raise TypeError(f"fun must return a real number; got {a.dtype}")
    return float(a.reshape(()))


def _workers(executor) -> int:
    for attr in ("_max_workers", "max_workers"):
        v = getattr(executor, attr, None)
        if isinstance(v, int) and v > 0:
            return v
    client = getattr(executor, "_client", None)
    if client is not None:
        try:
            return max(1, sum(client.nthreads().values()))
        except Exception:  # pragma: no cover - depends on the cluster
            return 1
    return 1
