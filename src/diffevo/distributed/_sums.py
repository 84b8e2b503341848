"""``DaskSums``: the pairwise sums sharded over a Dask cluster by query rows.

The sums decompose exactly by rows: every block of query rows needs all keys and
nothing else. So per call the keys, values and log-weights (O(N * D)) are scattered
once to every worker (``broadcast=True``), the query rows are cut into blocks, and each
block is one pure task that runs the worker's best local backend on its rows against
all keys -- numba on a CPU worker, cuda on a worker with a GPU -- and returns
(A, B, M) for those rows. A worker holds O(N * D + block * D), never N x N.

The tasks are pure functions of their inputs (``pure=True``): when a worker is lost,
Dask recomputes its blocks elsewhere from the replicated keys and gets the same
numbers (the local backends are deterministic for a fixed thread count; across
thread counts they agree to rounding).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

#: blocks per worker thread by default: enough to balance uneven workers, few enough
#: that the per-task overhead (~1 ms in the scheduler) stays small against the rows' cost
BLOCKS_PER_THREAD = 2


def block_sums(qb, k, v, logc, s, inv2sigma2, online_max, path, base):
    """One task: the contract's sums of rows ``qb`` (R, nb, d) against all keys.

    Runs on a worker. ``base='auto'`` takes the worker's best backend: cuda when the
    worker has a usable GPU (the arrays go to the device and back), numba otherwise.
    """
    from diffevo import backends

    if base == "auto" and "cuda" in backends.available("cuda"):
        import cupy

        be = backends.resolve("cuda", cupy.asarray(qb))
        out = be.pairwise_sums(*(cupy.asarray(a) for a in (qb, k, v, logc)), s, inv2sigma2,
                               online_max, path=path)
        return tuple(cupy.asnumpy(o) for o in out)
    be = backends.resolve(base, qb)
    return be.pairwise_sums(qb, k, v, logc, s, inv2sigma2, online_max, path=path)


class DaskSums:
    """A backend object (contract of :mod:`diffevo.backends`) computing on a Dask cluster.

    Args:
        client: a ``distributed.Client``.
        base: the backend each worker runs: ``'auto'`` (its best: cuda on a GPU worker,
            else numba) or a backend name.
        blocks: query blocks per call; default ``BLOCKS_PER_THREAD`` x the cluster's
            worker threads (at least 1).

    Inputs are host (NumPy) arrays; results equal the local backend's to rounding.
    """

    DEVICE = "cpu"
    PATHS = ("auto", "direct", "dot")

    def __init__(self, client: Any, base: str = "auto", blocks: int | None = None):
        if not callable(getattr(client, "scatter", None)) or not callable(getattr(client, "submit", None)):
            raise TypeError(f"client must be a distributed.Client; got {type(client).__name__}")
        if not isinstance(base, str):
            raise TypeError(f"base must be a backend name (str); got {type(base).__name__}")
        from diffevo import backends

        if base not in backends.BACKENDS:
            raise ValueError(f"base must be one of {backends.BACKENDS}; got {base!r}")
        if blocks is not None and (isinstance(blocks, bool) or not isinstance(blocks, int) or blocks < 1):
            raise ValueError(f"blocks must be a positive int or None; got {blocks!r}")
        self.client = client
        self.base = base
        self.blocks = blocks
        self.name = f"dask({base})"
        #: the last call's block count and scattered bytes (reports and benchmarks)
        self.last: dict = {}

    def is_available(self) -> bool:
        return True

    def _block_count(self, nq: int) -> int:
        if self.blocks is not None:
            return max(1, min(self.blocks, nq))
        threads = sum(self.client.nthreads().values()) or 1
        return max(1, min(BLOCKS_PER_THREAD * threads, nq))

    def pairwise_sums(self, q, k, v, logc, s, inv2sigma2, online_max, *, path: str = "auto"):
        """See :mod:`diffevo.backends`; batched (R, Nq, d) inputs, as the dispatcher passes."""
        q, k, v, logc = (np.asarray(a) for a in (q, k, v, logc))
        nq = q.shape[1]
        if nq == 0:
            return (np.zeros(q.shape[:2] + (v.shape[2],), q.dtype), np.zeros(q.shape[:2], q.dtype),
                    np.zeros(q.shape[:2], q.dtype))
        # hash=False: fresh keys per call -- reusing the content-hashed keys of the last
        # call races with their release on the scheduler ("lost dependencies")
        keys = self.client.scatter([k, v, logc], broadcast=True, hash=False)
        nblocks = self._block_count(nq)
        rows = math.ceil(nq / nblocks)
        futures = [
            self.client.submit(block_sums, np.ascontiguousarray(q[:, i:i + rows]), *keys, float(s),
                               float(inv2sigma2), bool(online_max), path, self.base, pure=True)
            for i in range(0, nq, rows)
        ]
        parts = self.client.gather(futures)
        self.last = {"blocks": len(futures), "rows_per_block": rows,
                     "scatter_bytes": int(k.nbytes + v.nbytes + logc.nbytes)}
        return tuple(np.concatenate([p[c] for p in parts], axis=1) for c in range(3))
