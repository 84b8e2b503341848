"""A performance model of diffevo's CUDA kernels, read from their machine code (SASS).

THIS IS A MODEL, NOT A MEASUREMENT. It reads the compiled ``diffevo/_cuda*.so`` with
``cuobjdump``, finds each kernel's inner loop (the innermost loop that takes exponentials,
``MUFU.EX2``), counts its instructions by execution unit, divides by the pairs one pass
of the loop handles, and turns instructions per pair into seconds with the published
per-SM issue rates, SM counts and clocks of the A100, H100 SXM and H200. It adds the
device-memory (DRAM) and L2 traffic of the tiling, wave quantisation, and the O(N.D)
element-wise work around the kernel. The tilings and the tensor-core rule come from the
built module (``diffevo._core.kernel_configs()``). It runs anywhere cuobjdump runs, in seconds:

    python bench/gpu_model.py                      # markdown table + bench/results/gpu-model-<date>.json
    python bench/gpu_model.py --resources          # also bench/results/sass-resources-<date>.json
    python bench/gpu_model.py --module path/to/_cuda.so --json out.json

What it assumes (each stated where used): every warp instruction in the loop body is
issued once per loop iteration (predicated-off instructions still issue); units overlap
perfectly, so the slowest unit bounds the loop (a lower bound on time: latency, barriers
and dependency stalls are not modelled); shared-memory loads with a warp-uniform
address are one wavefront, others ``bytes/128`` wavefronts (no bank conflicts); blocks
running at the same time stream the same key tiles, so keys come from DRAM once per
wave and from L2 for every block.

Hardware figures (per SM per clock unless said), with sources:

* CUDA C++ Programming Guide, "Arithmetic Instructions", table "Throughput of Native
  Arithmetic Instructions (Operations per Clock Cycle per Multiprocessor)": cc 8.0 and
  9.0 -- FP32 add/mul/fma 64 (8.0) and 128 (9.0); FP64 32 (8.0) and 64 (9.0); 32-bit
  integer add/compare/min/max/logic/shift 64; exp2/log2/rcp/rsqrt/sin/cos (MUFU) 16;
  type conversions 16; warp shuffle 32. Every SM has 4 schedulers issuing one warp
  instruction per clock each (4 warp instructions per clock per SM).
* NVIDIA A100 Tensor Core GPU Architecture whitepaper (2020): A100 SXM4, 108 SMs, boost
  1410 MHz; peak FP32 19.5 TFLOPS, TF32 tensor 156 TFLOPS (dense), FP16 312, FP64 9.7,
  FP64 tensor 19.5; L2 40 MB with 5120 bytes/clock read bandwidth; 128 bytes/clock of
  shared memory per SM. A100 80GB datasheet: HBM2e 2,039 GB/s.
* NVIDIA H100 Tensor Core GPU Architecture whitepaper (2022) and H100 datasheet: H100
  SXM5, 132 SMs, FP32 66.9 TFLOPS (= 132 x 128 x 2 x 1.98 GHz), FP64 33.5, FP64 tensor
  66.9, TF32 tensor 494.7 TFLOPS dense (= 132 x 2048 FLOP x 1.83 GHz), HBM3 3.35 TB/s,
  L2 50 MB, 228 KB shared memory per SM.
* NVIDIA H200 datasheet (2024): the same GH100 compute as the H100 SXM (132 SMs, same
  clocks and peak FLOPS), 141 GB HBM3e at 4.8 TB/s.

Assumptions where no published figure exists (flagged ``assumed`` in the JSON):

* Warp-level ``mma.sync`` (SASS ``HMMA``) on Hopper: the whitepaper's tensor peak is for
  the warpgroup ``wgmma`` (SASS ``HGMMA``). We take HMMA at the A100's per-SM-per-clock
  rate (half of Hopper's wgmma peak): FlashAttention-2 (mma.sync) reaches about the
  same FLOP per SM per clock on both (Shah et al., FlashAttention-3, 2024: "35%
  utilization on H100" against 50-73% of A100's half-as-large peak).
* L2 bandwidth of the H100/H200: not published; we take the A100's 5120 bytes/clock.

Modules: :mod:`.sass` (tools, listing, units, loops), :mod:`.hardware` (the GPUs),
:mod:`.profile` (per-kernel profiles and tilings), :mod:`.predict` (seconds per
generation, floors), :mod:`.report` (the model, the table, the command line).
"""

from __future__ import annotations

from .hardware import CASES, GPUS, TARGETS, Gpu
from .predict import Prediction, WarpTile, blocks_per_sm, floors, predict, warp_tile
from .profile import (
                      KernelProfile,
                      Tiling,
                      auto_path,
                      kernel_configs,
                      kernel_table,
                      load_profiles,
                      profile_kernel,
                      read_tilings,
                      tensor_core_min_d,
)
from .report import main, markdown, model, resources_report
from .sass import (
                      Function,
                      Instr,
                      Region,
                      cuda_module_path,
                      dump_sass,
                      find_loops,
                      find_tool,
                      has_local_memory,
                      lds_wavefronts,
                      list_archs,
                      pair_loop,
                      parse_res_usage,
                      parse_sass,
                      resource_usage,
                      stored_elements,
                      unit_of,
                      whole_function,
)

__all__ = [
    "CASES", "GPUS", "TARGETS", "Function", "Gpu", "Instr", "KernelProfile", "Prediction", "Region", "Tiling",
    "WarpTile", "auto_path", "blocks_per_sm", "cuda_module_path", "dump_sass", "find_loops", "find_tool",
    "floors", "has_local_memory", "kernel_configs", "kernel_table", "lds_wavefronts", "list_archs",
    "load_profiles", "main", "markdown", "model", "pair_loop", "parse_res_usage", "parse_sass", "predict",
    "profile_kernel", "read_tilings", "resource_usage", "resources_report", "stored_elements", "tensor_core_min_d", "unit_of",
    "warp_tile", "whole_function",
]
