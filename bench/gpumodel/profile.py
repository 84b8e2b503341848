"""Kernel profiles: what one warp issues per key tile, read from a kernel's SASS, and the
tilings they run with (from ``diffevo._core.kernel_configs()``, the C++ side's one
definition of the tile shapes and of the tensor-core rule)."""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .sass import (
    Function,
    Region,
    branch_target,
    dump_sass,
    lds_wavefronts,
    pair_loop,
    resource_usage,
    stored_elements,
    unit_of,
)


@dataclass(frozen=True)
class Tiling:
    """One kernel family's tile shape (``diffevo._core.kernel_configs()``)."""

    path: str  # "simt" or "mma"
    threads: int
    bm: int  # query rows per block
    bn: int  # keys per tile
    dk: int  # dimensions per staged chunk
    dvc: int  # value columns per block (grid y splits wider values)
    rows_per_warp: int  # query rows one warp owns
    source: str = "diffevo._core.kernel_configs()"

    @property
    def warps(self) -> int:
        return self.threads // 32


def kernel_configs() -> dict[str, Any]:
    """``diffevo._core.kernel_configs()``: the tilings and the tensor-core rule, as built."""
    from diffevo import _core

    return _core.kernel_configs()


def read_tilings() -> dict[str, Tiling]:
    """The float32 SIMT and the tensor-core (mma) tile shapes of the built module."""
    cfg = kernel_configs()
    out = {}
    for path, key in (("simt", "simt_f32"), ("mma", "mma_f32")):
        c = cfg[key]
        out[path] = Tiling(path, c["threads"], c["block_rows"], c["tile_keys"], c["chunk_dims"], c["value_cols"],
                           c["rows_per_warp"], source=f"diffevo._core.kernel_configs()['{key}']")
    return out


def tensor_core_min_d() -> int:
    """The smallest float32 D that ``path="auto"`` sends to the tensor cores."""
    return int(kernel_configs()["tensor_core_min_d"])


@dataclass
class KernelProfile:
    arch: str
    name: str
    path: str  # "simt" | "mma"
    online_max: bool | None
    pair: Region  # the loop body that takes the exponentials (nested loops excluded)
    guarded_columns: Counter  # units inside the value-column guards (SIMT), per all columns
    guarded_opcodes: Counter
    guarded_wavefronts: float
    n_guards: int
    distance: Region | None  # SIMT: the per-dimension distance loop
    chunk: Region | None  # MMA: the per-dimension-chunk loop (S = Q'K'^T)
    staging: Counter  # units per staged element (per lane)
    staging_opcodes: Counter
    staging_wavefronts: float  # shared wavefronts per staged element (per lane)
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "arch": self.arch, "kernel": self.name, "path": self.path, "online_max": self.online_max,
            "pair_loop": self.pair.as_dict(),
            "guarded_value_columns": {"guards": self.n_guards, "by_unit": dict(self.guarded_columns)},
            "distance_loop": self.distance.as_dict() if self.distance else None,
            "chunk_loop": self.chunk.as_dict() if self.chunk else None,
            "staging_per_element": dict(self.staging),
            "notes": self.notes,
        }


def _flatten(region: Region) -> list[Region]:
    out = [region]
    for r in region.nested:
        out += _flatten(r)
    return out


def _total(region: Region) -> Counter:
    c = Counter(region.counts)
    for r in region.nested:
        c += _total(r)
    return c


def _guarded_blocks(fn: Function, region: Region) -> list[tuple[int, int]]:
    """Forward-skipped blocks of the region (``@P BRA target`` over straight-line code)
    that are mostly FFMA: the value columns guarded by ``c < dvc`` in the SIMT body."""
    blocks = []
    instrs = [i for i in fn.instrs if region.start <= i.addr <= region.end
              and not any(n.start <= i.addr <= n.end for n in region.nested)]
    for idx, ins in enumerate(instrs):
        tgt = branch_target(ins)
        if tgt is None or not ins.pred or tgt <= ins.addr:
            continue
        body = [i for i in instrs[idx + 1:] if i.addr < tgt]
        if not body or any(branch_target(i) is not None for i in body):
            continue
        ffma = sum(1 for i in body if i.base == "FFMA")
        if ffma >= 32 and ffma >= 0.5 * len(body):
            blocks.append((body[0].addr, body[-1].addr))
    return blocks


