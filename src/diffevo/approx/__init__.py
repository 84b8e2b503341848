"""Approximate x0 sums with a stated error bound (``approx='grid'``).

:class:`GridSums` wraps an exact backend and computes the pairwise sums of
:mod:`diffevo.backends` on a grid (FFT convolution) or by a cut-off cell-list sum,
for d <= 3 distance dimensions, with a per-row bound on the x0 error; rows whose
bound exceeds ``tol`` are recomputed exactly.
"""

from __future__ import annotations

from typing import Any

from .grid import GridSums

#: the values of the ``approx=`` option
APPROX = (None, "grid")


def wrap(base: Any, approx: Any, tol: Any, d: int) -> GridSums:
    """``GridSums(base, tol)`` for ``approx='grid'``; the errors name ``approx`` and ``tol``.

    Args:
        base: the resolved exact backend.
        approx: ``'grid'`` (None is handled by the caller: no wrapping).
        tol: the error target (> 0).
        d: the number of distance dimensions (x's or the latent's width), at most 3.
    """
    if approx not in APPROX:
        raise ValueError(f"approx must be None or 'grid'; got {approx!r}")
    if d > 3:
        raise ValueError(f"approx='grid' needs at most 3 distance dimensions; got {d} "
                         "(pass a latent= code of width <= 3, or approx=None)")
    return GridSums(base, tol=tol)


__all__ = ["APPROX", "GridSums", "wrap"]
