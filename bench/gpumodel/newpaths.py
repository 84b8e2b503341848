"""The model of issue 17's new kernel paths, from their SASS: the small-D SIMT body
(``detail/simt_small_block.hpp``) and the sm_90a warpgroup path (``detail/wgmma_block.hpp``).

What is counted (static SASS of the pair loops, per warp, every instruction issued):

* small-D SIMT: the key loop (4 keys x Rows rows per trip, 32 trips per 128-key tile)
  plus, once per tile, the tile loop's own instructions (staging, barriers).
* warpgroup: the item loop's body. Its S part (cp.async issue of the next item, the
  S = Q'K'^T HGMMAs and their wait) runs once per (key tile, 64-dimension chunk); the rest
  (exponents, weights, W split, A rescale, the W.V HGMMAs) once per key tile. The A rescale
  is skipped at run time when no row maximum moved; it is counted in full (an upper bound).
  Tensor work: m * n * k of every HGMMA, at the wgmma f16 rate.

Time per unit = work per SM / the unit's rate, over the waves of resident blocks; two
totals: ``overlap`` = the slowest unit (the convention of the rest of the model: a lower
bound) and ``serial`` = issue + tensor (one warpgroup that waits for each HGMMA group
before its next phase; with one resident block per SM nothing hides the other).
Per generation: + the prologue (DRAM: the split planes written and read once) + the
epilogue passes and host operations of the existing model.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from .hardware import Gpu
from .predict import EPILOGUE_PASSES, HOST_OP_SECONDS, HOST_OPS, blocks_per_sm
from .sass import Function, dump_sass, find_loops, resource_usage, unit_of

#: dense f16/bf16 wgmma multiply-adds per second (H100 SXM5: 989.4 TFLOPS dense FP16 at
#: 1.83 GHz = 2048 FMA per clock per SM, H100 whitepaper table 2); twice mma.sync's
WGMMA_F16 = {"H100-SXM5-80GB": 132 * 2048 * 1.83e9, "H200-SXM-141GB": 132 * 2048 * 1.83e9}

_HGMMA_RE = re.compile(r"HGMMA\.(\d+)x(\d+)x(\d+)")


def hgmma_fma(opcode: str) -> int:
    m = _HGMMA_RE.match(opcode)
    return int(m.group(1)) * int(m.group(2)) * int(m.group(3)) if m else 0


@dataclass
class Counts:
    units: Counter
    ops: Counter
    tensor_fma: int = 0

    def issued(self) -> float:
        return sum(v for k, v in self.units.items() if k != "nop")


def count(fn: Function, lo: int, hi: int, skip: tuple[int, int] | None = None) -> Counts:
    units: Counter = Counter()
    ops: Counter = Counter()
    fma = 0
    for ins in fn.instrs:
        if lo <= ins.addr <= hi and not (skip and skip[0] <= ins.addr <= skip[1]):
            units[unit_of(ins)] += 1
            ops[ins.opcode.split(".")[0]] += 1
            fma += hgmma_fma(ins.opcode)
    return Counts(units, ops, fma)


def _sub(a: Counts, b: Counts) -> Counts:
    u = Counter(a.units)
    u.subtract(b.units)
    o = Counter(a.ops)
    o.subtract(b.ops)
    return Counts(+u, +o, a.tensor_fma - b.tensor_fma)


@dataclass
class WgProfile:
    ld: int
    dvc: int
    online: bool
    s_part: Counts  # once per item (tile, chunk)
    tile_part: Counts  # once per tile
    registers: int


def profile_wg(fn: Function, ld: int, dvc: int, online: bool, registers: int) -> WgProfile:
    loops = find_loops(fn)
    lo, hi = max(loops, key=lambda x: x[1] - x[0])
    body = [i for i in fn.instrs if lo <= i.addr <= hi]
    # the S part ends at the first wgmma wait of the body followed by the `continue` branch
    split = hi
    if ld == 0:
        waits = [i.addr for i in body if i.opcode.startswith("WARPGROUP.DEPBAR")]
        after = [i.addr for i in body if i.addr > waits[0] and i.opcode.startswith("BRA")]
        split = after[0]
    whole = count(fn, lo, hi)
    s_part = count(fn, lo, split) if ld == 0 else Counts(Counter(), Counter(), 0)
    return WgProfile(ld, dvc, online, s_part, _sub(whole, s_part), registers)


@dataclass
class SmallProfile:
    rows: int
    trip: Counts  # one key-loop trip: 4 keys x rows
    tile: Counts  # the tile loop outside the key loop
    registers: int


def profile_small(fn: Function, rows: int, registers: int) -> SmallProfile:
    loops = sorted(find_loops(fn), key=lambda x: x[1] - x[0])
    inner, outer = loops[0], loops[-1]
    trip = count(fn, *inner)
    tile = count(fn, outer[0], outer[1], skip=inner)
    return SmallProfile(rows, trip, tile, registers)


def _unit_seconds(gpu: Gpu, units: Counter, tensor_fma: float, per_sm_waves: float) -> dict[str, float]:
    out = {"issue": sum(v for k, v in units.items() if k != "nop") / gpu.issue,
           "fp32": units.get("fp32", 0) / gpu.fp32, "alu": units.get("alu", 0) / gpu.alu,
           "mufu": units.get("mufu", 0) / gpu.mufu}
    out = {k: v * per_sm_waves / gpu.clock_hz for k, v in out.items()}
    if tensor_fma:
        out["tensor (f16 wgmma)"] = tensor_fma * per_sm_waves / (WGMMA_F16[gpu.name] / gpu.sms)
    return out


def _other(gpu: Gpu, n: int, dv: int, prologue_bytes: float) -> dict[str, float]:
    out = {"elementwise (DRAM)": EPILOGUE_PASSES * 4 * n * max(dv, 1) / gpu.dram_bytes_per_s,
           "host/launch": HOST_OPS * HOST_OP_SECONDS}
    if prologue_bytes:
        out["prologue (DRAM)"] = prologue_bytes / gpu.dram_bytes_per_s
    return out


def predict_small(prof: SmallProfile, gpu: Gpu, n: int, d: int, dv: int) -> dict:
    bm, bn = 128 * prof.rows, 128
    blocks, tiles = math.ceil(n / bm), math.ceil(n / bn)
    bps = blocks_per_sm(gpu, prof.registers, 128 * 4 * 8, 128)
    waves = math.ceil(blocks / (gpu.sms * bps))
    bps = min(bps, math.ceil(blocks / (gpu.sms * waves)))  # a grid smaller than the GPU fills fewer slots
    per_warp_tile = Counter({k: v * (bn // 4) for k, v in prof.trip.units.items()})
    per_warp_tile.update(prof.tile.units)
    # per SM and wave: bps blocks x 4 warps x tiles
    work = Counter({k: v * bps * 4 * tiles for k, v in per_warp_tile.items()})
    unit_s = _unit_seconds(gpu, work, 0, waves)
    pairs_per_warp_tile = 32 * prof.rows * bn
    per_pair = {k: round(32 * v / pairs_per_warp_tile, 4) for k, v in per_warp_tile.items()}
    per_pair["issued (all units)"] = round(32 * sum(v for k, v in per_warp_tile.items() if k != "nop")
                                           / pairs_per_warp_tile, 4)
    kernel = max(unit_s.values())
    other = _other(gpu, n, dv, 0)
    return dict(gpu=gpu.name, n=n, d=d, dv=dv, path=f"simt_small (rows {prof.rows})", blocks_per_sm=bps, waves=waves,
                unit_seconds=unit_s, bound=max(unit_s, key=unit_s.get), kernel_seconds=kernel,
                other_seconds=other, seconds=kernel + sum(other.values()),
                seconds_serial=kernel + sum(other.values()), instructions_per_pair=per_pair)


def predict_wg(prof: WgProfile, smem: int, gpu: Gpu, n: int, d: int, dv: int) -> dict:
    chunks = max(1, math.ceil(d / 64)) if prof.ld == 0 else 1
    col_chunks = max(1, math.ceil(max(dv, 1) / prof.dvc))
    blocks, tiles = math.ceil(n / 64) * col_chunks, math.ceil(n / 64)
    bps = max(1, blocks_per_sm(gpu, prof.registers, smem, 128))
    waves = math.ceil(blocks / (gpu.sms * bps))
    bps = min(bps, math.ceil(blocks / (gpu.sms * waves)))
    per_warp_tile = Counter({k: v * chunks for k, v in prof.s_part.units.items()})
    per_warp_tile.update(prof.tile_part.units)
    # an HGMMA is one warpgroup instruction: its multiply-adds count once per warpgroup,
    # i.e. a quarter per warp of the SASS that each of the 4 warps runs
    fma_per_wg_tile = (prof.s_part.tensor_fma * chunks + prof.tile_part.tensor_fma) / 4
    work = Counter({k: v * bps * 4 * tiles for k, v in per_warp_tile.items()})
    unit_s = _unit_seconds(gpu, work, fma_per_wg_tile * 4 * bps * tiles, waves)
    pairs_per_warp_tile = 16 * 64
    per = col_chunks / pairs_per_warp_tile
    per_pair = {k: round(32 * v * per, 4) for k, v in per_warp_tile.items()}
    per_pair["issued (all units)"] = round(32 * sum(v for k, v in per_warp_tile.items() if k != "nop") * per, 4)
    per_pair["tensor multiply-adds (f16)"] = round(fma_per_wg_tile * col_chunks / (64 * 64), 2)
    # prologue: the split planes (2 x 2 bytes per element) written once and read back from
    # DRAM by every wave of blocks (they do not fit in L2 at these sizes), plus the inputs
    dk = 64 * chunks if prof.ld == 0 else 0
    planes = 2 * 2 * n * (2 * dk + dv)
    prologue = 4 * n * (d + dv) + planes + waves * 2 * 2 * n * (dk + dv)
    kernel = max(unit_s.values())
    serial = unit_s["issue"] + unit_s.get("tensor (f16 wgmma)", 0.0)
    other = _other(gpu, n, dv, prologue)
    notes = []
    if col_chunks > 1:
        notes.append(f"value columns in {col_chunks} blocks of {prof.dvc}: weights computed {col_chunks}x per pair")
    return dict(gpu=gpu.name, n=n, d=d, dv=dv,
                path=f"wgmma ({'latent ' + str(prof.ld) + '-D' if prof.ld else 'distances'}, {prof.dvc} columns)",
                blocks_per_sm=bps, waves=waves, shared_bytes=smem, registers=prof.registers,
                unit_seconds=unit_s, bound=max(unit_s, key=unit_s.get), kernel_seconds=kernel,
                kernel_seconds_serial=serial, other_seconds=other, seconds=kernel + sum(other.values()),
                seconds_serial=serial + sum(other.values()), instructions_per_pair=per_pair, notes=notes)


def load(module: Path, shared: dict[str, int], arch: str = "sm_90a"):
    """Profiles of the D = 2 small-D kernel {rows: SmallProfile} and of the warpgroup
    kernels {(latent dims, value columns, online): (WgProfile, dynamic shared bytes)} in
    the module's ``arch`` code; ``shared``: kernel_configs()['wgmma_f32']['shared_bytes']."""
    regs = {(r["arch"], r["kernel"]): r["registers"] for r in resource_usage(module)}
    small, wg = {}, {}
    for fn in dump_sass(module):
        if fn.arch != arch:
            continue
        name, nregs = fn.demangled or fn.name, regs.get((fn.arch, fn.name), 255)
        m = re.search(r"pairwise_wgmma_kernel<(\d+), (\d+), (true|false)>", name)
        if m:
            ld, dvc, online = int(m.group(1)), int(m.group(2)), m.group(3) == "true"
            form = f"{'latent' if ld else 'distances'}_{dvc}"
            wg[(ld, dvc, online)] = (profile_wg(fn, ld, dvc, online, nregs), shared[form])
        m = re.search(r"simt_small_config<2, 2, (\d+)>", name)
        if m and "pairwise_simt_small_kernel" in name:
            small[int(m.group(1))] = profile_small(fn, int(m.group(1)), nregs)
    return small, wg


