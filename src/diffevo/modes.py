"""The distinct optima a population found: nearest-better clustering of evaluated members.

A population at the end of a Diffusion Evolution run sits in a few tight clumps (one per
basin it kept), plus stragglers between them. :func:`find_modes` splits it into basins with
*nearest-better clustering* (Preuss 2010, the standard niching detector of multimodal
evolutionary optimisation): every member is linked to its nearest member with a strictly
better value; links much longer than the typical link (``phi`` times their mean) join two
different basins and are cut; the connected components of what remains
(:func:`scipy.sparse.csgraph.connected_components`) are the modes. The cut is data-driven
(the mean link length of this population, in its own normalised coordinates), so it needs
no radius from the user: inside a clump the links are tiny, between clumps they are of the
order of the basins' distance.

Distances are measured after dividing every coordinate by ``scale`` (the optimiser's
normalisation, default: the population's per-coordinate standard deviation), so a box of
[-1000, 1000] x [0, 1] is clustered like a square.

:func:`merge_modes` is the de-duplication after polishing: two modes are one when they
polish to the same point (``cKDTree.query_pairs`` within ``xtol`` in normalised units).

:func:`finish` / :func:`run_modes` are what a finished run reports: the modes of each of its
attempts, polished (:mod:`diffevo.polish`) and merged; :func:`finish_runs` does that for the
runs of ``minimize(runs=R)`` that end together, their polishes advancing in lockstep.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from scipy.spatial import cKDTree

from ._device import namespace, to_numpy
from .evaluation import _OrNaN  # the on_error='nan' wrapper: see _Cost.key
from .polish import Counted, drive, one_thread_blas, polish_each, polish_modes

__all__ = ["attempt_modes", "attempt_modes_many", "find_modes", "find_modes_many", "finish",
           "finish_runs", "keep_final", "merge_modes", "min_mode_size", "run_modes"]

#: without maxfev, polishing may spend this fraction of the run's popsize * num_step
POLISH_SHARE = 0.25

#: criteria after which a run is not polished (the user or the clock said stop)
NO_POLISH = ("callback", "interrupted", "error", "timeout")

#: links longer than PHI times the mean link are cut (Preuss' nearest-better clustering: 2)
PHI = 2.0

#: at most this many of the best members are clustered (the distance work is O(m k))
MAX_POINTS = 4096

#: neighbours searched for a better member before falling back to the best member
NEIGHBOURS = 32

#: neighbours searched first (most members have a better one among them)
NEAR = 8


def _as_points(x: Any, cost: Any) -> tuple[np.ndarray, np.ndarray]:
    x = np.asarray(to_numpy(x), dtype=np.float64)
    c = np.asarray(to_numpy(cost), dtype=np.float64).reshape(-1)
    if x.ndim != 2:
        raise ValueError(f"x must be an (n, D) population; got shape {x.shape}")
    if c.shape[0] != x.shape[0]:
        raise ValueError(f"cost must have one value per member of x ({x.shape[0]}); "
                         f"got {c.shape[0]}")
    keep = np.isfinite(c) & np.isfinite(x).all(axis=1)
    return x[keep], c[keep]


def _unit(x: np.ndarray, scale: Any) -> np.ndarray:
    """Per-coordinate scale (D,) > 0: the given one, else the population's spread."""
    if scale is None:
        s = x.std(axis=0)
        positive = s[s > 0]
        s = np.where(s > 0, s, positive.min() if positive.size else 1.0)
    else:
        s = np.broadcast_to(np.asarray(to_numpy(scale), dtype=np.float64), (x.shape[1],))
        if not (np.isfinite(s).all() and (s > 0).all()):
            raise ValueError(f"scale must be positive and finite; got {scale!r}")
    return s


