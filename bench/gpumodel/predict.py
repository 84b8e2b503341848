"""The prediction: warp instructions per key tile -> seconds per generation on one GPU, and
the floors no kernel of a given form can beat."""

from __future__ import annotations

import dataclasses
import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from .hardware import Gpu
from .profile import KernelProfile, Tiling, _flatten, _opcodes_total, _total

# ---------------------------------------------------------------------------
# the model
# ---------------------------------------------------------------------------

#: warp instructions per clock per SM of each counted unit (``Gpu`` fields)
_UNIT_RATE = {"fp32": "fp32", "imad": "imad", "alu": "alu", "mufu": "mufu", "fp64": "fp64"}
#: element-wise passes over N x D floats around the kernel, per generation: log(c), the
#: shift's exp, A*scale, c@x, numerator, denominator, the division (read 2, write 1),
#: the DDIM step (eps_t, x_prev, the normal draw, the noise add): ~16 reads+writes
EPILOGUE_PASSES = 16
#: CuPy operations per generation (each ~10 us of Python and launch overhead)
HOST_OPS, HOST_OP_SECONDS = 30, 10e-6


@dataclass
class WarpTile:
    """What one warp issues for one key tile (and how many pairs that covers)."""

    units: Counter
    shared_wavefronts: float
    tensor_fma: Counter
    pairs: int
    opcodes: Counter = field(default_factory=Counter)


def warp_tile(prof: KernelProfile, tiling: Tiling, d: int, dv: int) -> WarpTile:
    nchunks = max(1, math.ceil(d / tiling.dk))
    col_chunks = max(1, math.ceil(max(dv, 1) / tiling.dvc))
    dvc_eff = max(dv, 0) / col_chunks  # active value columns of an average block
    units: Counter = Counter()
    ops: Counter = Counter()
    tensor: Counter = Counter()
    wave = 0.0
    pair_units = Counter(prof.pair.counts)
    if prof.path == "simt":
        frac = min(dvc_eff, tiling.dvc) / tiling.dvc
        pair_units.subtract(prof.guarded_columns)
        units.update({k: v for k, v in pair_units.items() if v > 0})
        units.update({k: v * frac for k, v in prof.guarded_columns.items()})
        pair_ops = Counter(prof.pair.opcodes)
        pair_ops.subtract(prof.guarded_opcodes)
        ops.update({k: v for k, v in pair_ops.items() if v > 0})
        ops.update({k: v * frac for k, v in prof.guarded_opcodes.items()})
        wave += prof.pair.shared_wavefronts - prof.guarded_wavefronts + prof.guarded_wavefronts * frac
        if prof.distance is not None:
            dist = _total(prof.distance)
            fadd = sum(n for op, n in _opcodes_total(prof.distance).items() if op.startswith("FADD"))
            per_lane_pairs = tiling.rows_per_warp // 32 * tiling.bn
            dims_per_trip = max(1, round(fadd / per_lane_pairs)) if per_lane_pairs else 1
            trips = d / dims_per_trip
            units.update({k: v * trips for k, v in dist.items()})
            ops.update({k: v * trips for k, v in _opcodes_total(prof.distance).items()})
            wave += sum(r.shared_wavefronts for r in _flatten(prof.distance)) * trips
        staged = tiling.bn * d + tiling.bn * min(dvc_eff, tiling.dvc) + tiling.bn
    else:
        units.update(pair_units)
        ops.update(prof.pair.opcodes)
        wave += prof.pair.shared_wavefronts
        tensor.update(prof.pair.tensor_fma)
        if prof.chunk is not None:
            units.update({k: v * nchunks for k, v in prof.chunk.counts.items()})
            ops.update({k: v * nchunks for k, v in prof.chunk.opcodes.items()})
            wave += prof.chunk.shared_wavefronts * nchunks
            tensor.update({k: v * nchunks for k, v in prof.chunk.tensor_fma.items()})
        staged = (tiling.bn * tiling.dk * nchunks + (tiling.bm * tiling.dk * nchunks if nchunks > 1 else 0)
                  + tiling.bn * tiling.dvc + tiling.bn)
    # staging: per staged element (lane) cost from the staging loops' SASS, shared by the warps
    per_warp_elems = staged / 32 / tiling.warps
    units.update({k: v * per_warp_elems for k, v in prof.staging.items()})
    ops.update({f"(staging) {k}": v * per_warp_elems for k, v in prof.staging_opcodes.items()})
    wave += prof.staging_wavefronts * per_warp_elems
    return WarpTile(units=units, shared_wavefronts=wave, tensor_fma=tensor,
                    pairs=tiling.rows_per_warp * tiling.bn, opcodes=ops)


