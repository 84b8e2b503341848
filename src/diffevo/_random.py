"""Randomness: one ``Generator`` per run, on the population's device."""

from __future__ import annotations

from typing import Any

import numpy as np

from ._array import namespace


def as_generator(seed: Any, like: Any = None):
    """A random Generator from a seed, a Generator (kept), or None (fresh entropy).

    For a device population the generator is CuPy's, so draws stay on the GPU.
    """
    xp = np if like is None else namespace(like)
    if xp is np:
        if isinstance(seed, np.random.Generator):
            return seed
        return np.random.default_rng(seed)
    if isinstance(seed, xp.random.Generator):
        return seed
    if isinstance(seed, np.random.Generator):
        seed = int(seed.integers(2**63))
    return xp.random.default_rng(seed)
