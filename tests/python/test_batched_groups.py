"""The group operations of runs=R (issue 13, item 6) equal their per-run counterparts bit
for bit: one ask for alike runs, told values checked over (R, N), history rows appended
column-wise, the modes of all ending runs found in one call."""

from __future__ import annotations

import numpy as np
import pytest

from diffevo import DiffusionEvolution
from diffevo.history import FIELDS, History
from diffevo.modes import find_modes, find_modes_many


def _same_modes(a: list[dict], b: list[dict]) -> bool:
    return len(a) == len(b) and all(
        np.array_equal(m["x"], n["x"]) and m["fun"] == n["fun"] and m["size"] == n["size"]
        and np.array_equal(m["spread"], n["spread"]) for m, n in zip(a, b))


def _populations(d: int, seed: int) -> list[tuple]:
    """Clumps, stragglers, exact duplicates and a grid (ties at every distance), of sizes
    below and above the neighbour counts, in D = d."""
    rng = np.random.default_rng(seed)
    out = []
    for k, n in enumerate((400, 20, 33, 34, 200, 300, 1, 0, 150)):
        centres = rng.uniform(-3, 3, (3, d))
        x = centres[rng.integers(0, 3, n)] + 0.05 * rng.standard_normal((n, d))
        if k == 4:  # many exact duplicates: ties at the k-th neighbour
            x[::3] = x[0]
        if k == 5:  # a lattice: equal distances everywhere
            x = np.round(x * 4) / 4
        cost = ((x - centres[0]) ** 2).sum(axis=1) if n else np.zeros(0)
        if k == 8:
            cost[::7] = np.nan
        out.append((x, cost, None if k % 2 else np.full(d, 0.7)))
    return out


@pytest.mark.parametrize("d", [1, 2, 3, 4, 5, 7])
def test_find_modes_many_equals_find_modes_of_each(d):
    items = _populations(d, d)
    many = find_modes_many(items)
    assert len(many) == len(items)
    for (x, c, scale), got in zip(items, many):
        assert _same_modes(got, find_modes(x, c, scale=scale))
    assert any(len(m) > 1 for m in many)  # the check compares basins, not only empty lists
    kept = find_modes_many(items, min_size=3)  # the best basin and those of >= 3 members
    for modes, got in zip(many, kept):
        assert _same_modes(got, [m for k, m in enumerate(modes) if k == 0 or m["size"] >= 3])
    assert sum(map(len, kept)) < sum(map(len, many))


def test_ask_batch_equals_ask_and_groups_only_alike_runs():
    boxes = [[(-4, 4)] * 2, [(-4, 4)] * 2, [(-1, 3)] * 2, [(-4, 4)] * 2]
    runs = [DiffusionEvolution(64, bounds=b, seed=s, num_step=5) for s, b in enumerate(boxes)]
    twins = [DiffusionEvolution(64, bounds=b, seed=s, num_step=5) for s, b in enumerate(boxes)]
    runs[3].ask()  # already asked: kept as it is
    got = DiffusionEvolution.ask_batch(runs)
    for x, twin in zip(got, twins):
        want = twin.ask()
        assert np.array_equal(x, want) and not x.flags.writeable
    assert got[0].base is got[1].base and got[2].base is not got[0].base
    with pytest.raises(ValueError):
        got[0][0, 0] = 1.0


def test_tell_batch_checks_odd_told_values_like_tell():
    runs = [DiffusionEvolution(32, bounds=[(-2, 2)] * 2, seed=s, num_step=4) for s in range(3)]
    twins = [DiffusionEvolution(32, bounds=[(-2, 2)] * 2, seed=s, num_step=4) for s in range(3)]
    xs = DiffusionEvolution.ask_batch(runs)
    f = [(x ** 2).sum(axis=1) for x in xs]
    told = [f[0].astype(np.float32), f[1].tolist(), f[2][:, None]]
    DiffusionEvolution.tell_batch(runs, told)
    for twin, t in zip(twins, told):
        twin.ask()
        twin.tell(t)
    for a, b in zip(runs, twins):
        assert np.array_equal(a.population, b.population)
        assert np.array_equal(a.result.population_fun, b.result.population_fun)
    bad = [(x ** 2).sum(axis=1) for x in DiffusionEvolution.ask_batch(runs)]
    bad[1][3] = np.nan
    with pytest.raises(ValueError, match=r"fitness contains NaN or inf \(members \[3\]"):
        DiffusionEvolution.tell_batch(runs, bad)
    assert [r.generation for r in runs] == [1, 1, 1]  # nothing committed


def test_append_many_equals_append():
    rows = [tuple(float(10 * r + k) for k in range(len(FIELDS))) for r in range(3)]
    many, each = [History() for _ in rows], [History() for _ in rows]
    History.append_many(many, rows)
    for h, row in zip(each, rows):
        h.append(**dict(zip(FIELDS, row)))
    for a, b in zip(many, each):
        assert a.as_dict().keys() == b.as_dict().keys()
        assert all(np.array_equal(a[k], b[k]) for k in FIELDS)
        assert a.last_values() == tuple(b.last_row().values())
    with pytest.raises(TypeError, match="append_many"):
        History.append_many(many, [(1.0, 2.0)] * 3)


def test_a_batch_reuses_its_own_rows_only_in_their_order():
    from diffevo._told import stacked

    def sphere(x):
        return (np.asarray(x) ** 2).sum(axis=1)

    runs = [DiffusionEvolution(48, bounds=[(-3, 3)] * 2, seed=s, num_step=6, backend="numpy")
            for s in range(4)]
    twins = [DiffusionEvolution(48, bounds=[(-3, 3)] * 2, seed=s, num_step=6, backend="numpy")
             for s in range(4)]
    order = [0, 1, 2, 3]
    for g in range(5):
        xs = DiffusionEvolution.ask_batch([runs[i] for i in order])
        DiffusionEvolution.tell_batch([runs[i] for i in order], [sphere(x) for x in xs])
        for t in twins:
            t.tell(sphere(t.ask()))
        base = runs[order[0]]._u.base
        assert stacked([runs[i] for i in order], "_u") is base  # the step's array, no copy
        permuted = [runs[i] for i in reversed(order)]
        again = stacked(permuted, "_u")  # another order: a copy, in that order
        assert again is not base and np.array_equal(again, np.stack([r._u for r in permuted]))
        if g == 2:  # one run told alone: its row is no longer the batch's
            lone = runs[order[1]]
            lone.tell(sphere(lone.ask()))
            twins[order[1]].tell(sphere(twins[order[1]].ask()))
            assert stacked([runs[i] for i in order], "_u") is not base
            break
        order = order[::-1] if g % 2 else order[1:] + order[:1]
    for r, t in zip(runs, twins):
        np.testing.assert_array_equal(r._u, t._u)
        same = [np.array_equal(a, b) for a, b in zip(r.history.as_dict().values(),
                                                      t.history.as_dict().values())]
        assert all(same[:-1])  # every column but the clock
