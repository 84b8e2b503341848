"""evolve(): a trained policy beats one that ignores its input; budgets; determinism."""

from __future__ import annotations

import numpy as np
import pytest

from diffevo.rl import MLPPolicy, evaluate, evolve, paper_weights

gym = pytest.importorskip("gymnasium")

SMALL = dict(popsize=64, generations=6, eval_episodes=5)


def blind_policy_return(policy: MLPPolicy, params: np.ndarray) -> float:
    """The same network with its input weights zeroed: a constant action whatever it sees."""
    layers = policy.unflatten(params.copy())
    layers[0][0][...] = 0.0
    blind = policy.flatten(layers)[0]
    return float(evaluate("CartPole-v1", policy, blind, episodes=5, seed=123).mean())


@pytest.mark.parametrize("method", ["reference", "diffevo", "cma"])
def test_trained_policy_beats_one_that_ignores_its_input(method):
    res = evolve("CartPole-v1", method=method, seed=1, **SMALL)
    blind = blind_policy_return(res.policy, res.params)
    assert blind < 60  # pushing one way drops the pole in ~10 steps
    assert res.train_reward > blind + 100  # on the training episode
    assert res.eval_mean_reward > blind + 20  # and on fresh ones (a small budget: 64 x 6)
    assert res.evaluations == SMALL["popsize"] * SMALL["generations"]
    assert len(res.curve) == SMALL["generations"]
    assert res.final_rewards.shape == (SMALL["popsize"],)
    assert res.train_reward == res.final_rewards.max()


def test_same_seed_same_run_and_the_latent_changes_it():
    a = evolve("CartPole-v1", seed=3, **SMALL)
    b = evolve("CartPole-v1", seed=3, **SMALL)
    np.testing.assert_array_equal(a.params, b.params)
    assert [c["mean"] for c in a.curve] == [c["mean"] for c in b.curve]
    c = evolve("CartPole-v1", seed=3, latent_dim=None, **SMALL)
    assert [p["mean"] for p in c.curve][1:] != [p["mean"] for p in a.curve][1:]


def test_continuous_task_and_large_controller_run():
    res = evolve("Pendulum-v1", hidden=(16, 16), popsize=16, generations=3, eval_episodes=2,
                 max_steps=50, seed=0)
    assert res.policy.num_params == 3 * 16 + 16 + 16 * 16 + 16 + 16 + 1
    assert np.isfinite(res.eval_rewards).all() and res.eval_rewards.shape == (2,)
    d = res.to_dict()
    assert d["policy"]["action"] == "tanh" and len(d["params"]) == res.policy.num_params


def test_paper_weights_best_member_weighs_one():
    w = paper_weights(np.array([500.0, 10.0, 499.0]), 1.0)
    np.testing.assert_allclose(w, [1.0, np.exp(-490.0), np.exp(-1.0)])


@pytest.mark.parametrize(("kwargs", "match"), [
    (dict(method="pso"), "method"),
    (dict(popsize=1), "popsize"),
    (dict(generations=1), "generations"),
    (dict(scaling=0), "scaling"),
    (dict(noise=2.0), "noise"),
    (dict(latent_dim=0), "latent_dim"),
    (dict(episode_seed=-1), "episode_seed"),
])
def test_bad_arguments_are_named(kwargs, match):
    with pytest.raises(ValueError, match=match):
        evolve("CartPole-v1", **kwargs)
