"""Checkpoints of a run: the whole state in one file, written atomically.

A checkpoint is a pickle of the runner's list of :class:`diffevo.runner.Run`
(each with its optimiser, random state, best point and history). It is written
to a temporary file in the destination's folder and moved into place with
:func:`os.replace`, so a crash while writing leaves the previous checkpoint
intact. Only load checkpoints you wrote yourself: unpickling runs code.
"""

from __future__ import annotations

import os
import pickle
import tempfile
from pathlib import Path
from typing import Any

__all__ = ["load_checkpoint", "save_checkpoint", "writable_path"]

#: the format of the file: bumped when what it holds changes
VERSION = 2  # 2: the optimiser keeps its frame (centre); a 1 has none


def writable_path(path: Any, name: str) -> Path:
    """``path`` as a Path whose folder exists and is writable (checked before a run).

    Raises:
        TypeError / ValueError naming ``name``.
    """
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"{name} must be a file path; got {type(path).__name__}")
    p = Path(path)
    if p.is_dir():
        raise ValueError(f"{name} must be a file path, not a directory: {str(p)!r}")
    folder = p.parent if str(p.parent) else Path(".")
    if not folder.is_dir():
        raise ValueError(f"{name}: the folder {str(folder)!r} does not exist")
    if not os.access(folder, os.W_OK):
        raise ValueError(f"{name}: the folder {str(folder)!r} is not writable")
    return p


def save_checkpoint(path: Path, runs: list) -> None:
    """Pickle ``runs`` to ``path`` atomically (temporary file + os.replace)."""
    try:
        data = pickle.dumps({"format": "diffevo-checkpoint", "version": VERSION, "runs": runs},
                            protocol=pickle.HIGHEST_PROTOCOL)
    except (pickle.PicklingError, TypeError, AttributeError) as err:
        raise TypeError(f"checkpoint: the run's state cannot be pickled ({err}); pass "
                        "module-level functions and classes (not lambdas) as options") from None
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent or ".")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def load_checkpoint(path: Any, runs: int) -> list:
    """The list of runs saved in ``path``; it must hold ``runs`` of them.

    Raises:
        ValueError naming ``resume`` for a missing, foreign or mismatched file.
    """
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"resume must be a file path; got {type(path).__name__}")
    try:
        with open(path, "rb") as fh:
            doc = pickle.load(fh)
    except FileNotFoundError:
        raise ValueError(f"resume: no checkpoint at {str(path)!r}") from None
    except (pickle.UnpicklingError, EOFError, AttributeError, ImportError) as err:
        raise ValueError(f"resume: {str(path)!r} is not a readable diffevo checkpoint ({err})") from None
    if not (isinstance(doc, dict) and doc.get("format") == "diffevo-checkpoint"):
        raise ValueError(f"resume: {str(path)!r} is not a diffevo checkpoint")
    if doc.get("version") != VERSION:
        raise ValueError(f"resume: checkpoint format {doc.get('version')!r}, this diffevo reads {VERSION}")
    state = doc["runs"]
    if len(state) != runs:
        raise ValueError(f"resume: the checkpoint holds {len(state)} runs but runs={runs}")
    return state
