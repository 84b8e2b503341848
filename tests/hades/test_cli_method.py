"""`diffevo run --method hades|charles`: the learned-model strategies from the command line."""

from __future__ import annotations

import json

import pytest

from diffevo.cli import main


@pytest.mark.parametrize("method", ["hades", "charles"])
def test_run_method_writes_a_result(tmp_path, capsys, method):
    js = tmp_path / "r.json"
    code = main(["run", "--problem", "sphere", "--dim", "2", "--method", method, "--popsize", "32",
                 "--steps", "3", "--seed", "1", "--json", str(js)])
    assert code == 0, capsys.readouterr().err
    doc = json.loads(js.read_text())
    assert doc["nfev"] >= 32 * 3 and doc["fun"] < 1.0  # polished from the learned population
    assert len(doc["history"]["best"]) == 3


def test_kernel_options_are_ignored_for_learned_methods(capsys):
    # --mode is a closed-form kernel option: ignored (documented) for hades, not an error
    code = main(["run", "--problem", "sphere", "--dim", "2", "--method", "hades", "--popsize", "16",
                 "--steps", "2", "--mode", "exact"])
    assert code == 0, capsys.readouterr().err
