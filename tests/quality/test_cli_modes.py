"""``diffevo run`` lists the modes; ``plot.population`` marks them."""

from __future__ import annotations

import json

import numpy as np
import pytest

import diffevo
from diffevo import problems
from diffevo.cli import main


def test_run_lists_the_polished_modes(tmp_path, capsys):
    js = tmp_path / "h.json"
    assert main(["run", "--problem", "himmelblau", "--popsize", "256", "--steps", "30",
                 "--json", str(js)]) == 0
    out = capsys.readouterr().out
    assert "modes (distinct optima of the final population, polished; best first" in out
    doc = json.loads(js.read_text())
    assert doc["modes"] and all(set(m) == {"x", "fun", "size", "polished"} for m in doc["modes"])
    # every known minimum is a listed mode (polished: 1e-6 in x)
    xs = np.array([m["x"] for m in doc["modes"]])
    for xm in problems.HIMMELBLAU_MINIMA:
        assert np.abs(xs - xm).max(axis=1).min() < 1e-6
    assert doc["fun"] == doc["modes"][0]["fun"]


def test_population_plot_marks_the_modes():
    pytest.importorskip("matplotlib")
    res = diffevo.minimize(problems.himmelblau, bounds=[(-5, 5)] * 2, vectorized=True,
                           popsize=128, maxiter=20, seed=0)
    fig = diffevo.plot.population(res, problems.himmelblau, [(-5, 5)] * 2, resolution=20)
    labels = fig.axes[0].get_legend_handles_labels()[1]
    assert f"modes ({len(res.modes)})" in labels
