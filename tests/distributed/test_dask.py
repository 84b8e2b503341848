"""diffevo.distributed on a 2-worker LocalCluster: equal to the local estimate."""

from __future__ import annotations

import os
import signal
import threading
import time

import numpy as np
import pytest

import diffevo

distributed = pytest.importorskip("distributed")
dd = pytest.importorskip("diffevo.distributed")


@pytest.fixture(scope="module")
def client():
    # in-process workers: ~0.1 s to start (worker processes: ~4 s, and a numba import each);
    # dashboard on a free port: even without a dashboard the scheduler's HTTP server asks
    # for :8787, and another cluster on the machine turns that into a warning (an error here)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False,
                                  dashboard_address=":0") as cluster, distributed.Client(cluster) as c:
        yield c


def data(n=3000, d=2, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, d)), rng.random(n)


@pytest.mark.parametrize("mode", ["reference", "exact"])
@pytest.mark.parametrize("density", ["uniform", "kde"])
def test_equals_local_estimate(client, mode, density):
    x, g = data()
    got = dd.x0_estimate(x, g, 0.9, client=client, mode=mode, density=density)
    want = diffevo.x0_estimate(x, g, 0.9, mode=mode, density=density)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-6)
    assert np.abs(got - want).max() < 1e-12  # same kernels, same rows: rounding only


def test_latent_batched_kde_and_blocks(client):
    x, g = data(1000, d=5, seed=1)
    latent = x[:, :2].copy()
    be = dd.DaskSums(client, blocks=7)
    got = diffevo.x0_estimate(x, g, 0.6, latent=latent, backend=be)
    assert be.last["blocks"] == 7
    assert be.last["scatter_bytes"] == latent.nbytes + x.nbytes + g.nbytes
    np.testing.assert_allclose(got, diffevo.x0_estimate(x, g, 0.6, latent=latent), rtol=0, atol=1e-12)
    xb, gb = np.stack([x, x[::-1].copy()]), np.stack([g, g[::-1].copy()])
    np.testing.assert_allclose(dd.x0_estimate(xb, gb, 0.6, client=client),
                               diffevo.x0_estimate(xb, gb, 0.6), rtol=0, atol=1e-12)
    np.testing.assert_allclose(dd.kde_density(x, 0.5, client=client), diffevo.kde_density(x, 0.5),
                               rtol=1e-12)


def test_grid_approximation_on_the_cluster(client):
    x, g = data(4000, seed=2)
    got = dd.x0_estimate(x, g, 0.5, client=client, approx="grid")
    assert np.abs(got - diffevo.x0_estimate(x, g, 0.5)).max() <= 1e-3 * x.std()


def test_optimiser_with_client_matches_local(client):
    f = lambda x: ((x - 0.5) ** 2).sum(-1)
    kw = {"x0": np.zeros(2), "popsize": 256, "maxiter": 8, "seed": 3, "vectorized": True}
    local = diffevo.minimize(f, **kw)
    remote = diffevo.minimize(f, client=client, **kw)
    np.testing.assert_allclose(remote.x, local.x, rtol=0, atol=1e-9)
    es = diffevo.DiffusionEvolution(64, np.zeros(2), num_step=3, seed=0, client=client)
    for _ in range(3):
        es.tell(f(es.ask()))


def test_bad_arguments(client):
    with pytest.raises(TypeError, match="client"):
        dd.DaskSums(object())
    with pytest.raises(ValueError, match="blocks"):
        dd.DaskSums(client, blocks=0)
    with pytest.raises(ValueError, match="base"):
        dd.DaskSums(client, base="fortran")
    with pytest.raises(TypeError, match="client"):
        diffevo.minimize(lambda x: x.sum(), x0=np.zeros(2), popsize=8, maxiter=2, client="tcp://x")


@pytest.mark.slow
def test_killed_worker_is_retried_with_the_same_result():
    """A worker process killed mid-call: Dask recomputes its blocks on the other one."""
    x, g = data(6000, seed=4)
    want = diffevo.x0_estimate(x, g, 0.9, backend="numpy")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=":0") as cluster, distributed.Client(cluster) as c:
        pids = c.run(os.getpid)
        out = {}
        # the slow numpy backend on the workers: each of the 12 blocks takes a while
        call = threading.Thread(target=lambda: out.setdefault(
            "x0", dd.x0_estimate(x, g, 0.9, client=c, backend="numpy", blocks=12)))
        call.start()
        deadline = time.monotonic() + 60
        while not any(c.processing().values()) and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(0.2)
        os.kill(next(iter(pids.values())), signal.SIGKILL)
        killed_mid_call = call.is_alive()
        call.join(120)
    assert killed_mid_call
    np.testing.assert_allclose(out["x0"], want, rtol=0, atol=1e-12)
