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
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from scipy.spatial import cKDTree

from ._device import to_numpy

__all__ = ["find_modes", "merge_modes"]

#: links longer than PHI times the mean link are cut (Preuss' nearest-better clustering: 2)
PHI = 2.0

#: at most this many of the best members are clustered (the distance work is O(m k))
MAX_POINTS = 4096

#: neighbours searched for a better member before falling back to the best member
NEIGHBOURS = 32


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
    but rank 0 has one). The k nearest neighbours are searched first; the few points with
    no better one among them (the best of a far clump) are linked to the best point.
    """
    m = u.shape[0]
    k = min(m, NEIGHBOURS)
    dist, idx = cKDTree(u).query(u, k=k)
    dist, idx = dist.reshape(m, k), idx.reshape(m, k)
    better = order_rank[idx] < order_rank[:, None]
    first = np.where(better.any(axis=1), better.argmax(axis=1), -1)
    rows = np.arange(m)
    target = np.where(first >= 0, idx[rows, np.maximum(first, 0)], -1)
    length = np.where(first >= 0, dist[rows, np.maximum(first, 0)], np.nan)
    best = int(np.argmin(order_rank))
    far = (first < 0) & (rows != best)
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
    x, c = _as_points(x, cost)
    if x.shape[0] == 0:
        return []
    order = np.argsort(c, kind="stable")[:max_points]
    x, c = x[order], c[order]
    m = x.shape[0]
    if m == 1:
        return [{"x": x[0].copy(), "fun": float(c[0]), "size": 1, "spread": np.zeros(x.shape[1])}]
    u = x / _unit(x, scale)
    rank = np.arange(m)  # x is sorted by cost: the rank is the position
    target, length = _nearest_better(u, rank)
    linked = rank != 0
    mean = float(np.mean(length[linked]))
    keep = linked & (length <= phi * mean)
    graph = coo_matrix((np.ones(int(keep.sum())), (rank[keep], target[keep])), shape=(m, m))
    ncomp, label = connected_components(graph, directed=False)
    size = np.bincount(label, minlength=ncomp)
    first = np.full(ncomp, m)
    np.minimum.at(first, label, rank)  # the best member of each basin (x is sorted)
    modes = []
    for comp in np.argsort(first):  # basins in order of their best value
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
