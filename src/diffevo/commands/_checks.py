"""Argument types for the subcommands: bad values become argparse usage errors (exit 2).

Each factory returns a ``type=`` callable for ``add_argument``; it raises
:class:`argparse.ArgumentTypeError`, which argparse reports as ``usage: ...`` and one
line ``error: argument --name: why``, before anything runs. Output paths are checked
here (folder exists and is writable), so a bad ``--plot`` cannot cost a finished run.
"""

from __future__ import annotations

import argparse
import math
import os
from collections.abc import Callable
from pathlib import Path

__all__ = ["backend_list", "backend_name", "int_at_least", "output_path", "positive_ints", "real_in"]


def int_at_least(minimum: int, words: tuple[str, ...] = ()) -> Callable[[str], int | str]:
    """An integer >= ``minimum`` (or one of ``words``, kept as the word)."""
    def parse(text: str) -> int | str:
        if text in words:
            return text
        try:
            value = int(text)
        except ValueError:
            alternatives = "".join(f" or {w!r}" for w in words)
            raise argparse.ArgumentTypeError(f"expected an integer >= {minimum}{alternatives}; "
                                             f"got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be >= {minimum}; got {value}")
        return value
    parse.__name__ = f"integer >= {minimum}"
    return parse


def positive_ints(example: str) -> Callable[[str], tuple[int, ...]]:
    """Comma-separated positive integers (``example`` shows the form in the error)."""
    def parse(text: str) -> tuple[int, ...]:
        try:
            values = tuple(int(v) for v in text.split(",") if v.strip())
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expected comma-separated integers like {example}; got {text!r}") from None
        if not values or min(values) < 1:
            raise argparse.ArgumentTypeError(f"expected positive integers like {example}; got {text!r}")
        return values
    parse.__name__ = "comma-separated positive integers"
    return parse


def real_in(low: float, high: float, *, open_low: bool = False,
            words: tuple[str, ...] = ()) -> Callable[[str], float | str]:
    """A finite number in [low, high] (``(low, high]`` with ``open_low``), or one of ``words``."""
    def parse(text: str) -> float | str:
        if text in words:
            return text
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        above = value > low if open_low else value >= low
        if not (math.isfinite(value) and above and value <= high):
            interval = f"{'(' if open_low else '['}{low}, {high}]"
            alt = "".join(f"{w!r} or " for w in words)
            raise argparse.ArgumentTypeError(f"expected {alt}a number in {interval}; got {text!r}")
        return value
    parse.__name__ = "number"
    return parse


def output_path(default_name: str) -> Callable[[str], Path | None]:
    """A file to write: an existing folder means ``folder/default_name``; the folder must
    exist and be writable, and an existing file must be writable. ``''`` means none."""
    def parse(text: str) -> Path | None:
        if text == "":
            return None
        path = Path(text)
        if path.is_dir():
            path = path / default_name
        folder = path.parent
        if not folder.is_dir():
            raise argparse.ArgumentTypeError(f"the folder {str(folder)!r} does not exist")
        if not os.access(folder, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
            raise argparse.ArgumentTypeError(f"{str(path)!r} is not writable")
        return path
    parse.__name__ = "output path"
    return parse


def _available() -> list[str]:
    from diffevo import backends  # noqa: PLC0415 - loads the backends only when asked

    return backends.available()


def backend_name(text: str) -> str:
    """``'auto'`` or a backend that runs on this machine."""
    from diffevo.backends import BACKENDS  # noqa: PLC0415

    if text not in BACKENDS:
        raise argparse.ArgumentTypeError(
            f"invalid choice: {text!r} (choose from {', '.join(map(repr, BACKENDS))})")
    if text != "auto" and text not in _available():
        hint = " (not built with CUDA, or no CUDA device or CuPy here)" if text == "cuda" else ""
        raise argparse.ArgumentTypeError(f"backend {text!r} is not available on this machine{hint}; "
                                         f"available: {', '.join(_available())}")
    return text


def backend_list(text: str) -> list[str]:
    """A comma-separated list of available backends (``auto`` excluded)."""
    names = [b.strip() for b in text.split(",") if b.strip()]
    if not names:
        raise argparse.ArgumentTypeError("expected a comma-separated list of backends")
    for name in names:
        if name == "auto":
            raise argparse.ArgumentTypeError("name the backends to time ('auto' is not one)")
        backend_name(name)
    return names
