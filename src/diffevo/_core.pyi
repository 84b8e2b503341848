"""Typed stub of the compiled host module diffevo._core (csrc/python/bindings.cpp)."""

from typing import Literal, TypedDict

import numpy as np
import numpy.typing as npt

__version__: str
#: True when this build also produced the CUDA module diffevo._cuda
cuda_built: bool

_F32 = npt.NDArray[np.float32]
_F64 = npt.NDArray[np.float64]
_F = npt.NDArray[np.floating]

def pairwise_sums_f32(
    q: _F32, k: _F32, v: _F32, logc: _F32, s: float, inv2sigma2: float, online_max: bool
) -> tuple[_F32, _F32, _F32]:
    """(A, B, M) of the backend contract; 2-D arrays, or 3-D with a leading batch axis."""

def pairwise_sums_f64(
    q: _F64, k: _F64, v: _F64, logc: _F64, s: float, inv2sigma2: float, online_max: bool
) -> tuple[_F64, _F64, _F64]:
    """(A, B, M) of the backend contract; 2-D arrays, or 3-D with a leading batch axis."""

class _Testing:
    """The submodule ``diffevo._core.testing``: functions only the tests call (the C++
    host API, ``diffevo::host``, and the host simulation of the CUDA block bodies)."""

    @staticmethod
    def simulate_block_kernel(
        path: Literal["simt", "mma"],
        q: _F,
        k: _F,
        v: _F,
        logc: _F,
        s: float,
        inv2sigma2: float,
        online_max: bool,
        reverse_threads: bool = False,
    ) -> tuple[_F, _F, _F]:
        """The CUDA kernel's block bodies run on the host (simulated threads, emulated mma)."""

    @staticmethod
    def x0_estimate(
        x: _F,
        fitness: _F,
        alpha: float,
        latent: _F | None = None,
        density: Literal["uniform", "kde"] = "uniform",
        bandwidth: float = 0.1,
        mode: Literal["reference", "exact"] = "reference",
    ) -> _F:
        """diffevo::host::x0_estimate (SPEC section 3)."""

    @staticmethod
    def kde_density(z: _F, bandwidth: float = 0.1) -> _F:
        """diffevo::host::kde_density."""

    @staticmethod
    def ddim_step(
        x_t: _F, x0: _F, alpha_t: float, alpha_prev: float, noise: float = 1.0, z: _F | None = None
    ) -> _F:
        """diffevo::host::ddim_step (SPEC section 4)."""

testing: _Testing

class _TileConfig(TypedDict, total=False):
    threads: int
    warps: int
    rows_per_thread: int
    rows_per_warp: int
    block_rows: int
    tile_keys: int
    chunk_dims: int
    value_cols: int
    stages: int
    tf32_splits: int
    shared_bytes: int

class _KernelConfigs(TypedDict):
    #: float32 takes the tensor cores (the mma path) from this many dimensions
    tensor_core_min_d: int
    simt_f32: _TileConfig
    simt_f64: _TileConfig
    mma_f32: _TileConfig
    host: _TileConfig

def kernel_configs() -> _KernelConfigs:
    """Tile configurations: 'simt_f32', 'simt_f64', 'mma_f32' (GPU) and 'host', and the
    path rule 'tensor_core_min_d'."""
