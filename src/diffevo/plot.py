"""Pictures of a run: convergence curves and the final population on the landscape.

matplotlib is optional (``pip install 'diffevo[plot]'``) and imported only when a
function here is called. Figures are drawn on matplotlib's Agg canvas directly
(``matplotlib.figure.Figure``), so nothing here touches pyplot or the user's
interactive backend; pass ``path`` to write a PNG.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ._device import to_numpy
from .history import History

__all__ = ["convergence", "population"]


def _figure(figsize):
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: PLC0415
        from matplotlib.figure import Figure  # noqa: PLC0415
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(
            "diffevo.plot needs matplotlib, an optional dependency: "
            "pip install 'diffevo[plot]' (or pip install matplotlib)") from exc
    fig = Figure(figsize=figsize)
    FigureCanvasAgg(fig)
    return fig


def _save(fig, path: str | Path | None, dpi: int) -> None:
    if path is not None:
        fig.savefig(Path(path), dpi=dpi)


def _histories(obj: Any) -> list[History]:
    if isinstance(obj, History):
        return [obj]
    if isinstance(obj, dict) and "history" in obj:
        return [obj["history"]]
    if isinstance(obj, Sequence) and not isinstance(obj, (str, bytes)) and obj:
        out = []
        for item in obj:
            out.extend(_histories(item))
        return out
    raise TypeError("history must be a diffevo History, an OptimizeResult, or a list of them; "
                    f"got {type(obj).__name__}")


def convergence(history: Any, path: str | Path | None = None, *, fmin: float | None = None,
                title: str | None = None, dpi: int = 120):
    """Best / median value, spread and position entropy per generation.

    Args:
        history: a :class:`diffevo.History`, an OptimizeResult (its ``history``) or a
            list of them (one curve per run).
        path: write a PNG there (optional).
        fmin: known optimum; the top panel then shows ``value - fmin`` on a log axis.
        title: figure title.
        dpi: resolution of the PNG.

    Returns:
        The matplotlib ``Figure``.
    """
    hists = _histories(history)
    fig = _figure((7.0, 6.0))
    ax_f, ax_s = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [3, 2]})
    many = len(hists) > 1
    shift = 0.0 if fmin is None else float(fmin)
    values = []
    for k, h in enumerate(hists):
        g = h.generation
        lab = (lambda s: None if many and k else s)  # noqa: E731 - one legend entry per kind
        ax_f.plot(g, h.best_ever - shift, color="C0", lw=1.6, alpha=0.6 if many else 1,
                  label=lab("best so far"))
        if not many:
            ax_f.plot(g, h.best - shift, color="C1", lw=1, label="best of generation")
            ax_f.plot(g, h.median - shift, color="C2", lw=1, ls="--", label="median")
            values.extend([h.best - shift, h.median - shift])
        values.append(h.best_ever - shift)
        ax_s.plot(g, h.spread, color="C3", lw=1, alpha=0.6 if many else 1, label=lab("spread"))
        restarts = np.flatnonzero(np.diff(h.restart) > 0)
        for r in restarts:
            ax_f.axvline(g[r] + 0.5, color="0.6", lw=0.8, ls=":")
    ax_e = ax_s.twinx()
    for k, h in enumerate(hists):
        ax_e.plot(h.generation, h.entropy, color="C4", lw=1, alpha=0.6 if many else 1,
                  label=None if many and k else "entropy (bits)")
    finite = np.concatenate([v[np.isfinite(v)] for v in values]) if values else np.empty(0)
    if finite.size and (finite > 0).all():
        ax_f.set_yscale("log")
    elif finite.size:
        ax_f.set_yscale("symlog", linthresh=max(1e-12, float(np.abs(finite).min()) or 1e-12))
    ax_f.set_ylabel("objective" if fmin is None else "objective - fmin")
    ax_f.legend(loc="upper right", fontsize=8)
    ax_f.grid(alpha=0.3)
    spreads = np.concatenate([h.spread for h in hists])
    spreads = spreads[np.isfinite(spreads) & (spreads > 0)]
    if spreads.size and spreads.max() > 20 * spreads.min():
        ax_s.set_yscale("log")
    ax_s.set_ylabel("spread (largest coord. std)")
    ax_e.set_ylabel("entropy of positions (bits)")
    ax_s.set_xlabel("generation")
    lines = ax_s.get_lines() + ax_e.get_lines()
    ax_s.legend(lines[:1] + ax_e.get_lines()[:1], [ln.get_label() for ln in lines[:1]] +
                [ln.get_label() for ln in ax_e.get_lines()[:1]], loc="upper right", fontsize=8)
    ax_s.grid(alpha=0.3)
    if title is None:
        title = f"diffevo convergence ({len(hists)} runs)" if many else "diffevo convergence"
    fig.suptitle(title)
    fig.tight_layout()
    _save(fig, path, dpi)
    return fig


def _grid_values(fun: Callable, pts: np.ndarray, vectorized: bool | None) -> np.ndarray:
    if vectorized is not False:
        try:
            v = np.asarray(to_numpy(fun(pts)), dtype=np.float64).reshape(-1)
            if v.shape == (pts.shape[0],):
                return v
        except Exception:  # noqa: BLE001 - fall back to one call per point
            if vectorized:
                raise
    return np.array([float(np.asarray(to_numpy(fun(p)))) for p in pts])


def population(result: Any, fun: Callable | None = None, bounds: Any = None,
               path: str | Path | None = None, *, optima: Any = None, radius: float | None = None,
               dims: tuple[int, int] = (0, 1),
               vectorized: bool | None = None, resolution: int = 200, log: bool = True,
               title: str | None = None, dpi: int = 120):
    """The final population (and best point, known optima) over the landscape.

    For D > 2 the landscape is the 2-D slice through ``result.x`` along ``dims``.

    Args:
        result: an OptimizeResult (uses ``population``, ``x``), or a (N, D) array.
        fun: the objective, drawn as filled contours when given.
        bounds: the plotted box: ``(low, high)`` or D ``(low, high)`` pairs
            (default: the population's range, padded).
        path: write a PNG there (optional).
        optima: (k, D) known optima, drawn as red circles. The result's ``modes``
            (when it has them) are drawn as magenta crosses sized by their members.
        radius: with optima, label each one with the number of members within this
            (Euclidean) distance of it.
        dims: the two coordinates shown.
        vectorized: whether fun takes (M, D) (None: try, then fall back to per point).
        resolution: grid points per axis for the contours.
        log: colour the landscape by ``log10(f - min + 1e-12)``.
        title: figure title.
        dpi: resolution of the PNG.

    Returns:
        The matplotlib ``Figure``.
    """
    if isinstance(result, dict):
        pop = np.asarray(to_numpy(result["population"]), dtype=np.float64)
        best = result.get("x")
        best = None if best is None else np.asarray(to_numpy(best), dtype=np.float64)
    else:
        pop = np.asarray(to_numpy(result), dtype=np.float64)
        best = None
    if pop.ndim != 2:
        raise ValueError(f"result's population must be (N, D); got shape {pop.shape}")
    d = pop.shape[1]
    i, j = dims if d > 1 else (0, 0)
    if not (0 <= i < d and 0 <= j < d):
        raise ValueError(f"dims must name two coordinates of D={d}; got {dims}")
    if bounds is None:
        lo, hi = pop.min(axis=0), pop.max(axis=0)
        pad = 0.1 * np.maximum(hi - lo, 1e-3)
        lo, hi = lo - pad, hi + pad
    else:
        from ._space import parse_bounds  # noqa: PLC0415

        lo, hi = parse_bounds(bounds, d)
    fig = _figure((6.0, 5.4))
    ax = fig.subplots()
    if fun is not None and d >= 2:
        gx, gy = np.meshgrid(np.linspace(lo[i], hi[i], resolution), np.linspace(lo[j], hi[j], resolution))
        base = best if best is not None else pop.mean(axis=0)
        pts = np.repeat(base[None, :], gx.size, axis=0)
        pts[:, i], pts[:, j] = gx.ravel(), gy.ravel()
        z = _grid_values(fun, pts, vectorized).reshape(gx.shape)
        if log:
            zmin, zmax = np.nanmin(z), np.nanmax(z)
            z = np.log10(z - zmin + max(1e-4 * (zmax - zmin), 1e-300))
        cs = ax.contourf(gx, gy, z, levels=40, cmap="viridis")
        fig.colorbar(cs, ax=ax, label="log10(f - min over the picture)" if log else "f")
    if optima is not None:
        opt = np.atleast_2d(np.asarray(to_numpy(optima), dtype=np.float64))
        ax.scatter(opt[:, i], opt[:, j], s=260, marker="o", facecolors="none", edgecolors="red",
                   linewidths=1.6, label="known optima", zorder=4)
        if radius is not None:
            dist = np.linalg.norm(pop[:, None, :] - opt[None, :, :], axis=-1)
            for k, o in enumerate(opt):
                count = int((dist[:, k] < radius).sum())
                ax.annotate(f"{count}", (o[i], o[j]), xytext=(9, 9), textcoords="offset points",
                            color="white", fontsize=9, fontweight="bold", zorder=6,
                            bbox={"boxstyle": "round,pad=0.2", "fc": "red", "ec": "none",
                                  "alpha": 0.8})
    ax.scatter(pop[:, i], pop[:, j], s=9, c="white", edgecolors="black", linewidths=0.4,
               label=f"population ({pop.shape[0]})", zorder=3)
    modes = result.get("modes") if isinstance(result, dict) else None
    if modes:  # the distinct optima found (OptimizeResult.modes), sized by their members
        mx = np.array([np.asarray(to_numpy(m["x"]), dtype=np.float64) for m in modes])
        size = np.array([m["size"] for m in modes], dtype=np.float64)
        ax.scatter(mx[:, i], mx[:, j], s=30 + 120 * size / size.max(), marker="X", c="magenta",
                   edgecolors="black", linewidths=0.6, label=f"modes ({len(modes)})", zorder=5)
    if best is not None:
        ax.scatter([best[i]], [best[j]], s=70, marker="*", c="gold", edgecolors="black",
                   linewidths=0.6, label="best", zorder=5, alpha=0.9)
    ax.set(xlim=(lo[i], hi[i]), ylim=(lo[j], hi[j]), xlabel=f"$x_{{{i}}}$", ylabel=f"$x_{{{j}}}$")
    if d >= 2:
        ax.set_aspect("equal", adjustable="box")
    ax.legend(loc="upper left", fontsize=8, framealpha=0.85)
    ax.set_title(title or "diffevo: final population")
    fig.tight_layout()
    _save(fig, path, dpi)
    return fig