def blocks_per_sm(gpu: Gpu, registers: int, shared: int, threads: int) -> int:
    """Resident blocks per SM (registers allocated per warp in units of 256; 64K registers,
    2048 threads, 32 blocks; shared memory 164 KB (A100) / 228 KB (H100), 1 KB reserved per block)."""
    regs_per_warp = math.ceil(max(registers, 1) * 32 / 256) * 256
    by_regs = 65536 // (regs_per_warp * (threads // 32))
    smem_sm = 164 * 1024 if gpu.sass == "sm_80" else 228 * 1024
    by_smem = smem_sm // (shared + 1024) if shared else 32
    return max(0, min(by_regs, by_smem, 2048 // threads, 32))


@dataclass
class Prediction:
    gpu: str
    n: int
    d: int
    path: str
    kernel: str
    seconds: float
    bound: str
    kernel_seconds: float
    unit_seconds: dict
    other_seconds: dict
    blocks_per_sm: int
    waves: int
    pairs_per_s: float
    instructions_per_pair: dict
    top_opcodes_per_pair: dict
    notes: list

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def predict(prof: KernelProfile, res: dict, tiling: Tiling, gpu: Gpu, n: int, d: int,
            dv: int | None = None) -> Prediction:
    """Seconds per generation (x0 estimate + DDIM step) of an N x D float32 population."""
    dv = d if dv is None else dv
    wt = warp_tile(prof, tiling, d, dv)
    col_chunks = max(1, math.ceil(max(dv, 1) / tiling.dvc))
    blocks = math.ceil(n / tiling.bm) * col_chunks
    tiles = math.ceil(n / tiling.bn)
    bps = blocks_per_sm(gpu, res.get("registers", 128), res.get("shared_bytes", 0), tiling.threads)
    notes = list(prof.notes)
    if bps == 0:
        notes.append("kernel does not fit on an SM (registers/shared memory)")
        bps = 1
    waves = math.ceil(blocks / (gpu.sms * bps))
    warp_tiles_per_sm_wave = bps * tiling.warps * tiles  # per SM, one wave
    clk: dict[str, float] = {}
    for unit, field_name in _UNIT_RATE.items():
        if wt.units.get(unit):
            clk[unit] = wt.units[unit] * warp_tiles_per_sm_wave / getattr(gpu, field_name)
    issued = sum(v for k, v in wt.units.items() if k != "nop")
    clk["issue"] = issued * warp_tiles_per_sm_wave / gpu.issue
    clk["shared memory"] = wt.shared_wavefronts * warp_tiles_per_sm_wave / gpu.shared_wavefronts
    unit_s = {k: waves * v / gpu.clock_hz for k, v in clk.items()}
    for kind, fma in wt.tensor_fma.items():
        per_sm_rate = gpu.tensor_fma_per_s[kind] / gpu.sms
        unit_s[f"tensor ({kind})"] = waves * fma * warp_tiles_per_sm_wave / per_sm_rate
    # memory: keys/values stream from L2 into every block; from DRAM once per wave
    # (concurrent blocks walk the key tiles together), or once if they fit in L2
    dvc_eff = min(dv, tiling.dvc) if prof.path == "simt" else tiling.dvc
    tile_bytes = 4 * tiling.bn * (d + dvc_eff + 1)
    l2_bytes = blocks * tiles * tile_bytes
    key_bytes = 4 * n * (d + dv + 1)
    dram_bytes = (key_bytes if key_bytes < 0.5 * gpu.l2_bytes else waves * key_bytes) + 4 * n * (d + dv + 3)
    unit_s["L2"] = l2_bytes / gpu.l2_bytes_per_s
    unit_s["DRAM"] = dram_bytes / gpu.dram_bytes_per_s
    bound = max(unit_s, key=unit_s.get)
    kernel_s = unit_s[bound]
    other = {
        "elementwise (DRAM)": EPILOGUE_PASSES * 4 * n * d / gpu.dram_bytes_per_s,
        "host/launch": HOST_OPS * HOST_OP_SECONDS,
    }
    if prof.path == "mma":  # prologue: mean of the keys and the row/key norms (reads x twice)
        other["mma prologue (DRAM)"] = 2 * 4 * n * d / gpu.dram_bytes_per_s
    total = kernel_s + sum(other.values())
    # per pair (i, j), in thread (lane) instructions -- a warp instruction is 32 lanes'
    # work -- counting every block that visits the pair (col_chunks of them)
    per = col_chunks / wt.pairs
    per_pair = {k: 32 * v * per for k, v in wt.units.items() if v}
    per_pair["issued (all units)"] = 32 * issued * per
    per_pair["shared wavefronts"] = wt.shared_wavefronts * per
    for kind, fma in wt.tensor_fma.items():
        per_pair[f"tensor multiply-adds ({kind})"] = fma * per
    top_ops = {k: round(32 * v * per, 3) for k, v in wt.opcodes.most_common(12)}
    if col_chunks > 1:
        notes.append(f"value columns split over {col_chunks} blocks: distances and exps computed "
                     f"{col_chunks}x per pair")
    return Prediction(gpu=gpu.name, n=n, d=d, path=prof.path, kernel=prof.name, seconds=total,
                      bound=bound, kernel_seconds=kernel_s, unit_seconds=unit_s, other_seconds=other,
                      blocks_per_sm=bps, waves=waves, pairs_per_s=n * n / total,
                      instructions_per_pair={k: round(v, 4) for k, v in per_pair.items()},
                      top_opcodes_per_pair=top_ops, notes=notes)




def floors(gpu: Gpu, n: int, d: int, dv: int | None = None) -> dict[str, float]:
    """Lower bounds (seconds) of the pair work on one unit, whatever the kernel's overhead.

    exp: one MUFU.EX2 per pair. fp32 direct: the SIMT form's minimum FP32 work per pair
    (2d for the distance, 1 exponent, 1 for B, dv for A). tensor: multiply-adds per pair
    of the dot-product form on the tensor cores, Q.K (d) and W.V (dv), with 3xTF32 (three
    passes, ~fp32 accuracy) or one TF32 pass, at the mma.sync (HMMA) rate and, on Hopper,
    the wgmma rate (twice that; needs sm_90a).
    """
    dv = d if dv is None else dv
    pairs = float(n) * n
    out = {
        "exp (MUFU)": pairs / (gpu.sms * 32 * gpu.mufu * gpu.clock_hz),
        "fp32 direct (SIMT)": pairs * (2 * d + 2 + dv) / (gpu.sms * 32 * gpu.fp32 * gpu.clock_hz),
    }
    hmma = gpu.tensor_fma_per_s["tf32"]
    for label, fma in (("3xTF32 QK + 3xTF32 WV", 3 * d + 3 * dv), ("3xTF32 QK + 1xTF32 WV", 3 * d + dv),
                       ("1xTF32 QK + 1xTF32 WV", d + dv)):
        out[f"tensor {label}, mma.sync"] = pairs * fma / hmma
        if gpu.sass.startswith("sm_90"):
            out[f"tensor {label}, wgmma"] = pairs * fma / (2 * hmma)
    return out

