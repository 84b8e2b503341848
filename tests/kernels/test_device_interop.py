"""Device interop (diffevo._device): CAI parsing runs everywhere; producers' streams,
zero-copy views and the caller's own array kind back need a GPU."""

from __future__ import annotations

import sys

import numpy as np
import pytest

import diffevo
from diffevo import _device
from gpu_common import (RTOL32, RTOL64, FakeDeviceArray,
                        gpu, scale_err)

def cai(**over):
    base = {"shape": (4, 3), "typestr": "<f4", "data": (0x1000, False), "version": 3}
    base.update(over)
    return base


def test_parse_cai_c_contiguous_default_strides():
    info = _device.parse_cai(cai())
    assert info.ptr == 0x1000 and info.shape == (4, 3) and info.dtype == np.float32
    assert info.strides == (12, 4) and info.c_contiguous
    assert (info.lo, info.hi) == (0, 48) and info.stream is None and not info.readonly


def test_parse_cai_explicit_strides_transposed_and_negative():
    t = _device.parse_cai(cai(shape=(3, 4), strides=(4, 12)))  # a transposed (4, 3) array
    assert not t.c_contiguous and (t.lo, t.hi) == (0, 48)
    n = _device.parse_cai(cai(shape=(4,), typestr="<f8", strides=(-8,)))  # x[::-1]
    assert not n.c_contiguous and (n.lo, n.hi) == (-24, 8)
    one = _device.parse_cai(cai(shape=(1, 3), strides=(999, 4)))  # a length-1 axis' stride is free
    assert one.c_contiguous


def test_parse_cai_stream_and_readonly():
    info = _device.parse_cai(cai(stream=2, data=(0x2000, True)))
    assert info.stream == 2 and info.readonly
    assert _device.parse_cai(cai(version=2)).stream is None  # v2 has no stream: no sync asked


def test_parse_cai_empty_array_may_have_null_pointer():
    info = _device.parse_cai(cai(shape=(0, 3), data=(0, False)))
    assert info.size == 0 and (info.lo, info.hi) == (0, 0)


@pytest.mark.parametrize(
    "bad, exc, pattern",
    [
        ({"shape": None}, ValueError, "shape"),
        ({"shape": (4, -1)}, ValueError, "negative"),
        ({"typestr": "<zz"}, ValueError, "typestr"),
        ({"typestr": ">f4" if sys.byteorder == "little" else "<f4"}, ValueError, "byte order"),
        ({"data": 0x1000}, ValueError, "data"),
        ({"data": (0, False)}, ValueError, "null pointer"),
        ({"mask": object()}, ValueError, "masked"),
        ({"stream": 0}, ValueError, "stream"),
        ({"strides": (4,)}, ValueError, "strides"),
    ],
)
def test_parse_cai_rejects(bad, exc, pattern):
    with pytest.raises(exc, match=pattern) as info:
        _device.parse_cai(cai(**bad), "latent")
    assert "latent" in str(info.value)  # the error names the argument


def test_parse_cai_requires_entries():
    with pytest.raises(ValueError, match="'version'"):
        _device.parse_cai({"shape": (1,), "typestr": "<f4", "data": (1, False)}, "x")
    with pytest.raises(TypeError, match="dict"):
        _device.parse_cai([("shape", (1,))], "x")




def test_caller_kind_keeps_other_kinds():
    out = object()
    assert _device.caller_kind(out, FakeDeviceArray()) is out
    assert _device.caller_kind(out, np.ones(3)) is out
    assert not _device.is_foreign_device_array(np.ones(3))
    assert _device.is_foreign_device_array(FakeDeviceArray())


def _cp():
    import cupy

    return cupy


@gpu
def test_wrong_device_is_named():
    cp = _cp()
    if cp.cuda.runtime.getDeviceCount() < 2:
        pytest.skip("needs two CUDA devices")
    with cp.cuda.Device(1):
        x1 = cp.ones((8, 2))
    with cp.cuda.Device(0):
        with pytest.raises(ValueError, match=r"\bx is on CUDA device 1 but the current device is 0"):
            diffevo.x0_estimate(x1, cp.ones(8), 0.5)
        with pytest.raises(ValueError, match=r"\bfitness is on CUDA device 1"):
            diffevo.x0_estimate(cp.ones((8, 2)), x1[:, 0], 0.5)


class CaiProducer:
    """A foreign array: only the CUDA array interface of a CuPy array, with a stream."""

    def __init__(self, arr, stream_ptr):
        self._arr = arr
        desc = dict(arr.__cuda_array_interface__)
        desc["stream"] = stream_ptr
        self.__cuda_array_interface__ = desc


@gpu
def test_cai_producer_stream_is_honoured_without_copy():
    cp = _cp()
    producer = cp.cuda.Stream(non_blocking=True)
    n, d = 2053, 8
    with producer:  # the producer fills x on its own stream; nobody synchronises the host
        x = cp.random.default_rng(0).standard_normal((n, d))
        for _ in range(20):  # a slow chain of kernels: the consumer must wait for all of them
            x = x * 1.0 + 0.0
        g = cp.ones(n)
    fx, fg = CaiProducer(x, producer.ptr), CaiProducer(g, producer.ptr)
    view = _device.as_cupy(fx, "x")
    assert view.data.ptr == x.data.ptr  # zero copy
    got = diffevo.x0_estimate(fx, fg, 0.5)  # on CuPy's current (null) stream
    assert isinstance(got, cp.ndarray)  # an unknown producer gets CuPy arrays back
    producer.synchronize()
    ref = diffevo.x0_estimate(x.get(), g.get(), 0.5, backend="numpy")
    assert scale_err(got.get(), ref) <= RTOL64


@gpu
def test_torch_tensors_in_torch_tensors_out():
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("torch was built without CUDA")
    cp = _cp()
    stream = torch.cuda.Stream()
    with torch.cuda.stream(stream):  # the producer works on its own stream
        x = torch.randn(1031, 33, device="cuda", dtype=torch.float32)
        g = torch.rand(1031, device="cuda", dtype=torch.float32)
        view = _device.as_cupy(x, "x")
        assert view.data.ptr == x.data_ptr()  # zero copy
        x0 = diffevo.x0_estimate(x, g, 0.7, density="kde")
        x_next = diffevo.ddim_step(x, x0, 0.7, 0.8, noise=0)
        kde = diffevo.kde_density(x, 0.5)
    for t in (x0, x_next, kde):
        assert isinstance(t, torch.Tensor) and t.device == x.device and t.dtype == torch.float32
    stream.synchronize()
    xh, gh = x.cpu().numpy(), g.cpu().numpy()
    ref = diffevo.x0_estimate(xh.astype(np.float64), gh.astype(np.float64), 0.7, density="kde",
                              backend="numpy")
    own = scale_err(diffevo.x0_estimate(xh, gh, 0.7, density="kde", backend="numpy"), ref)
    assert scale_err(x0.cpu().numpy(), ref) <= max(RTOL32, 8 * own)
    ref_kde = diffevo.kde_density(xh.astype(np.float64), 0.5, backend="numpy")
    assert scale_err(kde.cpu().numpy(), ref_kde) <= RTOL32
    assert isinstance(view, cp.ndarray)


