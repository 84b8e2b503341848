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

``on_error='nan'`` turns an evaluation that raises (an ``Exception`` in ``fun``, for
one member or, vectorised, for one chunk of rows) into NaN values, which the
optimiser's ``nan_policy`` then handles (``'worst'``: weight 0); the default
``'raise'`` ends the run. A broken pool or a lost worker still raises (the run's
partial result rides on the exception, see :mod:`diffevo.runner`).

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

from ._device import namespace, to_numpy

__all__ = ["ON_ERROR", "Evaluator", "as_executor", "told_values"]

#: what a failed evaluation becomes: an exception (the default) or NaN
ON_ERROR = ("raise", "nan")


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


class _OrNaN:
    """Picklable wrapper: ``fun(x)``, or NaN (one per row of a chunk) when it raises."""

    def __init__(self, fun: Callable, rows: bool):
        self.fun, self.rows = fun, rows

    def __call__(self, x):
        try:
            return self.fun(x)
        except Exception:  # noqa: BLE001 - on_error='nan': any failure of fun is a NaN
            return np.full(len(x), np.nan) if self.rows else math.nan


class Evaluator:
    """Evaluate ``fun`` on (N, D) populations; returns (N,) float64 values (NumPy or CuPy).

    Args:
        fun: the objective.
        vectorized: ``fun`` takes (N, D) and returns (N,).
        executor: optional Executor-like object (see the module docstring).
        chunksize: rows per task when ``vectorized`` and ``executor`` are both given
            (default: the population split into about 4 tasks per worker, at most 64).
        args: extra positional arguments passed to ``fun`` after x.
        on_error: ``'raise'`` (default) or ``'nan'`` (a failed evaluation gives NaN).
    """

    def __init__(self, fun: Callable, *, vectorized: bool = False, executor: Any = None,
                 chunksize: int | None = None, args: tuple = (), on_error: str = "raise"):
        if not callable(fun):
            raise TypeError(f"fun must be callable; got {type(fun).__name__}")
        if not isinstance(args, (tuple, list)):
            raise TypeError(f"args must be a tuple of extra arguments for fun; got {args!r}")
        if on_error not in ON_ERROR:
            raise ValueError(f"on_error must be one of {', '.join(map(repr, ON_ERROR))}; "
                             f"got {on_error!r}")
        if chunksize is not None and (isinstance(chunksize, bool) or
                                      not isinstance(chunksize, (int, np.integer)) or chunksize < 1):
            raise ValueError(f"chunksize must be a positive integer; got {chunksize!r}")
        self.fun = fun if not args else _with_args(fun, tuple(args))
        if on_error == "nan":
            self.fun = _OrNaN(self.fun, rows=bool(vectorized))
        self.vectorized = bool(vectorized)
        self.executor = as_executor(executor)
        self.chunksize = chunksize
        self.args = tuple(args)
        self.nfev = 0

    def __call__(self, x) -> Any:
        """Values of ``fun`` on every row of x (N, D) -> (N,) float64."""
        n = x.shape[0]
        xp = namespace(x)
        if self.executor is not None:
            host = to_numpy(x)
            if self.vectorized:
                size = self.chunksize or max(1, min(64, math.ceil(n / (4 * _workers(self.executor)))))
                chunks = [host[i:i + size] for i in range(0, n, size)]
                fn = _Chunk(self.fun)
                parts = list(self.executor.map(fn, chunks))
                values = np.concatenate(parts) if parts else np.empty(0)
            else:
                values = np.array([_scalar(v) for v in self.executor.map(self.fun, list(host))],
                                  dtype=np.float64)
            values = xp.asarray(values)
        elif self.vectorized:
            values = xp.asarray(self.fun(x))
            if values.dtype.kind not in "biuf":
                raise TypeError(f"fun must return real values; got dtype {values.dtype}")
            values = values.astype(xp.float64, copy=False).reshape(-1) if values.size == n else values
        else:
            values = xp.asarray(np.array([_scalar(self.fun(row)) for row in x], dtype=np.float64))
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


def told_values(fitness: Any, n: int, nan_policy: str, xp=np) -> tuple[Any, Any, bool]:
    """Check the (n,) values told for a population: ``(float64 values, finite mask, all finite)``.

    Raises:
        TypeError / ValueError naming ``fitness`` (not real, wrong shape; NaN or inf
        with ``nan_policy='raise'``).
    """
    f = np.asarray(to_numpy(fitness)) if xp is np else xp.asarray(fitness)
    if f.dtype.kind not in "biuf":
        raise TypeError(f"fitness must be real numbers; got dtype {f.dtype}")
    f = f.astype(xp.float64, copy=False)
    if f.ndim == 2 and f.shape[1] == 1:
        f = f[:, 0]
    if f.shape != (n,):
        raise ValueError(f"fitness must have shape ({n},), one value per member of ask(); "
                         f"got shape {tuple(f.shape)}")
    finite = xp.isfinite(f)
    all_finite = bool(finite.all())
    if not all_finite and nan_policy == "raise":
        bad = to_numpy(xp.flatnonzero(~finite))[:5].tolist()
        raise ValueError(f"fitness contains NaN or inf (members {bad}...); pass "
                         "nan_policy='worst' to treat such members as the worst")
    return f, finite, all_finite


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
