"""The denoiser of HADES: a small MLP on ``[x_t, time features, condition, mask]``.

Written without autograd on purpose. The network is tiny (2 x 32 ReLU by default)
and trained for thousands of 32-sample steps per generation, so the cost is the
number of tensor operations per step, not their arithmetic: all parameters live in
ONE flat tensor (views per layer), the backward pass is written out (three matrix
products per layer) and Adam updates the flat tensor in a handful of operations
(see :mod:`diffevo.hades.training`). That is ~4x fewer operations than autograd +
``torch.optim.Adam`` on this model, and the same numbers.

Inputs of the network, per sample: the noisy point ``x_t`` (D,), the time features
(``t`` itself, or ``2 * time_embedding`` sinusoids of it), then, for a conditional
model, the K standardised condition values multiplied by their mask and the K mask
bits. The null condition of classifier-free guidance is all zeros (values and mask),
so "no condition" is an input the network can tell apart from "condition = mean".
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from itertools import pairwise

import torch

__all__ = ["MLPDenoiser"]


class MLPDenoiser:
    """ReLU MLP ``f(x_t, t, c, m) -> (B, D)`` with a flat parameter vector.

    Args:
        dim: D, the dimension of the points.
        num_conditions: K (0 for an unconditional model).
        hidden: widths of the hidden layers (default two of 32).
        time_embedding: None (default) feeds ``t`` itself; an int E feeds
            ``sin(2^k pi t), cos(2^k pi t)`` for k < E (2E features).
        skip: add ``x_t`` to the output (the network then learns a correction of
            ``x_t``, which is already the answer at t = 1 for noise prediction).
        device, dtype: where the parameters live (float32 on the CPU by default).

    Attributes:
        params: (P,) the flat parameter vector; ``layers`` views of it as (W, b).
    """

    def __init__(self, dim: int, num_conditions: int = 0, hidden: Sequence[int] = (32, 32),
                 time_embedding: int | None = None, skip: bool = True,
                 device: torch.device | str | None = None, dtype: torch.dtype = torch.float32):
        self.dim = int(dim)
        self.num_conditions = int(num_conditions)
        self.hidden = tuple(int(h) for h in hidden)
        self.time_embedding = None if time_embedding is None else int(time_embedding)
        self.skip = bool(skip)
        self.device = torch.device(device or "cpu")
        self.dtype = dtype
        n_time = 1 if self.time_embedding is None else 2 * self.time_embedding
        self.in_features = self.dim + n_time + 2 * self.num_conditions
        widths = (self.in_features, *self.hidden, self.dim)
        self.shapes = list(pairwise(widths))
        self.size = sum(i * o + o for i, o in self.shapes)
        self.params = torch.zeros(self.size, device=self.device, dtype=dtype)
        self.layers = self._views(self.params)
        if self.time_embedding is not None:
            k = torch.arange(self.time_embedding, device=self.device, dtype=dtype)
            self._freq = math.pi * 2.0 ** k  # (E,)

    def _views(self, flat: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """(W (in, out), b (out,)) views of a flat (P,) tensor, layer by layer."""
        out, pos = [], 0
        for i, o in self.shapes:
            w = flat[pos:pos + i * o].view(i, o)
            pos += i * o
            out.append((w, flat[pos:pos + o]))
            pos += o
        return out

    def __getstate__(self) -> dict:
        # the layer views are rebuilt on load: pickle would store them as separate copies
        return {k: v for k, v in self.__dict__.items() if k != "layers"}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self.layers = self._views(self.params)

    def init(self, generator: torch.Generator) -> None:
        """Fresh weights, PyTorch's default ``nn.Linear`` law: U(-1/sqrt(fan_in), +)."""
        for (w, b), (fan_in, _) in zip(self.layers, self.shapes):
            bound = 1.0 / math.sqrt(fan_in)
            w.uniform_(-bound, bound, generator=generator)
            b.uniform_(-bound, bound, generator=generator)

    def features(self, xt: torch.Tensor, t: torch.Tensor, cond: torch.Tensor | None = None,
                 mask: torch.Tensor | None = None) -> torch.Tensor:
        """The network input (B, in_features) from x_t (B, D), t (B, 1) in [0, 1],
        standardised conditions (B, K) and their mask (B, K) of 0/1."""
        if self.time_embedding is None:
            parts = [xt, t]
        else:
            arg = t * self._freq
            parts = [xt, torch.sin(arg), torch.cos(arg)]
        if self.num_conditions:
            parts += [cond * mask, mask]
        return torch.cat(parts, dim=1)

    def forward(self, inp: torch.Tensor, xt: torch.Tensor, keep: bool = False):
        """Output (B, D) for an input of :meth:`features`; with ``keep`` also the
        activations the backward pass needs."""
        acts = [inp]
        h = inp
        last = len(self.layers) - 1
        for k, (w, b) in enumerate(self.layers):
            h = torch.addmm(b, h, w)
            if k < last:
                h = h.clamp_min_(0.0)
                acts.append(h)
        if self.skip:
            h = h + xt
        return (h, acts) if keep else h

    def grad_views(self, grad: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """(dW, db) views of a flat (P,) gradient tensor, for :meth:`backward`."""
        return self._views(grad)

    def backward(self, acts: list[torch.Tensor], dout: torch.Tensor,
                 gl: list[tuple[torch.Tensor, torch.Tensor]]) -> None:
        """Write d loss / d params into the gradient views ``gl`` (of :meth:`grad_views`)
        given d loss / d output (B, D).

        ``acts`` are the post-ReLU activations of :meth:`forward` (``keep=True``);
        a ReLU's derivative is ``act > 0`` (the activation is 0 exactly where it was cut).
        """
        d = dout
        for k in range(len(self.layers) - 1, -1, -1):
            w, _ = self.layers[k]
            gw, gb = gl[k]
            a = acts[k]
            torch.mm(a.t(), d, out=gw)
            torch.sum(d, dim=0, out=gb)
            if k:
                d = (d @ w.t()) * (a > 0)

    def __call__(self, xt: torch.Tensor, t: torch.Tensor, cond: torch.Tensor | None = None,
                 mask: torch.Tensor | None = None) -> torch.Tensor:
        """Prediction (B, D) at noisy points xt (B, D) and times t (B, 1)."""
        return self.forward(self.features(xt, t, cond, mask), xt)
