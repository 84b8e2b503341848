"""The x0 estimate and the KDE density sharded over a Dask cluster.

``diffevo.distributed.x0_estimate(x, fitness, alpha, client=client, ...)`` is
``diffevo.x0_estimate(..., backend=DaskSums(client, ...))``: the query rows are cut
into blocks, the keys are scattered once per call, and each worker computes its rows
with its own best backend (:class:`DaskSums`). Needs ``dask[distributed]``.

Example::

    from distributed import Client
    import diffevo.distributed as dd
    client = Client("tcp://scheduler:8786")      # or Client() for a local cluster
    x0 = dd.x0_estimate(x, fitness, alpha, client=client)
"""

from __future__ import annotations

from typing import Any

from ._sums import DaskSums


def x0_estimate(x: Any, fitness: Any, alpha: float, *, client: Any, blocks: int | None = None,
                backend: str = "auto", **kwargs: Any):
    """:func:`diffevo.x0_estimate` with the sums computed on the Dask cluster of ``client``.

    Args:
        x, fitness, alpha: as :func:`diffevo.x0_estimate` (host arrays).
        client: a ``distributed.Client``.
        blocks: query blocks per call (default: 2 per worker thread).
        backend: the backend each worker runs (``'auto'``: its best, cuda on a GPU worker).
        **kwargs: every other keyword of :func:`diffevo.x0_estimate` (latent, density,
            bandwidth, mode, path, approx, tol).

    Returns:
        (N, D) (or (R, N, D)) x0, equal to the single-process estimate to rounding.
    """
    from ..core import x0_estimate as local

    return local(x, fitness, alpha, backend=DaskSums(client, backend, blocks), **kwargs)


def kde_density(z: Any, bandwidth: float = 0.1, *, client: Any, blocks: int | None = None,
                backend: str = "auto", **kwargs: Any):
    """:func:`diffevo.kde_density` with the sums computed on the Dask cluster of ``client``."""
    from ..core import kde_density as local

    return local(z, bandwidth, backend=DaskSums(client, backend, blocks), **kwargs)


__all__ = ["DaskSums", "kde_density", "x0_estimate"]
