"""Typed stub of the compiled CUDA module diffevo._cuda (csrc/python/cuda_module.cpp).

Built only with CUDA; importing it never needs a driver (cudart is linked statically).
All pointers are device addresses as Python ints, C-contiguous and batch-major; every
call only enqueues work on ``stream_ptr`` (0: the default stream) and returns.
"""

from typing import Literal, TypedDict

__version__: str

def device_count() -> int:
    """Number of CUDA devices; 0 (no exception) without a device or driver."""

def pairwise_sums(
    q_ptr: int,
    k_ptr: int,
    v_ptr: int,
    logc_ptr: int,
    a_ptr: int,
    b_ptr: int,
    m_ptr: int,
    batch: int,
    nq: int,
    nk: int,
    d: int,
    dv: int,
    s: float,
    inv2sigma2: float,
    online_max: bool,
    is_double: bool,
    stream_ptr: int,
    path: Literal["auto", "simt", "mma"] = "auto",
) -> None:
    """Enqueue the pairwise sums: q [batch, nq, d], k [batch, nk, d], v [batch, nk, dv],
    logc [batch, nk] -> a [batch, nq, dv], b [batch, nq], m [batch, nq]."""

def choose_path(is_double: bool, d: int) -> Literal["simt", "mma"]:
    """What path='auto' runs: 'mma' for float32 with d >= 32, else 'simt'."""

def x0_estimate(
    x_ptr: int,
    g_ptr: int,
    latent_ptr: int,
    x0_ptr: int,
    n: int,
    D: int,
    dl: int,
    alpha: float,
    kde: bool,
    bandwidth: float,
    exact: bool,
    is_double: bool,
    stream_ptr: int,
    path: Literal["auto", "simt", "mma"] = "auto",
) -> None: ...
def kde_density(
    z_ptr: int,
    p_ptr: int,
    n: int,
    d: int,
    bandwidth: float,
    is_double: bool,
    stream_ptr: int,
    path: Literal["auto", "simt", "mma"] = "auto",
) -> None: ...
def ddim_step(
    x_t_ptr: int,
    x0_ptr: int,
    z_ptr: int,
    x_prev_ptr: int,
    count: int,
    alpha_t: float,
    alpha_prev: float,
    noise: float,
    is_double: bool,
    stream_ptr: int,
) -> None: ...
def kernel_names() -> list[str]:
    """Mangled names of the six pairwise kernels, as cuobjdump prints them."""

class _KernelInfo(TypedDict):
    name: str
    path: Literal["simt", "mma"]
    dtype: Literal["float32", "float64"]
    online_max: bool

def kernels() -> list[_KernelInfo]: ...
