"""``diffevo rl``: the JSON it writes and its errors."""

from __future__ import annotations

import json

import pytest

from diffevo.cli import main

pytest.importorskip("gymnasium")


def test_rl_writes_the_json_fields(tmp_path, capsys):
    out = tmp_path / "r.json"
    code = main(["rl", "--env", "CartPole-v1", "--popsize", "24", "--generations", "3",
                 "--eval-episodes", "3", "--seed", "2", "--json", str(out), "--no-progress"])
    assert code == 0
    d = json.loads(out.read_text())
    for key in ("eval_mean_reward", "eval_rewards", "curve", "wall_time", "evaluations",
                "train_time", "params", "settings", "final_mean_reward"):
        assert key in d, key
    assert d["evaluations"] == 24 * 3 and len(d["curve"]) == 3 and len(d["eval_rewards"]) == 3
    assert d["eval_mean_reward"] == pytest.approx(sum(d["eval_rewards"]) / 3)
    assert d["settings"]["latent_dim"] == 2 and d["policy"]["num_params"] == 58
    assert "fresh episodes" in capsys.readouterr().out


def test_rl_no_latent_and_large_hidden_parse(tmp_path):
    out = tmp_path / "r.json"
    assert main(["rl", "--env", "CartPole-v1", "--popsize", "8", "--generations", "2",
                 "--eval-episodes", "1", "--hidden", "16,16", "--no-latent", "--method", "cma",
                 "--json", str(out)]) == 0
    d = json.loads(out.read_text())
    assert d["settings"]["latent_dim"] is None and d["policy"]["hidden"] == [16, 16]


def test_rl_bad_input_exit_code_and_message(capsys):
    assert main(["rl", "--env", "NoSuchEnv-v0"]) == 2
    assert "env_id" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["rl", "--env", "CartPole-v1", "--hidden", "8,x"])
