"""Fitting the denoiser to a weighted buffer: HADES's per-generation training.

The recipe of the HADES paper: loss = per-sample MSE of the prediction weighted by
the sample's selection weight, Adam (lr 1e-3, L2 weight decay 1e-5, PyTorch's
``torch.optim.Adam`` semantics), minibatches of 32 of a fresh permutation every
epoch, 100 epochs, a cosine-annealed learning rate down to 1e-6 (stepped per
epoch), and the weights of the epoch with the lowest mean loss kept at the end.

Speed: every epoch draws its noise levels and noise for all M samples at once and
builds the whole (M, F) network input in one go, so a minibatch step is slicing,
the hand-written forward/backward of :class:`~diffevo.hades.model.MLPDenoiser` and
seven in-place Adam operations on one flat tensor.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from .model import MLPDenoiser

__all__ = ["TrainSettings", "fit"]


@dataclass(frozen=True)
class TrainSettings:
    """How the denoiser is trained (defaults: the paper's).

    Attributes:
        epochs: passes over the buffer (100).
        batch_size: samples per Adam step (32).
        lr: initial learning rate (1e-3), annealed by a cosine to ``lr_min`` (1e-6).
        weight_decay: L2 penalty added to the gradient (1e-5).
        condition_drop: probability that a sample's conditions are replaced by the
            null condition during training (0.1), so the model also learns the
            unconditional prediction that classifier-free guidance needs.
        keep_best: restore the parameters of the epoch with the lowest mean loss.
    """

    epochs: int = 100
    batch_size: int = 32
    lr: float = 1e-3
    weight_decay: float = 1e-5
    lr_min: float = 1e-6
    condition_drop: float = 0.1
    keep_best: bool = True


_BETAS = (0.9, 0.999)
_ADAM_EPS = 1e-8


@torch.inference_mode()
def fit(model: MLPDenoiser, process, x: torch.Tensor, weights: torch.Tensor,
        cond: torch.Tensor | None, settings: TrainSettings, gen: torch.Generator) -> list[float]:
    """Train ``model`` in place on clean points x (M, D) with weights (M,).

    Args:
        model: the denoiser (its current parameters are the starting point).
        process: a :mod:`~diffevo.hades.sampling` process (training pairs and targets).
        x: (M, D) standardised training points.
        weights: (M,) non-negative per-sample loss weights.
        cond: (M, K) standardised condition values, or None for K = 0.
        settings: the :class:`TrainSettings`.
        gen: the torch generator all randomness is drawn from (determinism).

    Returns:
        The mean weighted loss of every epoch.
    """
    m, d = x.shape
    p = model.params
    grad = torch.zeros_like(p)
    gviews = model.grad_views(grad)
    m1, m2 = torch.zeros_like(p), torch.zeros_like(p)
    best = p.clone()
    best_loss = math.inf
    losses: list[float] = []
    b1, b2 = _BETAS
    step = 0
    bs = settings.batch_size
    k = model.num_conditions
    for epoch in range(settings.epochs):
        lr = settings.lr_min + (settings.lr - settings.lr_min) * (1 + math.cos(math.pi * epoch / settings.epochs)) / 2
        perm = torch.randperm(m, generator=gen, device=x.device)
        x0 = x[perm]
        w = weights[perm].unsqueeze(1)
        xt, t, target = process.training_pairs(x0, gen)
        if k:
            keep = torch.rand((m, 1), generator=gen, device=x.device) >= settings.condition_drop
            mask = keep.to(x.dtype).expand(m, k)
            inp = model.features(xt, t, cond[perm], mask)
        else:
            inp = model.features(xt, t)
        total = x.new_zeros(())
        for start in range(0, m, bs):
            sl = slice(start, start + bs)
            out, acts = model.forward(inp[sl], xt[sl], keep=True)
            r = out - target[sl]
            wr = r * w[sl]
            total += (wr * r).sum()
            model.backward(acts, wr * (2.0 / r.numel()), gviews)
            step += 1
            # torch.optim.Adam with L2 weight decay, on the flat parameter vector
            grad.add_(p, alpha=settings.weight_decay)
            m1.lerp_(grad, 1 - b1)
            m2.mul_(b2).addcmul_(grad, grad, value=1 - b2)
            denom = m2.sqrt().div_(math.sqrt(1 - b2 ** step)).add_(_ADAM_EPS)
            p.addcdiv_(m1, denom, value=-lr / (1 - b1 ** step))
        loss = float(total) / (m * d)
        losses.append(loss)
        if settings.keep_best and loss < best_loss:
            best_loss = loss
            best.copy_(p)
    if settings.keep_best:
        p.copy_(best)
    return losses
