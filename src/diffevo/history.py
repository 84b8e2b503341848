"""Per-generation history of a run: arrays of statistics, exportable to CSV."""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Any

import numpy as np

from ._device import to_numpy
from ._genstats import COLUMNS, stats_rows

__all__ = ["History", "generation_stats", "population_spread", "population_spread_rows",
           "position_entropy", "position_entropy_rows", "value_stats", "value_stats_rows"]

#: the columns of a History, in CSV order
FIELDS = ("generation", "restart", "nfev", "best", "best_ever", "mean", "median", "worst",
          "spread", "entropy", "time")

_COLUMNS = frozenset(FIELDS)
_INDEX = {k: i for i, k in enumerate(FIELDS)}

# the columns of diffevo._genstats.stats_rows
BEST_COST, MEAN, MEDIAN, WORST, RANGE, SPREAD, ENTROPY = range(len(COLUMNS))

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


def _host(a: Any) -> np.ndarray:
    return np.asarray(to_numpy(a))


def _stats(x: Any, values: Any = None, finite: Any = None, maximize: bool = False,
           resolution: float = 0.1) -> tuple[np.ndarray, np.ndarray]:
    """:func:`diffevo._genstats.stats_rows` of R populations x (R, N, D) and their values
    (R, N) (zeros when only the members' statistics are wanted)."""
    h = _host(x)
    v = np.zeros(h.shape[:2]) if values is None else _host(values)
    return stats_rows(v, v, h, None if finite is None else _host(finite), maximize, resolution)


def population_spread(x: Any) -> float:
    """Largest per-coordinate standard deviation of a population x (N, D)."""
    return population_spread_rows(_host(x)[None])[0]


def population_spread_rows(x: Any) -> list[float]:
    """:func:`population_spread` of each of R populations x (R, N, D)."""
    return _stats(x)[1][:, SPREAD].tolist()


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
    return position_entropy_rows(_host(x)[None], resolution)[0]


def position_entropy_rows(x: Any, resolution: float = 0.1) -> list[float]:
    """:func:`position_entropy` of each of R populations x (R, N, D), each from its own
    members (a run never shares a cell with another)."""
    return _stats(x, resolution=resolution)[1][:, ENTROPY].tolist()


def value_stats(values: Any, maximize: bool) -> tuple[dict[str, float], float]:
    """``({mean, median, worst}, range)`` of one generation's finite values (NaN, inf: none)."""
    v = _host(values)
    return value_stats_rows(v[None], maximize, np.isfinite(v)[None])[0]


def value_stats_rows(values: Any, maximize: bool,
                     finite: Any = None) -> list[tuple[dict[str, float], float]]:
    """:func:`value_stats` of each row of values (R, N), over the members ``finite`` (R, N)
    marks (default: all)."""
    v = _host(values)
    out = _stats(np.zeros((*v.shape, 0)), v, finite, maximize)[1]
    return [({"mean": mean, "median": median, "worst": worst}, span)
            for mean, median, worst, span in out[:, MEAN:RANGE + 1].tolist()]


def generation_stats(cost: Any, values: Any, x: Any, finite: Any, maximize: bool,
                     resolution: float) -> list[tuple]:
    """The statistics of one generation of R runs, each from its own members only (one
    compiled pass: :func:`diffevo._genstats.stats_rows`).

    Args:
        cost: (R, N) values, lower is better; values: (R, N) the objective's values;
        x: (R, N, D) the members; finite: (R, N) which members count (None: all);
        maximize: the direction; resolution: the entropy's cell side.

    Returns:
        Per run ``(i, cost_i, mean, median, worst, range, spread, entropy)``: i the best
        finite member (None when none is finite), cost_i its cost (floats, flat: a
        batch books a few hundred of these per generation).
    """
    best, out = stats_rows(_host(cost), _host(values), _host(x),
                           None if finite is None else _host(finite), maximize, resolution)
    return [(None if i < 0 else i, *row) for i, row in zip(best.tolist(), out.tolist())]


class History:
    """Per-generation statistics of a run, one array per column.

    Columns (attributes, each a float64 NumPy array of length ``len(history)``):
    generation, restart, nfev, best, best_ever, mean, median, worst, spread,
    entropy, time. ``best``/``best_ever`` follow the optimisation direction (the
    lowest value when minimising, the highest when maximising).
    """

    def __init__(self, maximize: bool = False):
        self.maximize = bool(maximize)
        # one tuple per generation in FIELDS order: a run's booking appends one object
        # (columns are built when read; a run reads them rarely, a batch books 100s per step)
        self._table: list[tuple] = []

    def __setstate__(self, state: dict) -> None:
        rows = state.pop("_rows", None)
        if rows is not None:  # a checkpoint of an earlier 0.1.0 build: one list per column
            state["_table"] = list(zip(*(rows[k] for k in FIELDS)))
        self.__dict__.update(state)

    def append(self, **row: float) -> None:
        """Add one generation (every column of :data:`FIELDS` as a keyword)."""
        if row.keys() != _COLUMNS:  # one set comparison: two appends per run and generation
            missing, unknown = _COLUMNS - set(row), set(row) - _COLUMNS
            raise TypeError(f"History.append needs exactly the columns {FIELDS}; "
                            f"missing {sorted(missing)}, unknown {sorted(unknown)}")
        self._table.append(tuple(float(row[k]) for k in FIELDS))

    @staticmethod
    def append_many(histories: list[History], rows: list[tuple]) -> None:
        """``h.append(row)`` for R pairs, each row a tuple in :data:`FIELDS` order of
        numbers (the appends of a group of runs, one call)."""
        if any(len(row) != len(FIELDS) for row in rows):
            raise TypeError(f"History.append_many needs rows of the columns {FIELDS}")
        for h, row in zip(histories, rows):
            h._table.append(row)

    def last_values(self) -> tuple:
        """The last generation's row as a tuple in :data:`FIELDS` order (O(1))."""
        return self._table[-1]

    def last_row(self) -> dict[str, float]:
        """The last generation's row, ``{column: float}`` (O(1): no column is copied)."""
        if not self._table:
            raise IndexError("History.last_row: the history is empty")
        return dict(zip(FIELDS, map(float, self._table[-1])))

    def extend(self, other: History) -> None:
        """Append every generation of ``other`` (used when restarts are chained)."""
        self._table.extend(other._table)

    def __len__(self) -> int:
        return len(self._table)

    def __getattr__(self, name: str) -> np.ndarray:
        table = self.__dict__.get("_table")
        if table is not None and name in _INDEX:
            k = _INDEX[name]
            return np.fromiter((row[k] for row in table), dtype=np.float64, count=len(table))
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
            for row in self._table:
                w.writerow([_fmt(float(v), k) for k, v in zip(FIELDS, row)])
        return path

    def __repr__(self) -> str:
        if not len(self):
            return "History(0 generations)"
        last = self.last_row()
        return (f"History({len(self)} generations, best_ever={last['best_ever']:.6g}, "
                f"nfev={int(last['nfev'])})")


def _fmt(v: float, key: str) -> str:
    if key in ("generation", "restart", "nfev") and math.isfinite(v):
        return str(int(v))
    return repr(v)


History.__doc__ += "\n\n    " + "\n    ".join(f"* {k}: {v}" for k, v in _DOC.items())
