"""What the tells of alike runs will commit: told values checked, statistics, weights.

:meth:`diffevo.DiffusionEvolution.tell_batch` groups runs that share a part of a tell
(:func:`per_group`) and prepares each group's tells at once (:func:`prepare`): the told
values checked once over (R, N), every statistic from one compiled pass over the members,
the weights one :func:`diffevo.shaping.weights_rows` call. Row r comes from run r's
members only, so it equals what run r's own tell computes, bit for bit. Nothing here
changes an optimiser (a tell is a transaction: see :mod:`diffevo.optimizer`).
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np

from .evaluation import told_values
from .history import generation_stats
from .shaping import weights_rows

__all__ = ["Told", "per_group", "prepare", "stacked"]


class Told(NamedTuple):
    """Everything one tell will commit, computed before any state changes: the (N,) values
    told, the (N, D) population they belong to, (x, value) when this generation beat the
    best ever, its statistics, its history row (a tuple in ``history.FIELDS`` order) and
    the (N,) weights (None: no step follows)."""

    f: Any
    x: Any
    best: tuple | None
    gen_best: float
    gen_range: float
    spread: float
    row: tuple
    weights: Any


def per_group(runs: Sequence[Any], part: str, fn, items: dict[int, Any]) -> dict:
    """``{i: fn(alike runs, their items)[k]}``: ``fn`` once per group of the runs ``items``
    names with equal ``_key(part)`` (first-seen order)."""
    groups: dict[tuple, list[int]] = {}
    for i in items:
        groups.setdefault(runs[i]._key(part), []).append(i)
    return {i: one for members in groups.values()
            for i, one in zip(members, fn([runs[i] for i in members], [items[i] for i in members]))}


def _checked(fitnesses: Sequence[Any], n: int, nan_policy: str, xp) -> tuple:
    """``(values (R, N) float64, finite (R, N) or None when all are)``: NumPy arrays of the
    right shape are checked together (one isfinite over (R, N)); anything else, or a
    failing check, goes through :func:`told_values` one by one (its errors name the run's
    fault exactly as a tell of its own would)."""
    if xp is np and all(type(f) is np.ndarray and f.shape == (n,) and f.dtype.kind in "biuf"
                        for f in fitnesses):
        f = np.stack(fitnesses).astype(np.float64, copy=False)
        finite = np.isfinite(f)
        if finite.all():
            return f, None
        if nan_policy != "raise":
            return f, finite
    checked = [told_values(f, n, nan_policy, xp) for f in fitnesses]
    f = xp.stack([c[0] for c in checked])
    return f, None if all(c[2] for c in checked) else xp.stack([c[1] for c in checked])


def prepare(runs: Sequence[Any], fitnesses: Sequence[Any]) -> list[Told]:
    """What the tells of alike runs (one ``_key('told')``) will commit, their told values
    checked: every statistic from one compiled pass over the (R, N) values / (R, N, D)
    members, row r computed from run r's members only. Changes nothing."""
    first, xp, s = runs[0], runs[0]._xp, runs[0].settings
    if any(opt._asked is None for opt in runs):
        raise RuntimeError("tell() needs a population: call ask() first")
    f, finite = _checked(fitnesses, first.popsize, s.nan_policy, xp)
    x = stacked(runs, "_asked")
    cost = -f if s.maximize else f
    gen = generation_stats(cost, f, x, finite, s.maximize, s.entropy_resolution)
    w, weights = s.fitness_shaping, None
    if first.generation + 1 < first.num_step:  # the final population gets no step
        weights = weights_rows(w, f if w.sense == "fitness" else cost, _shown(runs, x, finite, xp), xp,
                               each=[opt.settings.fitness_shaping for opt in runs]).astype(first.dtype)
    sign = -1.0 if s.maximize else 1.0
    now = time.perf_counter()
    out = []
    for r, (opt, (i, best_cost, mean, median, worst, span, spread, entropy)) in enumerate(zip(runs, gen)):
        best, best_f, gen_best = None, opt._best_f, math.nan
        if i is not None:
            gen_best = sign * best_cost
            if best_cost < sign * opt._best_f or opt._best_x is None:
                best_f, best = gen_best, (x[r, i].copy(), gen_best)
        # history.FIELDS order: generation, restart, nfev, best, best_ever, mean, median,
        # worst, spread, entropy, time
        row = (opt.generation + 1, opt.restart, opt.nfev + opt.popsize, gen_best, best_f,
               mean, median, worst, spread, entropy, now - opt._t0)
        out.append(Told(f[r], opt._asked, best, gen_best, span, spread, row,
                        None if weights is None else weights[r]))
    return out


def _shown(runs: Sequence[Any], x, finite, xp):
    """(R, N) the members the weighting sees -- the finite ones, less those a run avoids
    (:meth:`diffevo.DiffusionEvolution.avoid`) -- or None when that is every member."""
    avoided = [opt.avoided(x[r]) for r, opt in enumerate(runs)]
    if all(a is None for a in avoided):
        return finite
    shown = xp.ones(x.shape[:2], dtype=bool) if finite is None else finite.copy()
    for r, a in enumerate(avoided):
        if a is not None:
            shown[r] &= ~a
    return None if bool(shown.all()) else shown


def stacked(runs: Sequence[Any], name: str):
    """``xp.stack([getattr(opt, name) for opt in runs])`` -- or, without a copy, the (R, ...)
    array those are the rows of, in this order: a batch's step and ask leave each run's
    ``_u`` / ``_asked`` a row of one array, noted as ``<name>_row = (array, k, row)``. The
    note counts only while the run still holds that very row (``is``), so a run that
    changed since, or a batch in another order, is stacked as usual. Read-only use."""
    note = runs[0].__dict__.get(name + "_row")
    if note is not None and note[0].shape[0] == len(runs):
        base = note[0]
        for k, opt in enumerate(runs):
            row = opt.__dict__.get(name + "_row")
            if row is None or row[0] is not base or row[1] != k or getattr(opt, name) is not row[2]:
                break
        else:
            return base
    return runs[0]._xp.stack([getattr(opt, name) for opt in runs])
