"""The two a-priori pieces of the FFT path's bound, against what they bound: the FFT's
rounding (against a direct, separable convolution) and the derivative envelope (against
the derivative itself, sampled finely)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.ndimage import convolve1d

from diffevo.approx import _bound
from diffevo.approx._fftgrid import FFTGrid, bin_points
from diffevo.approx._paths import fft_noise


@pytest.mark.parametrize("peaked", [False, True])
def test_fft_rounding_within_its_bound(peaked):
    rng = np.random.default_rng(5 + peaked)
    sigma, eta = 0.2, 0.08
    y = rng.standard_normal((20000, 2))
    w = (np.exp(-((y - 0.8) ** 2).sum(1) / 0.02) + 1e-9) if peaked else rng.random(20000)
    grid = FFTGrid(y.min(0), y.max(0), sigma, eta, 3)
    binned = bin_points((y - grid.origin) / grid.h, w[None], grid.shape, 3, np)
    got = grid.convolve(binned, grid.kernel_spectrum(np), np)[0]
    u = np.arange(-grid.cut[0], grid.cut[0] + 1) * eta
    k = np.exp(-0.5 * u * u)  # the same cut kernel, applied directly (separable)
    want = convolve1d(convolve1d(binned[0], k, axis=0, mode="constant"), k, axis=1, mode="constant")
    err = np.abs(got - want).max()
    bound = fft_noise(np, binned, grid, 1.0)
    assert err <= bound
    assert bound < 1e-12 * w.sum()  # and it is far below the fixed 1e-12 W it replaced


@pytest.mark.parametrize("order", [1, 3])
def test_envelope_bounds_the_derivative_and_decays(order):
    w = np.arange(0.0, 36.0, 1e-4)  # (beyond, exp(-w^2/2) is subnormal)
    h = np.abs(w * w - 1.0) if order == 1 else np.abs(w ** 4 - 6 * w * w + 3.0)
    phi = h * np.exp(-0.5 * w * w)
    sup_beyond = np.maximum.accumulate(phi[::-1])[::-1]  # sup over |w'| >= w
    env = _bound.envelope(w, order)
    assert (env >= sup_beyond).all()
    # no flat floor in the tail: the far pairs' bound follows the Gaussian
    for u in (6.0, 10.0, 20.0):
        i = int(round(u / 1e-4))
        assert env[i] <= 1.01 * phi[int(round((u - 1e-3) / 1e-4))] + 1e-300
    assert _bound.envelope(np.array([10.0]), order)[0] < 1e-15 * math.exp(0)


def test_coarse_exp2_within_its_stated_error():
    from numba import njit

    from diffevo.backends._fastexp import EXP2_COARSE_RTOL, exp2_coarse

    @njit
    def evaluate(y):
        out = np.empty_like(y)
        for i in range(y.size):
            out[i] = exp2_coarse(y[i])
        return out

    y = np.concatenate([-np.linspace(0.0, 4.0, 200001),
                        -np.random.default_rng(0).random(200000) * 1000.0])
    want = np.exp2(y)
    got = evaluate(y)
    normal = want > np.finfo(np.float64).tiny
    assert (np.abs(got[normal] - want[normal]) <= EXP2_COARSE_RTOL * want[normal]).all()
    assert (got[~normal] <= np.finfo(np.float64).tiny).all()
    assert evaluate(np.array([-np.inf]))[0] == 0.0
