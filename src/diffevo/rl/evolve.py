"""``evolve``: train a policy for a gymnasium task in one call, then evaluate it apart."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from .fitness import PAPER_EPISODE_SEED, PAPER_MAX_STEPS, EpisodeFitness, evaluate
from .methods import LOOPS, METHODS, Settings, select
from .policy import MLPPolicy


@dataclass
class RLResult:
    """What :func:`evolve` found.

    Attributes:
        env_id, method: the task and the training method.
        params: (D,) the policy handed back: of the last generation's members with the
            highest training return, the one nearest their mean (:func:`methods.select`).
        policy: its :class:`MLPPolicy` (``policy.act(params[None], obs[None])``).
        train_reward: its training return.
        eval_rewards: (eval_episodes,) its returns on fresh episodes (seeds
            ``eval_seed, eval_seed + 1, ...``, none of them a training seed).
        eval_mean_reward: their mean.
        final_rewards: (popsize,) training returns of the last generation (the paper's
            table reports their mean and standard deviation).
        curve: per generation ``{generation, evaluations, best, mean, median, q10, q90, time}``.
        evaluations: training episodes played.
        train_time, eval_time, wall_time: seconds.
        settings: every argument of the run.
    """

    env_id: str
    method: str
    params: np.ndarray
    policy: MLPPolicy
    train_reward: float
    eval_rewards: np.ndarray
    eval_mean_reward: float
    final_rewards: np.ndarray
    curve: list[dict] = field(default_factory=list)
    evaluations: int = 0
    train_time: float = 0.0
    eval_time: float = 0.0
    wall_time: float = 0.0
    settings: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        """A JSON-ready dict (arrays as lists, the policy as its sizes)."""
        out = asdict(self)
        pol = self.policy
        out["policy"] = {"obs_dim": pol.obs_dim, "out_dim": pol.out_dim, "hidden": list(pol.hidden),
                         "action": pol.action, "num_params": pol.num_params}
        for k in ("params", "eval_rewards", "final_rewards"):
            out[k] = np.asarray(getattr(self, k)).tolist()
        out["eval_std_reward"] = float(np.std(self.eval_rewards))
        out["final_mean_reward"] = float(np.mean(self.final_rewards))
        out["final_std_reward"] = float(np.std(self.final_rewards))
        return out


def _positive_int(v: Any, name: str, minimum: int = 1) -> int:
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}; got {v!r}")
    return int(v)


def _positive_float(v: Any, name: str) -> float:
    try:
        f = float(v)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be a real number; got {v!r}") from None
    if not (math.isfinite(f) and f > 0):
        raise ValueError(f"{name} must be positive and finite; got {v!r}")
    return f


def _curve_point(r: np.ndarray, generation: int, evaluations: int, t: float) -> dict:
    q10, med, q90 = np.quantile(r, [0.1, 0.5, 0.9])
    return {"generation": generation, "evaluations": evaluations, "best": float(r.max()),
            "mean": float(r.mean()), "median": float(med), "q10": float(q10), "q90": float(q90),
            "time": t}


def evolve(env_id: str, *, method: str = "reference", hidden: Sequence[int] = (8,),
           latent_dim: int | None = 2, popsize: int = 256, generations: int = 10,
           scaling: float = 1.0, temperature: float = 1.0, noise: float = 1.0,
           shaping: str = "energy",
           seed: int | None = None, episode_seed: int | None = PAPER_EPISODE_SEED,
           episodes: int = 1, normalize_obs: bool = True, max_steps: int | None = PAPER_MAX_STEPS, eval_episodes: int = 10,
           eval_seed: int | None = None, progress: bool = False,
           callback: Callable[[dict], Any] | None = None,
           env_kwargs: dict | None = None) -> RLResult:
    """Evolve an MLP policy for a gymnasium task, then evaluate the best on fresh episodes.

    The defaults are the paper's settings: 256 members, 10 generations
    (``DDIMSchedulerCosine(10)``), noise 1, weights ``exp((r - r_max) / T)`` with T = 1,
    a 2-D latent random projection, one hidden layer of 8, parameters scaled by 1,
    every training episode started from the state of seed 42 and capped at 500 steps.

    Args:
        env_id: any gymnasium env id with a flat Box observation (Discrete actions:
            argmax of the outputs; Box actions: tanh scaled to the box).
        method: ``'reference'`` (the paper's loop with the latent Bayesian generator),
            ``'diffevo'`` (the library's :class:`diffevo.DiffusionEvolution`, ask/tell)
            or ``'cma'`` (CMA-ES by pycma, elitist, sigma 1; latent_dim is ignored).
        hidden: hidden layer widths, ``(8,)`` or the paper's large ``(128, 128)``.
        latent_dim: distances in a random ``latent_dim``-D projection; None: in all D parameters.
        popsize, generations: population size and evaluated generations (equal budget
            for every method: ``popsize * generations * episodes`` training episodes).
        scaling: the policy's parameters are ``scaling * x`` with x ~ N(0, I) at the start.
        temperature: T of the fitness mapping.
        noise: DDIM step noise (1 = DDPM-like).
        shaping: ``method='diffevo'`` only: the library's fitness shaping (``'energy'``,
            ``'rank'``, ...) or ``'paper'`` for the paper's mapping.
        seed: seeds the optimiser (and fresh training episodes): same seed, same run.
        episode_seed: see :class:`EpisodeFitness` (None = fresh training episodes).
        episodes: training episodes per member and generation, averaged.
        normalize_obs: rescale observations to unit variance over the observation box.
        max_steps: episode cap for training and evaluation (None = the env's limit).
        eval_episodes: fresh episodes the best policy is evaluated on (default 10).
        eval_seed: first evaluation seed (default: drawn from ``seed``, above 2^20).
        progress: show a tqdm progress bar over generations.
        callback: called after each generation with its curve point (a dict).
        env_kwargs: keyword arguments for the env's constructor.

    Returns:
        :class:`RLResult`.

    Raises:
        ValueError / TypeError naming the offending argument.
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}; got {method!r}")
    settings = Settings(
        popsize=_positive_int(popsize, "popsize", 2),
        generations=_positive_int(generations, "generations", 2),
        latent_dim=None if latent_dim is None else _positive_int(latent_dim, "latent_dim"),
        scaling=_positive_float(scaling, "scaling"),
        temperature=_positive_float(temperature, "temperature"),
        noise=float(noise), shaping=shaping)
    if not 0.0 <= settings.noise <= 1.0:
        raise ValueError(f"noise must be in [0, 1]; got {noise!r}")
    eval_episodes = _positive_int(eval_episodes, "eval_episodes")
    root = np.random.SeedSequence(seed)
    opt_ss, episode_ss, eval_ss = root.spawn(3)
    if eval_seed is None:
        eval_seed = int(np.random.default_rng(eval_ss).integers(2**20, 2**30))
    fit = EpisodeFitness(env_id, hidden, normalize_obs=normalize_obs, episodes=episodes,
                         episode_seed=episode_seed,
                         max_steps=max_steps, seed=episode_ss, env_kwargs=env_kwargs)
    t0 = time.perf_counter()
    curve: list[dict] = []
    bar = _bar(progress, settings.generations, f"{method} {env_id}")

    def record(r: np.ndarray) -> None:
        point = _curve_point(np.asarray(r), len(curve) + 1, fit.evaluations, time.perf_counter() - t0)
        curve.append(point)
        if bar is not None:
            bar.set_postfix(best=f"{point['best']:.1f}", mean=f"{point['mean']:.1f}")
            bar.update(1)
        if callback is not None:
            callback(point)

    try:
        final_x, final_rewards = LOOPS[method](fit, fit.num_params, settings,
                                               np.random.default_rng(opt_ss), record)
    finally:
        if bar is not None:
            bar.close()
        fit.close()
    train_time = time.perf_counter() - t0
    pick = select(final_x, final_rewards)
    rewards = evaluate(env_id, fit.policy, final_x[pick], episodes=eval_episodes, seed=eval_seed,
                       max_steps=max_steps, env_kwargs=env_kwargs)
    wall = time.perf_counter() - t0
    args = dict(env_id=env_id, method=method, hidden=list(fit.policy.hidden), latent_dim=latent_dim,
                popsize=settings.popsize, generations=settings.generations, scaling=settings.scaling,
                temperature=settings.temperature, noise=settings.noise, shaping=shaping, seed=seed,
                episode_seed=episode_seed, episodes=episodes, normalize_obs=normalize_obs,
                max_steps=max_steps,
                eval_episodes=eval_episodes, eval_seed=eval_seed)
    return RLResult(env_id=env_id, method=method, params=final_x[pick].copy(), policy=fit.policy,
                    train_reward=float(final_rewards[pick]), eval_rewards=rewards,
                    eval_mean_reward=float(np.mean(rewards)), final_rewards=np.asarray(final_rewards),
                    curve=curve, evaluations=fit.evaluations, train_time=train_time,
                    eval_time=wall - train_time, wall_time=wall, settings=args)


def _bar(progress: bool, total: int, desc: str):
    if not progress:
        return None
    from tqdm.auto import tqdm  # noqa: PLC0415

    return tqdm(total=total, desc=desc, unit="gen")
