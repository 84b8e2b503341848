"""A population fitness function for any gymnasium env id: the episode return."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from .policy import MLPPolicy
from .rollout import VectorRollout, env_spec

#: the paper caps every episode at 500 steps (MountainCarContinuous's own limit is 999)
PAPER_MAX_STEPS = 500
#: the paper plays every training episode from the start state of seed 42
PAPER_EPISODE_SEED = 42


def _seed_bits(rng: np.random.Generator, n: int) -> np.ndarray:
    return rng.integers(0, 2**31 - 1, size=n, dtype=np.int64)


class EpisodeFitness:
    """``f(params (P, D)) -> (P,)`` mean episode return of each member's policy.

    Pass it to any population optimiser: ``diffevo.maximize(f, vectorized=True, ...)``,
    ``DiffusionEvolution.tell(f(es.ask()))``, or CMA-ES.

    Args:
        env_id: any registered gymnasium env id.
        hidden: hidden layer widths of the :class:`MLPPolicy` (ignored with ``policy``).
        policy: a ready controller (default: ``MLPPolicy.for_env(env, hidden,
            normalize=normalize_obs)``).
        normalize_obs: rescale observations by the observation box (the paper's setting).
        episodes: episodes per member and call, averaged.
        episode_seed: an int: every episode of every call starts from the state of
            this seed (the paper: 42; the fitness is then deterministic); None: fresh
            seeds on every call, one per member and episode, drawn from ``seed``.
        max_steps: episode length cap (default 500, the paper's; None = the env's limit).
        vectorization: see :class:`VectorRollout`.
        seed: seeds the fresh episode seeds (with ``episode_seed=None``).
        env_kwargs: keyword arguments for the env's constructor.

    Attributes:
        policy, num_params (D), evaluations (episodes played so far), last_returns
        ((P,) what the last call returned), last (the :class:`Episodes` of its first episode).
    """

    def __init__(self, env_id: str, hidden: Sequence[int] = (8,), *, policy: MLPPolicy | None = None,
                 normalize_obs: bool = True, episodes: int = 1, episode_seed: int | None = PAPER_EPISODE_SEED,
                 max_steps: int | None = PAPER_MAX_STEPS, vectorization: str = "auto",
                 seed: Any = None, env_kwargs: dict | None = None):
        env_spec(env_id)  # unknown ids fail here, naming env_id
        if isinstance(episodes, bool) or not isinstance(episodes, (int, np.integer)) or episodes < 1:
            raise ValueError(f"episodes must be a positive integer; got {episodes!r}")
        if episode_seed is not None and (isinstance(episode_seed, bool)
                                         or not isinstance(episode_seed, (int, np.integer))
                                         or episode_seed < 0):
            raise ValueError(f"episode_seed must be a non-negative int or None; got {episode_seed!r}")
        self.env_id, self.episodes, self.episode_seed = env_id, int(episodes), episode_seed
        self.max_steps, self.vectorization = max_steps, vectorization
        self.env_kwargs = env_kwargs
        self._rollouts: dict[int, VectorRollout] = {}
        if policy is None:
            probe = self._rollout(1)
            policy = MLPPolicy.for_env(probe.env, hidden, normalize=normalize_obs)
        self.policy = policy
        self.num_params = policy.num_params
        self._rng = np.random.default_rng(seed)
        self.evaluations = 0
        self.last = self.last_returns = None

    def _rollout(self, n: int) -> VectorRollout:
        """The vector env for populations of n, made once per size."""
        if n not in self._rollouts:
            self._rollouts[n] = VectorRollout(self.env_id, n, max_steps=self.max_steps,
                                              vectorization=self.vectorization,
                                              env_kwargs=self.env_kwargs)
        return self._rollouts[n]

    def seeds(self, n: int) -> np.ndarray:
        """(episodes, n) episode seeds for the next call."""
        if self.episode_seed is not None:
            return np.full((self.episodes, n), int(self.episode_seed), dtype=np.int64)
        return _seed_bits(self._rng, self.episodes * n).reshape(self.episodes, n)

    def __call__(self, params: Any) -> np.ndarray:
        """(P,) mean return over ``episodes`` episodes of each row of ``params`` (P, D)."""
        p = np.asarray(params, dtype=np.float64)
        if p.ndim != 2 or p.shape[1] != self.num_params:
            raise ValueError(f"params must have shape (P, {self.num_params}); got {np.shape(params)}")
        rollout = self._rollout(p.shape[0])
        total = np.zeros(p.shape[0])
        for k, seeds in enumerate(self.seeds(p.shape[0])):
            ep = rollout(self.policy, p, seeds)
            if k == 0:
                self.last = ep
            total += ep.returns
        self.evaluations += self.episodes * p.shape[0]
        self.last_returns = total / self.episodes
        return self.last_returns

    def close(self) -> None:
        for r in self._rollouts.values():
            r.close()
        self._rollouts.clear()

    def __repr__(self) -> str:
        return (f"EpisodeFitness({self.env_id!r}, policy={self.policy!r}, episodes={self.episodes}, "
                f"episode_seed={self.episode_seed}, max_steps={self.max_steps})")


def evaluate(env_id: str, policy: MLPPolicy, params: Any, *, episodes: int = 10,
             seed: int = 0, max_steps: int | None = PAPER_MAX_STEPS,
             env_kwargs: dict | None = None) -> np.ndarray:
    """(episodes,) returns of one policy on ``episodes`` fresh episodes, all in one vector env.

    Args:
        env_id, policy: the task and the controller.
        params: (D,) the policy's parameters.
        episodes: how many episodes (default 10).
        seed: the episode seeds are ``seed, seed + 1, ...`` (pick them apart from training's).
        max_steps: episode length cap (the same as training's, for comparable numbers).
    """
    x = np.asarray(params, dtype=np.float64)
    if x.ndim != 1:
        raise ValueError(f"params must be one (D,) vector; got shape {x.shape}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative int; got {seed!r}")
    with VectorRollout(env_id, episodes, max_steps=max_steps, env_kwargs=env_kwargs) as r:
        seeds = np.arange(int(seed), int(seed) + r.num_envs, dtype=np.int64)
        return r(policy, np.broadcast_to(x, (r.num_envs, x.shape[0])), seeds).returns
