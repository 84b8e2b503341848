"""Numba scatter and gather of the FFT path's stencils on the host (the generic code in
:mod:`._fftgrid` makes (p + 1)^d passes over the points per channel; these make one).

Points are padded to 3 coordinates; a padded axis has one node and stencil order 0.
The flat node index is C order over the grid shape, as ``reshape`` uses.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange


@njit(cache=True, inline="always")
def _stencil(x, order, n, idx, wts):
    """Nodes and weights of coordinate x (grid units) for one axis; returns their count."""
    if order == 0:
        i = int(math.floor(x + 0.5))  # noqa: RUF046 - numba: keep the int explicit
        idx[0] = min(max(i, 0), n - 1)
        wts[0] = 1.0
        return 1
    b = math.floor(x)
    t = x - b
    i = int(b)
    if order == 1:
        idx[0] = min(max(i, 0), n - 1)
        idx[1] = min(max(i + 1, 0), n - 1)
        wts[0] = 1.0 - t
        wts[1] = t
        return 2
    tm, tp, t2 = t - 1.0, t + 1.0, t - 2.0
    wts[0] = -t * tm * t2 / 6.0
    wts[1] = tp * tm * t2 / 2.0
    wts[2] = -tp * t * t2 / 2.0
    wts[3] = tp * t * tm / 6.0
    for o in range(4):
        idx[o] = min(max(i - 1 + o, 0), n - 1)
    return 4


@njit(cache=True, inline="always")
def _nodes(p, orders, shape, idx, wts, flat, weight):
    """Fill flat / weight with the nodes of point p's stencil (up to 64); return the count."""
    m0 = _stencil(p[0], orders[0], shape[0], idx[0], wts[0])
    m1 = _stencil(p[1], orders[1], shape[1], idx[1], wts[1])
    m2 = _stencil(p[2], orders[2], shape[2], idx[2], wts[2])
    n = 0
    for a in range(m0):
        for b in range(m1):
            row = (idx[0, a] * shape[1] + idx[1, b]) * shape[2]
            wab = wts[0, a] * wts[1, b]
            for c in range(m2):
                flat[n] = row + idx[2, c]
                weight[n] = wab * wts[2, c]
                n += 1
    return n


@njit(cache=True)
def scatter(points, chans, orders, shape):
    """The grid (size, C) (channels interleaved per node) with chans (N, C) spread over
    each point's stencil.

    Serial: a parallel version with a private grid per chunk measured 6x slower on the
    2-core machine under load (and the scatter is a small share of the call).
    """
    npts, nc = chans.shape
    out = np.zeros((shape[0] * shape[1] * shape[2], nc))
    idx = np.zeros((3, 4), dtype=np.int64)
    wts = np.zeros((3, 4))
    flat = np.zeros(64, dtype=np.int64)
    weight = np.zeros(64)
    for j in range(npts):
        for t in range(_nodes(points[j], orders, shape, idx, wts, flat, weight)):
            for ch in range(nc):
                out[flat[t], ch] += weight[t] * chans[j, ch]
    return out


@njit(cache=True, parallel=True)
def gather(grid, points, orders, shape):
    """(N, C): the grid (size, C) interpolated at every point's stencil."""
    nc = grid.shape[1]
    npts = points.shape[0]
    out = np.zeros((npts, nc))
    for j in prange(npts):
        idx = np.zeros((3, 4), dtype=np.int64)
        wts = np.zeros((3, 4))
        flat = np.zeros(64, dtype=np.int64)
        weight = np.zeros(64)
        for t in range(_nodes(points[j], orders, shape, idx, wts, flat, weight)):
            for ch in range(nc):
                out[j, ch] += weight[t] * grid[flat[t], ch]
    return out


def pad3(points, shape, order):
    """(points (N, 3), per-axis orders (3,), shape (3,)) for the kernels above."""
    n, d = points.shape
    p3 = np.zeros((n, 3))
    p3[:, :d] = points
    orders = np.zeros(3, dtype=np.int64)
    orders[:d] = order
    shape3 = np.ones(3, dtype=np.int64)
    shape3[:d] = shape
    return p3, orders, shape3
