"""The golden data (SPEC's arbiter) and the CPU backends every case is checked on.

A plain module, not a conftest: test files in every subfolder import it by name
(``from golden_data import load_golden``); tests/ is on sys.path through the root
conftest.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

import diffevo

GOLDEN = Path(__file__).parent / "data" / "golden"

#: every CPU backend this machine can run; each is checked against the golden data
CPU_BACKENDS = diffevo.available_backends("cpu")


def load_golden(name: str) -> dict[str, np.ndarray]:
    with np.load(GOLDEN / f"{name}.npz", allow_pickle=False) as data:
        return {k: data[k] for k in data.files}


def case_ids(data: dict, prefix: str = "c") -> list[int]:
    """The case numbers present in a golden file (keys like c12_x)."""
    pattern = re.compile(rf"^{prefix}(\d+)_")
    ids = sorted({int(m.group(1)) for k in data if (m := pattern.match(k))})
    if "count" in data:  # the file says how many cases it holds: none may go missing
        assert len(ids) == int(data["count"]), (len(ids), int(data["count"]))
    return ids
