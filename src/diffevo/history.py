"""Per-generation history of a run: arrays of statistics, exportable to CSV."""

from __future__ import annotations

import csv
import itertools
import math
from pathlib import Path
from typing import Any

import numpy as np

from ._device import namespace, to_numpy

__all__ = ["History", "generation_stats", "population_spread", "population_spread_rows",
           "position_entropy", "position_entropy_rows", "value_stats", "value_stats_rows"]

#: the columns of a History, in CSV order
FIELDS = ("generation", "restart", "nfev", "best", "best_ever", "mean", "median", "worst",
          "spread", "entropy", "time")

_COLUMNS = frozenset(FIELDS)

_DOC = {
    "generation": "1-based generation number, counted over restarts",
    "restart": "0 for the first run, k for the k-th restart",
    "nfev": "objective evaluations so far (cumulative)",
    "best": "best objective value of this generation",
    "best_ever": "best objective value seen so far",
    "mean": "mean of this generation's finite values",
    "median": "median of this generation's finite values",
    "worst": "worst finite value of this generation",
    "spread": "population spread: the largest per-coordinate standard deviation",
    "entropy": "entropy of positions in bits (see position_entropy)",
    "time": "wall-clock seconds since the run started",
}


def population_spread(x: Any) -> float:
    """Largest per-coordinate standard deviation of a population x (N, D)."""
    xp = namespace(x)
    if x.shape[0] < 2:
        return 0.0
    return float(xp.std(x, axis=0).max())


def value_stats(values: Any, maximize: bool) -> tuple[dict[str, float], float]:
    """``({mean, median, worst}, range)`` of one generation's finite values (NaN, inf: none)."""
    if values.shape[0] == 0:
        return dict(mean=math.nan, median=math.nan, worst=math.nan), math.inf
    fv = to_numpy(values)
    stats = dict(mean=float(fv.mean()), median=float(np.median(fv)),
                 worst=float(fv.min() if maximize else fv.max()))
    return stats, float(fv.max() - fv.min())


def population_spread_rows(x: Any) -> list[float]:
    """:func:`population_spread` of each of R populations x (R, N, D), in one reduction
    (std over axis 1 adds the same members in the same order as one run's std over axis 0:
    bit-identical to R separate calls)."""
    xp = namespace(x)
    if x.shape[1] < 2:
        return [0.0] * x.shape[0]
    return to_numpy(xp.std(x, axis=1).max(axis=1)).tolist()


def value_stats_rows(values: Any, maximize: bool,
                     finite: Any = None) -> list[tuple[dict[str, float], float]]:
    """:func:`value_stats` of each row of values (R, N), over the members ``finite`` (R, N)
    marks (default: all). Rows with every member finite share one reduction per statistic
    (row by row the same arithmetic as one run's: bit-identical to R separate calls); the
    others take one call each."""
    fv = np.asarray(to_numpy(values))
    mask = None if finite is None else np.asarray(to_numpy(finite))
    if fv.shape[0] == 1 or fv.shape[1] == 0:  # one run: the 1-D reductions are cheaper
        return [value_stats(row if mask is None else row[mask[k]], maximize)
                for k, row in enumerate(fv)]
    whole = np.ones(fv.shape[0], bool) if mask is None else mask.all(axis=1)
    out: list = [None] * fv.shape[0]
    rows = np.flatnonzero(whole)
    if rows.size:
        v = fv[rows]
        lo, hi = v.min(axis=1), v.max(axis=1)
        cols = zip(v.mean(axis=1).tolist(), np.median(v, axis=1).tolist(),
                   (lo if maximize else hi).tolist(), (hi - lo).tolist())
        for r, (mean, median, worst, span) in zip(rows.tolist(), cols):
            out[r] = dict(mean=mean, median=median, worst=worst), span
    for r in np.flatnonzero(~whole).tolist():
        out[r] = value_stats(fv[r][mask[r]], maximize)
    return out


