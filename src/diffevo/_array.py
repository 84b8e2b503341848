"""Transitional alias of :mod:`diffevo._device` (removed once every import moved)."""

from ._device import is_gpu_array, namespace, to_numpy  # noqa: F401