def _nearest_better(u: np.ndarray, order_rank: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For every point except the best: (index of its nearest strictly better point, distance).

    "Better" is a lower rank (ranks break ties of equal values by position, so every point
    but rank 0 has one; neighbours at equal distances count in index order). The NEAR nearest
    neighbours are searched first, then the NEIGHBOURS nearest for the points with no better
    one closer than their NEAR-th neighbour (a k-nearest query costs ~k: 1.3 ms for 512
    points at k = 32, 0.3 ms at k = 8, and the first resolves most points; the answer is the
    one k = NEIGHBOURS alone gives). The few with no better one among those either (the best
    of a far clump) are linked to the best point.
    """
    m = u.shape[0]
    tree = cKDTree(u)
    target = np.full(m, -1)
    length = np.full(m, np.nan)
    todo = np.arange(m)
    for k in sorted({min(m, NEAR), min(m, NEIGHBOURS)}):
        dist, idx = tree.query(u[todo], k=k)
        dist, idx = dist.reshape(todo.shape[0], k), idx.reshape(todo.shape[0], k)
        tied = np.flatnonzero((dist[:, 1:] == dist[:, :-1]).any(axis=1))
        if tied.size:  # equal distances: the lower index first, whatever the query's order
            o = np.lexsort((idx[tied], dist[tied]), axis=-1)
            dist[tied], idx[tied] = (np.take_along_axis(a[tied], o, axis=1) for a in (dist, idx))
        better = order_rank[idx] < order_rank[todo, None]
        first = better.argmax(axis=1)
        found = better.any(axis=1)
        if k < min(m, NEIGHBOURS):  # only a link shorter than the k-th neighbour is surely the nearest
            found &= dist[np.arange(todo.shape[0]), first] < dist[:, -1]
        rows = np.flatnonzero(found)
        target[todo[rows]], length[todo[rows]] = idx[rows, first[rows]], dist[rows, first[rows]]
        todo = todo[~found]
        if not todo.size:
            break
    best = int(np.argmin(order_rank))
    far = todo[todo != best]
    target[far] = best
    length[far] = np.linalg.norm(u[far] - u[best], axis=1)
    return target, length


def find_modes(x: Any, cost: Any, *, scale: Any = None, phi: float = PHI,
               max_points: int = MAX_POINTS) -> list[dict]:
    """Split evaluated members into basins and return one mode per basin.

    Args:
        x: (n, D) evaluated points (objective coordinates).
        cost: (n,) their values, lower is better (negate a maximised objective);
            NaN/inf members are ignored.
        scale: scalar or (D,) unit of distance per coordinate (default: the
            population's standard deviation per coordinate).
        phi: cut links longer than ``phi`` times the mean nearest-better link.
        max_points: cluster only the best ``max_points`` members.

    Returns:
        Modes sorted by cost, each a dict: ``x`` (D,) the best member of the basin,
        ``fun`` its cost, ``size`` members in the basin, ``spread`` (D,) the basin's
        per-coordinate standard deviation (objective coordinates; 0 for a single member).
    """
    return find_modes_many([(x, cost, scale)], phi=phi, max_points=max_points)[0]


def find_modes_many(items: list[tuple[Any, Any, Any]], *, phi: float = PHI,
                    max_points: int = MAX_POINTS, min_size: int = 0) -> list[list[dict]]:
    """``[find_modes(x, cost, scale=scale, ...) for x, cost, scale in items]`` (what the
    runs ending together report; with ``min_size``, only each population's best basin and
    those of at least ``min_size`` members). The basins of all populations are the
    connected components of ONE graph (no link joins two populations, and a partition
    does not depend on how its parts are numbered). Each population keeps its own
    KD-tree: one tree over all of them (an extra run-index coordinate) was measured
    slower, 89 ms against 57 ms for 100 x 512 2-D members."""
    pops, rows, cols, start = [], [], [], 0
    for x, cost, scale in items:
        x, c = _as_points(x, cost)
        order = np.argsort(c, kind="stable")[:max_points]
        x, c = x[order], c[order]
        m = x.shape[0]
        pops.append((x, c, start))
        if m > 1:
            target, length = _nearest_better(x / _unit(x, scale), np.arange(m))
            rank = np.arange(m)  # x is sorted by cost: the rank is the position
            linked = rank != 0
            keep = linked & (length <= phi * float(np.mean(length[linked])))
            rows.append(start + rank[keep])
            cols.append(start + target[keep])
        start += m
    label = np.zeros(start, dtype=np.int64)
    if rows:
        r, c = np.concatenate(rows), np.concatenate(cols)
        graph = coo_matrix((np.ones(r.shape[0]), (r, c)), shape=(start, start))
        label = connected_components(graph, directed=False)[1]
    return [_basins(x, c, label[a:a + x.shape[0]], min_size) for x, c, a in pops]


def _basins(x: np.ndarray, c: np.ndarray, label: np.ndarray, min_size: int) -> list[dict]:
    """The modes of members x sorted by cost c, ``label`` their basins (any numbering):
    the best basin and those of at least ``min_size`` members (a straggler's spread, one
    std per basin, would be most of the time spent here)."""
    m = x.shape[0]
    if m == 0:
        return []
    label = np.unique(label, return_inverse=True)[1].reshape(-1)
    ncomp = int(label.max()) + 1
    size = np.bincount(label, minlength=ncomp)
    first = np.full(ncomp, m)
    np.minimum.at(first, label, np.arange(m))  # the best member of each basin (x is sorted)
    modes = []
    for k, comp in enumerate(np.argsort(first).tolist()):  # in order of their best value
        if k and size[comp] < min_size:
            continue
        members = x[label == comp]
        modes.append({"x": x[first[comp]].copy(), "fun": float(c[first[comp]]),
                      "size": int(size[comp]), "spread": members.std(axis=0)})
    return modes


def merge_modes(modes: list[dict], *, scale: Any, xtol: float = 1e-4) -> list[dict]:
    """De-duplicate polished modes: those within ``xtol`` (in units of ``scale``) are one.

    The merged mode keeps the best ``x``/``fun`` of its group and the summed ``size``;
    the result is sorted by ``fun``.
    """
    if len(modes) < 2:
        return [dict(m) for m in modes]
    pts = np.array([m["x"] for m in modes], dtype=np.float64)
    u = pts / _unit(pts, scale)
    pairs = cKDTree(u).query_pairs(xtol, output_type="ndarray")
    n = len(modes)
    graph = coo_matrix((np.ones(pairs.shape[0]), (pairs[:, 0], pairs[:, 1])), shape=(n, n))
    _, label = connected_components(graph, directed=False)
    merged: dict[int, dict] = {}
    for mode, lab in zip(modes, label):
        have = merged.get(int(lab))
        if have is None:
            merged[int(lab)] = dict(mode)
        else:
            total = have["size"] + mode["size"]
            if mode["fun"] < have["fun"]:
                have.update(mode)
            have["size"] = total
    return sorted(merged.values(), key=lambda m: m["fun"])


def min_mode_size(popsize: int) -> int:
    """Members a basin needs to count as a mode: 0.5 % of the population, at least 2.

    Measured on final populations of 512-1024 members in 2-D: the basins of optima hold
    40-250 members, stragglers between them 1-4 (more only when they sit in a real local
    optimum, which is then reported as one).
    """
    return max(2, int(popsize) // 200)


def attempt_modes(finals: list, scale: Any, min_size: int) -> list[dict]:
    """The modes of every attempt of a run, ``finals`` one ``(population (n, D), costs (n,))``
    per attempt: each attempt's best basin and those of at least ``min_size`` members,
    sorted by cost (see :func:`find_modes` for the keys)."""
    return attempt_modes_many([(finals, scale, min_size)])[0]


def attempt_modes_many(runs: list[tuple[list, Any, int]]) -> list[list[dict]]:
    """``[attempt_modes(finals, scale, min_size) for ... in runs]``: every attempt of every
    run clustered in one :func:`find_modes_many` call."""
    sizes = {min_size for _, _, min_size in runs}  # one popsize: stragglers dropped at once
    found = iter(find_modes_many([(x, c, scale) for finals, scale, _ in runs for x, c in finals],
                                 min_size=sizes.pop() if len(sizes) == 1 else 0))
    out = []
    for finals, _, min_size in runs:
        modes = []
        for _ in finals:
            modes += [m for k, m in enumerate(next(found)) if k == 0 or m["size"] >= min_size]
        modes.sort(key=lambda m: m["fun"])
        out.append(modes)
    return out


def keep_final(finals: list, es: Any, maximize: bool) -> None:
    """Append ``(population (n, D), costs (n,))`` of the attempt ``es`` when it evaluated one."""
    res = es.result
    pop, values = res.get("population"), res.get("population_fun")
    if pop is None or values is None:
        return
    c = np.asarray(to_numpy(values), dtype=np.float64)
    finals.append((np.asarray(to_numpy(pop), dtype=np.float64), -c if maximize else c))


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
    modes = attempt_modes(finals, scale, min_size)
    used = 0
    if polish and modes:
        modes, used = polish_modes(cost, modes, maxfev=maxfev, bounds=bounds)
    else:
        modes = [dict(m, polished=False) for m in modes]
    return merge_modes(modes, scale=scale), used


class _Cost:
    """What polishing a run minimises: ``sign * evaluate(X)`` as float64 on the host."""

    def __init__(self, evaluate: Callable, sign: float, xp: Any):
        self.evaluate, self.sign, self.xp = evaluate, sign, xp

    def __call__(self, X: np.ndarray) -> np.ndarray:
        return self.sign * np.asarray(to_numpy(self.evaluate(self.xp.asarray(X))), dtype=np.float64)

    def key(self) -> tuple:
        """Runs with equal keys share each round's objective call. Not when a failing call
        becomes NaN for its rows (``on_error='nan'`` vectorised): one run's failure would
        then blank the others' stencils."""
        fun = getattr(self.evaluate, "fun", None)
        if getattr(self.evaluate, "vectorized", False) and isinstance(fun, _OrNaN):
            return (id(self),)
        return (id(self.evaluate), self.sign, self.xp.__name__)


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
    return finish_runs(evaluate, [(run, stop)])[0]


def finish_runs(evaluate: Callable | None, finished: list[tuple[Any, dict]]) -> list[tuple]:
    """:func:`run_modes` of several runs ``[(run, stop), ...]`` at once: their polishes
    advance in lockstep (:func:`drive`), one objective call per round for all of them,
    under one BLAS limit. Run r's modes and evaluations equal those of run r alone."""
    plans, lanes = [], {}
    scales = [getattr(getattr(run.es, "box", None), "scale", None) for run, _ in finished]
    found = attempt_modes_many([(run.finals, scale, min_mode_size(run.popsize))
                                for (run, _), scale in zip(finished, scales)])
    for (run, stop), scale, modes in zip(finished, scales, found):
        s, es = run.settings, run.es
        sign = -1.0 if s.maximize else 1.0
        allowed = evaluate is not None and s.polish and not any(k in stop for k in NO_POLISH)
        budget = (s.maxfev - run.nfev if s.maxfev is not None
                  else int(POLISH_SHARE * run.popsize * s.num_step))
        pop = es.result.get("population")
        cost = _Cost(evaluate, sign, np if pop is None else namespace(pop))
        counted = Counted(cost, max(0, budget)) if allowed and modes else None
        if counted is not None:
            lane = polish_each(counted, modes, getattr(es, "bounds", None), None)
            lanes.setdefault(cost.key(), []).append((len(plans), lane, cost))
        plans.append([sign, scale, [dict(m, polished=False) for m in modes], counted])
    if lanes:
        with one_thread_blas():
            for group in lanes.values():
                done = drive([lane for _, lane, _ in group], group[0][2])
                for (i, _, _), polished in zip(group, done):
                    plans[i][2] = polished
    out = []
    for sign, scale, modes, counted in plans:
        merged = merge_modes(modes, scale=scale)
        out.append(([{"x": m["x"], "fun": sign * m["fun"], "size": m["size"],
                      "polished": m["polished"]} for m in merged],
                    0 if counted is None else counted.nfev))
    return out
