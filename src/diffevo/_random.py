"""Randomness: one ``Generator`` per run, on the population's device."""

from __future__ import annotations

from typing import Any

import numpy as np

from ._device import namespace


def as_generator(seed: Any, like: Any = None, name: str = "rng"):
    """A random Generator from a seed, a Generator (kept), or None (fresh entropy).

    For a device population the generator is CuPy's, so draws stay on the GPU.
    ``name``: the argument the seed came from, named in the error for a bad one.
    """
    xp = np if like is None else namespace(like)
    if xp is np:
        if isinstance(seed, np.random.Generator):
            return seed
        if isinstance(seed, (bool, np.bool_, float, str, bytes)):
            raise TypeError(f"{name} must be None, an int seed, a SeedSequence or a "
                            f"numpy.random.Generator; got {seed!r}")
        try:
            return np.random.default_rng(seed)
        except (TypeError, ValueError) as err:
            raise type(err)(f"{name} must be None, an int seed (>= 0), a SeedSequence or a "
                            f"numpy.random.Generator; got {seed!r} ({err})") from None
    if isinstance(seed, xp.random.Generator):
        return seed
    if isinstance(seed, np.random.Generator):
        seed = int(seed.integers(2**63))
    return xp.random.default_rng(seed)
