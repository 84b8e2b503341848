"""Bad input gets a clear exception that names the argument -- never NaN output."""

from __future__ import annotations

import re

import numpy as np
import pytest

import diffevo

X = np.random.default_rng(0).normal(size=(8, 2))
G = np.ones(8)


@pytest.mark.parametrize(
    "kwargs, exc, name",
    [
        (dict(x=np.ones(8)), ValueError, "x"),  # 1-D population
        (dict(x=np.ones((0, 2)), fitness=np.ones(0)), ValueError, "x"),  # N = 0
        (dict(x=np.ones((8, 0))), ValueError, "x"),  # D = 0
        (dict(x=np.array([[np.nan, 0.0]] * 8)), ValueError, "x"),
        (dict(x=np.array([[np.inf, 0.0]] * 8)), ValueError, "x"),
        (dict(x=X.astype(complex)), TypeError, "x"),
        (dict(fitness=np.ones(7)), ValueError, "fitness"),
        (dict(fitness=np.ones((8, 2))), ValueError, "fitness"),
        (dict(fitness=np.r_[np.nan, np.ones(7)]), ValueError, "fitness"),
        (dict(fitness=np.r_[-0.5, np.ones(7)]), ValueError, "fitness"),
        (dict(alpha=0.0), ValueError, "alpha"),
        (dict(alpha=1.0), ValueError, "alpha"),
        (dict(alpha=1.5), ValueError, "alpha"),
        (dict(alpha=float("nan")), ValueError, "alpha"),
        (dict(alpha="high"), TypeError, "alpha"),
        (dict(density="gaussian"), ValueError, "density"),
        (dict(mode="fast"), ValueError, "mode"),
        (dict(backend="opencl"), ValueError, "backend"),
        (dict(bandwidth=0.0, density="kde"), ValueError, "bandwidth"),
        (dict(latent=np.ones((7, 2))), ValueError, "latent"),
    ],
)
def test_x0_estimate_rejects(kwargs, exc, name):
    args = dict(x=X, fitness=G, alpha=0.5)
    args.update(kwargs)
    x, fitness, alpha = args.pop("x"), args.pop("fitness"), args.pop("alpha")
    with pytest.raises(exc, match=rf"\b{re.escape(name)}\b"):
        diffevo.x0_estimate(x, fitness, alpha, **args)


@pytest.mark.parametrize(
    "args, kwargs, name",
    [
        ((X, X[:3], 0.2, 0.5), {}, "x0"),
        ((X, X, 0.2, 0.5), dict(noise=2.0), "noise"),
        ((X, X, 0.2, 0.5), dict(noise=-0.1), "noise"),
        ((X, X, 0.5, 0.2), dict(noise=1.0), "alpha_prev"),
        ((X, X, 0.2, 1.5), {}, "alpha_prev"),
        ((X, X, 1.0, 1.0), {}, "alpha_t"),
        ((X, X, 0.2, 0.5), dict(z=np.ones((3, 2))), "z"),
    ],
)
def test_ddim_step_rejects(args, kwargs, name):
    with pytest.raises((ValueError, TypeError), match=rf"\b{name}\b"):
        diffevo.ddim_step(*args, **kwargs)


def test_generator_rejects_negative_mapped_fitness():
    with pytest.raises(ValueError, match="fitness must be non-negative"):
        diffevo.BayesianGenerator(X, np.linspace(-1, 1, 8), (0.2, 0.5))


def test_generator_rejects_bad_alpha_pair():
    with pytest.raises(TypeError, match="alpha"):
        diffevo.BayesianGenerator(X, G, 0.5)


def test_optimize_with_negative_identity_fitness_fails_clearly():
    opt = diffevo.DiffEvo(num_step=3, backend="numpy")
    with pytest.raises(ValueError, match="fitness must be non-negative"):
        opt.optimize(lambda x: -np.ones(len(x)), X)


@pytest.mark.parametrize("num_step", [1, 0, 2.5, "10"])
def test_scheduler_rejects(num_step):
    with pytest.raises((ValueError, TypeError), match="num_step"):
        diffevo.DDIMScheduler(num_step)


def test_backend_on_wrong_device_named():
    class FakeDeviceArray:  # speaks CUDA array interface but is not NumPy
        __cuda_array_interface__ = {"shape": (8, 2), "typestr": "<f8", "data": (0, False),
                                    "version": 3}
        shape, ndim = (8, 2), 2

    from diffevo import backends

    with pytest.raises(ValueError, match="GPU array"):
        backends.resolve("numpy", FakeDeviceArray())
    with pytest.raises(ValueError, match="host"):
        # a NumPy array given to the cuda backend, when cuda is available; else a clear
        # RuntimeError that it is not available
        try:
            backends.resolve("cuda", X)
        except RuntimeError as err:
            assert "not available" in str(err)
            raise ValueError("host array refused: cuda not available") from err


def test_random_projection_rejects():
    with pytest.raises(ValueError, match="out_dim"):
        diffevo.RandomProjection(4, 0)
    with pytest.raises(ValueError, match="x must have shape"):
        diffevo.RandomProjection(4, 2)(np.ones((3, 5)))


def test_mapping_rejects_bad_temperature():
    with pytest.raises(ValueError, match="temperature"):
        diffevo.Energy(temperature=0)


class _FakeDeviceVector:
    """Speaks the CUDA array interface (a device array) without needing a GPU."""

    __cuda_array_interface__ = {"shape": (8,), "typestr": "<f8", "data": (0, False), "version": 3}
    shape, ndim = (8,), 1


@pytest.mark.parametrize("argument", ["fitness", "latent"])
def test_device_array_beside_host_population_named(argument):
    kwargs = {"fitness": G}
    if argument == "fitness":
        kwargs["fitness"] = _FakeDeviceVector()
    else:
        kwargs["latent"] = _FakeDeviceVector()
    fitness = kwargs.pop("fitness")
    with pytest.raises(ValueError, match=rf"^{argument} is a GPU array but the population is a host"):
        diffevo.x0_estimate(X, fitness, 0.5, backend="numpy", **kwargs)


def test_device_noise_beside_host_step_named():
    with pytest.raises(ValueError, match=r"^z is a GPU array"):
        diffevo.ddim_step(X, X, 0.2, 0.5, z=_FakeDeviceVector())
