"""Neuroevolution with your own environment: evolve a controller by ask/tell.

Copy this file and replace ``PointMass`` with your task. Needs ``pip install 'diffevo[rl]'``.

    python examples/neuroevolution.py

A point mass on a plane must be driven to the origin and stopped there; the
controller is a small MLP whose parameters Diffusion Evolution evolves, with
distances measured in a 2-D random projection of the parameters (latent_dim=2).
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np

from diffevo import DiffusionEvolution
from diffevo.rl import EpisodeFitness, MLPPolicy, evaluate


class PointMass(gym.Env):
    """Position and velocity in 2-D; the action is a force in [-1, 1]^2.

    Reward per step: minus the distance to the origin and a small force cost.
    """

    def __init__(self, dt: float = 0.1):
        self.dt = dt
        self.observation_space = gym.spaces.Box(-5.0, 5.0, shape=(4,), dtype=np.float32)
        self.action_space = gym.spaces.Box(-1.0, 1.0, shape=(2,), dtype=np.float32)
        self.state = np.zeros(4)  # x, y, vx, vy

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.state = np.concatenate([self.np_random.uniform(-3, 3, 2), np.zeros(2)])
        return self.state.astype(np.float32), {}

    def step(self, action):
        force = np.clip(np.asarray(action, dtype=np.float64), -1.0, 1.0)
        pos, vel = self.state[:2], self.state[2:]
        vel = 0.95 * vel + self.dt * force
        pos = np.clip(pos + self.dt * vel, -5.0, 5.0)
        self.state = np.concatenate([pos, vel])
        reward = -float(np.linalg.norm(pos)) - 0.01 * float(force @ force)
        return self.state.astype(np.float32), reward, False, False, {}


gym.register("PointMass-v0", entry_point=PointMass, max_episode_steps=100)


def main() -> None:
    # the fitness of a population: one 100-step episode per member, all members in one
    # vector env; fresh start positions every generation (episode_seed=None), so the
    # controller must work from anywhere, not from one memorised start
    with gym.make("PointMass-v0") as env:
        policy = MLPPolicy.for_env(env, hidden=(16,))
    fitness = EpisodeFitness("PointMass-v0", policy=policy, episode_seed=None, max_steps=None,
                             seed=0)
    print(f"{policy}")

    es = DiffusionEvolution(popsize=128, x0=np.zeros(policy.num_params), sigma0=1.0,
                            num_step=30, latent_dim=2, noise=1.0, maximize=True, seed=0)
    while not es.stop():
        params = es.ask()          # (128, D) policies
        returns = fitness(params)  # (128,) episode returns
        es.tell(returns)
        if es.generation % 5 == 0:
            print(f"generation {es.generation:3d}: best {returns.max():8.1f}, "
                  f"median {np.median(returns):8.1f}")

    best, train_return = es.best
    fresh = evaluate("PointMass-v0", policy, best, episodes=20, seed=10_000, max_steps=None)
    idle = evaluate("PointMass-v0", policy, np.zeros(policy.num_params), episodes=20,
                    seed=10_000, max_steps=None)
    print(f"best policy: {train_return:.1f} on its training episode, {fresh.mean():.1f} on 20 "
          f"fresh episodes (doing nothing scores {idle.mean():.1f})")


if __name__ == "__main__":
    main()
