"""Python threads calling the kernels at once: no abort, no lost thread settings."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

pytest.importorskip("numba")

_THREADS = textwrap.dedent("""
    import sys, threading
    import numpy as np
    import diffevo
    rng = np.random.default_rng(0)
    x = rng.normal(size=(512, 2)).astype(np.float32)
    g = rng.random(512).astype(np.float32)
    want = diffevo.x0_estimate(x, g, 0.5, backend="numba")
    out, errors = [None] * 4, []
    def work(i):
        try:
            for _ in range(5):
                out[i] = diffevo.x0_estimate(x, g, 0.5, backend="numba", path=sys.argv[1])
        except Exception as err:  # pragma: no cover - reported below
            errors.append(repr(err))
    ts = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    [t.start() for t in ts]
    [t.join() for t in ts]
    assert not errors, errors
    assert all(np.array_equal(o, out[0]) for o in out)
    assert np.allclose(out[0], want, rtol=1e-3, atol=1e-4)
    import numba
    print(numba.threading_layer())
""")


@pytest.mark.parametrize("path", ["direct", "dot"])
def test_four_threads_on_the_workqueue_layer_do_not_abort(path):
    """Numba's workqueue layer aborts the process when two threads launch parallel
    kernels at once; the numba backend serialises its calls there."""
    env = dict(os.environ, NUMBA_THREADING_LAYER="workqueue")
    run = subprocess.run([sys.executable, "-c", _THREADS, path], capture_output=True,
                         text=True, timeout=300, env=env)
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.strip().splitlines()[-1] == "workqueue"


_RESTORE_SCRIPT = """
import threading
import numpy as np
import threadpoolctl
import diffevo

def blas_threads():
    return [p["num_threads"] for p in threadpoolctl.threadpool_info() if p["user_api"] == "blas"]

def run_concurrent():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(1100, 64)).astype(np.float32)
    g = rng.random(1100).astype(np.float32)
    barrier = threading.Barrier(3)

    def work():
        barrier.wait()
        for _ in range(3):
            diffevo.x0_estimate(x, g, 0.5, backend="numba", path="dot")

    ts = [threading.Thread(target=work) for _ in range(3)]
    [t.start() for t in ts]
    [t.join() for t in ts]

with threadpoolctl.threadpool_limits(2, user_api="blas"):
    before = blas_threads()
    run_concurrent()
    after = blas_threads()
print(before, after)
assert before and after == before, (before, after)
"""


def test_concurrent_dot_calls_restore_the_blas_thread_count():
    """Interleaved calls on the dot-product path (each limits BLAS to one thread) must
    leave BLAS as they found it once all have returned. In a fresh process: in the full
    suite, earlier tests' libraries and threads (torch, Dask) changed BLAS' limits under
    the check, which then failed now and then for reasons not its own."""
    pytest.importorskip("threadpoolctl")
    import subprocess
    import sys

    result = subprocess.run([sys.executable, "-c", _RESTORE_SCRIPT], capture_output=True,
                            text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr[-2000:]


def test_blas_limiter_is_made_once_under_concurrent_first_calls(monkeypatch):
    """Threads making their first dot-path call together share ONE limiter (two limiters
    each saved the other's one-thread limit as the original and left BLAS at one)."""
    threadpoolctl = pytest.importorskip("threadpoolctl")
    import threading
    import time

    from diffevo.backends import _numba_gemm

    made = []

    class SlowController:  # a slow library scan widens the race window
        def __init__(self):
            time.sleep(0.05)
            made.append(self)

    monkeypatch.setattr(threadpoolctl, "ThreadpoolController", SlowController)
    monkeypatch.setattr(_numba_gemm, "_LIMIT", None)
    barrier = threading.Barrier(4)
    got = []

    def first_call():
        barrier.wait()
        got.append(_numba_gemm.blas_single_thread())

    threads = [threading.Thread(target=first_call) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(made) == 1
    assert all(limiter is got[0] for limiter in got)