def _cell_keys(cells: np.ndarray) -> np.ndarray:
    """One integer per row, equal for equal rows: the cells' mixed-radix index when the
    grid's extent fits in int64, else the rows' bytes (np.unique over rows sorts
    lexicographically: 1 ms for 512 x 2 cells, a fifth of a 2-D generation, against 30 us
    for one sort of int64 keys)."""
    if cells.ndim != 2 or cells.shape[1] == 0:
        return np.zeros(cells.shape[0], dtype=np.int64)
    low = cells.min(axis=0)
    extent = cells.max(axis=0) - low + 1
    if float(np.log2(extent.astype(np.float64)).sum()) < 62:
        return np.ravel_multi_index((cells - low).T, tuple(int(e) for e in extent))
    return np.ascontiguousarray(cells).view(np.dtype((np.void, 8 * cells.shape[1]))).ravel()


def position_entropy(x: Any, resolution: float = 0.1) -> float:
    """Entropy (bits) of the population over a grid of cells of side ``resolution``.

    Every member falls in the cell ``round(x / resolution)`` (all D coordinates);
    with ``p_k`` the fraction of members in cell k the entropy is
    ``-sum_k p_k log2 p_k``. It is 0 when all members share one cell, ``log2(k)``
    when they sit evenly in k cells (2 bits: four separate optima found) and at most
    ``log2(N)``. This is the diversity measure of the paper's benchmark tables.

    Args:
        x: (N, D) population.
        resolution: cell side in the objective's coordinates (default 0.1).
    """
    h = to_numpy(x)
    n = h.shape[0]
    if n == 0:
        return 0.0
    cells = np.round(h / resolution).astype(np.int64)
    counts = np.unique(_cell_keys(cells), return_counts=True)[1]
    p = counts / n
    return float(-(p * np.log2(p)).sum())


