"""Polish: refine each mode with a local method inside the bounds, every evaluation counted.

scipy's ``differential_evolution(polish=True)`` is the precedent: the global search finds the
basin, a local method gets the digits. Here every mode found (:mod:`diffevo.modes`) is refined
by L-BFGS-B whose gradient is a forward difference computed as ONE batched call of D + 1
points (``fun`` takes (k, D) arrays, so a vectorised objective, an executor or a GPU get the
whole stencil at once), followed, when L-BFGS-B did not converge (a kink, e.g. Ackley's optimum,
or a noisy objective), by bounded Nelder-Mead from its best point with a simplex of the mode's
spread. Every evaluation goes through :class:`Counted`, which stops the local method the
moment the budget is spent (no overshoot) and remembers the best point evaluated.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
from scipy.optimize import minimize as _scipy_minimize
from threadpoolctl import threadpool_limits

from ._device import namespace, to_numpy
from .modes import find_modes, merge_modes

__all__ = ["Counted", "finish", "keep_final", "min_mode_size", "polish_mode", "polish_modes",
           "run_modes"]

#: forward-difference step relative to max(1, |x_i|): sqrt of the float64 epsilon
FD_STEP = math.sqrt(np.finfo(np.float64).eps)


#: without maxfev, polishing may spend this fraction of the run's popsize * num_step
POLISH_SHARE = 0.25

#: criteria after which a run is not polished (the user or the clock said stop)
NO_POLISH = ("callback", "interrupted", "error", "timeout")


class _Exhausted(Exception):
    """The evaluation budget is spent (raised inside the local method, caught here)."""


class Counted:
    """A counting, capped view of a batched cost function (lower is better).

    Args:
        fun: ``fun(X (k, D)) -> (k,)`` costs.
        maxfev: evaluations allowed (a call that would exceed it raises before evaluating).
    """

    def __init__(self, fun: Callable[[np.ndarray], Any], maxfev: int):
        self.fun = fun
        self.maxfev = int(maxfev)
        self.nfev = 0
        self.best_x: np.ndarray | None = None
        self.best_f = math.inf

    @property
    def left(self) -> int:
        return self.maxfev - self.nfev

    def __call__(self, X: np.ndarray) -> np.ndarray:
        X = np.atleast_2d(np.asarray(X, dtype=np.float64))
        if X.shape[0] > self.left:
            raise _Exhausted
        self.nfev += X.shape[0]
        f = np.asarray(self.fun(X), dtype=np.float64).reshape(-1)
        f = np.where(np.isfinite(f), f, np.inf)
        i = int(np.argmin(f))
        if f[i] < self.best_f:
            self.best_f, self.best_x = float(f[i]), X[i].copy()
        return f

    def one(self, x: np.ndarray) -> float:
        v = float(self(x[None])[0])
        return v if math.isfinite(v) else 1e300  # local methods need a finite number


def _value_and_gradient(counted: Counted, low: np.ndarray | None, high: np.ndarray | None):
    """f(x) and a forward-difference gradient from one batched call of D + 1 points."""
    def fg(x: np.ndarray) -> tuple[float, np.ndarray]:
        h = FD_STEP * np.maximum(1.0, np.abs(x))
        if high is not None:
            h = np.where(x + h > high, -h, h)  # step inward at the upper bound
        pts = np.vstack([x, x + np.diag(h)])
        f = counted(pts)
        if not np.isfinite(f).all():
            f = np.where(np.isfinite(f), f, 1e300)
        return float(f[0]), (f[1:] - f[0]) / h
    return fg


def polish_mode(counted: Counted, x: np.ndarray, *, bounds: tuple[np.ndarray, np.ndarray] | None,
                spread: np.ndarray | None = None, maxfev: int) -> tuple[np.ndarray, float]:
    """Refine one point within ``maxfev`` evaluations of ``counted``.

    Returns the best ``(x, cost)`` evaluated while polishing (or x itself, evaluated, when the
    budget allows nothing more).
    """
    x = np.asarray(x, dtype=np.float64)
    d = x.shape[0]
    low, high = (None, None) if bounds is None else bounds
    if low is not None:
        x = np.clip(x, low, high)
    local = Counted(counted, min(maxfev, counted.left))
    scipy_bounds = None if bounds is None else list(zip(low, high))
    try:
        res = _scipy_minimize(_value_and_gradient(local, low, high), x, jac=True,
                              method="L-BFGS-B", bounds=scipy_bounds,
                              options={"maxfun": max(1, local.left // (d + 1)), "ftol": 1e-15,
                                           "gtol": 1e-12, "maxls": 40})
        converged = bool(res.success)
    except _Exhausted:
        converged = True  # out of budget: nothing more to do
    if not converged and local.left > d + 1 and local.best_x is not None:
        # a kink or noise stopped L-BFGS-B: Nelder-Mead from its best, a simplex of the mode's size
        start = local.best_x
        step = np.maximum(np.zeros(d) if spread is None else np.asarray(spread, dtype=np.float64),
                          1e-3 * np.maximum(1.0, np.abs(start)))
        simplex = np.vstack([start, start + np.diag(step)])
        if low is not None:
            simplex = np.clip(simplex, low, high)
        try:
            _scipy_minimize(local.one, start, method="Nelder-Mead", bounds=scipy_bounds,
                            options={"initial_simplex": simplex, "maxfev": local.left,
                                         "xatol": 1e-12, "fatol": 1e-15})
        except _Exhausted:
            pass
    if local.best_x is None:
        return x, math.inf
    return local.best_x, local.best_f


def polish_modes(fun: Callable[[np.ndarray], Any], modes: list[dict], *, maxfev: int,
                 bounds: tuple[np.ndarray, np.ndarray] | None = None,
                 per_mode: int | None = None) -> tuple[list[dict], int]:
    """Polish the modes one after the other (best first) within ``maxfev`` evaluations of ``fun``.

    A local method stops by itself once it converges (tens of evaluations in 2-D, a few
    hundred on a 10-D quadratic), so each mode may use everything still left, at most
    ``per_mode``: the best mode of an ill-conditioned problem gets the thousands it needs,
    and on a multimodal one every mode gets its turn.

    Args:
        fun: ``fun(X (k, D)) -> (k,)`` costs (lower is better).
        modes: from :func:`diffevo.modes.find_modes` (``x``, ``fun``, ``size``, ``spread``).
        maxfev: evaluations for all modes together.
        bounds: ``(low (D,), high (D,))`` or None.
        per_mode: cap per mode (default: none but ``maxfev``).

    Returns:
        (polished modes -- same keys, ``x``/``fun`` replaced where polishing found better,
        ``polished`` True for the modes that got a budget -- and the evaluations used).
    """
    counted = Counted(fun, max(0, int(maxfev)))
    out = []
    with threadpool_limits(limits=1, user_api="blas"):
        _polish_each(counted, modes, out, bounds, per_mode)
    return out, counted.nfev


def _polish_each(counted: Counted, modes: list[dict], out: list, bounds: Any,
                 per_mode: int | None) -> None:
    # under a one-thread BLAS: L-BFGS-B's tiny vector operations woke OpenBLAS' threads at
    # every iteration (2-D Himmelblau, 50 solves: 8.9 s threaded, 0.23 s on one thread)
    for mode in modes:
        d = np.asarray(mode["x"]).shape[0]
        share = counted.left if per_mode is None else min(int(per_mode), counted.left)
        new = dict(mode, polished=False)
        if share >= d + 2:
            x, f = polish_mode(counted, mode["x"], bounds=bounds, spread=mode.get("spread"),
                               maxfev=share)
            if f < mode["fun"]:
                new.update(x=x, fun=f)
            new["polished"] = True
        out.append(new)


def min_mode_size(popsize: int) -> int:
    """Members a basin needs to count as a mode: 0.5 % of the population, at least 2.

    Measured on final populations of 512-1024 members in 2-D: the basins of optima hold
    40-250 members, stragglers between them 1-4 (more only when they sit in a real local
    optimum, which is then reported as one).
    """
    return max(2, int(popsize) // 200)


def finish(cost: Callable[[np.ndarray], Any], finals: list[tuple[np.ndarray, np.ndarray]], *,
           bounds: tuple[np.ndarray, np.ndarray] | None, scale: Any, maxfev: int,
           min_size: int = 2, polish: bool = True) -> tuple[list[dict], int]:
    """Modes of every attempt of a run, polished and de-duplicated.

    Args:
        cost: ``cost(X (k, D)) -> (k,)``, lower is better (the objective, negated when
            maximising).
        finals: one ``(population (n, D), costs (n,))`` per attempt (its last generation).
        bounds: ``(low, high)`` or None; scale: (D,) the run's normalisation.
        maxfev: evaluations polishing may use (all modes together).
        min_size: smallest basin reported (the best basin is always kept).
        polish: False reports the modes unpolished (and spends nothing).

    Returns:
        (modes sorted by cost -- dicts with ``x``, ``fun`` (a cost), ``size``, ``spread``,
        ``polished`` -- and the evaluations spent).
    """
    modes = []
    for x, c in finals:
        found = find_modes(x, c, scale=scale)
        modes += [m for k, m in enumerate(found) if k == 0 or m["size"] >= min_size]
    modes.sort(key=lambda m: m["fun"])
    used = 0
    if polish and modes:
        modes, used = polish_modes(cost, modes, maxfev=maxfev, bounds=bounds)
    else:
        modes = [dict(m, polished=False) for m in modes]
    return merge_modes(modes, scale=scale), used


def keep_final(finals: list, es: Any, maximize: bool) -> None:
    """Append ``(population (n, D), costs (n,))`` of the attempt ``es`` when it evaluated one."""
    res = es.result
    pop, values = res.get("population"), res.get("population_fun")
    if pop is None or values is None:
        return
    c = np.asarray(to_numpy(values), dtype=np.float64)
    finals.append((np.asarray(to_numpy(pop), dtype=np.float64), -c if maximize else c))


def run_modes(evaluate: Callable | None, run: Any, stop: dict) -> tuple[list[dict], int]:
    """The modes of a finished :class:`diffevo.runner.Run`, polished when it may be.

    Polishing needs ``evaluate`` (the run's :class:`diffevo.evaluation.Evaluator`), the
    ``polish`` setting and a stop that allows it (not the callback, Ctrl-C, an error or
    the timeout); it spends at most what maxfev leaves, or ``POLISH_SHARE`` of the run's
    ``popsize * num_step`` without maxfev.

    Returns:
        (modes -- ``{x (D,), fun, size, polished}`` sorted best first, ``fun`` in the
        objective's sign -- and the evaluations spent).
    """
    s, es = run.settings, run.es
    sign = -1.0 if s.maximize else 1.0
    allowed = evaluate is not None and s.polish and not any(k in stop for k in NO_POLISH)
    budget = (s.maxfev - run.nfev if s.maxfev is not None
              else int(POLISH_SHARE * run.popsize * s.num_step))
    pop = es.result.get("population")
    xp = np if pop is None else namespace(pop)
    box = getattr(es, "box", None)

    def cost(X: np.ndarray) -> np.ndarray:
        return sign * np.asarray(to_numpy(evaluate(xp.asarray(X))), dtype=np.float64)

    modes, used = finish(cost, run.finals, bounds=getattr(es, "bounds", None),
                         scale=None if box is None else box.scale, maxfev=max(0, budget),
                         min_size=min_mode_size(run.popsize), polish=allowed)
    return [{"x": m["x"], "fun": sign * m["fun"], "size": m["size"], "polished": m["polished"]}
            for m in modes], used
