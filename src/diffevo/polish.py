"""Polish: refine each mode with a local method inside the bounds, every evaluation counted.

scipy's ``differential_evolution(polish=True)`` is the precedent: the global search finds the
basin, a local method gets the digits. Here every mode found (:mod:`diffevo.modes`) is refined
by L-BFGS-B whose gradient is a forward difference computed as ONE batched call of D + 1
points (``fun`` takes (k, D) arrays, so a vectorised objective, an executor or a GPU get the
whole stencil at once), followed, when L-BFGS-B did not converge (a kink, e.g. Ackley's optimum,
or a noisy objective), by bounded Nelder-Mead from its best point with a simplex of the mode's
spread. Every evaluation goes through :class:`Counted`, which stops the local method the
moment the budget is spent (no overshoot) and remembers the best point evaluated.

Runs finishing together (``minimize(runs=R)``) are polished together: each run's polish is a
generator that yields the stencils it needs evaluated, and :func:`drive` advances all of them
in lockstep: per round the stencils of every run are built by one array operation and
evaluated by ONE objective call, each run sent its own rows (what it would get alone). L-BFGS-B is scipy's own
(``_lbfgsb.setulb``, the routine behind ``scipy.optimize.minimize(method='L-BFGS-B')``) driven
through its reverse-communication loop; a self-test on first use (:func:`_lockstep_ok`)
compares it with ``scipy.optimize.minimize`` and falls back to that (one mode at a time)
should a scipy version change the private routine.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Generator
from typing import Any

import numpy as np
from scipy.optimize import minimize as _scipy_minimize

__all__ = ["Counted", "drive", "one_thread_blas", "polish_each", "polish_mode", "polish_modes"]

#: forward-difference step relative to max(1, |x_i|): sqrt of the float64 epsilon
FD_STEP = math.sqrt(np.finfo(np.float64).eps)

#: L-BFGS-B's options (scipy's names): the tolerances ask for every digit, within the budget
LBFGSB = {"ftol": 1e-15, "gtol": 1e-12, "maxls": 40, "maxcor": 10, "maxiter": 15000}

#: Nelder-Mead stops when the simplex's values agree within this fraction of the best value
#: (64 float64 epsilons: what rounding leaves of a converged simplex)
NM_FATOL = 64 * np.finfo(np.float64).eps

#: Nelder-Mead's evaluations per mode are capped at this many per simplex vertex (D + 1), so
#: a noisy objective cannot spend the budget of every other mode on one
NM_MAXFEV = 1000

#: a generator that yields stencil requests ``(x, high)`` (:func:`_fg`), is sent what
#: :func:`_stencils` computed for each, and returns its result
Steps = Generator[tuple, tuple, Any]


class _Exhausted(Exception):
    """The evaluation budget is spent (raised inside the local method, caught here)."""


class Counted:
    """A counting, capped view of a batched cost function (lower is better).

    Args:
        fun: ``fun(X (k, D)) -> (k,)`` costs.
        maxfev: evaluations allowed (a call that would exceed it raises before evaluating).
        parent: a Counted this one draws from (its budget and count include this one's).
    """

    def __init__(self, fun: Callable[[np.ndarray], Any] | None, maxfev: int,
                 parent: Counted | None = None):
        self.fun = fun if parent is None else parent.fun
        self.maxfev = int(maxfev)
        self.parent = parent
        self.nfev = 0
        self.best_x: np.ndarray | None = None
        self.best_f = math.inf

    @property
    def left(self) -> int:
        return self.maxfev - self.nfev

    def admit(self, k: int) -> None:
        """Raise :class:`_Exhausted` (before anything is evaluated) when k more do not fit."""
        if k > self.left:
            raise _Exhausted
        if self.parent is not None:
            self.parent.admit(k)

    def record(self, X: np.ndarray, f: Any) -> np.ndarray:
        """Count k evaluated points and their values; the values, non-finite ones as inf."""
        f = np.asarray(f, dtype=np.float64).reshape(-1)
        f = np.where(np.isfinite(f), f, np.inf)
        i = int(np.argmin(f))
        self.tally(X, i, float(f[i]))
        return f

    def tally(self, X: np.ndarray, i: int, fi: float) -> None:
        """Count the k points ``X`` evaluated, of which ``X[i]`` is the best (value ``fi``,
        inf when none is finite): what :meth:`record` does once the best row is known
        (:func:`_stencils` finds it for every stencil of a round in one array operation)."""
        node = self
        while node is not None:  # this one and those it draws from
            node.nfev += X.shape[0]
            if fi < node.best_f:
                node.best_f, node.best_x = fi, X[i].copy()
            node = node.parent

    def __call__(self, X: np.ndarray) -> np.ndarray:
        X = np.atleast_2d(np.asarray(X, dtype=np.float64))
        self.admit(X.shape[0])
        return self.record(X, self.fun(X))

    def one(self, x: np.ndarray) -> float:
        v = float(self(x[None])[0])
        return v if math.isfinite(v) else 1e300  # local methods need a finite number



def _fg(counted: Counted, x: np.ndarray, high: np.ndarray | None) -> Steps:
    """f(x) and its forward-difference gradient: yields ``(x, high)``, the request for one
    stencil of D + 1 points, and is sent what :func:`_stencils` computed for it."""
    counted.admit(x.shape[0] + 1)
    pts, best, best_f, value, grad = yield x, high
    counted.tally(pts, best, best_f)
    return value, grad


def _stencils(asks: list[tuple], evaluate: Callable[[np.ndarray], Any]) -> list[tuple]:
    """The stencils of L requests ``(x (D,), high (D,) or None)`` of one D, in ONE call of
    ``evaluate``: per request ``(points (D + 1, D), index of the best point, its value (inf
    when none is finite), f(x), gradient (D,))``.

    Each request's arithmetic is what one stencil alone computes, element for element:
    steps ``FD_STEP * max(1, |x_i|)``, inward where x + h passes the upper bound (no bound:
    +inf, never passed), points ``x`` and ``x + diag(h)``, non-finite values as 1e300. The
    per-stencil work that is not the local method's own (the best point of each, for
    :meth:`Counted.tally`) is done here for all of them at once: what a lane costs per
    round is then little more than its L-BFGS-B routine.
    """
    x = np.array([a[0] for a in asks], dtype=np.float64)
    rows, d = x.shape
    h = FD_STEP * np.maximum(1.0, np.abs(x))
    bounded = [k for k, a in enumerate(asks) if a[1] is not None]
    if bounded:
        high = np.full((rows, d), np.inf)
        high[bounded] = [asks[k][1] for k in bounded]
        h = np.where(x + h > high, -h, h)
    step = np.zeros((rows, d, d))
    step[:, np.arange(d), np.arange(d)] = h
    pts = np.concatenate([x[:, None, :], x[:, None, :] + step], axis=1)
    raw = np.asarray(evaluate(pts.reshape(-1, d)), dtype=np.float64).reshape(-1)
    if raw.shape[0] != pts.shape[0] * (d + 1):
        raise ValueError(f"fun must return one value per point ({pts.shape[0] * (d + 1)}); "
                         f"got {raw.shape[0]}")
    raw = raw.reshape(rows, d + 1)
    finite = np.isfinite(raw)
    f = np.where(finite, raw, 1e300)  # inf (no value) too: local methods need numbers
    grad = (f[:, 1:] - f[:, :1]) / h
    ranked = np.where(finite, raw, np.inf)
    best = ranked.argmin(axis=1)
    best_f = ranked[np.arange(rows), best].tolist()
    value = f[:, 0].tolist()
    best = best.tolist()
    return [(pts[k], best[k], best_f[k], value[k], grad[k]) for k in range(rows)]


def _lbfgsb(counted: Counted, x0: np.ndarray, low, high, maxfun: int,
            unit: np.ndarray | None = None) -> Steps:
    """scipy's L-BFGS-B loop (``scipy.optimize._lbfgsb_py._minimize_lbfgsb``, with a
    ``jac=True`` function) step for step, as a generator of stencils; returns success.

    Like scipy's ScalarFunction it evaluates x0 first and re-evaluates only when the routine
    asks for a point different from the last one; the bounds are encoded as scipy does.
    With ``unit`` (D,) > 0 the routine works in ``z = x / unit`` (its first step has length
    1 in z: one unit, not 1 in x, which jumped out of basins narrower than 1)."""
    unit = np.ones(x0.shape[0]) if unit is None else np.asarray(unit, dtype=np.float64)
    x0 = x0 / unit
    if low is not None:
        low, high_z = low / unit, high / unit
    else:
        high_z = None
    from scipy.optimize import _lbfgsb  # noqa: PLC0415 - private: checked by _lockstep_ok

    n, m = x0.shape[0], LBFGSB["maxcor"]
    lo, up, nbd = np.zeros(n), np.zeros(n), np.zeros(n, np.int32)
    if low is not None:
        fl, fu = np.isfinite(low), np.isfinite(high_z)
        lo[fl], up[fu] = low[fl], high_z[fu]
        nbd[:] = np.where(fl & fu, 2, np.where(fl, 1, np.where(fu, 3, 0)))
    x = np.array(x0, dtype=np.float64)
    last = x.tolist()  # (a list: comparing D floats as a list is np.array_equal, cheaper)
    value, grad = yield from _fg(counted, x * unit, high)
    grad = grad * unit
    nfev, nit = 1, 0
    f, g = np.array(0.0, dtype=np.float64), np.zeros(n)
    wa = np.zeros(2 * m * n + 5 * n + 11 * m * m + 8 * m)
    iwa, task, ln_task = np.zeros(3 * n, np.int32), np.zeros(2, np.int32), np.zeros(2, np.int32)
    lsave, isave, dsave = np.zeros(4, np.int32), np.zeros(44, np.int32), np.zeros(29)
    factr = LBFGSB["ftol"] / np.finfo(float).eps
    while True:
        g = g.astype(np.float64)
        _lbfgsb.setulb(m, x, lo, up, nbd, f, g, factr, LBFGSB["gtol"], wa, iwa, task, lsave,
                       isave, dsave, LBFGSB["maxls"], ln_task)
        if task[0] == 3:  # f and g at x
            now = x.tolist()
            if now != last:  # np.array_equal, as scipy's cache, without its checks
                last = now
                value, grad = yield from _fg(counted, x * unit, high)
                grad = grad * unit
                nfev += 1
            f, g = value, grad
        elif task[0] == 1:  # a new iteration
            nit += 1
            if nit >= LBFGSB["maxiter"]:
                task[:] = 5, 504
            elif nfev > maxfun:
                task[:] = 5, 502
        else:
            return task[0] == 4


def _lbfgsb_scipy(counted: Counted, x0: np.ndarray, low, high, maxfun: int,
                  unit: np.ndarray | None = None) -> bool:
    """The same through ``scipy.optimize.minimize`` (one synchronous solve)."""
    unit = np.ones(x0.shape[0]) if unit is None else np.asarray(unit, dtype=np.float64)

    def fg(z):
        value, grad = drive([_fg(counted, z * unit, high)], counted.fun)[0]
        return value, grad * unit
    options = {k: v for k, v in LBFGSB.items() if k not in ("maxcor", "maxiter")}
    res = _scipy_minimize(fg, x0 / unit, jac=True, method="L-BFGS-B",
                          bounds=None if low is None else list(zip(low / unit, high / unit)),
                          options=dict(options, maxfun=maxfun))
    return bool(res.success)


_LOCKSTEP: list[bool] = []  # the self-test's verdict, once per process


def _lockstep_ok() -> bool:
    """Whether :func:`_lbfgsb` reproduces ``scipy.optimize.minimize`` here (checked once, on
    a bounded Rosenbrock: the same points evaluated, the same result, bit for bit)."""
    if not _LOCKSTEP:
        def rosen(X):
            return (1 - X[:, 0]) ** 2 + 100 * (X[:, 1] - X[:, 0] ** 2) ** 2
        low, high, x0 = np.array([-2.0, -1.0]), np.array([2.0, 3.0]), np.array([-1.2, 1.0])
        try:
            mine, ref = Counted(rosen, 10**4), Counted(rosen, 10**4)
            ok = drive([_lbfgsb(mine, x0, low, high, 500)], rosen)[0]
            ok = ok == _lbfgsb_scipy(ref, x0, low, high, 500) and mine.nfev == ref.nfev
            _LOCKSTEP.append(bool(ok and np.array_equal(mine.best_x, ref.best_x)))
        except Exception:  # noqa: BLE001 - a changed private routine: use the public one
            _LOCKSTEP.append(False)
    return _LOCKSTEP[0]


def drive(lanes: list[Steps], evaluate: Callable[[np.ndarray], Any]) -> list:
    """Advance generators of stencil requests (:func:`_fg`) in lockstep; returns what each
    returned.

    Every round, the stencils all unfinished lanes asked for (of one D) are built and
    evaluated together, ONE ``evaluate((k, D))`` call, and each lane is sent its own: lane r
    sees exactly what it would see driven alone (``evaluate`` must treat rows independently,
    as an objective does).
    """
    results: list = [None] * len(lanes)
    asks: dict[int, tuple] = {}

    def advance(i: int, values: Any) -> None:
        try:
            asks[i] = lanes[i].send(values)
        except StopIteration as done:
            results[i] = done.value

    for i in range(len(lanes)):
        advance(i, None)
    while asks:
        by_d: dict[int, list[int]] = {}
        for i, ask in asks.items():
            by_d.setdefault(ask[0].shape[0], []).append(i)
        for order in by_d.values():
            done = _stencils([asks.pop(i) for i in order], evaluate)
            for i, got in zip(order, done):
                advance(i, got)
    return results


def _lbfgsb_unit(spread: Any, x: np.ndarray) -> np.ndarray | None:
    """L-BFGS-B's unit per coordinate: the mode's spread where it has one (a basin of
    members), at least 1e-8 max(1, |x|); None (units of x) without a spread."""
    if spread is None:
        return None
    s = np.asarray(spread, dtype=np.float64)
    if not (s.shape == x.shape and np.isfinite(s).all() and (s > 0).any()):
        return None
    return np.where(s > 0, np.maximum(s, 1e-8 * np.maximum(1.0, np.abs(x))), 1.0)


def _polish_mode(counted: Counted, x: Any, bounds, spread, maxfev: int) -> Steps:
    """:func:`polish_mode` as a generator of stencils (Nelder-Mead, rare, evaluates alone)."""
    x = np.asarray(x, dtype=np.float64)
    d = x.shape[0]
    low, high = (None, None) if bounds is None else bounds
    if low is not None:
        x = np.clip(x, low, high)
    local = Counted(None, min(maxfev, counted.left), parent=counted)
    maxfun = max(1, local.left // (d + 1))
    unit = _lbfgsb_unit(spread, x)
    try:
        if _lockstep_ok():
            converged = yield from _lbfgsb(local, x, low, high, maxfun, unit)
        else:
            converged = _lbfgsb_scipy(local, x, low, high, maxfun, unit)
    except _Exhausted:
        converged = True  # out of budget: nothing more to do
    if not converged and local.left > d + 1 and local.best_x is not None:
        # a kink or noise stopped L-BFGS-B: Nelder-Mead from its best, a simplex of the mode's size
        # (clipped: a stencil point may lie a rounding outside the bounds, and scipy warns)
        start = local.best_x if low is None else np.clip(local.best_x, low, high)
        step = np.maximum(np.zeros(d) if spread is None else np.asarray(spread, dtype=np.float64),
                          1e-3 * np.maximum(1.0, np.abs(start)))
        simplex = np.vstack([start, start + np.diag(step)])
        if low is not None:
            simplex = np.clip(simplex, low, high)
        try:
            # fatol relative to the value: an absolute 1e-15 is below the rounding of a value
            # of 54 (Shubert's local minima), the simplex never met it and one mode spent the
            # whole polishing budget (19,802 evaluations), leaving 38 of 111 modes unpolished
            fatol = max(1e-15, NM_FATOL * abs(local.best_f))
            _scipy_minimize(local.one, start, method="Nelder-Mead",
                            bounds=None if bounds is None else list(zip(low, high)),
                            options={"initial_simplex": simplex,
                                     "maxfev": min(local.left, NM_MAXFEV * (d + 1)),
                                     "xatol": 1e-12, "fatol": fatol})
        except _Exhausted:
            pass
    if local.best_x is None:
        return x, math.inf
    return local.best_x, local.best_f


def polish_mode(counted: Counted, x: np.ndarray, *, bounds: tuple[np.ndarray, np.ndarray] | None,
                spread: np.ndarray | None = None, maxfev: int) -> tuple[np.ndarray, float]:
    """Refine one point within ``maxfev`` evaluations of ``counted``.

    Returns the best ``(x, cost)`` evaluated while polishing (or x itself, evaluated, when the
    budget allows nothing more).
    """
    return drive([_polish_mode(counted, x, bounds, spread, maxfev)], counted.fun)[0]


def polish_each(counted: Counted, modes: list[dict], bounds: Any, per_mode: int | None) -> Steps:
    """:func:`polish_modes` as a generator of stencils (for :func:`drive`); returns the
    polished modes. ``counted`` holds the budget of all of them."""
    out = []
    for mode in modes:
        d = np.asarray(mode["x"]).shape[0]
        share = counted.left if per_mode is None else min(int(per_mode), counted.left)
        new = dict(mode, polished=False)
        if share >= d + 2:
            x, f = yield from _polish_mode(counted, mode["x"], bounds, mode.get("spread"), share)
            if f < mode["fun"]:
                new.update(x=x, fun=f)
            new["polished"] = True
        out.append(new)
    return out


_CONTROLLER: list = []


def one_thread_blas():
    """A context holding BLAS to one thread: L-BFGS-B's tiny vector operations woke
    OpenBLAS' threads at every iteration (2-D Himmelblau, 50 solves: 8.9 s threaded, 0.23 s
    on one thread). One controller per process: building one scans the loaded libraries
    (2 ms, as much as polishing a 2-D run's modes)."""
    if not _CONTROLLER:
        from threadpoolctl import ThreadpoolController  # noqa: PLC0415 - on first polish

        _CONTROLLER.append(ThreadpoolController())
    return _CONTROLLER[0].limit(limits=1, user_api="blas")


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
    with one_thread_blas():
        out = drive([polish_each(counted, modes, bounds, per_mode)], fun)[0]
    return out, counted.nfev


def __getattr__(name: str) -> Any:
    # the run-level mode reports live in diffevo.modes (which imports this module)
    if name in ("finish", "finish_runs", "keep_final", "min_mode_size", "run_modes"):
        from . import modes  # noqa: PLC0415 - lazy: modes imports polish

        return getattr(modes, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
