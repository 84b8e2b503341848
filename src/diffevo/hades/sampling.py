"""The two generative processes of HADES: DDIM noise prediction and rectified flow.

Both work in *standardised* coordinates (the buffer's mean and standard deviation
are removed before training), where the prior of a sample is N(0, I).

* :class:`DDIMProcess` (default, epsilon prediction): ``S`` noise levels with
  ``alpha_bar`` falling linearly from ``1 - 1/S`` (level 0, almost clean) to 1e-8
  (level S-1, pure noise); ``x_t = sqrt(a) x0 + sqrt(1 - a) eps`` and the network
  predicts ``eps``. Sampling walks the levels down with the DDIM update of step
  noise ``eta`` (1 = DDPM-like ancestral sampling, 0 = deterministic) and returns
  the x0 prediction of the last level (no residual noise of ``sqrt(1/S)``).
* :class:`RectifiedFlowProcess`: ``x_t = (1 - t) x0 + t eps``, the network predicts
  the velocity ``eps - x0``; sampling is ``S`` Euler steps from t = 1 to 0.

Classifier-free guidance (:func:`guided`): with guidance scale s the prediction is
``f_u + s (f_c - f_u)``, ``f_u`` the prediction under the null condition (zeros) and
``f_c`` under the requested one; s = 0 is exactly the unconditional model, s = 1
the conditional one, s > 1 pushes further toward the condition.
"""

from __future__ import annotations

import torch

from .model import MLPDenoiser

__all__ = ["DDIMProcess", "RectifiedFlowProcess", "guided", "make_process"]


def guided(model: MLPDenoiser, xt: torch.Tensor, t: torch.Tensor, cond: torch.Tensor | None,
           scale: float) -> torch.Tensor:
    """The guided prediction (B, D) at xt (B, D), t (B, 1) for conditions cond (B, K)."""
    if cond is None or not model.num_conditions or scale == 0.0:
        zeros = None if not model.num_conditions else xt.new_zeros(xt.shape[0], model.num_conditions)
        return model(xt, t, zeros, zeros)
    ones = torch.ones_like(cond)
    if scale == 1.0:
        return model(xt, t, cond, ones)
    # one forward pass for both halves: [conditional; null]
    both = model(torch.cat([xt, xt]), torch.cat([t, t]), torch.cat([cond, torch.zeros_like(cond)]),
                 torch.cat([ones, torch.zeros_like(ones)]))
    fc, fu = both[: xt.shape[0]], both[xt.shape[0]:]
    return fu + scale * (fc - fu)


