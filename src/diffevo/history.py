"""Per-generation history of a run: arrays of statistics, exportable to CSV."""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Any

import numpy as np

from ._device import namespace, to_numpy

__all__ = ["History", "position_entropy", "population_spread", "value_stats"]

#: the columns of a History, in CSV order
FIELDS = ("generation", "restart", "nfev", "best", "best_ever", "mean", "median", "worst",
          "spread", "entropy", "time")

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
        missing = set(FIELDS) - set(row)
        unknown = set(row) - set(FIELDS)
        if missing or unknown:
            raise TypeError(f"History.append needs exactly the columns {FIELDS}; "
                            f"missing {sorted(missing)}, unknown {sorted(unknown)}")
        for k in FIELDS:
            self._rows[k].append(float(row[k]))

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
