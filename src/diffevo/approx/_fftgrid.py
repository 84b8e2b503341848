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
import threading

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
    if order == 0:
        return xp.take(flat_grids, _nearest(points, shape, xp), axis=1)
    out = xp.zeros((grids.shape[0], points.shape[0]), dtype=xp.float64)
    for flat, weight in _stencils(points, shape, order, xp):
        out += xp.take(flat_grids, flat, axis=1) * weight
    return out


def _numba() -> bool:
    """Whether the host's Numba kernels (:mod:`._fastbin`) run the FFT path's binning,
    interpolation and bounds (numba importable and not switched off; generic otherwise)."""
    try:
        import numba  # noqa: F401
    except ImportError:
        return False
    return _USE_NUMBA[0]


#: tests switch this off to check the generic (CuPy-ready) code against the Numba one
_USE_NUMBA = [True]

#: the last spectra, by grid and kind: a DE run asks for a new grid every generation, but
#: repeated calls at one alpha (benchmarks, the batched and the KDE calls) reuse them
_SPECTRA: dict = {}
_SPECTRA_KEEP = 8
_SPECTRA_LOCK = threading.Lock()


def _cached(key, make):
    spec = _SPECTRA.get(key)
    if spec is None:
        spec = make()
        with _SPECTRA_LOCK:  # GridSums may serve several threads
            while len(_SPECTRA) >= _SPECTRA_KEEP:
                _SPECTRA.pop(next(iter(_SPECTRA)))
            _SPECTRA[key] = spec
    return spec


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

    def kernel_spectrum(self, xp, real: bool = False):
        """The spectrum of K sampled on the nodes, cut to the box |r_c| <= U_CUT sigma.

        ``real``: its real part, a contiguous NumPy array (the kernel is even on the
        circular grid, so the imaginary part is rounding, ~1e-17 of the largest entry)."""
        def make():
            factors = []
            for axis in range(len(self.fft_shape)):
                u, keep = self._axis_samples(axis)
                factors.append(np.where(keep, np.exp(-0.5 * u * u), 0.0))
            return self._spectrum([factors], np)

        return self._pick(("k", self.fft_shape, self.cut, self.eta), make, xp, real)

    def envelope_spectrum(self, xp, fine_eta: float, real: bool = False):
        """The spectrum of beta -- the pair bound of the grid of spacing ``fine_eta`` --
        widened by one cell of this grid (for nearest-node sums on it), same cut
        (``real`` as for :meth:`kernel_spectrum`: beta is even too)."""
        def make():
            d = len(self.fft_shape)
            phis, psis = [], []
            for axis in range(d):
                u, keep = self._axis_samples(axis)
                phi, psi = beta_factors(u, self.order, d, fine_eta, self.eta)
                phis.append(np.where(keep, phi, 0.0))
                psis.append(np.where(keep, psi, 0.0))
            terms = [[phis[a] if a == c else psis[a] for a in range(d)] for c in range(d)]
            return self._spectrum(terms, np)

        return self._pick(("e", self.fft_shape, self.cut, self.eta, self.order, fine_eta), make,
                          xp, real)

    @staticmethod
    def _pick(key, make, xp, real):
        if real:
            return _cached(key + ("real",), lambda: np.ascontiguousarray(_cached(key, make).real))
        return xp.asarray(_cached(key, make))

    def convolve(self, grids, spectrum, xp):
        """Linear convolution of grids (C, *shape) with the kernel of ``spectrum``."""
        rfftn, irfftn = _fft(xp)
        axes = tuple(range(1, grids.ndim))
        spec = rfftn(grids, self.fft_shape, axes)
        spec *= spectrum[None]
        full = irfftn(spec, self.fft_shape, axes)
        crop = (slice(None),) + tuple(slice(0, n) for n in self.shape)
        return full[crop]

    # ------------------------------------------------------------------ host (NumPy) only
    def geometry(self):
        """(origin (3,), shape (3,)) padded to 3 axes, for the kernels of :mod:`._fastbin`."""
        d = len(self.shape)
        origin = np.zeros(3)
        origin[:d] = self.origin
        shape = np.ones(3, dtype=np.int64)
        shape[:d] = self.shape
        return origin, shape

    def host_grids(self, channels: int):
        """Zeroed grids (C, n_0, .., n_(d-2), F_(d-1)): the last axis already carries the
        FFT's zero padding, so :meth:`convolve_host` copies nothing before transforming."""
        return np.zeros((channels,) + self.shape[:-1] + (self.fft_shape[-1],))

    def convolve_host(self, grids, spectrum):
        """:meth:`convolve` of :meth:`host_grids` with a real spectrum, by 1-D transforms
        axis by axis: the forward ones skip the all-zero padding rows, the inverse ones
        the rows nobody reads; returns (C, n_0, .., n_(d-2), F_(d-1)), read at nodes
        inside ``shape``. (scipy's irfftn took 15 ms for (3, 625, 301) where ifft + irfft
        take 9.5; with the pruning the 2-D convolution of 3 channels at alpha 0.95 took
        8 ms instead of 15, both cores.)"""
        import scipy.fft as sfft

        d = len(self.shape)
        spec = sfft.rfft(grids, axis=-1, workers=-1)
        for axis in range(d - 2, -1, -1):  # zero-pads axis to its FFT length
            spec = sfft.fft(spec, n=self.fft_shape[axis], axis=axis + 1, workers=-1,
                            overwrite_x=True)
        if spec.flags.c_contiguous:  # a real product: no complex upcast of the spectrum
            flat = spec.view(np.float64).reshape(spec.shape + (2,))
            flat *= spectrum[..., None]
        else:
            spec *= spectrum
        for axis in range(d - 1):
            spec = sfft.ifft(spec, axis=axis + 1, workers=-1, overwrite_x=True)
            spec = spec[(slice(None),) * (axis + 1) + (slice(0, self.shape[axis]),)]
        return sfft.irfft(spec, n=self.fft_shape[-1], axis=-1, workers=-1)
