"""The FFT path: bin the weighted keys onto a grid, convolve with the kernel, interpolate.

Array-module generic (NumPy with scipy.fft on the host, CuPy with cupy.fft on a GPU):
only ``bincount``, ``take``, broadcasting and the FFT are used. Everything is float64
(the grid sums are differences of large numbers only in the bound's quadratic form,
which is clipped).

Shapes: points are (N, d) in grid units (node i sits at coordinate i); channels are
(C, N); grids are (C, n_1, ..., n_d).
"""

from __future__ import annotations

import itertools
import math

import numpy as np

from ._bound import OFFSETS, U_CUT, beta_factors


def _fft(xp):
    """(rfftn, irfftn) of the array module: scipy.fft with both cores on the host."""
    if xp is np:
        import scipy.fft as sfft

        return (lambda a, s, axes: sfft.rfftn(a, s=s, axes=axes, workers=-1),
                lambda a, s, axes: sfft.irfftn(a, s=s, axes=axes, workers=-1))
    return (lambda a, s, axes: xp.fft.rfftn(a, s=s, axes=axes),
            lambda a, s, axes: xp.fft.irfftn(a, s=s, axes=axes))


def _weights_1d(t, order):
    """Interpolation weights of the stencil nodes (OFFSETS[order]) at fractions t in [0, 1)."""
    if order == 1:
        return (1.0 - t, t)
    tm, tp, t2 = t - 1.0, t + 1.0, t - 2.0
    return (-t * tm * t2 / 6.0, tp * tm * t2 / 2.0, -tp * t * t2 / 2.0, tp * t * tm / 6.0)


def _stencils(points, shape, order, xp):
    """Yield (flat node index (N,), weight (N,)) for every node of every point's stencil."""
    d = points.shape[1]
    base = xp.floor(points)
    frac = points - base
    base = base.astype(xp.int64)
    strides = [int(np.prod(shape[c + 1:], dtype=np.int64)) for c in range(d)]
    per_dim = []
    for c in range(d):
        w = _weights_1d(frac[:, c], order)
        # the grid has a margin of the stencil's reach, so every node exists; clip
        # guards rounding at the very edge only
        idx = [xp.clip(base[:, c] + o, 0, shape[c] - 1) * strides[c] for o in OFFSETS[order]]
        per_dim.append(list(zip(idx, w)))
    for combo in itertools.product(*per_dim):
        flat = combo[0][0]
        weight = combo[0][1]
        for idx, w in combo[1:]:
            flat = flat + idx
            weight = weight * w
        yield flat, weight


def bin_points(points, channels, shape, order, xp):
    """Scatter channels (C, N) onto a grid by interpolation weights (order 0: nearest node)."""
    size = int(np.prod(shape))
    if order and xp is np and _numba():
        from ._fastbin import pad3, scatter

        p3, orders, shape3 = pad3(points, shape, order)
        g = scatter(p3, np.ascontiguousarray(channels.T), orders, shape3)
        return g.T.reshape((channels.shape[0],) + tuple(shape))
    out = xp.zeros((channels.shape[0], size), dtype=xp.float64)
    if order == 0:
        flat = _nearest(points, shape, xp)
        for ch in range(channels.shape[0]):
            out[ch] += xp.bincount(flat, weights=channels[ch], minlength=size)
    else:
        for flat, weight in _stencils(points, shape, order, xp):
            for ch in range(channels.shape[0]):
                out[ch] += xp.bincount(flat, weights=channels[ch] * weight, minlength=size)
    return out.reshape((channels.shape[0],) + tuple(shape))


def gather_points(grids, points, order, xp):
    """Interpolate grids (C, *shape) at points: (C, N) (order 0: the nearest node's value)."""
    shape = grids.shape[1:]
    flat_grids = grids.reshape(grids.shape[0], -1)
    if order and xp is np and _numba():
        from ._fastbin import gather, pad3

        p3, orders, shape3 = pad3(points, shape, order)
        return gather(np.ascontiguousarray(flat_grids.T), p3, orders, shape3).T
    if order == 0:
        return xp.take(flat_grids, _nearest(points, shape, xp), axis=1)
    out = xp.zeros((grids.shape[0], points.shape[0]), dtype=xp.float64)
    for flat, weight in _stencils(points, shape, order, xp):
        out += xp.take(flat_grids, flat, axis=1) * weight
    return out


def _numba() -> bool:
    """Whether the Numba scatter/gather can be used (numba importable; generic otherwise)."""
    try:
        import numba  # noqa: F401
    except ImportError:
        return False
    return _USE_NUMBA[0]