def profile_kernel(fn: Function) -> KernelProfile | None:
    """Find the pair loop and classify its nested loops; None when the function takes no
    MUFU.EX2 in a loop (prologues, double-precision kernels)."""
    inner = pair_loop(fn)
    if inner is None:
        return None
    # the pair loop: the innermost loop with the exponentials; on the SIMT path the
    # distance loop sits inside it, on the MMA path the per-chunk S = Q'K'^T loop does
    loops = _flatten(inner)
    has_tensor = any(r.counts.get("tensor") for r in loops)
    path = "mma" if has_tensor else "simt"
    guarded = _guarded_blocks(fn, inner)
    gcount: Counter = Counter()
    gops: Counter = Counter()
    gwave = 0.0
    for lo, hi in guarded:
        for ins in fn.instrs:
            if lo <= ins.addr <= hi:
                unit = unit_of(ins)
                gcount[unit] += 1
                gops[ins.opcode] += 1
                if unit == "shared":
                    gwave += lds_wavefronts(ins)
    distance = chunk = None
    stage_units: Counter = Counter()
    stage_ops: Counter = Counter()
    stage_elems = 0
    stage_wave = 0.0
    notes = []
    for r in inner.nested:
        tot = _total(r)
        issued = sum(v for k, v in tot.items() if k != "nop")
        sts = _stored(r)
        if tot.get("tensor"):
            chunk = r
            for sub in r.nested:  # staging inside the chunk loop
                s_sts = _stored(sub)
                if s_sts:
                    stage_units += _total(sub)
                    stage_ops += _opcodes_total(sub)
                    stage_elems += s_sts
                    stage_wave += sum(x.shared_wavefronts for x in _flatten(sub))
        elif tot.get("fp32", 0) >= 0.5 * issued and not sts:
            distance = r
        elif sts:
            stage_units += tot
            stage_ops += _opcodes_total(r)
            stage_elems += sts
            stage_wave += sum(x.shared_wavefronts for x in _flatten(r))
        else:
            notes.append(f"nested loop {hex(r.start)}-{hex(r.end)} not classified; counted once per tile")
            inner.counts += tot
            inner.opcodes += _opcodes_total(r)
    per_elem = Counter({k: v / stage_elems for k, v in stage_units.items()}) if stage_elems else Counter()
    per_elem_ops = Counter({k: v / stage_elems for k, v in stage_ops.items()}) if stage_elems else Counter()
    online = None
    m = re.search(r"\b(true|false)\b", fn.demangled)
    if m:
        online = m.group(1) == "true"
    return KernelProfile(arch=fn.arch, name=fn.demangled or fn.name, path=path, online_max=online,
                         pair=inner, guarded_columns=gcount, guarded_opcodes=gops, guarded_wavefronts=gwave,
                         n_guards=len(guarded), distance=distance, chunk=chunk, staging=per_elem,
                         staging_opcodes=per_elem_ops,
                         staging_wavefronts=stage_wave / stage_elems if stage_elems else 0.0, notes=notes)


def _stored(region: Region) -> int:
    """32-bit words the region's shared-memory stores write (an STS.128 stores 4): the
    staging cost is per staged element, so a vector store counts for each word it stores."""
    return sum(n * stored_elements(op) for op, n in _opcodes_total(region).items())


def _opcodes_total(region: Region) -> Counter:
    c = Counter(region.opcodes)
    for r in region.nested:
        c += _opcodes_total(r)
    return c



def auto_path(d: int) -> str:
    """The path ``path="auto"`` takes for float32 at this D (diffevo::cuda::choose_path)."""
    return "mma" if d >= tensor_core_min_d() else "simt"


def kernel_table() -> dict[str, dict]:
    """Mangled name -> {path, dtype, online_max} of the pairwise kernels
    (``diffevo._cuda.kernels()``); empty when the CUDA module does not import."""
    try:
        from diffevo import _cuda
    except ImportError:
        return {}
    return {k["name"]: dict(k) for k in _cuda.kernels()}


def load_profiles(module: Path) -> tuple[dict[tuple[str, str, bool], KernelProfile], list[dict]]:
    """Profiles of the float32 pair kernels per (arch, path, online_max), and resources.

    Kernels are picked by name from :func:`kernel_table` (float32 only); without a
    table, by content (a loop with MUFU.EX2; HMMA in it means the tensor-core path).
    """
    table = kernel_table()
    profiles: dict[tuple[str, str, bool], KernelProfile] = {}
    for fn in dump_sass(module):
        info = table.get(fn.name)
        if table and (info is None or info["dtype"] != "float32" or info["path"] not in ("simt", "mma")):
            continue  # issue 17's bodies (wgmma, simt_small) have their own model: gpumodel.newpaths
        if not table and ("pairwise_wgmma_kernel" in fn.name or "pairwise_simt_small_kernel" in fn.name):
            continue
        prof = profile_kernel(fn)
        if prof is None:
            continue
        if info is not None:
            if info["path"] != prof.path:
                prof.notes.append(f"the module calls this kernel '{info['path']}', its SASS looks "
                                  f"'{prof.path}'")
            prof.online_max = bool(info["online_max"])
        online = prof.online_max if prof.online_max is not None else prof.pair.n_ex2 % 2 == 1
        key = (prof.arch, prof.path, bool(online))
        if key not in profiles:
            profiles[key] = prof
    return profiles, resource_usage(module)

