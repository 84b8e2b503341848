"""Plots: PNGs are written, show what they claim, and matplotlib stays optional."""

from __future__ import annotations

import sys

import numpy as np
import pytest

import diffevo
from diffevo import plot, problems

pytest.importorskip("matplotlib")
BACKEND = next(b for b in ("cpp", "numba", "numpy") if b in diffevo.available_backends("cpu"))


@pytest.fixture(scope="module")
def result():
    return diffevo.minimize(problems.himmelblau, bounds=[(-5, 5)] * 2, vectorized=True,
                            popsize=128, maxiter=30, seed=0, backend=BACKEND)


def _png_size(path):
    from matplotlib.image import imread

    img = imread(path)
    return img.shape


def test_convergence_png(result, tmp_path):
    path = tmp_path / "conv.png"
    fig = plot.convergence(result, path, fmin=0.0)
    h, w, _ = _png_size(path)
    assert h > 200 and w > 200
    top = fig.axes[0]
    best = [ln for ln in top.get_lines() if ln.get_label() == "best so far"][0]
    np.testing.assert_array_equal(best.get_ydata(), result.history.best_ever)
    assert top.get_yscale() == "log"
    # several runs: one curve each
    runs = diffevo.minimize(problems.sphere, bounds=[(-1, 1)] * 2, vectorized=True, popsize=16,
                            maxiter=5, runs=3, seed=0, backend=BACKEND)
    fig = plot.convergence(runs, tmp_path / "runs.png")
    assert len([ln for ln in fig.axes[0].get_lines()]) == 3
    with pytest.raises(TypeError, match="history must be"):
        plot.convergence(42)


def test_population_png(result, tmp_path):
    path = tmp_path / "pop.png"
    opt = problems.get("himmelblau").optima(2)
    fig = plot.population(result, problems.himmelblau, [(-5, 5)] * 2, path, optima=opt, radius=0.1)
    assert _png_size(path)[0] > 200
    ax = fig.axes[0]
    assert ax.get_xlim() == (-5, 5) and ax.get_ylim() == (-5, 5)
    offsets = [c.get_offsets() for c in ax.collections if c.get_label().startswith("population")]
    np.testing.assert_array_equal(offsets[0], result.population)
    dist = np.linalg.norm(result.population[:, None] - opt[None], axis=-1)
    labels = sorted(int(t.get_text()) for t in ax.texts)
    assert labels == sorted((dist < 0.1).sum(axis=0).tolist())


def test_population_of_a_higher_dimensional_run(tmp_path):
    res = diffevo.minimize(problems.rastrigin, bounds=[(-5.12, 5.12)] * 4, vectorized=True,
                           popsize=32, maxiter=5, seed=0, backend=BACKEND)
    fig = plot.population(res, lambda p: float(problems.rastrigin(p)), None,
                          tmp_path / "slice.png", dims=(1, 3), vectorized=False, resolution=20)
    assert fig.axes[0].get_xlabel() == "$x_{1}$"
    with pytest.raises(ValueError, match="dims"):
        plot.population(res, None, None, dims=(0, 7))


def test_matplotlib_missing_gives_an_install_hint(monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)  # import -> ImportError
    with pytest.raises(ImportError, match=r"pip install 'diffevo\[plot\]'"):
        plot.convergence(diffevo.History())