def position_entropy_rows(x: Any, resolution: float = 0.1) -> list[float]:
    """:func:`position_entropy` of each of R populations x (R, N, D), from cell keys that
    carry the run's index as their leading digit (a run never shares a cell with another),
    counted in one pass. Cells sort in the same (lexicographic) order as one run's own keys and
    each run's terms are summed alone: bit-identical to R separate calls."""
    h = np.asarray(to_numpy(x))
    r, n = h.shape[:2]
    if r == 1 or n == 0 or h.shape[2] == 0:  # one run: its own keys (fewer passes)
        return [position_entropy(h[k], resolution) for k in range(r)]
    cells = np.round(h / resolution).astype(np.int64)
    # one offset for all runs (any offset keeps the cells' order); per coordinate, as
    # reductions over (R, N, small D) along axes 0, 1 are 30x slower than whole columns
    cells -= np.array([cells[..., j].min() for j in range(cells.shape[2])])
    extent = np.array([cells[..., j].max() for j in range(cells.shape[2])]) + 1
    if float(np.log2(extent.astype(np.float64)).sum()) + math.log2(r) >= 62:
        return [position_entropy(h[k], resolution) for k in range(r)]  # keys would overflow
    dims = (r, *(int(e) for e in extent))
    run = np.broadcast_to(np.arange(r)[:, None], (r, n))
    keys = np.ravel_multi_index((run, *np.moveaxis(cells, 2, 0)), dims)
    # sorted row by row (R sorts of N: faster than one of R N); run r's keys all lie below
    # run r + 1's, so the rows laid end to end are sorted as one
    keys = np.sort(keys, axis=1).ravel()
    first = np.flatnonzero(np.concatenate(([True], keys[1:] != keys[:-1])))
    uniq, counts = keys[first], np.diff(np.append(first, keys.shape[0]))
    p = counts / n
    terms = p * np.log2(p)
    bounds = np.searchsorted(uniq // math.prod(dims[1:]), np.arange(r + 1)).tolist()
    return [float(-terms[a:b].sum()) for a, b in itertools.pairwise(bounds)]


def generation_stats(cost: Any, values: Any, x: Any, finite: Any, maximize: bool,
                     resolution: float) -> list[tuple]:
    """The statistics of one generation of R runs, each from its own members only.

    Args:
        cost: (R, N) values, lower is better; values: (R, N) the objective's values;
        x: (R, N, D) the members; finite: (R, N) which members count (None: all);
        maximize: the direction; resolution: the entropy's cell side.

    Returns:
        Per run ``(i, cost_i, {mean, median, worst}, range, spread, entropy)``: i the best
        finite member (None when none is finite), cost_i its cost.
    """
    xp = namespace(cost)
    masked = cost if finite is None else xp.where(finite, cost, xp.inf)
    best = masked.argmin(axis=1)
    best_cost = to_numpy(xp.take_along_axis(masked, best[:, None], axis=1)[:, 0]).tolist()
    # told values are never -inf, so an inf best is a run with no finite member
    best = [i if c != math.inf else None for i, c in zip(to_numpy(best).tolist(), best_cost)]
    stats = value_stats_rows(values, maximize, finite)
    return list(zip(best, best_cost, *zip(*stats), population_spread_rows(x),
                    position_entropy_rows(x, resolution)))


class History:
    """Per-generation statistics of a run, one array per column.

    Columns (attributes, each a float64 NumPy array of length ``len(history)``):
    generation, restart, nfev, best, best_ever, mean, median, worst, spread,
    entropy, time. ``best``/``best_ever`` follow the optimisation direction (the
    lowest value when minimising, the highest when maximising).
    """

    def __init__(self, maximize: bool = False):
        self.maximize = bool(maximize)
        self._rows: dict[str, list[float]] = {k: [] for k in FIELDS}

    def append(self, **row: float) -> None:
        """Add one generation (every column of :data:`FIELDS` as a keyword)."""
        if row.keys() != _COLUMNS:  # one set comparison: two appends per run and generation
            missing, unknown = _COLUMNS - set(row), set(row) - _COLUMNS
            raise TypeError(f"History.append needs exactly the columns {FIELDS}; "
                            f"missing {sorted(missing)}, unknown {sorted(unknown)}")
        for k in FIELDS:
            self._rows[k].append(float(row[k]))

    @staticmethod
    def append_many(histories: list[History], rows: list[tuple]) -> None:
        """``h.append(row)`` for R pairs, each row a tuple in :data:`FIELDS` order: one pass
        per column over the R histories (the appends of a group of runs, one call)."""
        if any(len(row) != len(FIELDS) for row in rows):
            raise TypeError(f"History.append_many needs rows of the columns {FIELDS}")
        for k, col in zip(FIELDS, zip(*rows)):
            for h, v in zip(histories, col):
                h._rows[k].append(float(v))

    def last_values(self) -> tuple:
        """The last generation's row as a tuple in :data:`FIELDS` order (O(1))."""
        return tuple(v[-1] for v in self._rows.values())

    def last_row(self) -> dict[str, float]:
        """The last generation's row, ``{column: float}`` (O(1): no column is copied)."""
        if not len(self):
            raise IndexError("History.last_row: the history is empty")
        return {k: v[-1] for k, v in self._rows.items()}

    def extend(self, other: History) -> None:
        """Append every generation of ``other`` (used when restarts are chained)."""
        for k in FIELDS:
            self._rows[k].extend(other._rows[k])

    def __len__(self) -> int:
        return len(self._rows["generation"])

    def __getattr__(self, name: str) -> np.ndarray:
        rows = self.__dict__.get("_rows")
        if rows is not None and name in rows:
            return np.asarray(rows[name], dtype=np.float64)
        raise AttributeError(f"History has no column {name!r}; columns: {', '.join(FIELDS)}")

    def __getitem__(self, name: str) -> np.ndarray:
        if name not in FIELDS:
            raise KeyError(f"History has no column {name!r}; columns: {', '.join(FIELDS)}")
        return getattr(self, name)

    def as_dict(self) -> dict[str, np.ndarray]:
        """``{column: (G,) float64 array}``."""
        return {k: getattr(self, k) for k in FIELDS}

    def to_csv(self, path: str | Path) -> Path:
        """Write one row per generation with a header line; returns the path."""
        path = Path(path)
        with path.open("w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(FIELDS)
            for i in range(len(self)):
                w.writerow([_fmt(self._rows[k][i], k) for k in FIELDS])
        return path

    def __repr__(self) -> str:
        if not len(self):
            return "History(0 generations)"
        return (f"History({len(self)} generations, best_ever={self._rows['best_ever'][-1]:.6g}, "
                f"nfev={int(self._rows['nfev'][-1])})")


def _fmt(v: float, key: str) -> str:
    if key in ("generation", "restart", "nfev") and math.isfinite(v):
        return str(int(v))
    return repr(v)


History.__doc__ += "\n\n    " + "\n    ".join(f"* {k}: {v}" for k, v in _DOC.items())
