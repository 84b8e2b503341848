"""VectorRollout: batched episodes equal one-at-a-time episodes; autoreset is masked."""

from __future__ import annotations

import numpy as np
import pytest

from diffevo.rl import EpisodeFitness, MLPPolicy, VectorRollout, evaluate

gym = pytest.importorskip("gymnasium")


def one_at_a_time(env_id, policy, params, seeds, max_steps):
    """The oracle: a single env per member, one Python step at a time."""
    out = []
    for p, s in zip(params, seeds):
        with gym.make(env_id) as env:
            obs, _ = env.reset(seed=int(s))
            total, steps = 0.0, 0
            for _ in range(max_steps):
                obs, r, term, trunc, _ = env.step(policy.act(p[None], obs[None])[0])
                total += float(r)
                steps += 1
                if term or trunc:
                    break
            out.append((total, steps))
    return np.array(out)


@pytest.mark.parametrize(("env_id", "vectorization", "max_steps"), [
    ("CartPole-v1", "vector_entry_point", 500),  # gymnasium's native CartPoleVectorEnv
    ("CartPole-v1", "sync", 500),
    ("MountainCarContinuous-v0", "sync", 60),    # Box actions, capped below the env's limit
    ("Acrobot-v1", "sync", 80),
])
def test_batched_equals_one_at_a_time(env_id, vectorization, max_steps):
    n = 12
    with VectorRollout(env_id, n, max_steps=max_steps, vectorization=vectorization) as roll:
        assert roll.vectorization == vectorization
        policy = MLPPolicy.for_env(roll.env, (8,))
        params = np.random.default_rng(5).standard_normal((n, policy.num_params))
        seeds = np.array([7, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17])  # a repeated seed too
        ep = roll(policy, params, seeds)
    ref = one_at_a_time(env_id, policy, params, seeds, max_steps)
    np.testing.assert_allclose(ep.returns, ref[:, 0], rtol=1e-6)
    np.testing.assert_array_equal(ep.lengths, ref[:, 1])
    if env_id == "CartPole-v1":  # episodes of different lengths: the masking is exercised
        assert len(set(ep.lengths.tolist())) > 1


def test_each_episode_is_counted_once_despite_autoreset():
    """CartPole pays 1 per step: a member's return is its own episode's length, although
    the vector env resets finished members and keeps stepping them."""
    n = 32
    with VectorRollout("CartPole-v1", n) as roll:
        policy = MLPPolicy.for_env(roll.env, (8,))
        params = np.random.default_rng(6).standard_normal((n, policy.num_params))
        ep = roll(policy, params, np.arange(n))
    np.testing.assert_array_equal(ep.returns, ep.lengths)
    assert ep.lengths.min() < 50 and ep.lengths.max() > 2 * ep.lengths.min()
    assert ep.terminated[ep.lengths < 500].all()


def test_same_seed_same_start_for_every_member():
    fit = EpisodeFitness("CartPole-v1", episode_seed=42)
    p = np.random.default_rng(7).standard_normal((1, fit.num_params))
    r = fit(np.repeat(p, 8, axis=0))
    assert np.unique(r).size == 1
    assert fit.evaluations == 8


def test_evaluate_uses_the_given_fresh_seeds():
    with gym.make("CartPole-v1") as env:
        policy = MLPPolicy.for_env(env, (8,))
    p = np.random.default_rng(8).standard_normal(policy.num_params)
    r = evaluate("CartPole-v1", policy, p, episodes=4, seed=1000)
    ref = one_at_a_time("CartPole-v1", policy, np.repeat(p[None], 4, 0), range(1000, 1004), 500)
    np.testing.assert_array_equal(r, ref[:, 0])


def test_bad_input_is_named():
    with pytest.raises(ValueError, match="env_id"):
        VectorRollout("NoSuchEnv-v9", 4)
    with pytest.raises(ValueError, match="num_envs"):
        VectorRollout("CartPole-v1", 0)
    with pytest.raises(ValueError, match="vector_entry_point"):
        VectorRollout("Pendulum-v1", 2, vectorization="vector_entry_point")
    with VectorRollout("CartPole-v1", 3) as roll:
        policy = MLPPolicy.for_env(roll.env)
        with pytest.raises(ValueError, match="seeds"):
            roll(policy, np.zeros((3, policy.num_params)), [1, 2])
        with pytest.raises(ValueError, match="3 rows"):
            roll(policy, np.zeros((2, policy.num_params)), [1, 2, 3])
    with pytest.raises(ValueError, match="episodes"):
        EpisodeFitness("CartPole-v1", episodes=0)
