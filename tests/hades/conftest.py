"""HADES tests need torch (the ``hades`` extra, part of the ``test`` extra)."""

from __future__ import annotations

import pytest

pytest.importorskip("torch", reason="diffevo.hades needs torch: pip install 'diffevo[hades]'")


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """The networks are tiny: one thread is fastest, and results do not depend on
    how many cores the machine (or a loaded CI runner) has."""
    import torch

    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)
