"""The error bound of the grid sums, and the grid spacing it asks for.

The grid path evaluates, for a query q and a scaled key y, not K(q - y) but the
tensor-product interpolant of F(q, y) = K(q - y) over the 2d coordinates of (q, y):
binning y onto the grid with interpolation weights, convolving with K sampled at the
node offsets and interpolating at q is exactly that interpolant. With node spacing
h = eta * sigma and interpolation of order p (1 linear, 3 cubic Lagrange), the
telescoped 1-D error bounds give, per pair,

    |K~ - K|(r) <= beta(r) = 2 C_p Lam_p^(2d-1) eta^(p+1)
                             * sum_c phi(m_c) prod_{c' != c} exp(-m_c'^2 / 2),

with r = q - y, m_c = max(|r_c| / sigma - slack, 0) (slack: how far the stencil nodes
of q and y reach, 2 eta linear, 4 eta cubic), phi the monotone upper envelope of
|d^(p+1)/du^(p+1) exp(-u^2/2)|, C_p the 1-D constant (1/8 linear, 3/128 cubic) and
Lam_p the Lebesgue constant of the 1-D stencil (1 linear, 1.25 cubic).

The x0 error of row i then follows from A~/B~ - A/B = sum_j w_j dK_ij (v_j - x0_i) / B~
(Cauchy-Schwarz over the beta-weighted sums, see :func:`row_errors`); those sums are
themselves grid convolutions, computed with nearest-node binning and beta widened by
one cell, so they are upper bounds and not estimates.
"""

from __future__ import annotations

import math

import numpy as np

#: 1-D interpolation constant: |f - I f| <= C_p h^(p+1) max |f^(p+1)| (p = order)
C_ORDER = {1: 1.0 / 8.0, 3: 3.0 / 128.0}
#: Lebesgue constant of the 1-D stencil on its central interval
LEBESGUE = {1: 1.0, 3: 1.25}
#: node offsets of the stencil of a point in [x_0, x_0 + h)
OFFSETS = {1: (0, 1), 3: (-1, 0, 1, 2)}

#: the FFT kernel is cut to |r_c| <= U_CUT sigma per coordinate: K <= 1e-14 beyond
EPS_CUT = 1e-14
U_CUT = math.sqrt(2.0 * math.log(1.0 / EPS_CUT))

_U_STEP = 1e-3
#: past this the envelopes' |H_(p+1)| exp(-u^2/2) decrease (order 1 and 3)
_U_MONOTONE = 3.5
_U_MAX = 40.0


def _envelope_table(order: int) -> np.ndarray:
    """sup_{|w| >= u} |H_(p+1)(w)| exp(-w^2/2) on u = 0, _U_STEP, ... (p + 1 = 2 or 4)."""
    u = np.arange(0.0, _U_MAX + 2 * _U_STEP, _U_STEP)
    if order == 1:
        h = np.abs(u * u - 1.0)
    else:
        h = np.abs(u ** 4 - 6.0 * u * u + 3.0)
    phi = h * np.exp(-0.5 * u * u)
    env = np.maximum.accumulate(phi[::-1])[::-1]
    # samples 1e-3 apart miss a peak by at most max|phi''| h^2 / 8 < 2e-5. Past the last
    # peak (|H_4| e^(-u^2/2): u = 2.86; |H_2| e^(-u^2/2): sqrt(3)) phi decreases, and the
    # sample at or below u already bounds it: an additive 2e-5 there was the whole bound
    # of the far pairs (tail_bound: 7e-11 W instead of 1e-18 W), which failed every row
    # whose B is below ~1e-7 W (the outskirts of a peaked fitness, alpha 0.95)
    return env + np.where(u < _U_MONOTONE, 2e-5, 0.0)


_TABLES: dict[int, np.ndarray] = {}


def envelope(u: np.ndarray, order: int) -> np.ndarray:
    """An upper bound of sup_{|w| >= |u|} |d^(p+1)/dw^(p+1) exp(-w^2/2)| (NumPy, any shape)."""
    table = _TABLES.get(order)
    if table is None:
        table = _TABLES[order] = _envelope_table(order)
    idx = np.minimum(np.floor(np.abs(u) / _U_STEP).astype(np.int64), table.size - 1)
    return table[idx]


def slack(order: int, eta: float) -> float:
    """How far (in sigma) the nodes used for one pair reach from r = q - y, per coordinate."""
    return 2.0 * max(OFFSETS[order][-1], -OFFSETS[order][0]) * eta


