"""The C++ host API under AddressSanitizer and UndefinedBehaviorSanitizer.

Compiles tests/kernels/cpp/host_api_check.cpp against the source headers with
``-fsanitize=address,undefined -fno-sanitize-recover=all`` and runs it. The driver checks
the host API (``diffevo::host``) and the host simulation of the CUDA block bodies against
a long-double oracle, reference mode on fitness whose sum overflows the dtype, and that
every bad argument (null arrays, D = 0, non-finite or negative data, alpha, bandwidth,
noise) throws std::invalid_argument naming it with file:line. Any sanitizer report ends
the program with a non-zero status (no recovery), so it fails this test.

Skipped only when g++ is missing or cannot build and run a sanitized program here.
-O0: a sanitized build at -O1 costs several times the compile time for no extra check.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DRIVER = Path(__file__).resolve().parent / "cpp" / "host_api_check.cpp"
CXX = shutil.which(os.environ.get("CXX", "g++")) or shutil.which("g++")
FLAGS = ["-std=c++17", "-O0", "-g1", "-fsanitize=address,undefined", "-fno-sanitize-recover=all",
         "-fno-omit-frame-pointer", "-pthread"]
ENV = {**os.environ, "ASAN_OPTIONS": "detect_leaks=1:abort_on_error=0:exitcode=23",
       "UBSAN_OPTIONS": "halt_on_error=1:print_stacktrace=1:exitcode=24"}


def _sanitizers_work(tmp: Path) -> str | None:
    """None when a sanitized hello-world builds and runs; else why not."""
    if CXX is None:
        return "no g++ on PATH"
    src = tmp / "probe.cpp"
    src.write_text("int main() { return 0; }\n")
    build = subprocess.run([CXX, *FLAGS, str(src), "-o", str(tmp / "probe")], capture_output=True, text=True, check=False)
    if build.returncode != 0:
        return f"{CXX} cannot build with -fsanitize=address,undefined: {build.stderr.strip()[:200]}"
    run = subprocess.run([str(tmp / "probe")], capture_output=True, text=True, env=ENV, check=False)
    if run.returncode != 0:
        # e.g. LeakSanitizer under ptrace: the environment, not diffevo
        return f"sanitized programs do not run here: {run.stderr.strip()[:200]}"
    return None


def test_host_api_under_asan_and_ubsan(tmp_path):
    reason = _sanitizers_work(tmp_path)
    if reason:
        pytest.skip(reason)
    exe = tmp_path / "host_api_check"
    build = subprocess.run([CXX, *FLAGS, f"-I{ROOT / 'csrc' / 'include'}", str(DRIVER), "-o", str(exe)],
                           capture_output=True, text=True, timeout=600, check=False)
    assert build.returncode == 0, f"the driver does not compile:\n{build.stderr[-4000:]}"
    run = subprocess.run([str(exe)], capture_output=True, text=True, env=ENV, timeout=300, check=False)
    report = run.stdout[-4000:] + run.stderr[-8000:]
    assert "Sanitizer" not in run.stderr and "runtime error" not in run.stderr, report
    assert run.returncode == 0, report
    assert "0 failures" in run.stdout, report
