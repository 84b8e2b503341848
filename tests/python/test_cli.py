"""The command line: diffevo run / bench / info (and --help for each)."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

import diffevo
from diffevo.cli import main

BACKEND = next(b for b in ("cpp", "numba", "numpy") if b in diffevo.available_backends("cpu"))


@pytest.mark.parametrize("cmd", ["run", "bench", "info"])
def test_help(cmd, capsys):
    with pytest.raises(SystemExit) as exc:
        main([cmd, "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert f"usage: diffevo {cmd}" in out


def test_help_lists_the_subcommands(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    for cmd in ("run", "bench", "info"):
        assert cmd in out


def test_run_himmelblau_finds_all_four_minima(tmp_path, capsys):
    """The issue's done-when check: default settings, members within 0.1 of each minimum.

    With the defaults every minimum holds dozens of members; asking for >= 5 leaves room
    for other backends' rounding.
    """
    from diffevo.runner import DEFAULT_MAXITER, DEFAULT_POPSIZE

    png, js, csv_path = tmp_path / "h.png", tmp_path / "h.json", tmp_path / "h.csv"
    code = main(["run", "--problem", "himmelblau", "--dim", "2", "--backend", BACKEND,
                 "--plot", str(png), "--json", str(js), "--csv", str(csv_path)])
    assert code == 0
    out = capsys.readouterr().out
    assert "4 of 4 known minima found (all)" in out
    assert out.count("members") >= 4
    doc = json.loads(js.read_text())
    counts = [o["members_within_radius"] for o in doc["optima"]]
    assert len(counts) == 4 and min(counts) >= 5, counts
    # the schedule's evaluations per attempt (restarts='auto': the four equal minima call for
    # another, which finds no new one), then the polish of the modes (counted in nfev too)
    assert doc["fun"] < 1e-3 and doc["popsize"] == DEFAULT_POPSIZE
    attempts = 1 + doc["nrestarts"]
    one = DEFAULT_POPSIZE * DEFAULT_MAXITER
    assert attempts >= 2 and attempts * one < doc["nfev"] < attempts * one * 1.1
    assert len(doc["history"]["best"]) == attempts * DEFAULT_MAXITER
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert csv_path.read_text().startswith("generation,restart,nfev,best")


def test_run_options(tmp_path, capsys):
    js = tmp_path / "r.json"
    code = main(["run", "--problem", "rastrigin", "--dim", "3", "--popsize", "64", "--steps", "10",
                 "--seed", "1", "--maximize", "--backend", BACKEND, "--json", str(js),
                 "--shaping", "rank", "--noise", "0.5"])
    assert code == 0
    out = capsys.readouterr().out
    assert "maximise rastrigin in 3-D" in out
    doc = json.loads(js.read_text())
    assert doc["maximize"] and doc["optima"] == [] and 640 < doc["nfev"] < 640 + 5 * 64  # + polish
    # the maximum of Rastrigin on the box is near the corners (|x_i| ~ 4.52): far above 0
    assert doc["fun"] > 50


def test_run_errors(capsys):
    """Bad arguments are usage errors: argparse's exit status 2 and a line naming the option."""
    for argv, text in [
        (["run", "--problem", "himmelblau", "--dim", "3"], "dim: himmelblau is defined for D=2"),
        (["run", "--problem", "sphere", "--noise", "2", "--backend", BACKEND], "argument --noise"),
        (["run", "--problem", "sphere", "--popsize", "1", "--backend", BACKEND],
         "argument --popsize: must be >= 2"),
        (["run", "--problem", "griewank"], "argument --problem: invalid choice"),
    ]:
        with pytest.raises(SystemExit) as exc:
            main(argv)
        assert exc.value.code == 2
        assert text in capsys.readouterr().err


def test_info(capsys):
    assert main(["info"]) == 0
    out = capsys.readouterr().out
    assert f"diffevo {diffevo.__version__}" in out
    assert "CUDA module built:" in out and "numpy" in out
    assert main(["info", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    names = {row["name"]: row for row in doc["backends"]}
    assert names["numpy"]["available"] is True
    assert isinstance(doc["cuda"]["built"], bool) and isinstance(doc["cuda"]["devices"], list)


def test_bench(tmp_path, capsys):
    js = tmp_path / "b.json"
    assert main(["bench", "--sizes", "64,128", "--dims", "2", "--repeat", "1",
                 "--backends", "numpy", "--json", str(js)]) == 0
    out = capsys.readouterr().out
    assert "G pairs/s" in out
    rows = json.loads(js.read_text())
    assert [(r["n"], r["d"]) for r in rows] == [(64, 2), (128, 2)]
    for r in rows:
        assert r["seconds_per_generation"] > 0
        np.testing.assert_allclose(r["gpairs_per_s"], r["n"] ** 2 / r["seconds_per_generation"] / 1e9)
    with pytest.raises(SystemExit):
        main(["bench", "--sizes", "0"])


def test_console_entry_point():
    """``python -m diffevo`` reaches the same parser (what the ``diffevo`` script runs)."""
    out = subprocess.run([sys.executable, "-m", "diffevo", "run", "--help"], capture_output=True,
                         text=True, timeout=120, check=True).stdout
    assert "--problem" in out and "--plot" in out
