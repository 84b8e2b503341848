"""The math of Diffusion Evolution, defined once (SPEC.md sections 3 and 4).

Backends only compute the pairwise sums (:mod:`diffevo.backends`); everything
around them -- the 1e-9 floors of the reference, the KDE density, the log-space
exact mode and the DDIM step -- is written here, in array-module-generic code
that runs on NumPy and CuPy arrays alike.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from . import backends
from ._device import caller_kind, namespace
from ._random import as_generator
from ._validation import (
    DENSITIES,
    MODES,
    as_population,
    as_vector,
    check_alpha,
    check_bandwidth,
    check_choice,
    check_distance_range,
    check_step_noise,
)

#: the floor the reference adds to fitness, Gaussian, density and denominator
EPS = 1e-9


def kde_density(z: Any, bandwidth: float = 0.1, *, backend: Any = "auto", path: str = "auto",
                approx: str | None = None, tol: float = 1e-3):
    """Normalised Gaussian kernel density of every member among the population.

    ``p_i = N * K_i / sum_k K_k`` with ``K_i = sum_k exp(-||z_i - z_k||^2 / (2 h^2))``.

    Args:
        z: (N, d) positions (the population, or its latent code); (R, N, d) for R
            independent populations.
        bandwidth: h > 0, with 1 / (2 h^2) finite in z's dtype.
        backend, path: see :func:`x0_estimate`.
        approx, tol: ``approx='grid'`` computes the sums on a grid (d <= 3), every
            density within relative error ``tol`` (:class:`diffevo.approx.GridSums`).

    Returns:
        (N,) (or (R, N)) densities with mean 1, in z's dtype and on z's device.
    """
    be = backends.resolve(backend, z)  # first: a device array meets a CPU backend -> clear error
    z_in, z = z, as_population(z, "z", batched=True)
    h = check_bandwidth(bandwidth, z.dtype)
    check_distance_range(z, "z")
    be = _approximate(be, approx, tol, z)
    return caller_kind(_kde(z, h, be, backends.check_path(path)), z_in)


def _approximate(be, approx, tol, z):
    """The backend, wrapped in the grid approximation when ``approx='grid'``."""
    if approx is None:
        return be
    from .approx import wrap  # noqa: PLC0415 - scipy.fft and numba load only when used

    return backends.resolve(wrap(be, approx, tol, z.shape[-1]), z)


def _kde(z, h, be, path="auto"):
    xp = namespace(z)
    n = z.shape[-2]
    no_values = xp.empty(z.shape[:-1] + (0,), dtype=z.dtype)
    zeros = xp.zeros(z.shape[:-1], dtype=z.dtype)
    _, k_sum, shift = be.pairwise_sums(z, z, no_values, zeros, 1.0, 1.0 / (2.0 * h * h), False,
                                       path=path)
    k_sum = k_sum * xp.exp(shift)
    return n * k_sum / k_sum.sum(axis=-1, keepdims=True)


def x0_estimate(
    x: Any,
    fitness: Any,
    alpha: float,
    *,
    latent: Any = None,
    density: str = "uniform",
    bandwidth: float = 0.1,
    mode: str = "reference",
    backend: Any = "auto",
    path: str = "auto",
    approx: str | None = None,
    tol: float = 1e-3,
):
    """Estimate every member's clean origin x0 (SPEC.md section 3).

    ``x0_i = sum_j w_ij x_j / (sum_j w_ij + eps)`` with
    ``w_ij = (g_j + eps) (G_ij + eps) / (p_i + eps)`` and
    ``G_ij = exp(-||z_i - sqrt(alpha) z_j||^2 / (2 (1 - alpha)))``, z = latent or x.

    Args:
        x: (N, D) population, float32 or float64 (kept), NumPy or CuPy; or
            (R, N, D): R independent populations estimated in one backend call.
        fitness: (N,) (or (R, N)) non-negative mapped fitness g (the kernel's weights): any
            finite values, however large -- the sums are taken relative to the largest.
        alpha: alpha_t in (0, 1).
        latent: optional (N, d) (or (R, N, d)) latent code; distances (and the density) use it,
            the average is still over x.
        density: ``'uniform'`` (p_i = 1/N) or ``'kde'``.
        bandwidth: the KDE bandwidth h (1 / (2 h^2) must be finite in x's dtype).
        mode: ``'reference'`` keeps the 1e-9 floors of the published behaviour;
            ``'exact'`` drops them (eps = 0) and sums in log space with a running
            maximum, so it never underflows to 0/0. All-zero fitness counts as uniform.
        backend: ``'auto'`` (numba on the CPU, cuda for device arrays), ``'numpy'``,
            ``'cpp'``, ``'numba'`` or ``'cuda'``; or an object implementing the backend
            contract (:mod:`diffevo.backends`).
        path: the kernel path, ``'auto'``, ``'direct'`` (direct differences) or ``'dot'``
            (the dot-product form: BLAS on the CPU, tensor cores on the GPU).
        approx: ``None`` (exact sums) or ``'grid'``: the sums on a grid (FFT convolution, or a
            cut-off cell-list sum at alpha near 1) for d <= 3 distance dimensions (x's, or
            the latent's), with ``max_i |x0_i - x0_exact_i| <= tol * std(x)`` for every member
            in both modes; rows the grid cannot bound are computed exactly. Sizing: the
            kernel width is sigma = sqrt(1 - alpha); nodes are ``eta * sigma`` apart with
            ``eta ~ (tol std(x) / (64 c spread))^(1/4)`` (cubic interpolation's error
            constant c, the values' spread; ~0.06-0.15 at tol = 1e-3), so a grid has about
            ``(extent / (eta sigma))^d`` nodes -- few at small alpha, many near 1, where the
            cut-off path (exact sums within ~5 sigma) is chosen instead
            (:class:`diffevo.approx.GridSums` has the details).
        tol: the grid's error target, in units of std(x) (> 0).

    Distances must stay finite: every coordinate of z (latent or x) within
    ``sqrt(finfo(dtype).max / d) / 4`` (float32 about 4.6e18 / sqrt(d), float64 about
    3.4e153 / sqrt(d)); beyond it a ValueError names the argument.

    Returns:
        (N, D) (or (R, N, D)) x0 estimate, same dtype and device as x.
    """
    be = backends.resolve(backend, x)  # first: a device array meets a CPU backend -> clear error
    x_in, x = x, as_population(x, "x", batched=True)
    g = as_vector(fitness, x.shape[:-1], x.dtype, "fitness", non_negative=True, like=x)
    a = check_alpha(alpha, "alpha", allow_one=False)
    check_choice(density, "density", DENSITIES)
    check_choice(mode, "mode", MODES)
    h = check_bandwidth(bandwidth, x.dtype)
    p = backends.check_path(path)
    if latent is None:
        z = x
    else:
        z = as_population(latent, "latent", batched=True, like=x)
        if z.shape[:-1] != x.shape[:-1]:
            raise ValueError(f"latent must have shape {tuple(x.shape[:-1])} + (d,) to match x; "
                             f"got shape {tuple(z.shape)}")
        z = z.astype(x.dtype, copy=False)
    check_distance_range(z, "x" if latent is None else "latent")
    be = _approximate(be, approx, tol, z)
    return caller_kind(_x0(x, g, a, z, density, h, mode, be, p), x_in)


def _x0(x, g, alpha, z, density, h, mode, be, path="auto"):
    xp = namespace(x)
    s = math.sqrt(alpha)
    inv2sigma2 = 1.0 / (2.0 * (1.0 - alpha))
    if mode == "exact":
        # eps = 0: the density is a per-row constant and cancels, so it is not computed.
        # a population with no positive weight at all counts as uniform
        g = xp.where((g > 0).any(axis=-1, keepdims=True), g, xp.ones_like(g))
        with np.errstate(divide="ignore"):
            logc = xp.log(g)  # -inf for zero fitness: those members get no weight
        a_sum, b_sum, _ = be.pairwise_sums(z, z, x, logc, s, inv2sigma2, True, path=path)
        _per_member(xp.divide, a_sum, b_sum)
        return a_sum
    # Overflow-safe reference sums: every coefficient is taken relative to the largest,
    # c'_j = c_j / c_max (per population), so no sum overflows whatever finite fitness
    # comes in, and the backend's shifts M_i stay <= 0 (e^M_i <= 1). Numerator and
    # denominator are both divided by c_max, so x0 is the reference's in exact arithmetic:
    #   x0_i = (A'_i + eps S') / (B'_i + eps Z' + eps (p_i + eps) / c_max)
    # with A', B' the sums over c' and S' = sum_j c'_j x_j, Z' = sum_j c'_j.
    c = g + EPS
    c_max = c.max(axis=-1, keepdims=True)
    c /= c_max
    a_sum, b_sum, shift = be.pairwise_sums(z, z, x, xp.log(c), s, inv2sigma2, False, path=path)
    # The epilogue works in place on the backend's fresh (N, D) output: at a million
    # members that is the difference between one and three population-sized arrays.
    scale = xp.exp(shift)
    _per_member(xp.multiply, a_sum, scale)
    b_sum *= scale
    n = x.shape[-2]
    if density == "kde":
        p = _kde(z, h, be, path)
    else:
        p = xp.full(x.shape[:-1], 1.0 / n, dtype=x.dtype)
    # (..., D): sum_j c_j x_j, the eps*G floor's numerator. On the host not by BLAS:
    # a threaded OpenBLAS gemv leaves its workers spinning for ~0.1 s, which took
    # a third of the 2 cores from the next generation's kernel (N=8192, D=64:
    # x0 107 -> 160 ms; bench/README.md)
    if xp is np:
        s_sum = np.einsum("...j,...jd->...d", c, x)
    else:
        s_sum = (c[..., None, :] @ x)[..., 0, :]
    z_sum = c.sum(axis=-1, keepdims=True)
    _per_coordinate(xp.add, a_sum, EPS * s_sum)
    b_sum += EPS * z_sum + EPS * (p + EPS) / c_max
    _per_member(xp.divide, a_sum, b_sum)
    return a_sum


#: up to this many coordinates, NumPy's in-place ops on (..., N, D) against a per-member
#: (..., N) or per-population (..., D) factor go one coordinate at a time: broadcast, the
#: inner loop runs D elements per call (at (100, 512, 2): 190-300 us per op against 60-80)
_SMALL_D = 8


def _per_member(op, a, f):
    """``a[..., d] = op(a[..., d], f)`` for every coordinate d: a (..., N, D), f (..., N)."""
    if a.shape[-1] <= _SMALL_D and isinstance(a, np.ndarray):
        for d in range(a.shape[-1]):
            col = a[..., d]
            op(col, f, out=col)
    else:
        op(a, f[..., None], out=a)


def _per_coordinate(op, a, f):
    """``a[..., i, :] = op(a[..., i, :], f)`` for every member i: a (..., N, D), f (..., D)."""
    if a.shape[-1] <= _SMALL_D and isinstance(a, np.ndarray):
        for d in range(a.shape[-1]):
            col = a[..., d]
            op(col, f[..., d : d + 1], out=col)
    else:
        op(a, f[..., None, :], out=a)


def weighted_centre(x: Any, weights: Any):
    """The fitness-weighted mean of a population: the centre of the frame its x0 estimate
    and DDIM step work in when the diffusion is re-centred (``centre='weighted'``).

    ``m = sum_j w_j x_j / sum_j w_j`` (the plain mean when every weight is 0), summed in
    float64 and returned in x's dtype. A batch is done population by population, by the
    same arithmetic, so row r equals the centre of population r alone.

    Args:
        x: (N, D) population (or (R, N, D)), NumPy or CuPy.
        weights: (N,) (or (R, N)) non-negative finite weights, the x0 estimate's g.

    Returns:
        (D,) (or (R, D)) centres on x's device.
    """
    xp = namespace(x)
    if x.ndim == 3:
        return xp.stack([weighted_centre(x[r], weights[r]) for r in range(x.shape[0])])
    w = xp.asarray(weights, dtype=xp.float64)
    total = float(w.sum())
    xd = x.astype(xp.float64, copy=False)
    m = (w @ xd) / total if total > 0 else xd.mean(axis=0)
    return m.astype(x.dtype, copy=False)


def ddim_step(
    x_t: Any,
    x0: Any,
    alpha_t: float,
    alpha_prev: float,
    *,
    noise: float = 1.0,
    z: Any = None,
    rng: Any = None,
):
    """One DDIM step from x_t toward the x0 estimate (SPEC.md section 4).

    Args:
        x_t: (N, D) (or (R, N, D)) current population.
        x0: x0 estimate, x_t's shape.
        alpha_t: alpha of x_t, in (0, 1).
        alpha_prev: alpha of the step's target, in [alpha_t, 1].
        noise: 0 deterministic DDIM, 1 DDPM-like.
        z: optional standard normal draw of x_t's shape (drawn from ``rng`` when omitted).
        rng: ``numpy.random.Generator`` (or CuPy's), an int seed, or None.

    Returns:
        x_prev of x_t's shape, dtype and device.
    """
    x_in, x_t = x_t, as_population(x_t, "x_t", batched=True)
    x0 = as_population(x0, "x0", batched=True, like=x_t)
    if x0.shape != x_t.shape:
        raise ValueError(f"x0 must have x_t's shape {tuple(x_t.shape)}; got {tuple(x0.shape)}")
    at = check_alpha(alpha_t, "alpha_t", allow_one=False)
    ap = check_alpha(alpha_prev, "alpha_prev", allow_one=True)
    eta = check_step_noise(noise, at, ap)
    if z is not None:
        z = as_population(z, "z", batched=True, like=x_t)
        if z.shape != x_t.shape:
            raise ValueError(f"z must have x_t's shape {tuple(x_t.shape)}; got {tuple(z.shape)}")
    return caller_kind(_ddim(x_t, x0.astype(x_t.dtype, copy=False), at, ap, eta, z, rng), x_in)


def _ddim(x_t, x0, at, ap, eta, z, rng):
    # x_prev = sqrt(ap) x0 + direction eps_t (+ sigma z), eps_t = (x_t - sqrt(at) x0) / sqrt(1 - at),
    # each product and sum rounded as written, in two population-sized buffers: a
    # batch's (R, N, D) temporaries are fresh pages for the allocator (7 of them cost
    # 1.1 ms at (100, 512, 2), the arithmetic 0.2)
    xp = namespace(x_t)
    sigma = eta * math.sqrt(max((1.0 - ap) / (1.0 - at) * (1.0 - at / ap), 0.0))
    direction = math.sqrt(max(1.0 - ap - sigma * sigma, 0.0))
    eps_t = xp.multiply(x0, math.sqrt(at))
    xp.subtract(x_t, eps_t, out=eps_t)
    eps_t /= math.sqrt(1.0 - at)
    eps_t *= direction
    x_prev = xp.multiply(x0, math.sqrt(ap))
    x_prev += eps_t
    if sigma > 0:
        if z is None:
            z = as_generator(rng, x_t).standard_normal(x_t.shape, dtype=x_t.dtype)
        xp.multiply(z.astype(x_t.dtype, copy=False), sigma, out=eps_t)
        x_prev += eps_t
    return x_prev