#: issue 17's cases (n, d, dv) and H100 SXM targets (seconds per generation)
NEW_CASES = [(65536, 2, 2), (262144, 2, 2), (1048576, 2, 2), (65536, 64, 64), (262144, 64, 64),
             (1048576, 64, 64), (65536, 1024, 1024), (100000, 1024, 1024), (100000, 2, 1024)]
NEW_TARGETS = {(1048576, 2, 2): 0.3, (1048576, 64, 64): 1.0, (100000, 1024, 1024): 0.5, (100000, 2, 1024): 0.1}


def predict_new(small: dict, wg: dict, gpu: Gpu, n: int, d: int, dv: int, small_min_rows: int) -> dict | None:
    """The new body that diffevo::cuda takes for this case (detail::choose_new_family,
    reference mode), or None when it takes one of the older paths."""
    if d <= 4 and dv in (0, d):
        if n < small_min_rows or 32 not in small:
            return None
        return predict_small(small[32], gpu, n, d, dv)
    ld = 2 if d <= 2 else (8 if d <= 8 else 0)
    if ld and dv <= 64:
        return None
    key = (ld, 256 if dv > 64 else 64, False)
    if key not in wg or (not ld and d < 32):
        return None
    prof, shared = wg[key]
    return predict_wg(prof, shared, gpu, n, d, dv)