#: tests switch this off to check the generic (CuPy-ready) code against the Numba one
_USE_NUMBA = [True]


def _nearest(points, shape, xp):
    flat = xp.zeros(points.shape[0], dtype=xp.int64)
    for c in range(points.shape[1]):
        stride = int(np.prod(shape[c + 1:], dtype=np.int64))
        flat += xp.clip(xp.rint(points[:, c]).astype(xp.int64), 0, shape[c] - 1) * stride
    return flat


class FFTGrid:
    """One grid: spacing h = eta * sigma, nodes covering all points plus the stencil margin.

    ``cut`` is the kernel's reach in nodes (|r_c| <= U_CUT sigma); the FFT length per axis
    is at least n + cut, so the circular convolution never wraps onto a node in use.
    """

    def __init__(self, lo, hi, sigma: float, eta: float, order: int):
        self.order = order
        self.eta = eta
        self.h = eta * sigma
        margin = max(-OFFSETS[order][0], OFFSETS[order][-1]) + 1
        self.origin = np.asarray(lo, dtype=np.float64) - margin * self.h
        extent = (np.asarray(hi, dtype=np.float64) - self.origin) / self.h
        self.shape = tuple(math.ceil(e) + margin + 1 for e in extent)
        self.cut = tuple(min(math.ceil(U_CUT / eta), n - 1) for n in self.shape)
        import scipy.fft as sfft

        self.fft_shape = tuple(sfft.next_fast_len(n + c, real=True)
                               for n, c in zip(self.shape, self.cut))

    @staticmethod
    def cost(lo, hi, sigma: float, eta: float, order: int) -> tuple[int, int]:
        """(grid nodes, FFT length) without building anything (for the path choice)."""
        g = FFTGrid(lo, hi, sigma, eta, order)
        return int(np.prod(g.shape)), int(np.prod(g.fft_shape))

    def to_grid_units(self, pts, xp):
        return (pts - xp.asarray(self.origin)) / self.h

    def _axis_samples(self, axis: int):
        """Node offsets (in sigma) of the circular kernel array along one axis."""
        n, c = self.fft_shape[axis], self.cut[axis]
        i = np.arange(n)
        off = np.where(i <= n // 2, i, i - n).astype(np.float64)
        return off * self.eta, np.abs(off) <= c

    def _spectrum(self, terms, xp):
        """rfftn of sum over terms of the outer product of 1-D circular arrays (one per axis)."""
        d = len(self.fft_shape)
        total = None
        for factors in terms:
            prod = None
            for axis, f in enumerate(factors):
                f = np.fft.rfft(f) if axis == d - 1 else np.fft.fft(f)
                shape = [1] * d
                shape[axis] = f.size
                f = f.reshape(shape)
                prod = f if prod is None else prod * f
            total = prod if total is None else total + prod
        return xp.asarray(total)

    def kernel_spectrum(self, xp):
        """The spectrum of K sampled on the nodes, cut to the box |r_c| <= U_CUT sigma."""
        factors = []
        for axis in range(len(self.fft_shape)):
            u, keep = self._axis_samples(axis)
            factors.append(np.where(keep, np.exp(-0.5 * u * u), 0.0))
        return self._spectrum([factors], xp)

    def envelope_spectrum(self, xp, fine_eta: float):
        """The spectrum of beta -- the pair bound of the grid of spacing ``fine_eta`` --
        widened by one cell of this grid (for nearest-node sums on it), same cut."""
        d = len(self.fft_shape)
        phis, psis = [], []
        for axis in range(d):
            u, keep = self._axis_samples(axis)
            phi, psi = beta_factors(u, self.order, d, fine_eta, self.eta)
            phis.append(np.where(keep, phi, 0.0))
            psis.append(np.where(keep, psi, 0.0))
        terms = [[phis[a] if a == c else psis[a] for a in range(d)] for c in range(d)]
        return self._spectrum(terms, xp)

    def convolve(self, grids, spectrum, xp):
        """Linear convolution of grids (C, *shape) with the kernel of ``spectrum``."""
        rfftn, irfftn = _fft(xp)
        axes = tuple(range(1, grids.ndim))
        spec = rfftn(grids, self.fft_shape, axes)
        spec *= spectrum[None]
        full = irfftn(spec, self.fft_shape, axes)
        crop = (slice(None),) + tuple(slice(0, n) for n in self.shape)
        return full[crop]
