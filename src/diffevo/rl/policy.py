"""MLP controllers as flat parameter vectors, run for a whole population at once.

A policy is a fully connected network ``obs -> hidden... -> out`` with ReLU hidden
layers. Its parameters are one flat vector laid out like a PyTorch
``nn.Sequential(nn.Linear, nn.ReLU, ..., nn.Linear)``: per layer the weight
(out, in) in row-major order, then the bias (out,). So a vector found here loads
into such a torch module with ``torch.nn.utils.vector_to_parameters``.

The population's forward pass is one stacked matrix product per layer: a
(P, D) parameter array is viewed (without copying) as P weight matrices
(P, out, in), and ``matmul`` runs all P members on their own observations.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from typing import Any

import numpy as np

#: an observation bound beyond this counts as unbounded (rescaled as if +-1)
OBS_UNBOUNDED = 1e3


def _check_sizes(value: Any, name: str) -> tuple[int, ...]:
    try:
        sizes = tuple(int(v) for v in value)
    except TypeError:
        raise TypeError(f"{name} must be a sequence of positive integers; got {value!r}") from None
    if any(isinstance(v, bool) for v in value) or any(s < 1 for s in sizes):
        raise ValueError(f"{name} must hold positive integers; got {value!r}")
    return sizes


class MLPPolicy:
    """An MLP controller ``obs_dim -> hidden -> ... -> out_dim`` with ReLU hidden layers.

    Args:
        obs_dim: observation size.
        out_dim: output size (number of discrete actions, or the action dimension).
        hidden: hidden layer widths, e.g. ``(8,)`` (the paper's small controller, 58
            parameters on CartPole) or ``(128, 128)`` (its large one, 17,410).
        action: ``'argmax'`` (discrete: the action is the index of the largest output)
            or ``'tanh'`` (continuous: ``low + (tanh(out) + 1) / 2 * (high - low)``).
        low, high: the action bounds for ``'tanh'`` (scalars or (out_dim,)).
        obs_low, obs_high: optional observation bounds ((obs_dim,) each): observations
            are then rescaled to unit variance over the box, ``sqrt(3) * (2 (o - low) /
            (high - low) - 1)``, before the first layer (the paper's controllers see
            observations so rescaled; without it MountainCar's velocity, within +-0.07,
            barely reaches the network).
    """

    def __init__(self, obs_dim: int, out_dim: int, hidden: Sequence[int] = (8,), *,
                 action: str = "argmax", low: Any = -1.0, high: Any = 1.0,
                 obs_low: Any = None, obs_high: Any = None):
        (self.obs_dim,) = _check_sizes([obs_dim], "obs_dim")
        (self.out_dim,) = _check_sizes([out_dim], "out_dim")
        self.hidden = _check_sizes(hidden, "hidden")
        if action not in ("argmax", "tanh"):
            raise ValueError(f"action must be 'argmax' or 'tanh'; got {action!r}")
        self.action = action
        self.low = np.broadcast_to(np.asarray(low, dtype=np.float64), (self.out_dim,))
        self.high = np.broadcast_to(np.asarray(high, dtype=np.float64), (self.out_dim,))
        if not (np.isfinite(self.low).all() and np.isfinite(self.high).all()
                and (self.high > self.low).all()):
            raise ValueError(f"low and high must be finite with high > low; got {low!r}, {high!r}")
        self.obs_center = np.zeros(self.obs_dim)
        self.obs_gain = np.ones(self.obs_dim)
        if (obs_low is None) != (obs_high is None):
            raise ValueError("give both obs_low and obs_high, or neither")
        if obs_low is not None:
            lo = np.broadcast_to(np.asarray(obs_low, dtype=np.float64), (self.obs_dim,))
            hi = np.broadcast_to(np.asarray(obs_high, dtype=np.float64), (self.obs_dim,))
            if not (np.isfinite(lo).all() and np.isfinite(hi).all() and (hi > lo).all()):
                raise ValueError("obs_low and obs_high must be finite with obs_high > obs_low")
            self.obs_center = (lo + hi) / 2
            self.obs_gain = 2 * math.sqrt(3.0) / (hi - lo)
        self.normalized = obs_low is not None
        widths = (self.obs_dim, *self.hidden, self.out_dim)
        self.layers = tuple(itertools.pairwise(widths))  # (in, out) per layer
        self.num_params = sum((i + 1) * o for i, o in self.layers)

    @classmethod
    def for_env(cls, env: Any, hidden: Sequence[int] = (8,), *,
                normalize: bool = True) -> MLPPolicy:
        """The policy that fits a gymnasium env's spaces (single or vector env).

        Discrete action spaces get ``'argmax'`` over n outputs, Box spaces ``'tanh'``
        scaled to the box. With ``normalize`` observations are rescaled by the
        observation box, an unbounded (or wider than 1e3) side counting as +-1.
        """
        obs_space = getattr(env, "single_observation_space", env.observation_space)
        act_space = getattr(env, "single_action_space", env.action_space)
        obs_dim = int(np.prod(obs_space.shape))
        norm = {}
        if normalize:
            lo, hi = np.ravel(obs_space.low).astype(np.float64), np.ravel(obs_space.high).astype(np.float64)
            norm = dict(obs_low=np.where(lo < -OBS_UNBOUNDED, -1.0, lo),
                        obs_high=np.where(hi > OBS_UNBOUNDED, 1.0, hi))
        if hasattr(act_space, "n"):
            return cls(obs_dim, int(act_space.n), hidden, action="argmax", **norm)
        if getattr(act_space, "shape", None) is None or act_space.shape == ():
            raise ValueError(f"unsupported action space {act_space!r}: need Discrete or Box")
        out = int(np.prod(act_space.shape))
        return cls(obs_dim, out, hidden, action="tanh",
                   low=np.ravel(act_space.low), high=np.ravel(act_space.high), **norm)

    # ------------------------------------------------------------ vector <-> weights
    def _population(self, params: Any) -> np.ndarray:
        p = np.asarray(params, dtype=np.float64)
        if p.ndim == 1:
            p = p[None, :]
        if p.ndim != 2 or p.shape[1] != self.num_params:
            raise ValueError(f"params must have shape ({self.num_params},) or (P, "
                             f"{self.num_params}); got {np.shape(params)}")
        if not np.isfinite(p).all():
            raise ValueError("params contain NaN or inf")
        return p

    def unflatten(self, params: Any) -> list[tuple[np.ndarray, np.ndarray]]:
        """(P, D) or (D,) vectors -> per layer ``(W (P, out, in), b (P, out))`` views."""
        p = self._population(params)
        out, at = [], 0
        for i, o in self.layers:
            w = p[:, at:at + o * i].reshape(p.shape[0], o, i)
            at += o * i
            out.append((w, p[:, at:at + o]))
            at += o
        return out

    def prepare(self, params: Any, dtype: Any = np.float32) -> list[tuple[np.ndarray, np.ndarray]]:
        """:meth:`unflatten`, copied into contiguous arrays of ``dtype`` for a loop of forwards.

        float32 halves the bytes each step reads: the large controller (17,410 parameters)
        at P = 256 is 18 MB, which stays in this CPU's L3 cache, against 36 MB in float64
        (measured 12 ms -> see README "Neuroevolution" per step).
        """
        return [(np.ascontiguousarray(w, dtype=dtype), np.ascontiguousarray(b, dtype=dtype))
                for w, b in self.unflatten(params)]

    def flatten(self, layers: Sequence[tuple[Any, Any]]) -> np.ndarray:
        """Inverse of :meth:`unflatten`: per layer ``(W (P, out, in), b (P, out))`` -> (P, D)."""
        if len(layers) != len(self.layers):
            raise ValueError(f"layers must hold {len(self.layers)} (W, b) pairs; got {len(layers)}")
        parts = []
        for (w, b), (i, o) in zip(layers, self.layers):
            w, b = np.asarray(w, dtype=np.float64), np.asarray(b, dtype=np.float64)
            if w.ndim == 2:
                w, b = w[None], b[None]
            if w.shape[1:] != (o, i) or b.shape[1:] != (o,) or b.shape[0] != w.shape[0]:
                raise ValueError(f"layer ({i} -> {o}) needs W (P, {o}, {i}) and b (P, {o}); "
                                 f"got {w.shape} and {b.shape}")
            parts += [w.reshape(w.shape[0], -1), b]
        return np.concatenate(parts, axis=1)

    # ------------------------------------------------------------ forward
    def forward(self, params: Any, obs: Any) -> np.ndarray:
        """Network outputs of every member on its own observation.

        Args:
            params: (P, D) parameter vectors (or (D,) for P = 1), or the list
                :meth:`unflatten` / :meth:`prepare` made of them (a loop over time steps
                splits once).
            obs: (P, obs_dim) observations, row i for member i.

        Returns:
            (P, out_dim) outputs, float64 (or the prepared layers' dtype).
        """
        layers = params if isinstance(params, list) else self.unflatten(params)
        dt = layers[0][0].dtype
        h = np.asarray(obs, dtype=dt).reshape(layers[0][0].shape[0], -1)
        if h.shape[1] != self.obs_dim:
            raise ValueError(f"obs must have shape (P, {self.obs_dim}); got {np.shape(obs)}")
        if self.normalized:
            h = ((h - self.obs_center.astype(dt)) * self.obs_gain.astype(dt))
        for k, (w, b) in enumerate(layers):
            h = np.matmul(w, h[:, :, None])[:, :, 0] + b  # (P, out, in) @ (P, in, 1)
            if k < len(layers) - 1:
                np.maximum(h, 0.0, out=h)
        return h

    def act(self, params: Any, obs: Any) -> np.ndarray:
        """Actions of every member: (P,) int64 for ``'argmax'``, (P, out_dim) float32 for ``'tanh'``."""
        y = self.forward(params, obs)
        if self.action == "argmax":
            return y.argmax(axis=1)
        return (self.low + (np.tanh(y) + 1.0) * 0.5 * (self.high - self.low)).astype(np.float32)

    def __repr__(self) -> str:
        return (f"MLPPolicy(obs_dim={self.obs_dim}, out_dim={self.out_dim}, hidden={self.hidden}, "
                f"action={self.action!r}, normalized={self.normalized}, num_params={self.num_params})")
