"""The command line refuses bad arguments before it runs and never loses data (issue 12).

Every bad argument is an argparse usage error: exit status 2 and one ``error:`` line
naming the option, before any generation runs; data files are written before pictures.
"""

from __future__ import annotations

import json

import pytest

import diffevo
from diffevo import plot
from diffevo.cli import main

BACKEND = next(b for b in ("cpp", "numba", "numpy") if b in diffevo.available_backends("cpu"))
RUN = ["run", "--problem", "sphere", "--popsize", "16", "--steps", "4", "--backend", BACKEND]


def usage_error(argv, capsys) -> str:
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    out, err = capsys.readouterr()
    assert "best f" not in out and "members within" not in out  # nothing ran
    errors = [line for line in err.splitlines() if "error:" in line]
    assert len(errors) == 1, err
    return errors[0]


@pytest.mark.parametrize("option", ["--plot", "--convergence", "--json", "--csv"])
def test_output_paths_are_checked_before_the_run(option, tmp_path, capsys):
    data = tmp_path / "r.json"
    line = usage_error(RUN + [option, str(tmp_path / "missing" / "out"), "--json" if
                              option != "--json" else "--csv", str(data)], capsys)
    assert f"argument {option}" in line and "does not exist" in line
    assert not data.exists()


def test_data_are_written_before_pictures(tmp_path, capsys, monkeypatch):
    def broken(*args, **kwargs):
        raise OSError("disk full while drawing")

    monkeypatch.setattr(plot, "population", broken)
    code = main(RUN + ["--plot", str(tmp_path / "p.png"), "--json", str(tmp_path / "r.json"),
                       "--csv", str(tmp_path / "h.csv")])
    assert code == 1  # the picture failed, and says so
    assert "disk full" in capsys.readouterr().err
    assert json.loads((tmp_path / "r.json").read_text())["nit"] == 4
    assert (tmp_path / "h.csv").read_text().count("\n") == 5  # header + 4 generations


def test_a_folder_as_output_gets_a_file_inside(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    folder = tmp_path / "pictures"
    folder.mkdir()
    assert main(RUN + ["--convergence", str(folder), "--json", str(folder)]) == 0
    assert (folder / "convergence.png").read_bytes()[:4] == b"\x89PNG"
    assert (folder / "result.json").exists()
    assert not (tmp_path / "pictures.png").exists()  # the old behaviour wrote it beside


@pytest.mark.skipif("cuda" in diffevo.available_backends(), reason="CUDA is available here")
@pytest.mark.parametrize("cmd", [RUN[:-2], ["demo", "--plot", ""]], ids=["run", "demo"])
def test_backend_cuda_without_cuda_is_a_usage_error(cmd, capsys):
    line = usage_error(cmd + ["--backend", "cuda"], capsys)
    assert "argument --backend" in line and "not available" in line


@pytest.mark.parametrize("args,option", [
    (["--popsize", "1"], "--popsize"), (["--popsize", "many"], "--popsize"),
    (["--steps", "0"], "--steps"), (["--seed", "-1"], "--seed"),
    (["--backend", "gpu"], "--backend"), (["--plot", "/nonexistent-dir/demo.png"], "--plot"),
])
def test_bad_demo_arguments_are_usage_errors(args, option, capsys):
    assert f"argument {option}" in usage_error(["demo", *args], capsys)


@pytest.mark.parametrize("args,option", [
    (["--dim", "3", "--problem", "beale"], "--dim"), (["--noise", "2"], "--noise"),
    (["--radius", "-1"], "--radius"), (["--restarts", "-1"], "--restarts"),
])
def test_bad_run_arguments_are_usage_errors(args, option, capsys):
    assert f"argument {option}" in usage_error(RUN + args, capsys)


def test_bench_unknown_backend_is_a_usage_error(capsys):
    assert "argument --backends" in usage_error(["bench", "--backends", "nosuch"], capsys)
