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

The nearest better member is found exactly (:mod:`diffevo._nearest`): with the members
sorted by value, that of the member at position i is the nearest of positions 0 .. i-1
(equal distances: the lowest position), by brute force in one Numba kernel for all the
populations of a call. It replaced a k-nearest-neighbour search in a KD-tree per
population (8, then 32 neighbours), which linked a member with no better one among its 32
neighbours (the best of a far clump) to the best member instead of its nearest better one:
those links were longer than Preuss' definition makes them, so the mean link -- and the cut
-- were larger, and a few straggler basins of 2-5 members stayed merged with a big one. The
exact scan is simpler, one call for all the runs of ``runs=R`` (100 populations of 512
2-D members: ~2 ms against ~60 ms for the trees), and its cost is bounded: O(m^2 D / 2) for
m <= ``MAX_POINTS`` members, at most half of one generation's own N^2 D pair sums.

:func:`merge_modes` is the de-duplication after polishing: two modes are one when they
polish to the same point (within ``xtol`` in normalised units: a direct comparison of a
run's few modes, the groups of all runs the components of one graph).

:func:`finish` / :func:`run_modes` are what a finished run reports: the modes of each of its
attempts, polished (:mod:`diffevo.polish`) and merged; :func:`finish_runs` does that for the
runs of ``minimize(runs=R)`` that end together, their polishes advancing in lockstep. With
what polishing the final modes left, it adds the basins a run's populations held at
``SNAPSHOT_AT`` of an attempt's schedule and had left by its end (:func:`keep_snapshot`,
:func:`lost_basins`: a hill-valley test against the nearest mode), polished too and reported
with ``size`` 0. Last, with the share of the budget the polishes before leave (``HOP_RESERVE``),
:func:`basin_hops` looks one basin over from the best modes no better neighbour flanks: a
box that cuts the best basins (Ackley's corners) leaves the population one basin inward.
Without ``maxfev`` the budget is ``POLISH_SHARE`` of the evaluations of every
attempt, so restarts bring their basins and the evaluations to polish them.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
from scipy.sparse import coo_matrix, csr_matrix
from scipy.sparse.csgraph import connected_components
from scipy.spatial import cKDTree
from scipy.spatial.distance import cdist

from ._device import namespace, to_numpy
from .evaluation import _OrNaN  # the on_error='nan' wrapper: see Cost.key
from .polish import Counted, drive, one_thread_blas, polish_each, polish_modes

__all__ = ["Cost", "attempt_modes", "attempt_modes_many", "basin_hops", "final_of", "find_modes",
           "find_modes_many", "finish", "finish_runs", "hill_parted", "keep_final",
           "keep_snapshot", "lost_basins", "merge_modes", "merge_modes_many", "min_mode_size",
           "run_modes", "taboo_radii", "tied_basins", "with_best_point", "zoom_box"]

#: without maxfev, polishing may spend this fraction of the evaluations the run's attempts
#: spent (at least of one attempt's popsize * num_step): restarts bring modes of their own
POLISH_SHARE = 0.25

#: the hill-valley tests of lost basins may spend at most this fraction of what polishing the
#: final modes left (the rest polishes the basins they keep)
HILL_SHARE = 0.5

#: criteria after which a run is not polished (the user or the clock said stop)
NO_POLISH = ("callback", "interrupted", "error", "timeout")

#: the fractions of an attempt's schedule after which its population is kept for
#: :func:`lost_basins` (polish on): Vincent's narrowest maxima hold 14-25 members at half the
#: schedule and none at the end (their members leave in the last 15 generations of 50)
SNAPSHOT_AT = (0.5, 0.7, 0.85)

#: the nearest-better cut of the earlier populations (finer than PHI: a candidate too many
#: costs HILL_TESTS evaluations, two basins merged into one candidate lose one of them)
SNAPSHOT_PHI = 1.2

#: points of the hill-valley test between a candidate of an earlier generation and a mode
HILL_TESTS = 5

#: a lost basin is polished in units of at most this fraction of the segment to its nearest
#: mode (L-BFGS-B's first step in a box is the gradient in those units: from Vincent's bound
#: 0.25, 0.92 from the mode 1.17, units of 0.153 stepped to 0.504, out of the basin of 0.333;
#: 0.05 down to 0.01 reached it, in 24-30 evaluations)
SEGMENT_UNIT = 1 / 32

#: basin hops (:func:`basin_hops`): from at most this many of a run's best modes, in at most
#: this many rounds (a better mode a hop found is a source of the next round: Ackley's corner
#: three cells from the nearest mode took three), spending at most this share of what the
#: polishes before left per round
HOP_SOURCES = 32
HOP_ROUNDS = 4
HOP_SHARE = 0.5

#: a round polishes at most this many of a run's hops, the best (Ackley's corners are 0.003
#: above the cells beside them; the hops that lead inward, polished too, spent the budget
#: before the third round)
HOP_POLISH = 8

#: the share of a run's polishing budget the final modes and lost basins leave to the hops
#: (Ackley maximised in [-32.768, 32.768]^2 polishes ~580 modes, which spent all of it)
HOP_RESERVE = 0.1

#: polished modes closer than this (Euclidean, in units of the run's scale) are one
MERGE_XTOL = 1e-4

#: links longer than PHI times the mean link are cut (Preuss' nearest-better clustering: 2)
PHI = 2.0

#: at most this many of the best members are clustered (the nearest-better search is
#: O(m^2 D / 2): at most half of one generation's N^2 D pair sums)
MAX_POINTS = 4096


def _as_points(x: Any, cost: Any) -> tuple[np.ndarray, np.ndarray]:
    x = np.asarray(to_numpy(x), dtype=np.float64)
    c = np.asarray(to_numpy(cost), dtype=np.float64).reshape(-1)
    if x.ndim != 2:
        raise ValueError(f"x must be an (n, D) population; got shape {x.shape}")
    if c.shape[0] != x.shape[0]:
        raise ValueError(f"cost must have one value per member of x ({x.shape[0]}); "
                         f"got {c.shape[0]}")
    keep = np.isfinite(c) & np.isfinite(x).all(axis=1)
    return (x, c) if keep.all() else (x[keep], c[keep])


def _unit(x: np.ndarray, scale: Any) -> np.ndarray:
    """Per-coordinate scale (D,) > 0: the given one, else the population's spread."""
    if scale is None:
        s = x.std(axis=0)
        positive = s[s > 0]
        s = np.where(s > 0, s, positive.min() if positive.size else 1.0)
    else:
        s = np.asarray(to_numpy(scale), dtype=np.float64)
        if s.shape != (x.shape[1],):
            s = np.broadcast_to(s, (x.shape[1],))
        if not (s.size == 0 or (s.min() > 0 and s.max() < np.inf)):  # NaN fails the first
            raise ValueError(f"scale must be positive and finite; got {scale!r}")
    return s


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
        per-coordinate standard deviation (objective coordinates; 0 for a single member),
        ``scatter`` the median cost of its members minus ``fun`` (>= 0).
    """
    return find_modes_many([(x, cost, scale)], phi=phi, max_points=max_points)[0]


def find_modes_many(items: list[tuple[Any, Any, Any]], *, phi: float = PHI,
                    max_points: int = MAX_POINTS, min_size: int = 0) -> list[list[dict]]:
    """``[find_modes(x, cost, scale=scale, ...) for x, cost, scale in items]`` (what the
    runs ending together report; with ``min_size``, only each population's best basin and
    those of at least ``min_size`` members). The populations of one dimension go through
    one nearest-better kernel call, one graph (no link joins two populations, and a
    partition does not depend on how its parts are numbered) and one pass of per-basin
    sums; every number of a population is computed from its own members only, in their
    order, so a population's modes do not depend on the others."""
    pops = []
    for x, cost, scale in items:
        x, c = _as_points(x, cost)
        pops.append((x, c, np.argsort(c, kind="stable")[:max_points], scale))
    out: list[list[dict]] = [[] for _ in pops]
    for d in sorted({x.shape[1] for x, _, _, _ in pops}):
        group = [k for k, (x, _, _, _) in enumerate(pops) if x.shape[1] == d]
        for k, modes in zip(group, _cluster([pops[k] for k in group], phi, min_size)):
            out[k] = modes
    return out


def _cluster(pops: list[tuple], phi: float, min_size: int) -> list[list[dict]]:
    """The modes of populations ``(x (n, D), cost (n,), order, scale)`` of one D, each
    clustered on its members ``order`` (the best first)."""
    from ._nearest import nearest_better  # (Numba is imported once modes are found)

    sizes = np.array([order.shape[0] for _, _, order, _ in pops], dtype=np.int64)
    offsets = np.concatenate([np.zeros(1, dtype=np.int64), np.cumsum(sizes)])
    total = int(offsets[-1])
    if total == 0:
        return [[] for _ in pops]
    given = np.cumsum([0] + [x.shape[0] for x, _, _, _ in pops[:-1]])
    pick = np.concatenate([order + g for (_, _, order, _), g in zip(pops, given)])
    x = np.concatenate([x for x, _, _, _ in pops])[pick]  # sorted by cost within each population
    c = np.concatenate([c for _, c, _, _ in pops])[pick]
    unit = np.stack([_unit(x[a:b], scale) if b - a > 1 else np.ones(x.shape[1])
                     for (_, _, _, scale), a, b in zip(pops, offsets[:-1].tolist(),
                                                       offsets[1:].tolist())])
    target, length = nearest_better(x / np.repeat(unit, sizes, axis=0), offsets)
    pop = np.repeat(np.arange(len(pops)), sizes)
    pos = np.arange(total) - offsets[pop]  # the rank in its population (0 = its best)
    linked = np.flatnonzero(pos > 0)
    mean = (np.bincount(pop[linked], weights=length[linked], minlength=len(pops))
            / np.maximum(sizes - 1, 1))  # each population's mean link
    keep = np.zeros(total, dtype=bool)
    keep[linked] = length[linked] <= phi * mean[pop[linked]]
    # member i -> its kept link (a graph of at most one edge per row, built as CSR)
    indptr = np.zeros(total + 1, dtype=np.int64)
    np.cumsum(keep, out=indptr[1:])
    cols = offsets[pop[keep]] + target[keep]
    graph = csr_matrix((np.ones(cols.shape[0]), cols, indptr), shape=(total, total))
    label = connected_components(graph, directed=False)[1]
    return _basins(x, c, label, pop, pos, len(pops), min_size)


def _basins(x: np.ndarray, c: np.ndarray, label: np.ndarray, pop: np.ndarray,
            pos: np.ndarray, npop: int, min_size: int) -> list[list[dict]]:
    """The modes of populations one after another (``pop`` (M,) each member's population,
    ``pos`` its position in it; x sorted by cost c within each), ``label`` their basins
    (any numbering; no basin spans two populations): per population the best basin and
    those of at least ``min_size`` members, in order of their best value. A basin's sums
    run over its members in order (``np.bincount``), whatever else is in the batch."""
    total = x.shape[0]
    ncomp = int(label.max()) + 1
    size = np.bincount(label, minlength=ncomp)
    first = np.full(ncomp, total)
    np.minimum.at(first, label, np.arange(total))  # the best member of each basin
    comp = np.argsort(first)  # by population, then by the basin's best value
    comp = comp[(size[comp] >= min_size) | (pos[first[comp]] == 0)]
    new = np.full(ncomp, -1)
    new[comp] = np.arange(comp.shape[0])
    member = np.flatnonzero(new[label] >= 0)  # members of the basins reported
    lab = new[label[member]]
    count = size[comp].astype(np.float64)
    spread = np.empty((comp.shape[0], x.shape[1]))
    for k in range(x.shape[1]):  # each basin's std (np.std's formula: two passes, ddof 0)
        xk = x[member, k]
        dev = xk - (np.bincount(lab, weights=xk, minlength=comp.shape[0]) / count)[lab]
        spread[:, k] = np.sqrt(np.bincount(lab, weights=dev * dev, minlength=comp.shape[0]) / count)
    best = first[comp]
    # how far the members' values scatter above the basin's best (its median member's cost
    # minus the best; members are in cost order, so a stable sort by basin keeps that order):
    # how much the basin's best value can still move. restarts='auto' tells ties by it: the
    # 3-D corner basins of one value (Ackley's) ended 0.02-0.1 apart, 2-D ones 1e-6
    grouped = member[np.argsort(lab, kind="stable")]
    start = np.concatenate([[0], np.cumsum(size[comp])[:-1]])
    scatter = c[grouped[start + size[comp] // 2]] - c[best]
    modes = [{"x": xb, "fun": f, "size": s, "spread": sp, "scatter": sc}
             for xb, f, s, sp, sc in zip(x[best], c[best].tolist(), size[comp].tolist(), spread,
                                         scatter.tolist())]
    ends = np.cumsum(np.bincount(pop[best], minlength=npop)).tolist()
    return [modes[a:b] for a, b in zip([0, *ends[:-1]], ends)]


def merge_modes(modes: list[dict], *, scale: Any, xtol: float = MERGE_XTOL) -> list[dict]:
    """De-duplicate polished modes: those within ``xtol`` (in units of ``scale``) are one.

    The merged mode keeps the best ``x``/``fun`` of its group and the summed ``size``;
    the result is sorted by ``fun``.
    """
    return merge_modes_many([(modes, scale)], xtol=xtol)[0]


def merge_modes_many(groups: list[tuple[list[dict], Any]], *,
                     xtol: float = MERGE_XTOL) -> list[list[dict]]:
    """``[merge_modes(modes, scale=scale, xtol=xtol) for modes, scale in groups]``. A run has
    a few modes: the pairs within ``xtol`` are found by comparing every two modes of a group
    directly, one vectorised pass over all groups, and the merged groups are the components
    of one graph over all of them (100 runs of ~7 modes: 0.9 ms, where a KD-tree and a graph
    per run took 9.7 ms)."""
    points = {}
    for g, (modes, scale) in enumerate(groups):
        if len(modes) > 1:
            pts = np.array([m["x"] for m in modes], dtype=np.float64)
            points[g] = pts / _unit(pts, scale)
    label: dict[int, list[int]] = {}
    for d in sorted({p.shape[1] for p in points.values()}):  # (one D in minimize's runs)
        listed = [g for g, p in points.items() if p.shape[1] == d]
        label.update(zip(listed, _within([points[g] for g in listed], xtol)))
    out = []
    for g, (modes, _) in enumerate(groups):
        if g not in label:
            out.append([dict(m) for m in modes])
            continue
        merged: dict[int, dict] = {}
        for mode, lab in zip(modes, label[g]):
            have = merged.get(lab)
            if have is None:
                merged[lab] = dict(mode)
            else:
                total = have["size"] + mode["size"]
                if mode["fun"] < have["fun"]:
                    have.update(mode)
                have["size"] = total
        out.append(sorted(merged.values(), key=lambda m: m["fun"]))
    return out


def _within(points: list[np.ndarray], xtol: float) -> list[list[int]]:
    """Per set of ``points`` ((k, D) arrays of one D): each point's label, the components of
    the pairs within ``xtol`` (every two points of a set compared; sets never join)."""
    u = np.concatenate(points)
    sizes = np.array([p.shape[0] for p in points])
    starts = np.cumsum(sizes) - sizes
    k = np.repeat(sizes, sizes)  # each point's set size
    i = np.repeat(np.arange(u.shape[0]), k)  # each point once per point of its set ...
    j = (np.arange(i.shape[0]) - np.repeat(np.cumsum(k) - k, k)  # ... paired with each
         + np.repeat(np.repeat(starts, sizes), k))
    near = i < j
    i, j = i[near], j[near]
    near = ((u[i] - u[j]) ** 2).sum(axis=1) <= xtol * xtol
    i, j = i[near], j[near]
    if i.size:
        graph = coo_matrix((np.ones(i.shape[0]), (i, j)), shape=(u.shape[0], u.shape[0]))
        lab = connected_components(graph, directed=False)[1]
    else:
        lab = np.arange(u.shape[0])
    return [lab[a:a + n].tolist() for a, n in zip(starts.tolist(), sizes.tolist())]


def min_mode_size(popsize: int) -> int:
    """Members a basin needs to be reported (and polished): 2, whatever the popsize.

    The basins of optima in final populations of 512-1024 2-D members hold 40-250
    members, stragglers between them 1-4. Stragglers in a basin of their own polish to
    its optimum, and those in the foot of a big basin polish to that basin's optimum and
    merge with it (:func:`merge_modes`), so polishing them costs a few evaluations and
    adds no false mode. It keeps an optimum the population was about to lose: 0.5 % of
    the population (the rule before) dropped a basin of 2-4 members, and with it one of
    the 12 maxima of CEC 2013's modified Rastrigin in 5 of 20 runs (1 of 20 at 2 members;
    ``bench/quality/multiglobal.py``). A lone member is not a basin: its value says
    nothing of the basin's shape.
    """
    return 2


def attempt_modes(finals: list, scale: Any, min_size: int, phi: float = PHI) -> list[dict]:
    """The modes of every attempt of a run, ``finals`` one ``(population (n, D), costs (n,))``
    per attempt: each attempt's best basin and those of at least ``min_size`` members,
    sorted by cost (see :func:`find_modes` for the keys)."""
    return attempt_modes_many([(finals, scale, min_size)], phi=phi)[0]


def attempt_modes_many(runs: list[tuple[list, Any, int]], phi: float = PHI) -> list[list[dict]]:
    """``[attempt_modes(finals, scale, min_size) for ... in runs]``: every attempt of every
    run clustered in one :func:`find_modes_many` call."""
    sizes = {min_size for _, _, min_size in runs}  # one popsize: stragglers dropped at once
    found = iter(find_modes_many([(x, c, scale) for finals, scale, _ in runs for x, c in finals],
                                 phi=phi, min_size=sizes.pop() if len(sizes) == 1 else 0))
    out = []
    for finals, _, min_size in runs:
        modes = []
        for _ in finals:
            modes += [m for k, m in enumerate(next(found)) if k == 0 or m["size"] >= min_size]
        modes.sort(key=lambda m: m["fun"])
        out.append(modes)
    return out


def final_of(es: Any, maximize: bool) -> tuple[np.ndarray, np.ndarray] | None:
    """``(population (n, D), costs (n,))`` of the attempt ``es`` (None before it evaluated one)."""
    res = es.result
    pop, values = res.get("population"), res.get("population_fun")
    if pop is None or values is None:
        return None
    c = np.asarray(to_numpy(values), dtype=np.float64)
    return np.asarray(to_numpy(pop), dtype=np.float64), -c if maximize else c


def keep_final(finals: list, es: Any, maximize: bool) -> None:
    """Append ``(population (n, D), costs (n,))`` of the attempt ``es`` when it evaluated one."""
    final = final_of(es, maximize)
    if final is not None:
        finals.append(final)


def tied_basins(modes: list[dict], best: float, tol: float, limit: int = 32) -> list[dict]:
    """The ``modes`` (of an attempt's populations: its final one and those
    :func:`keep_snapshot` kept, where basins the final one had left still show; from
    :func:`attempt_modes`, best first) in the order ``restarts='auto'`` polishes them to
    compare optima between attempts (:class:`diffevo.runner.Run`; it stops when its budget is
    spent or the optima repeat), at most ``limit``: first those whose cost may equal
    ``best`` (within ``tol`` of it, or within their own ``scatter``: their members are still
    spread over values that wide), then the others, best first. In 3-D a basin's best
    member may lie far above its optimum: Shubert 3-D's attempt ended with 259 basins, two
    of them within those bounds, and the run stopped after one attempt, while the final
    polish found 6 of the 81 minima among the others."""
    close = [m["fun"] <= best + max(tol, m["scatter"]) for m in modes]
    first = [m for m, c in zip(modes, close) if c]
    return (first + [m for m, c in zip(modes, close) if not c])[:limit]


def taboo_radii(points: np.ndarray, scale: Any, share: float, reach: Any = None) -> np.ndarray:
    """(k,) for k >= 2 distinct points (k, D): ``share`` of each one's distance to its
    nearest other point, or of its ``reach`` (k,) where that is smaller, in units of
    ``scale`` (D,) (scipy's KD-tree): the balls a restarted population avoids
    (:meth:`diffevo.DiffusionEvolution.avoid`). A fraction of the distance to the nearest
    neighbour keeps a ball inside its optimum's share of the space, whatever the spacing."""
    u = np.asarray(points, dtype=np.float64) / _unit(points, scale)
    dist, _ = cKDTree(u).query(u, k=2)
    near = dist[:, 1] if reach is None else np.minimum(dist[:, 1], reach)
    return share * near


def zoom_box(points: np.ndarray, low: np.ndarray, high: np.ndarray, span: float,
             largest: float, smallest: float = 0.0,
             skip: list | None = None) -> tuple[np.ndarray, np.ndarray] | None:
    """The box a zoomed restart searches, or None: around the most crowded of k >= 2
    distinct ``points`` (k, D) -- the one whose 2D-th nearest other point (or farthest,
    when there are fewer) is closest, in units of the box ``low``, ``high`` (D,) (its width
    per coordinate) -- that lies in none of the boxes ``skip`` (``[(low, high), ...]``, the
    earlier zooms), of half-width ``span`` times its distance to its nearest other point in
    every coordinate (the box's shape, shrunk), moved inside the box, and from ``smallest`` to
    ``largest`` of its width; None when no point gives one (optima evenly spread have
    nothing smaller to resolve; two a hair apart are one flat basin polished to two points)
    or every point lies in an earlier zoom.

    Optima that crowd together where the others lie far apart (Vincent's, a geometric
    series of spacings) say the problem has features smaller than a population spread over
    the whole box resolves: at the corner of CEC 2013's 2-D Vincent, 1024 members of a
    uniform first population leave about 0.4 in the basin of (0.333, 0.333); a box of 1.05
    x 1.05 there (0.011 of the area) puts 90 in it, and one attempt in it found all 9
    maxima it holds in 10 of 10 seeds. The crowding looks 2D neighbours far, not one: a
    point of a lattice row far from the others has one close neighbour too."""
    width = high - low
    points = np.asarray(points, dtype=np.float64)
    u = (points - low) / width
    k = min(2 * u.shape[1], u.shape[0] - 1) + 1
    dist, _ = cKDTree(u).query(u, k=k)
    for i in np.lexsort((dist[:, 1], dist[:, -1])):
        x = points[i]
        if any(((lo <= x) & (x <= hi)).all() for lo, hi in (skip or [])):
            continue
        half = span * dist[i, 1]
        if not smallest <= 2 * half <= largest:
            continue
        centre = np.clip(u[i], half, 1 - half)
        return low + (centre - half) * width, low + (centre + half) * width
    return None


def keep_snapshot(snapshots: list, es: Any, maximize: bool) -> None:
    """After a generation: append ``(population, costs)`` of the attempt ``es`` when it has
    just told the generation at one of the fractions ``SNAPSHOT_AT`` of its schedule (a
    strategy without ``num_step`` / ``generation`` keeps none)."""
    num, gen = getattr(es, "num_step", None), getattr(es, "generation", None)
    if isinstance(num, int) and isinstance(gen, int) and gen in {int(f * num) for f in SNAPSHOT_AT}:
        keep_final(snapshots, es, maximize)


def lost_basins(counted: Counted, modes: list[dict], candidates: list[dict],
                scale: Any) -> list[dict]:
    """The ``candidates`` (modes of earlier generations) whose basin none of ``modes`` holds.

    Each candidate is compared with its nearest mode (in units of ``scale``) by the
    hill-valley test of HillVallEA (Maree et al. 2018): ``HILL_TESTS`` points evenly inside
    the segment between them are evaluated; the two are in one basin unless one of those
    points is worse than both ends. ONE call of ``counted`` for the best candidates whose
    test points fit in ``HILL_SHARE`` of its budget (all of them, unless a run's restarts
    brought thousands); the others are not tested.

    Returns:
        The candidates in other basins, ``size`` 0 (no member of the final population is in
        them), best first.
    """
    fit = int(HILL_SHARE * counted.left) // HILL_TESTS
    if not candidates or not modes or fit < 1:
        return []
    candidates = sorted(candidates, key=lambda c: c["fun"])[:fit]
    mx = np.array([m["x"] for m in modes], dtype=np.float64)
    cx = np.array([c["x"] for c in candidates], dtype=np.float64)
    unit = _unit(np.concatenate([mx, cx]), scale)
    dist = (((cx[:, None, :] - mx[None, :, :]) / unit) ** 2).sum(axis=2)
    near = dist.argmin(axis=1)
    hill = _hills(counted, cx, [c["fun"] for c in candidates], mx[near],
                  [modes[k]["fun"] for k in near])
    # the basin lies within the segment to the valley: its polish works in units of at most
    # SEGMENT_UNIT of it, also where the candidate's members had no spread (clipped at a
    # bound: Vincent's 0.333 basin held 8 members, all at the bound 0.25, and their L-BFGS-B
    # in units of x left that basin, 0.2 wide, for 0.624's)
    step = np.sqrt(dist[np.arange(cx.shape[0]), near])[:, None] * unit * SEGMENT_UNIT
    return [dict(c, size=0, spread=np.minimum(_spread(c, cx.shape[1]), s))
            for c, h, s in zip(candidates, hill, step) if h]


def basin_hops(counted: Counted, modes: list[dict], sources: list[dict], bounds: Any,
               scale: Any) -> list[dict]:
    """Points one basin over from each of ``sources`` (polished modes, best first) that are
    better than their source, to be polished: a basin-hopping step over the lattice the found
    modes draw, ONE call of ``counted``.

    From a source, the hops go to its mirror images over its ``2 D`` nearest modes (the next
    basin on the line through two found ones) and along each coordinate, both ways, by the
    smallest offset along it of those modes and by half of it (the modes found may be every
    other basin: Ackley's cells are 1 apart, the modes near a corner it missed 2), clipped to
    ``bounds``; a hop that lands within a quarter of its length (units of ``scale``) of a
    polished mode or of an earlier hop is dropped.
    The hops of the best ``HOP_SOURCES`` sources that fit in ``HOP_SHARE`` of the budget are
    evaluated. Why: where a box cuts the corner basins (Ackley maximised in [-32.768, 32.768]^2:
    the corner maximum 22.3203 at (32.5, 32.5), its neighbours one cell inward 0.003 lower) the
    population ended one cell inward in 15 of 20 seeds; the hops from those modes land on the
    corners.

    Returns:
        The best ``HOP_POLISH`` hops better than their source, ``size`` 0, polished in units
        of at most ``SEGMENT_UNIT`` of their hop (so the polish stays in the basin it landed in).
    """
    budget = int(HOP_SHARE * counted.left)
    if len(modes) < 2 or not sources or budget < 1:
        return []
    mx = np.array([m["x"] for m in modes], dtype=np.float64)
    d = mx.shape[1]
    unit = _unit(mx, scale)
    um = mx / unit
    # the lattice: polished modes only (an unpolished one, out of budget, lies anywhere in
    # its basin, maybe beside a polished copy: a hop of that distance goes nowhere)
    lattice = np.array([m["polished"] for m in modes])
    low, high = (None, None) if bounds is None else bounds
    taken, origin, reach = np.empty((0, d)), [], []
    for k, src in enumerate(sources[:HOP_SOURCES]):
        x = np.asarray(src["x"], dtype=np.float64)
        dist = np.sqrt(((um - x / unit) ** 2).sum(axis=1))
        others = np.flatnonzero(lattice & (dist > MERGE_XTOL))  # (x's unmerged copies are not)
        if not others.size:
            continue
        near = others[np.argsort(dist[others], kind="stable")[:2 * d]]
        h = dist[near[0]]
        # per coordinate, the lattice's step: the smallest offset of a near mode along it
        off = np.abs(um[near] - x / unit)
        step = np.where(off > MERGE_XTOL, off, np.inf).min(axis=0)
        step = np.where(np.isfinite(step), step, h)
        axes = np.concatenate([np.diag(step), -np.diag(step)])
        hops = np.concatenate([2 * x - mx[near], x + axes * unit, x + axes * unit / 2])
        span = np.concatenate([np.full(near.size, h), step, step, step / 2, step / 2])
        if low is not None:
            hops = np.clip(hops, low, high)
        u = hops / unit
        fresh = cdist(u, um[lattice]).min(axis=1) >= span / 4
        if origin:
            fresh &= (cdist(u, taken / unit) >= np.array(reach) / 4).all(axis=1)
        among = cdist(u, u) >= np.minimum.outer(span, span) / 4
        for j in np.flatnonzero(fresh):  # one hop of those landing together
            if fresh[j]:
                fresh[j + 1:] &= among[j, j + 1:]
        hops = hops[fresh]
        taken = np.concatenate([taken, hops])
        origin += [k] * hops.shape[0]
        reach += span[fresh].tolist()
        if len(origin) >= budget:
            break
    if not origin:
        return []
    taken, origin, reach = taken[:budget], origin[:budget], reach[:budget]
    vals = counted(taken)
    out = []
    for p, k, h, v in zip(taken, origin, reach, vals.tolist()):
        if v < sources[k]["fun"]:
            spread = np.minimum(_spread(sources[k], d), h * unit * SEGMENT_UNIT)
            out.append({"x": p, "fun": v, "size": 0, "spread": spread})
    return sorted(out, key=lambda c: c["fun"])[:HOP_POLISH]


def hill_parted(counted: Counted, a: list[dict], b: list[dict]) -> list[bool]:
    """Whether a hill parts mode ``a[k]`` from mode ``b[k]`` (dicts with ``x`` and ``fun``, a
    cost), by the hill-valley test: ONE call of ``counted``; all False when its budget does
    not hold the ``HILL_TESTS`` points of every pair (no evidence of a hill)."""
    if not a or counted.left < len(a) * HILL_TESTS:
        return [False] * len(a)
    ax = np.array([m["x"] for m in a], dtype=np.float64)
    bx = np.array([m["x"] for m in b], dtype=np.float64)
    return _hills(counted, ax, [m["fun"] for m in a], bx, [m["fun"] for m in b]).tolist()


def _hills(counted: Counted, ax: np.ndarray, af: Any, bx: np.ndarray, bf: Any) -> np.ndarray:
    """(k,) whether a hill parts ``ax[k]`` from ``bx[k]`` (costs ``af``, ``bf``): the
    hill-valley test, ``HILL_TESTS`` points evenly inside each segment, ONE call of
    ``counted``; True where one of them is worse than both ends."""
    t = np.arange(1, HILL_TESTS + 1) / (HILL_TESTS + 1)
    pts = ax[:, None, :] + t[None, :, None] * (bx - ax)[:, None, :]
    vals = counted(pts.reshape(-1, ax.shape[1])).reshape(pts.shape[:2])
    return vals.max(axis=1) > np.maximum(af, bf)


def _spread(mode: dict, d: int) -> np.ndarray:
    """A mode's (D,) spread where it has one > 0 per coordinate, else inf (no limit)."""
    s = np.asarray(mode.get("spread", np.zeros(d)), dtype=np.float64)
    return np.where(s > 0, s, np.inf)


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


class Cost:
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
    the timeout); it spends at most what maxfev leaves, or without maxfev ``POLISH_SHARE`` of
    the evaluations of the run's attempts (at least of one attempt's ``popsize * num_step``).

    Returns:
        (modes -- ``{x (D,), fun, size, polished}`` sorted best first, ``fun`` in the
        objective's sign -- and the evaluations spent).
    """
    return finish_runs(evaluate, [(run, stop)])[0]


def _drive_lanes(lanes: dict, plans: list, replace: bool) -> None:
    """Drive each group of polish lanes (one objective call per round for a group) and put
    each run's polished modes in its plan (replacing its modes, or added to them)."""
    for group in lanes.values():
        done = drive([lane for _, lane, _ in group], group[0][2])
        for (i, _, _), polished in zip(group, done):
            plans[i][2] = polished if replace else plans[i][2] + polished


def with_best_point(modes: list[dict], x: Any, cost: float) -> list[dict]:
    """``modes`` (best first) with the best point the run ever evaluated, ``x`` (D,) of cost
    ``cost``, in front when it is better than all of them (``size`` 0, the spread of the
    nearest mode): polished first, so ``result.x`` is a polished point and one of the modes.

    A population can pass through a basin it does not end in: Ackley maximised in
    [-25, 25]^2, 1024 x 50, evaluated a point of the corner maximum's basin (22.1977, the
    maximum 22.2015) while its final population sat one cell inward (22.1860 polished), so
    ``result.x`` was that unpolished point and no mode held it."""
    if x is None or not math.isfinite(cost) or (modes and cost >= modes[0]["fun"]):
        return modes
    x = np.asarray(to_numpy(x), dtype=np.float64)
    best = {"x": x, "fun": float(cost), "size": 0, "scatter": 0.0}
    if modes:
        mx = np.array([m["x"] for m in modes], dtype=np.float64)
        near = int(np.argmin(np.linalg.norm((mx - x) / _unit(mx, None), axis=1)))
        best["spread"] = np.asarray(modes[near]["spread"], dtype=np.float64)
    return [best, *modes]


def _hop_rounds(lanes: dict, plans: list, bounds: list) -> None:
    """Up to ``HOP_ROUNDS`` rounds of :func:`basin_hops` from each polished run's best modes,
    then from the new modes the round before found; each round's hops of all runs polished in
    lockstep (one objective call per round of their stencils) and added to the runs' modes."""
    sources = {i: _lattice_peaks(plans[i][2], plans[i][1])
               for group in lanes.values() for i, _, _ in group}
    for _ in range(HOP_ROUNDS):
        hops: dict = {}
        for key, group in lanes.items():
            for i, _, cost in group:
                if sources.get(i) and plans[i][3].left > 0:
                    found = basin_hops(plans[i][3], plans[i][2], sources[i], bounds[i], plans[i][1])
                    if found:
                        hops.setdefault(key, []).append(
                            (i, polish_each(plans[i][3], found, bounds[i], None), cost))
        if not hops:
            return
        start = {i: len(plans[i][2]) for group in hops.values() for i, _, _ in group}
        _drive_lanes(hops, plans, replace=False)
        sources = {i: _new_modes(plans[i][2][:n], plans[i][2][n:], plans[i][1])
                   for i, n in start.items()}


def _lattice_peaks(modes: list[dict], scale: Any) -> list[dict]:
    """The polished modes better than each of their ``2 D`` nearest (units of ``scale``;
    copies closer than ``MERGE_XTOL`` are not neighbours), best first: where a hop may find
    a basin no mode holds. A mode with a better neighbour sits on the slope of a known one
    (Ackley's cells one inward of a found corner), and its best hop leads there."""
    polished = [m for m in modes if m["polished"]]
    if len(polished) < 2:
        return polished
    pts = np.array([m["x"] for m in polished], dtype=np.float64)
    fun = np.array([m["fun"] for m in polished])
    u = pts / _unit(pts, scale)
    dist = cdist(u, u)
    dist[dist <= MERGE_XTOL] = np.inf
    near = np.argsort(dist, axis=1, kind="stable")[:, :2 * pts.shape[1]]
    near_f = np.where(np.isfinite(np.take_along_axis(dist, near, axis=1)), fun[near], np.inf)
    peak = (near_f >= fun[:, None]).all(axis=1)
    return sorted((m for m, p in zip(polished, peak) if p), key=lambda m: m["fun"])


def _new_modes(known: list[dict], found: list[dict], scale: Any) -> list[dict]:
    """The polished ``found`` farther than ``MERGE_XTOL`` (units of ``scale``) from every
    ``known`` mode and from each other (the best of those that meet), best first."""
    found = sorted((m for m in found if m["polished"]), key=lambda m: m["fun"])
    if not found:
        return []
    pts = np.array([m["x"] for m in known + found], dtype=np.float64)
    u = pts / _unit(pts, scale)
    out, kept = [], list(range(len(known)))
    for j, mode in enumerate(found, start=len(known)):
        if not kept or cdist(u[j:j + 1], u[kept]).min() > MERGE_XTOL:
            out.append(mode)
            kept.append(j)
    return out


def finish_runs(evaluate: Callable | None, finished: list[tuple[Any, dict]]) -> list[tuple]:
    """:func:`run_modes` of several runs ``[(run, stop), ...]`` at once: their polishes
    advance in lockstep (:func:`drive`), one objective call per round for all of them,
    under one BLAS limit (the hill-valley tests of :func:`lost_basins` between the two
    polishes: one call per run). Run r's modes and evaluations equal those of run r alone."""
    plans, lanes = [], {}
    boxes = [getattr(run, "space", None) or getattr(run.es, "box", None) for run, _ in finished]
    scales = [getattr(box, "scale", None) for box in boxes]
    found = attempt_modes_many([(run.finals, scale, min_mode_size(run.popsize))
                                for (run, _), scale in zip(finished, scales)])
    for (run, stop), scale, modes in zip(finished, scales, found):
        s, es = run.settings, run.es
        sign = -1.0 if s.maximize else 1.0
        modes = with_best_point(modes, getattr(run, "best_x", None),
                                sign * getattr(run, "best_f", math.nan))
        allowed = evaluate is not None and s.polish and not any(k in stop for k in NO_POLISH)
        budget = (s.maxfev - run.nfev if s.maxfev is not None
                  else int(POLISH_SHARE * max(run.nfev, run.popsize * s.num_step)))
        counted = first = None
        if allowed and modes:  # (a run's result is built only when it is polished)
            pop = es.result.get("population")
            cost = Cost(evaluate, sign, np if pop is None else namespace(pop))
            counted = Counted(cost, max(0, budget))
            # the modes and lost basins leave HOP_RESERVE of the budget to the basin hops
            first = Counted(None, int((1 - HOP_RESERVE) * counted.maxfev), parent=counted)
            lane = polish_each(first, modes, getattr(boxes[len(plans)], "bounds", None), None)
            lanes.setdefault(cost.key(), []).append((len(plans), lane, cost))
        plans.append([sign, scale, [dict(m, polished=False) for m in modes], counted, first])
    if lanes:
        with one_thread_blas():
            _drive_lanes(lanes, plans, replace=True)
            # then, with what polishing them left: basins the population held earlier in the
            # run and had left by its end (lost_basins), polished too; the earlier populations
            # of every run clustered in one call, the hill-valley test one call per run
            pending = [(i, cost) for group in lanes.values() for i, _, cost in group
                       if getattr(finished[i][0], "snapshots", []) and plans[i][4].left > 0]
            earlier = attempt_modes_many(
                [(finished[i][0].snapshots, plans[i][1], min_mode_size(finished[i][0].popsize))
                 for i, _ in pending], phi=SNAPSHOT_PHI)
            later: dict = {}
            for (i, cost), candidates in zip(pending, earlier):
                lost = lost_basins(plans[i][4], plans[i][2], candidates, plans[i][1])
                if lost:
                    lane = polish_each(plans[i][4], lost, getattr(boxes[i], "bounds", None), None)
                    later.setdefault(cost.key(), []).append((i, lane, cost))
            _drive_lanes(later, plans, replace=False)
            _hop_rounds(lanes, plans, [getattr(box, "bounds", None) for box in boxes])
    for (run, _), plan in zip(finished, plans):
        # restarts='auto' polished the optima of the best value it compared between attempts
        # (counted then): they are modes whether or not this polish reaches them again (its
        # budget, spent best first over every attempt's basins, may end before the basins
        # an attempt held only half-way through its schedule are tested)
        plan[2] = plan[2] + [{"x": t["x"], "fun": t["fun"], "size": 0, "polished": True}
                             for t in getattr(run, "ties", [])]
    merged = merge_modes_many([(modes, scale) for _, scale, modes, *_ in plans])
    return [([{"x": m["x"], "fun": sign * m["fun"], "size": m["size"], "polished": m["polished"]}
              for m in modes], 0 if counted is None else counted.nfev)
            for (sign, _, _, counted, _), modes in zip(plans, merged)]
