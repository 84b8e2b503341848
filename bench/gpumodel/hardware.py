"""The modelled GPUs: SM counts, clocks, per-SM issue rates, memory bandwidths (sources in
the package docstring and in each entry), and the benchmark cases with their targets."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass


@dataclass(frozen=True)
class Gpu:
    name: str
    sass: str  # which SASS in the module runs on it
    sms: int
    clock_hz: float  # boost clock of the SIMT pipes
    # warp instructions per clock per SM
    issue: float
    fp32: float
    alu: float
    imad: float
    mufu: float
    fp64: float
    shared_wavefronts: float  # 128-byte wavefronts per clock per SM
    # tensor multiply-adds per second, whole GPU, by kind (HMMA / DMMA, dense)
    tensor_fma_per_s: dict
    dram_bytes_per_s: float
    l2_bytes_per_s: float
    l2_bytes: float
    memory_bytes: float
    assumed: tuple = ()
    sources: str = ""


GPUS = {
    "A100-SXM4-80GB": Gpu(
        name="A100-SXM4-80GB", sass="sm_80", sms=108, clock_hz=1.410e9,
        issue=4, fp32=2, alu=2, imad=2, mufu=0.5, fp64=1, shared_wavefronts=1,
        tensor_fma_per_s={"tf32": 156e12 / 2, "f16": 312e12 / 2, "f64": 19.5e12 / 2,
                          "int": 624e12 / 2},
        dram_bytes_per_s=2.039e12, l2_bytes_per_s=5120 * 1.410e9, l2_bytes=40e6, memory_bytes=80e9,
        sources="A100 whitepaper (2020) tables 1 and 3; A100 80GB datasheet; CUDA C++ Programming "
                "Guide throughput table (cc 8.0)",
    ),
    "H100-SXM5-80GB": Gpu(
        name="H100-SXM5-80GB", sass="sm_90a", sms=132, clock_hz=1.98e9,
        issue=4, fp32=4, alu=2, imad=2, mufu=0.5, fp64=2, shared_wavefronts=1,
        # HMMA (mma.sync) at A100's per-SM-per-clock rate x 132 SMs x 1.83 GHz: assumed
        tensor_fma_per_s={"tf32": 132 * 512 * 1.83e9, "f16": 132 * 1024 * 1.83e9,
                          "f64": 66.9e12 / 2, "int": 132 * 2048 * 1.83e9},
        dram_bytes_per_s=3.35e12, l2_bytes_per_s=5120 * 1.98e9, l2_bytes=50e6, memory_bytes=80e9,
        assumed=("tensor_fma_per_s[tf32,f16,int]: mma.sync at A100's per-SM-per-clock rate",
                 "l2_bytes_per_s: A100's 5120 B/clk"),
        sources="H100 whitepaper (2022); H100 SXM5 datasheet; CUDA C++ Programming Guide (cc 9.0)",
    ),
}
# the H200: the H100 SXM's GH100 compute with HBM3e
GPUS["H200-SXM-141GB"] = dataclasses.replace(
    GPUS["H100-SXM5-80GB"], name="H200-SXM-141GB", dram_bytes_per_s=4.8e12, memory_bytes=141e9,
    sources="H200 datasheet (2024): GH100 compute of the H100 SXM, HBM3e 4.8 TB/s")

#: the CUDA issue's benchmark cases and targets (H100), seconds per generation
CASES = [(65536, 2), (262144, 2), (1048576, 2), (65536, 64), (262144, 64), (1048576, 64),
         (65536, 1024)]
TARGETS = {(1048576, 2): 0.3, (1048576, 64): 1.0, (100000, 1024): 0.1}
