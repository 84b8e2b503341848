"""The cut-off path's per-row tail bound (the ring of cells, then the rest) against the
brute-force sums: what a cut-off sum leaves out must never exceed its bound."""

from __future__ import annotations

import math

import numpy as np
import pytest

from diffevo.approx._cells import Cells


def _brute(q, y, lw, v, inv2):
    d2 = ((q[:, None, :] - y[None, :, :]) ** 2).sum(-1)
    k = np.exp(lw[None, :] - d2 * inv2)
    return k @ v, k.sum(1)


@pytest.mark.parametrize("d", [1, 2, 3])
@pytest.mark.parametrize("peaked", [False, True])
@pytest.mark.parametrize("outer_factor", [None, 1.0, 1.8])
def test_tail_bounds_what_is_left_out(d, peaked, outer_factor):
    rng = np.random.default_rng(d + 10 * peaked)
    nk, nq = 3000, 400
    y = rng.standard_normal((nk, d))
    q = rng.standard_normal((nq, d)) * 1.3
    v = rng.standard_normal((nk, 2))
    if peaked:  # weights over 40 orders of magnitude, some zero (exact mode's -inf)
        lw = -40.0 * ((y - 0.7) ** 2).sum(1)
        lw[rng.random(nk) < 0.05] = -np.inf
    else:
        lw = np.log(rng.random(nk))
    lw -= lw[np.isfinite(lw)].max()
    sigma = 0.15
    inv2 = 0.5 / sigma**2
    radius = 3.0 * sigma
    cells = Cells(y, radius, lw, v)
    outer = None if outer_factor is None else outer_factor * radius
    a, b, tail = cells.sums(q, inv2, outer=outer)
    a_true, b_true = _brute(q, y, lw, v, inv2)
    missing = b_true - b
    assert (missing >= -1e-12 * b_true).all()           # a cut-off sum never adds
    assert (missing <= tail * (1 + 1e-9) + 1e-300).all()  # and its bound holds
    # the values' sums miss at most the same weight times the largest value
    vmax = np.abs(v).max()
    assert (np.abs(a_true - a).max(axis=1) <= tail * vmax * (1 + 1e-9) + 1e-12 * b_true).all()
    if outer_factor != 1.0:  # with a ring (outer 1.0: none, the global bound W K(R))
        assert (tail < b_true).any()  # the bound is not vacuous


def test_wider_ring_gives_tighter_bound_for_far_rows():
    # a query far from the heavy keys: a ring that reaches them bounds its tail by
    # their kernel values, the global bound by W times the kernel at the radius
    rng = np.random.default_rng(3)
    y = np.concatenate([rng.normal(0.0, 0.05, (500, 2)), rng.uniform(-3, 3, (2000, 2))])
    lw = np.concatenate([np.zeros(500), np.full(2000, -30.0)])
    v = y.copy()
    sigma = 0.1
    cells = Cells(y, 4 * sigma, lw, v)
    q = np.array([[2.0, 2.0]])
    narrow = cells.sums(q, 0.5 / sigma**2)[2][0]
    wide = cells.sums(q, 0.5 / sigma**2, outer=math.sqrt(2 * math.log(1e18)) * sigma)[2][0]
    assert wide < 1e-6 * narrow
