"""The main job: ``diffevo demo`` finds both peaks and writes its picture."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest


def test_demo_finds_both_peaks(tmp_path):
    png = tmp_path / "demo.png"
    out = subprocess.run(
        [sys.executable, "-m", "diffevo", "demo", "--popsize", "256", "--steps", "60",
         "--plot", str(png)],
        capture_output=True, text=True, check=True, timeout=300,
    ).stdout
    counts = [int(c) for c in re.findall(r"of peak \(.*?\): (\d+)", out)]
    assert len(counts) == 2, out
    # both optima are found at once: a fair share of the population sits on each
    assert min(counts) >= 256 // 10, out
    best = float(re.search(r"best fitness ([0-9.]+)", out).group(1))
    assert best > 0.99, out  # the peak value is 1
    pytest.importorskip("matplotlib")
    assert png.exists() and png.stat().st_size > 10_000
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cli_help():
    out = subprocess.run([sys.executable, "-m", "diffevo", "--help"], capture_output=True,
                         text=True, check=True).stdout
    assert "demo" in out
