"""Shared fixtures: the golden data and the list of CPU backends to check."""

from __future__ import annotations

import pytest

from golden_data import CPU_BACKENDS, GOLDEN, case_ids, load_golden  # noqa: E402,F401 - re-exported


@pytest.fixture(params=CPU_BACKENDS)
def cpu_backend(request) -> str:
    return request.param
