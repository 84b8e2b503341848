"""MLPPolicy: parameter vector <-> weights, the stacked forward, action mapping."""

from __future__ import annotations

import numpy as np
import pytest

from diffevo.rl import MLPPolicy

gym = pytest.importorskip("gymnasium")


@pytest.mark.parametrize(("env_id", "hidden", "count"), [
    ("CartPole-v1", (8,), 58),           # the paper's small controller: 4*8 + 8 + 8*2 + 2
    ("CartPole-v1", (128, 128), 17410),  # its large one
    ("Pendulum-v1", (8,), 41),
])
def test_parameter_count_matches_the_paper(env_id, hidden, count):
    with gym.make(env_id) as env:
        assert MLPPolicy.for_env(env, hidden).num_params == count


def test_vector_weights_round_trip():
    pol = MLPPolicy(5, 3, (7, 4))
    p = np.random.default_rng(0).standard_normal((6, pol.num_params))
    layers = pol.unflatten(p)
    assert [w.shape for w, _ in layers] == [(6, 7, 5), (6, 4, 7), (6, 3, 4)]
    assert [b.shape for _, b in layers] == [(6, 7), (6, 4), (6, 3)]
    np.testing.assert_array_equal(pol.flatten(layers), p)
    # a single (D,) vector is a population of one
    np.testing.assert_array_equal(pol.flatten(pol.unflatten(p[2])), p[2:3])


def test_forward_equals_torch_sequential_with_the_same_vector():
    """The layout is PyTorch's: the vector loads into nn.Sequential(Linear, ReLU, ...)."""
    torch = pytest.importorskip("torch")
    pol = MLPPolicy(4, 2, (8, 6))
    rng = np.random.default_rng(1)
    p = rng.standard_normal((5, pol.num_params))
    obs = rng.standard_normal((5, 4))
    out = pol.forward(p, obs)
    for i in range(5):
        net = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 6),
                                  torch.nn.ReLU(), torch.nn.Linear(6, 2)).double()
        torch.nn.utils.vector_to_parameters(torch.from_numpy(p[i]), net.parameters())
        with torch.no_grad():
            ref = net(torch.from_numpy(obs[i])).numpy()
        np.testing.assert_allclose(out[i], ref, rtol=1e-12, atol=1e-12)


def test_member_i_uses_its_own_weights_and_observation():
    pol = MLPPolicy(3, 2, (4,))
    rng = np.random.default_rng(2)
    p = rng.standard_normal((7, pol.num_params))
    obs = rng.standard_normal((7, 3))
    both = pol.forward(p, obs)
    for i in range(7):
        np.testing.assert_allclose(both[i], pol.forward(p[i], obs[i:i + 1])[0], rtol=1e-13)
    # float32 prepared layers agree to float32 precision
    np.testing.assert_allclose(pol.forward(pol.prepare(p), obs), both, rtol=1e-4, atol=1e-4)


def test_actions_discrete_argmax_and_continuous_box():
    disc = MLPPolicy(2, 3, (4,))
    p = np.random.default_rng(3).standard_normal((9, disc.num_params))
    obs = np.random.default_rng(4).standard_normal((9, 2))
    np.testing.assert_array_equal(disc.act(p, obs), disc.forward(p, obs).argmax(axis=1))
    cont = MLPPolicy(2, 1, (4,), action="tanh", low=-2.0, high=2.0)
    big = np.zeros(cont.num_params)
    big[-1] = 1e3  # output bias: tanh saturates at the upper bound
    a = cont.act(np.stack([big, -big]), np.zeros((2, 2)))
    assert a.dtype == np.float32
    np.testing.assert_allclose(a[:, 0], [2.0, -2.0])


def test_observation_rescaling_by_the_box():
    pol = MLPPolicy(2, 1, (1,), obs_low=[-1.2, -0.07], obs_high=[0.6, 0.07])
    # identity-like net: hidden = relu(obs[0]), out = hidden
    p = np.array([[1.0, 0.0, 0.0, 1.0, 0.0]])
    top = pol.forward(p, np.array([[0.6, 0.0]]))
    np.testing.assert_allclose(top, [[np.sqrt(3.0)]])


@pytest.mark.parametrize(("kwargs", "match"), [
    (dict(obs_dim=0, out_dim=2), "obs_dim"),
    (dict(obs_dim=2, out_dim=2, hidden=(8, 0)), "hidden"),
    (dict(obs_dim=2, out_dim=2, action="softmax"), "action"),
    (dict(obs_dim=2, out_dim=2, action="tanh", low=1.0, high=-1.0), "low and high"),
    (dict(obs_dim=2, out_dim=2, obs_low=[0, 0]), "obs_low"),
])
def test_bad_arguments_are_named(kwargs, match):
    with pytest.raises(ValueError, match=match):
        MLPPolicy(**kwargs)


def test_bad_params_are_named():
    pol = MLPPolicy(2, 2, (3,))
    with pytest.raises(ValueError, match="params must have shape"):
        pol.unflatten(np.zeros((4, pol.num_params + 1)))
    with pytest.raises(ValueError, match="NaN"):
        pol.forward(np.full(pol.num_params, np.nan), np.zeros((1, 2)))
    with pytest.raises(ValueError, match="obs must have shape"):
        pol.forward(np.zeros((2, pol.num_params)), np.zeros((2, 3)))
