"""The compiled generation statistics (diffevo._genstats) against NumPy's definitions.

Every column of a History row comes from :func:`diffevo._genstats.stats_rows`; here each
is checked against an independent NumPy oracle on populations built to catch the usual
slips: ties in cost (the first best), NaN/inf members (not counted), runs on different
scales (a pooled statistic would show), cells that only a half-to-even rounding or a
-0.0 separates, and one run against the same run inside a batch (bit for bit, serial
against parallel).
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from diffevo import _genstats
from diffevo._genstats import COLUMNS, stats_rows

BEST, MEAN, MEDIAN, WORST, RANGE, SPREAD, ENTROPY = range(len(COLUMNS))


def oracle_entropy(x: np.ndarray, resolution: float) -> float:
    if x.shape[0] == 0:
        return 0.0
    cells = np.round(x / resolution) + 0.0  # + 0.0: -0.0 and 0.0 are one cell
    _, counts = np.unique(cells, axis=0, return_counts=True)
    p = counts / x.shape[0]
    return float(-(p * np.log2(p)).sum())


def population(seed: int, r: int, n: int, d: int):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((r, n, d)) * np.arange(1, r + 1)[:, None, None] + 5 * np.arange(r)[:, None, None]
    f = np.round(rng.standard_normal((r, n)) ** 3 * np.arange(1, r + 1)[:, None], 1)  # ties
    finite = rng.random((r, n)) > 0.25
    f = np.where(finite | (rng.random((r, n)) < 0.5), f, np.nan)
    finite &= np.isfinite(f)
    return x, f, finite


@pytest.mark.parametrize("shape", [(5, 64, 2), (3, 37, 3), (4, 200, 1), (2, 9, 7)])
@pytest.mark.parametrize("maximize", [False, True])
def test_every_column_matches_numpy(shape, maximize):
    x, f, finite = population(sum(shape), *shape)
    cost = -f if maximize else f
    best, out = stats_rows(cost, f, x, finite, maximize, 0.5)
    for k in range(shape[0]):
        v = f[k][finite[k]]
        masked = np.where(finite[k], cost[k], np.inf)
        assert best[k] == int(np.argmin(masked)) and out[k, BEST] == masked.min()
        assert out[k, MEAN] == pytest.approx(v.mean(), rel=1e-12, abs=1e-12)
        assert out[k, MEDIAN] == np.median(v)
        assert out[k, WORST] == (v.min() if maximize else v.max())
        assert out[k, RANGE] == v.max() - v.min()
        assert out[k, SPREAD] == pytest.approx(x[k].std(axis=0).max(), rel=1e-12)
        assert out[k, ENTROPY] == pytest.approx(oracle_entropy(x[k], 0.5), abs=1e-12)


def test_a_run_alone_equals_the_run_in_a_batch_bit_for_bit():
    x, f, finite = population(7, 40, 500, 2)  # big enough for the parallel kernel
    assert x.size >= _genstats._PARALLEL_WORK
    best, out = stats_rows(f, f, x, finite, False, 0.1)
    for k in range(x.shape[0]):
        b1, o1 = stats_rows(f[k:k + 1], f[k:k + 1], x[k:k + 1], finite[k:k + 1], False, 0.1)
        assert b1[0] == best[k]
        np.testing.assert_array_equal(o1[0], out[k])


def test_cells_round_half_to_even_and_zero_has_one_sign():
    res = 0.5
    # x / res = 0.5 -> 0, 1.5 -> 2, 2.5 -> 2, -0.5 -> -0.0 (the cell of 0.0)
    x = np.array([[[0.25], [1.0], [1.25], [-0.25], [0.0]]])
    _, out = stats_rows(np.zeros((1, 5)), np.zeros((1, 5)), x, None, False, res)
    # cells: 0, 2, 2, 0, 0 -> p = (3/5, 2/5)
    p = np.array([0.6, 0.4])
    assert out[0, ENTROPY] == pytest.approx(float(-(p * np.log2(p)).sum()), abs=1e-15)


@pytest.mark.parametrize("n", [1, 2, 64, 513])
def test_entropy_extremes_distinct_cells_and_one_cell(n):
    spread_out = np.arange(n, dtype=np.float64)[None, :, None] * np.array([1.0, -3.0])  # n cells
    _, out = stats_rows(np.zeros((1, n)), np.zeros((1, n)), spread_out, None, False, 0.1)
    assert out[0, ENTROPY] == pytest.approx(math.log2(n), abs=1e-12)
    _, out = stats_rows(np.zeros((1, n)), np.zeros((1, n)), np.full((1, n, 2), 3.0), None, False, 0.1)
    assert out[0, ENTROPY] == 0.0 and out[0, SPREAD] == 0.0


def test_no_finite_member_and_empty_and_zero_dimensions():
    x = np.ones((2, 4, 0))
    f = np.array([[np.nan] * 4, [1.0, 2.0, 3.0, 4.0]])
    best, out = stats_rows(f, f, x, np.isfinite(f), False, 0.1)
    assert best[0] == -1 and out[0, BEST] == np.inf and out[0, RANGE] == np.inf
    assert np.isnan(out[0, [MEAN, MEDIAN, WORST]]).all()
    assert best[1] == 0 and out[1, MEDIAN] == 2.5 and out[1, ENTROPY] == 0.0
    best, out = stats_rows(np.zeros((3, 0)), np.zeros((3, 0)), np.zeros((3, 0, 2)), None, False, 0.1)
    assert (best == -1).all() and (out[:, ENTROPY] == 0).all() and (out[:, SPREAD] == 0).all()


def test_float32_members_are_read_in_float64():
    x, f, _ = population(3, 2, 50, 3)
    b64, o64 = stats_rows(f, f, x.astype(np.float32).astype(np.float64), None, False, 0.1)
    b32, o32 = stats_rows(f, f, x.astype(np.float32), None, False, 0.1)
    np.testing.assert_array_equal(o32, o64)
    np.testing.assert_array_equal(b32, b64)