class DDIMProcess:
    """Epsilon-prediction diffusion over ``steps`` levels (see the module docstring).

    Args:
        steps: S, the number of noise levels (>= 2).
        eta: step noise of the sampler in [0, 1] (1 = DDPM-like, default).
    """

    name = "ddim"

    def __init__(self, steps: int = 100, eta: float = 1.0):
        self.steps = int(steps)
        self.eta = float(eta)
        s = self.steps
        self.alpha = torch.linspace(1.0 - 1.0 / s, 1e-8, s, dtype=torch.float64)

    def _level_time(self, idx: torch.Tensor) -> torch.Tensor:
        return idx.to(torch.float64) / (self.steps - 1)

    def training_pairs(self, x0: torch.Tensor, gen: torch.Generator):
        """``(x_t, t (M, 1), target)`` for clean points x0 (M, D) at random levels."""
        m = x0.shape[0]
        idx = torch.randint(0, self.steps, (m, 1), generator=gen, device=x0.device)
        a = self.alpha.to(x0.device)[idx].to(x0.dtype)
        eps = torch.randn(x0.shape, generator=gen, device=x0.device, dtype=x0.dtype)
        xt = a.sqrt() * x0 + (1 - a).sqrt() * eps
        return xt, self._level_time(idx).to(x0.dtype), eps

    def level(self, t: float) -> int:
        """The noise level of a fraction t in [0, 1] of the schedule."""
        return round(min(max(t, 0.0), 1.0) * (self.steps - 1))

    def diffuse(self, x0: torch.Tensor, t: float, gen: torch.Generator) -> torch.Tensor:
        """x0 (M, D) noised forward to the level of fraction t."""
        a = float(self.alpha[self.level(t)])
        eps = torch.randn(x0.shape, generator=gen, device=x0.device, dtype=x0.dtype)
        return a ** 0.5 * x0 + (1 - a) ** 0.5 * eps

    @torch.no_grad()
    def sample(self, model: MLPDenoiser, xt: torch.Tensor, gen: torch.Generator, *,
               cond: torch.Tensor | None = None, guidance: float = 1.0,
               t_start: float = 1.0) -> torch.Tensor:
        """Denoise xt (M, D), which sits at fraction t_start of the schedule (1 = the
        prior), down to a clean (M, D) sample."""
        alpha = self.alpha.tolist()
        # from the prior, start one level below pure noise: at alpha_bar = 1e-8 the x0
        # prediction divides the network's error by 1e-4 (the HADES code skips it too)
        top = min(self.level(t_start), self.steps - 2)
        x = xt
        for k in range(top, -1, -1):
            t = x.new_full((x.shape[0], 1), k / (self.steps - 1))
            eps = guided(model, x, t, cond, guidance)
            a = alpha[k]
            x0 = (x - (1 - a) ** 0.5 * eps) / a ** 0.5
            if k == 0:
                return x0
            ap = alpha[k - 1]
            sigma = self.eta * ((1 - ap) / (1 - a) * (1 - a / ap)) ** 0.5
            x = ap ** 0.5 * x0 + max(1 - ap - sigma ** 2, 0.0) ** 0.5 * eps
            if sigma > 0:
                x = x + sigma * torch.randn(x.shape, generator=gen, device=x.device, dtype=x.dtype)
        return x


class RectifiedFlowProcess:
    """Velocity prediction on the straight path ``(1 - t) x0 + t eps``, Euler sampling.

    Args:
        steps: Euler steps from t = 1 to t = 0 (default 100).
    """

    name = "rectified_flow"

    def __init__(self, steps: int = 100):
        self.steps = int(steps)

    def training_pairs(self, x0: torch.Tensor, gen: torch.Generator):
        """``(x_t, t (M, 1), velocity target)`` for clean points x0 (M, D)."""
        t = torch.rand((x0.shape[0], 1), generator=gen, device=x0.device, dtype=x0.dtype)
        eps = torch.randn(x0.shape, generator=gen, device=x0.device, dtype=x0.dtype)
        return (1 - t) * x0 + t * eps, t, eps - x0

    def diffuse(self, x0: torch.Tensor, t: float, gen: torch.Generator) -> torch.Tensor:
        """x0 (M, D) moved to time t on a straight path toward fresh noise."""
        eps = torch.randn(x0.shape, generator=gen, device=x0.device, dtype=x0.dtype)
        return (1 - t) * x0 + t * eps

    @torch.no_grad()
    def sample(self, model: MLPDenoiser, xt: torch.Tensor, gen: torch.Generator, *,
               cond: torch.Tensor | None = None, guidance: float = 1.0,
               t_start: float = 1.0) -> torch.Tensor:
        """Integrate dx/dt = v from t_start down to 0 (M, D)."""
        n = max(1, round(self.steps * min(max(t_start, 0.0), 1.0)))
        dt = t_start / n
        x = xt
        for k in range(n, 0, -1):
            t = x.new_full((x.shape[0], 1), k * dt)
            x = x - dt * guided(model, x, t, cond, guidance)
        return x


PROCESSES = {"ddim": DDIMProcess, "rectified_flow": RectifiedFlowProcess}


def make_process(name: str, steps: int, eta: float):
    """The process called ``name`` ('ddim' or 'rectified_flow') with ``steps`` levels."""
    if name == "ddim":
        return DDIMProcess(steps, eta)
    return RectifiedFlowProcess(steps)