def beta_prefactor(order: int, d: int, eta: float) -> float:
    """2 C_p Lam_p^(2d-1) eta^(p+1): the pair bound's scale (relative to K(0) = 1)."""
    return 2.0 * C_ORDER[order] * LEBESGUE[order] ** (2 * d - 1) * eta ** (order + 1)


def beta_factors(u: np.ndarray, order: int, d: int, eta: float, extra: float):
    """The per-coordinate factors of beta sampled at offsets u (in sigma units, 1-D).

    beta(r) = sum_c phi[c](r_c) * prod_{c' != c} psi(r_c'): returns (phi, psi) sampled on
    u, for slack(order, eta) + extra (extra = one cell when q and y are moved to their
    nearest nodes). beta is a sum of d separable terms, so its FFT is cheap.
    """
    m = np.maximum(np.abs(u) - slack(order, eta) - extra, 0.0)
    phi = beta_prefactor(order, d, eta) * envelope(m, order)
    psi = np.exp(-0.5 * m * m)
    return phi, psi


def tail_bound(order: int, d: int, eta: float) -> float:
    """Per-pair error bound (relative to K(0)) for pairs the cut kernel leaves out.

    Beyond the cut (some |r_c| > U_CUT sigma) the interpolant mixes cut samples
    (error <= Lam^(2d) EPS_CUT) and beta is at most its value one coordinate past the cut.
    """
    lam = LEBESGUE[order] ** (2 * d)
    m = max(U_CUT - slack(order, eta), 0.0)
    past = beta_prefactor(order, d, eta) * (
        float(envelope(np.array(m), order)) + (d - 1) * float(envelope(np.array(0.0), order))
        * math.exp(-0.5 * m * m))
    return (lam + 1.0) * EPS_CUT + past


def spacing(order: int, d: int, tol_scaled: float, spread: float) -> float:
    """The grid spacing eta = h / sigma for a target x0 error ``tol_scaled``.

    The rule: the bound for a row whose kernel-weighted values have spread ``spread``
    (root of the summed variances) is about beta's mass over K's mass times that spread,
    ``2 C_p Lam^(2d-1) eta^(p+1) * d * I_p / sqrt(2 pi) * spread`` (I_p the integral of
    the envelope); eta is set so that this estimate is ``tol_scaled / 64``: the bound that
    every row must then pass (:func:`row_errors`) is 10-20x above this estimate (the
    stencil slack, the Lebesgue factors, Cauchy-Schwarz) and a row's local spread can
    exceed the global one; with less headroom a few percent of the rows failed it and went
    to the exact backend (bench/grid/run.py). Never coarser than 0.5 sigma.
    """
    table = _TABLES.get(order)
    if table is None:
        table = _TABLES[order] = _envelope_table(order)
    mass = 2.0 * float(table.sum()) * _U_STEP / math.sqrt(2.0 * math.pi)  # both signs of u
    per_eta = 2.0 * C_ORDER[order] * LEBESGUE[order] ** (2 * d - 1) * d * mass * max(spread, 1e-300)
    eta = (tol_scaled / 64.0 / per_eta) ** (1.0 / (order + 1))
    return min(eta, 0.5)


def row_errors(b, p0, p1, p2, x0c, vmax, tail_w):
    """Upper bounds of |x0~_i - x0_i| (Euclidean) from the grid's own sums.

    Args (arrays of one module, float64):
        b: (Nq,) approximate B.
        p0, p1, p2: (Nq,), (Nq, Dv), (Nq,) upper-bound sums sum_j w_j beta_ij * (1, v~_j,
            |v~_j|^2) over the centred values v~ = v - mean(v).
        x0c: (Nq, Dv) approximate x0 minus mean(v).
        vmax: max_j |v~_j|.
        tail_w: per-pair bound of the pairs beyond beta's reach times sum_j w_j.

    Returns (Nq,) bounds, +inf where B~ does not dominate its own error.
    """
    xp = _xp(b)
    # sum_j w beta |v_j - x0|^2 = p2 - 2 x0.p1 + |x0|^2 p0 >= 0 (clip the rounding)
    x2 = (x0c * x0c).sum(axis=1)
    q2 = xp.maximum(p2 - 2.0 * (x0c * p1).sum(axis=1) + x2 * p0, 0.0)
    spread = xp.sqrt(x2) + vmax
    num = xp.sqrt(p0 * q2) + tail_w * spread
    den = b - p0 - tail_w
    with np.errstate(divide="ignore", invalid="ignore"):
        err = num / den
    return xp.where(den > 0, err, xp.inf)


def _xp(a):
    if type(a).__module__.split(".")[0] == "cupy":
        import cupy

        return cupy
    return np
