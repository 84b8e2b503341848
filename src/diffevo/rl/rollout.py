"""Episodes of a whole population in one gymnasium vector env.

One rollout plays one episode per member: member i runs policy ``params[i]`` in
sub-env i, all sub-envs stepped together, the policy evaluated for the whole
population by one stacked matmul per layer. Gymnasium's vector envs reset a
finished sub-env on the next step (autoreset), so a member's return is summed only
up to its own termination or truncation and masked afterwards: each member's
episode is counted exactly once, however long the others run.

Two ways to build the vector env (``vectorization``):

* ``'vector_entry_point'``: the env's own vectorised implementation (in gymnasium
  1.4 CartPole's ``CartPoleVectorEnv``), one NumPy step for all members.
* ``'sync'``: gymnasium's ``SyncVectorEnv`` over P copies of the single env, the
  executor for every other env id.

``'auto'`` picks the first when the env id has one and its start state can be set
per member (see :class:`VectorRollout`), else the second.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .policy import MLPPolicy

VECTORIZATIONS = ("auto", "vector_entry_point", "sync")


def _gym():
    try:
        import gymnasium  # noqa: PLC0415 - optional dependency (diffevo[rl])
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise ImportError("diffevo.rl needs gymnasium: pip install 'diffevo[rl]'") from exc
    return gymnasium


def env_spec(env_id: str):
    """The registered gymnasium spec of ``env_id`` (clear error when unknown)."""
    gym = _gym()
    if not isinstance(env_id, str):
        raise TypeError(f"env_id must be a gymnasium env id string; got {env_id!r}")
    try:
        return gym.spec(env_id)
    except gym.error.Error as exc:
        raise ValueError(f"env_id {env_id!r} is not a registered gymnasium env ({exc})") from None


@dataclass
class Episodes:
    """What one rollout returns: per member its episode return and length.

    Attributes:
        returns: (P,) float64 sum of rewards up to and including the episode's last step.
        lengths: (P,) int64 steps taken.
        terminated: (P,) bool: the episode ended by termination (not truncation or max_steps).
    """

    returns: np.ndarray
    lengths: np.ndarray
    terminated: np.ndarray


class VectorRollout:
    """Plays one episode per member of a population in a gymnasium vector env.

    Args:
        env_id: any registered gymnasium env id (flat Box observations; Discrete or
            Box actions).
        num_envs: P, the population size this rollout serves.
        max_steps: cap on the episode length (default: the env's own time limit);
            the paper caps every episode at 500 steps.
        vectorization: ``'auto'``, ``'vector_entry_point'`` or ``'sync'`` (module docs).
        env_kwargs: keyword arguments for the env's constructor.

    With ``'vector_entry_point'`` each member's start state is the one the single env
    reaches with ``reset(seed=seeds[i])`` (copied into the vector env's ``state``), so
    both paths play exactly the episodes that P single envs seeded alike would play.
    """

    def __init__(self, env_id: str, num_envs: int, *, max_steps: int | None = None,
                 vectorization: str = "auto", env_kwargs: dict | None = None):
        gym = _gym()
        spec = env_spec(env_id)
        if isinstance(num_envs, bool) or not isinstance(num_envs, (int, np.integer)) or num_envs < 1:
            raise ValueError(f"num_envs must be a positive integer; got {num_envs!r}")
        if vectorization not in VECTORIZATIONS:
            raise ValueError(f"vectorization must be one of {VECTORIZATIONS}; got {vectorization!r}")
        limit = spec.max_episode_steps
        if max_steps is not None:
            if isinstance(max_steps, bool) or not isinstance(max_steps, (int, np.integer)) \
                    or max_steps < 1:
                raise ValueError(f"max_steps must be a positive integer or None; got {max_steps!r}")
            limit = int(max_steps) if limit is None else min(int(max_steps), limit)
        if limit is None:
            raise ValueError(f"{env_id} has no time limit: give max_steps")
        self.env_id, self.num_envs, self.max_steps = env_id, int(num_envs), int(limit)
        kwargs = dict(env_kwargs or {})
        self._single = gym.make(env_id, **kwargs)  # start states for the native path
        native = spec.vector_entry_point is not None and vectorization != "sync"
        if vectorization == "vector_entry_point" and spec.vector_entry_point is None:
            raise ValueError(f"{env_id} has no vector_entry_point in gymnasium "
                             f"{gym.__version__}; use vectorization='sync'")
        self.env = None
        self.vectorization = "sync"
        if native:
            self.env = gym.make_vec(env_id, num_envs=self.num_envs,
                                    vectorization_mode="vector_entry_point", **kwargs)
            self.vectorization = "vector_entry_point"
            if not self._state_settable():
                if vectorization == "vector_entry_point":
                    raise ValueError(f"{env_id}'s vector env has no per-member start state "
                                     "to set; use vectorization='sync'")
                self.env.close()
                self.env, self.vectorization = None, "sync"
        if self.env is None:
            self.env = gym.make_vec(env_id, num_envs=self.num_envs, vectorization_mode="sync",
                                    **kwargs)
        self._starts: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    def _state_settable(self) -> bool:
        """Does the vector env keep its state as (state_dim, num_envs) like the single env?"""
        self.env.reset(seed=0)
        self._single.reset(seed=0)
        vstate = getattr(self.env.unwrapped, "state", None)
        sstate = getattr(self._single.unwrapped, "state", None)
        if vstate is None or sstate is None:
            return False
        return np.shape(vstate) == (np.size(sstate), self.num_envs)

    def _start(self, seed: int) -> tuple[np.ndarray, np.ndarray]:
        """(observation, state) of the single env after ``reset(seed=seed)``, cached."""
        if seed not in self._starts:
            obs, _ = self._single.reset(seed=seed)
            state = np.array(self._single.unwrapped.state, dtype=np.float64).ravel()
            if len(self._starts) > 65536:  # fresh seeds every call: keep the cache bounded
                self._starts.clear()
            self._starts[seed] = (np.asarray(obs), state)
        return self._starts[seed]

    def _reset(self, seeds: np.ndarray) -> np.ndarray:
        if self.vectorization == "sync":
            obs, _ = self.env.reset(seed=[int(s) for s in seeds])
            return obs
        self.env.reset(seed=int(seeds[0]))  # clears the step counters and done flags
        starts = [self._start(int(s)) for s in seeds]
        state = np.stack([s for _, s in starts], axis=1)
        unwrapped = self.env.unwrapped
        unwrapped.state = state.astype(np.asarray(unwrapped.state).dtype, copy=False)
        return np.stack([o for o, _ in starts])

    def __call__(self, policy: MLPPolicy, params: Any, seeds: Any) -> Episodes:
        """One episode per member.

        Args:
            policy: the controller (its obs/action sizes must fit the env).
            params: (P, policy.num_params) parameter vectors.
            seeds: (P,) non-negative integer episode seeds, one per member (repeat a seed
                to play the same episode for several members).

        Returns:
            :class:`Episodes` with (P,) returns, lengths and termination flags.
        """
        seeds = np.asarray(seeds)
        if seeds.shape != (self.num_envs,) or seeds.dtype.kind not in "iu" or (seeds < 0).any():
            raise ValueError(f"seeds must be {self.num_envs} non-negative integers; "
                             f"got {np.shape(seeds)} of dtype {seeds.dtype}")
        layers = policy.prepare(params)  # float32, contiguous: once per episode batch
        if layers[0][0].shape[0] != self.num_envs:
            raise ValueError(f"params must have {self.num_envs} rows (one per env); "
                             f"got {layers[0][0].shape[0]}")
        p = self.num_envs
        returns = np.zeros(p)
        lengths = np.zeros(p, dtype=np.int64)
        terminated = np.zeros(p, dtype=bool)
        alive = np.ones(p, dtype=bool)
        obs = self._reset(seeds)
        for _ in range(self.max_steps):
            action = policy.act(layers, obs)
            obs, reward, term, trunc, _ = self.env.step(action)
            returns += np.where(alive, reward, 0.0)  # a finished member's reset steps don't count
            lengths += alive
            terminated |= alive & term
            alive &= ~(term | trunc)
            if not alive.any():
                break
        return Episodes(returns, lengths, terminated)

    def close(self) -> None:
        """Close the vector env and the helper single env."""
        self.env.close()
        self._single.close()

    def __enter__(self) -> VectorRollout:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return (f"VectorRollout({self.env_id!r}, num_envs={self.num_envs}, "
                f"max_steps={self.max_steps}, vectorization={self.vectorization!r})")
