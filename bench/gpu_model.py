"""A performance model of diffevo's CUDA kernels, read from their machine code (SASS).

THIS IS A MODEL, NOT A MEASUREMENT. It reads the compiled ``diffevo/_cuda*.so`` with
``cuobjdump``, finds each kernel's inner loop (the innermost loop that takes exponentials,
``MUFU.EX2``), counts its instructions by execution unit, divides by the pairs one pass
of the loop handles, and turns instructions per pair into seconds with the published
per-SM issue rates, SM counts and clocks of the A100, H100 SXM and H200. It adds the
device-memory (DRAM) and L2 traffic of the tiling, wave quantisation, and the O(N.D)
element-wise work around the kernel. It runs anywhere nvcc/cuobjdump run, in seconds:

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
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as _dt
import importlib.util
import json
import math
import os
import re
import shutil
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"

# ---------------------------------------------------------------------------
# tools and the module
# ---------------------------------------------------------------------------


def find_tool(name: str) -> str | None:
    """cuobjdump / nvdisasm / c++filt: on PATH, in the CUDA toolkit, or pip's nvidia-* wheels."""
    found = shutil.which(name)
    if found:
        return found
    candidates = [Path(os.environ.get("CUDA_HOME", "/usr/local/cuda")) / "bin" / name]
    for entry in sys.path:
        nv = Path(entry) / "nvidia"
        if nv.is_dir():
            candidates += sorted(nv.glob(f"*/bin/{name}"))
    for cand in candidates:
        if cand.is_file() and os.access(cand, os.X_OK):
            return str(cand)
    return None


def cuda_module_path() -> Path | None:
    """The built ``diffevo/_cuda*.so`` (located without importing it), or None."""
    try:
        spec = importlib.util.find_spec("diffevo._cuda")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.origin or not Path(spec.origin).is_file():
        return None
    return Path(spec.origin)


def _run(tool: str, *args: str) -> str:
    exe = find_tool(tool)
    if exe is None:
        raise FileNotFoundError(
            f"{tool} not found: install the CUDA toolkit or `pip install nvidia-cuda-cuobjdump "
            "nvidia-cuda-nvdisasm`"
        )
    out = subprocess.run([exe, *args], capture_output=True, text=True, check=True)
    return out.stdout


# ---------------------------------------------------------------------------
# SASS parsing
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Instr:
    addr: int
    pred: str  # "" or e.g. "@!P0"
    opcode: str  # with modifiers, e.g. "MUFU.EX2", "HMMA.1688.F32.TF32"
    operands: str

    @property
    def base(self) -> str:
        return self.opcode.split(".")[0]


@dataclass
class Function:
    arch: str  # "sm_80"
    name: str  # mangled
    instrs: list[Instr] = field(default_factory=list)
    demangled: str = ""


_ARCH_RE = re.compile(r"^\s*code for (sm_\w+)")
_FUNC_RE = re.compile(r"^\s*Function\s*:\s*(\S+)")
_INSTR_RE = re.compile(
    r"^\s*/\*([0-9a-fA-F]{4,})\*/\s+(@!?U?P(?:T|\d))?\s*([A-Z][A-Z0-9_]*(?:\.[A-Za-z0-9_]+)*)\s*([^;]*);"
)


def parse_sass(text: str) -> list[Function]:
    """Functions of a ``cuobjdump -sass`` listing, one per (arch, name); duplicates dropped.

    (A fat binary may hold the same cubin twice; the first copy with code wins.)
    """
    funcs: dict[tuple[str, str], Function] = {}
    arch = "?"
    cur: Function | None = None
    for line in text.splitlines():
        m = _ARCH_RE.match(line)
        if m:
            arch, cur = m.group(1), None
            continue
        m = _FUNC_RE.match(line)
        if m:
            key = (arch, m.group(1))
            if key in funcs and funcs[key].instrs:
                cur = None  # a duplicate cubin: skip its copy
            else:
                cur = funcs.setdefault(key, Function(arch, m.group(1)))
            continue
        if cur is None:
            continue
        m = _INSTR_RE.match(line)
        if m:
            cur.instrs.append(Instr(int(m.group(1), 16), m.group(2) or "", m.group(3),
                                    m.group(4).strip()))
    out = list(funcs.values())
    names = demangle([f.name for f in out])
    for f in out:
        f.demangled = names.get(f.name, f.name)
    return out


def demangle(names: Iterable[str]) -> dict[str, str]:
    names = list(dict.fromkeys(names))
    exe = find_tool("c++filt") or find_tool("cu++filt")
    if not names or exe is None:
        return {n: n for n in names}
    out = subprocess.run([exe], input="\n".join(names), capture_output=True, text=True)
    lines = out.stdout.splitlines()
    if out.returncode != 0 or len(lines) != len(names):
        return {n: n for n in names}
    return dict(zip(names, lines))


def dump_sass(path: str | Path) -> list[Function]:
    return parse_sass(_run("cuobjdump", "-sass", str(path)))


def list_archs(path: str | Path) -> list[str]:
    """SASS architectures embedded in the binary (``cuobjdump -lelf``)."""
    text = _run("cuobjdump", "-lelf", str(path))
    return sorted(set(re.findall(r"\.(sm_\w+)\.cubin", text)))


_RES_FUNC_RE = re.compile(r"^\s*Function\s+(\S+):\s*$")
_RES_KV_RE = re.compile(r"([A-Z_]+(?:\[\d+\])?):(\d+)")


def parse_res_usage(text: str) -> list[dict[str, Any]]:
    """Per (arch, kernel) resources of ``cuobjdump -res-usage``: registers per thread,
    static shared memory per block, stack and local bytes per thread (spills land in local)."""
    rows: dict[tuple[str, str], dict[str, Any]] = {}
    arch = "?"
    func = None
    for line in text.splitlines():
        m = re.match(r"^\s*arch\s*=\s*(sm_\w+)", line)
        if m:
            arch = m.group(1)
            continue
        m = _RES_FUNC_RE.match(line)
        if m:
            func = m.group(1)
            continue
        if func and "REG:" in line:
            kv = {k: int(v) for k, v in _RES_KV_RE.findall(line)}
            rows.setdefault((arch, func), {
                "arch": arch, "kernel": func,
                "registers": kv.get("REG", 0), "shared_bytes": kv.get("SHARED", 0),
                "stack_bytes": kv.get("STACK", 0), "local_bytes": kv.get("LOCAL", 0),
                "constant0_bytes": kv.get("CONSTANT[0]", 0),
            })
            func = None
    out = list(rows.values())
    names = demangle([r["kernel"] for r in out])
    for r in out:
        r["demangled"] = names.get(r["kernel"], r["kernel"])
    return out


def resource_usage(path: str | Path) -> list[dict[str, Any]]:
    return parse_res_usage(_run("cuobjdump", "-res-usage", str(path)))


# ---------------------------------------------------------------------------
# units, loops, counts
# ---------------------------------------------------------------------------

#: SASS opcode (base name) -> execution unit. Pipes as Nsight Compute names them:
#: fma (FP32 and IMAD), alu (integer, compare, min/max, select, logic), xu (MUFU and
#: conversions), fp64, tensor, shared memory (lsu/mio), global memory, uniform datapath.
_UNIT = {
    **dict.fromkeys(["FFMA", "FADD", "FMUL", "FFMA32I", "FADD32I", "FMUL32I", "HFMA2", "HADD2",
                     "HMUL2", "FSWZADD"], "fp32"),
    **dict.fromkeys(["IMAD", "IMUL", "IDP", "IMAD32I", "IMUL32I"], "imad"),
    **dict.fromkeys(["IADD3", "IADD", "LOP3", "LOP", "SHF", "SHL", "SHR", "ISETP", "FSETP", "FMNMX",
                     "IMNMX", "FSEL", "SEL", "LEA", "PRMT", "MOV", "IABS", "FCHK", "PLOP3", "P2R",
                     "R2P", "BMSK", "FLO", "POPC", "BREV", "VIADD", "VIMNMX", "I2FP", "F2FP",
                     "HSETP2", "HMNMX2", "CSET", "CSETP", "ISCADD", "BFE", "BFI", "VOTE", "VABSDIFF",
                     "IADD32I", "LOP32I", "MOV32I", "FSET", "ISET"], "alu"),
    **dict.fromkeys(["MUFU", "F2F", "F2I", "I2F", "FRND"], "mufu"),
    **dict.fromkeys(["DFMA", "DADD", "DMUL", "DSETP", "DMNMX", "DSET"], "fp64"),
    **dict.fromkeys(["HMMA", "IMMA", "DMMA", "BMMA", "HGMMA", "IGMMA", "QGMMA", "BGMMA"], "tensor"),
    **dict.fromkeys(["LDS", "LDSM", "STS", "ATOMS", "LDGSTS"], "shared"),
    **dict.fromkeys(["LDG", "STG", "LD", "ST", "RED", "ATOMG", "ATOM", "LDL", "STL", "LDC",
                     "UBLKCP", "UTMALDG", "UTMASTG"], "global"),
    **dict.fromkeys(["SHFL"], "shfl"),
}


def unit_of(instr: Instr) -> str:
    base = instr.base
    if base in _UNIT:
        return _UNIT[base]
    if base.startswith("U") or base in ("S2UR", "R2UR", "LDCU"):
        return "uniform"
    if base == "NOP":
        return "nop"
    return "control"  # BRA, BAR, BSSY, BSYNC, EXIT, S2R, CS2R, DEPBAR, WARPSYNC, ...


def branch_target(instr: Instr) -> int | None:
    if instr.base not in ("BRA", "BRX", "JMP"):
        return None
    m = re.search(r"0x([0-9a-fA-F]+)", instr.operands)
    return int(m.group(1), 16) if m else None


def find_loops(fn: Function) -> list[tuple[int, int]]:
    """(first, last) addresses of every loop: a branch back to an earlier address.

    ``BRA`` to itself (the end-of-function trap ``BRA 0x...`` after ``EXIT``) is not a loop.
    """
    loops = []
    for ins in fn.instrs:
        tgt = branch_target(ins)
        if tgt is not None and tgt < ins.addr:
            loops.append((tgt, ins.addr))
    return sorted(set(loops))


def lds_wavefronts(instr: Instr) -> float:
    """Shared-memory wavefronts (128 bytes each) of one warp-wide shared access.

    A warp-uniform address (only uniform registers/immediates inside the brackets) is a
    broadcast: one wavefront. Otherwise 32 lanes x width / 128 bytes (no bank conflicts).
    ``LDSM`` (ldmatrix) .x1/.x2/.x4 moves 1/2/4 wavefronts.
    """
    base = instr.base
    if base == "LDSM":
        m = re.search(r"\.M88\.(\d)", instr.opcode)
        return float(m.group(1)) if m else 1.0
    width = 4
    for mod in instr.opcode.split(".")[1:]:
        if mod in ("64",):
            width = 8
        elif mod in ("128",):
            width = 16
        elif mod in ("U8", "S8", "U16", "S16"):
            width = 4
    addr = re.search(r"\[([^\]]*)\]", instr.operands)
    uniform = addr is not None and not re.search(r"\bR\d+", addr.group(1))
    if uniform:
        return 1.0
    return 32 * width / 128.0


_MMA_SHAPE_RE = re.compile(r"\.(\d)(\d)(\d{1,2})\b")


def tensor_fma(instr: Instr) -> int:
    """Multiply-adds of one warp-wide tensor instruction: m*n*k of its shape.

    HMMA.1688 = m16n8k8, HMMA.16816 = m16n8k16, HMMA.1684 = m16n8k4, DMMA.884 = m8n8k4.
    """
    ops = instr.opcode.split(".")
    if len(ops) < 2:
        return 0
    shape = ops[1]
    if instr.base == "DMMA":
        table = {"884": (8, 8, 4), "1684": (16, 8, 4), "1688": (16, 8, 8), "16816": (16, 8, 16)}
    else:
        table = {"1684": (16, 8, 4), "1688": (16, 8, 8), "16816": (16, 8, 16), "16832": (16, 8, 32),
                 "884": (8, 8, 4)}
    m, n, k = table.get(shape, (0, 0, 0))
    return m * n * k


def tensor_kind(instr: Instr) -> str:
    """'tf32', 'f16' (f16/bf16), 'f64' or 'int' of a tensor instruction."""
    op = instr.opcode
    if instr.base == "DMMA":
        return "f64"
    if instr.base in ("IMMA", "IGMMA", "BMMA"):
        return "int"
    if ".TF32" in op:
        return "tf32"
    return "f16"


@dataclass
class Region:
    """Static instruction counts of one loop body (its nested loops excluded)."""

    start: int
    end: int
    counts: Counter = field(default_factory=Counter)  # unit -> warp instructions
    opcodes: Counter = field(default_factory=Counter)  # opcode -> warp instructions
    shared_wavefronts: float = 0.0
    tensor_fma: dict = field(default_factory=dict)  # kind -> multiply-adds per warp instruction sum
    n_ex2: int = 0
    nested: list["Region"] = field(default_factory=list)

    @property
    def issued(self) -> int:
        return sum(v for k, v in self.counts.items() if k != "nop")

    def as_dict(self) -> dict[str, Any]:
        return {
            "addresses": [hex(self.start), hex(self.end)],
            "warp_instructions": self.issued,
            "by_unit": dict(sorted(self.counts.items())),
            "mufu_ex2": self.n_ex2,
            "shared_wavefronts": self.shared_wavefronts,
            "tensor_fma": dict(self.tensor_fma),
            "nested": [r.as_dict() for r in self.nested],
        }


def _region(fn: Function, start: int, end: int, inner: list[tuple[int, int]]) -> Region:
    reg = Region(start, end)
    for lo, hi in inner:
        reg.nested.append(_region(fn, lo, hi, [lp for lp in inner if lo <= lp[0] and lp[1] <= hi
                                                and lp != (lo, hi)]))
    # keep only direct children (a child's own nested loops are inside it)
    reg.nested = [r for r in reg.nested
                  if not any(o.start <= r.start and r.end <= o.end and o is not r for o in reg.nested)]
    for ins in fn.instrs:
        if not (start <= ins.addr <= end):
            continue
        if any(r.start <= ins.addr <= r.end for r in reg.nested):
            continue
        unit = unit_of(ins)
        reg.counts[unit] += 1
        reg.opcodes[ins.opcode] += 1
        if unit == "shared":
            reg.shared_wavefronts += lds_wavefronts(ins)
        if unit == "tensor":
            kind = tensor_kind(ins)
            reg.tensor_fma[kind] = reg.tensor_fma.get(kind, 0) + tensor_fma(ins)
        if ins.opcode.startswith("MUFU.EX2"):
            reg.n_ex2 += 1
    return reg


def pair_loop(fn: Function, marker: str = "MUFU.EX2") -> Region | None:
    """The innermost loop whose body (nested loops included) holds ``marker``, with its
    nested loops as child regions; None when no loop does."""
    loops = find_loops(fn)
    hits = []
    for lo, hi in loops:
        if any(lo <= i.addr <= hi and i.opcode.startswith(marker) for i in fn.instrs):
            hits.append((hi - lo, lo, hi))
    if not hits:
        return None
    _, lo, hi = min(hits)
    inner = [lp for lp in loops if lo <= lp[0] and lp[1] <= hi and lp != (lo, hi)]
    return _region(fn, lo, hi, inner)


def whole_function(fn: Function) -> Region:
    return _region(fn, 0, max((i.addr for i in fn.instrs), default=0), [])


def has_local_memory(fn: Function) -> list[Instr]:
    """LDL/STL instructions (local memory: spills or dynamically indexed arrays)."""
    return [i for i in fn.instrs if i.base in ("LDL", "STL")]


# ---------------------------------------------------------------------------
# the hardware
# ---------------------------------------------------------------------------


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
        name="H100-SXM5-80GB", sass="sm_90", sms=132, clock_hz=1.98e9,
        issue=4, fp32=4, alu=2, imad=2, mufu=0.5, fp64=2, shared_wavefronts=1,
        # HMMA (mma.sync) at A100's per-SM-per-clock rate x 132 SMs x 1.83 GHz: assumed
        tensor_fma_per_s={"tf32": 132 * 512 * 1.83e9, "f16": 132 * 1024 * 1.83e9,
                          "f64": 66.9e12 / 2, "int": 132 * 2048 * 1.83e9},
        dram_bytes_per_s=3.35e12, l2_bytes_per_s=5120 * 1.98e9, l2_bytes=50e6, memory_bytes=80e9,
        assumed=("tensor_fma_per_s[tf32,f16,int]: mma.sync at A100's per-SM-per-clock rate",
                 "l2_bytes_per_s: A100's 5120 B/clk"),
        sources="H100 whitepaper (2022); H100 SXM5 datasheet; CUDA C++ Programming Guide (cc 9.0)",
    ),
    "H200-SXM-141GB": Gpu(
        name="H200-SXM-141GB", sass="sm_90", sms=132, clock_hz=1.98e9,
        issue=4, fp32=4, alu=2, imad=2, mufu=0.5, fp64=2, shared_wavefronts=1,
        tensor_fma_per_s={"tf32": 132 * 512 * 1.83e9, "f16": 132 * 1024 * 1.83e9,
                          "f64": 66.9e12 / 2, "int": 132 * 2048 * 1.83e9},
        dram_bytes_per_s=4.8e12, l2_bytes_per_s=5120 * 1.98e9, l2_bytes=50e6, memory_bytes=141e9,
        assumed=("tensor_fma_per_s[tf32,f16,int]: mma.sync at A100's per-SM-per-clock rate",
                 "l2_bytes_per_s: A100's 5120 B/clk"),
        sources="H200 datasheet (2024): GH100 compute of the H100 SXM, HBM3e 4.8 TB/s",
    ),
}

#: the CUDA issue's benchmark cases and targets (H100), seconds per generation
CASES = [(65536, 2), (262144, 2), (1048576, 2), (65536, 64), (262144, 64), (1048576, 64),
         (65536, 1024)]
TARGETS = {(1048576, 2): 0.3, (1048576, 64): 1.0, (100000, 1024): 0.1}


# ---------------------------------------------------------------------------
# the tiling, read from the kernels' headers (kept in sync with the source)
# ---------------------------------------------------------------------------

ROOT = HERE.parent


def _header_dirs() -> list[Path]:
    dirs = [ROOT / "csrc" / "include" / "diffevo" / "detail"]
    try:
        import diffevo

        dirs.append(Path(diffevo.get_include()) / "diffevo" / "detail")
    except Exception:  # pragma: no cover - diffevo not importable: the source tree only
        pass
    return [d for d in dirs if d.is_dir()]


@dataclass(frozen=True)
class Tiling:
    """One kernel family's tile shape (from the headers; see simt_block.hpp, mma_block.hpp)."""

    path: str  # "simt" or "mma"
    threads: int
    bm: int  # query rows per block
    bn: int  # keys per tile
    dk: int  # dimensions per staged chunk
    dvc: int  # value columns per block (grid y splits wider values)
    rows_per_warp: int  # query rows one warp owns
    source: str = "defaults"

    @property
    def warps(self) -> int:
        return self.threads // 32


def _rel(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(ROOT))
    except ValueError:
        return str(path)


def read_tilings() -> dict[str, Tiling]:
    """SIMT (float) and MMA tile shapes, parsed from the headers; defaults otherwise."""
    simt = Tiling("simt", 128, 256, 32, 32, 8, 64)
    mma = Tiling("mma", 128, 64, 64, 16, 64, 16)
    for d in _header_dirs():
        sb = d / "simt_block.hpp"
        if sb.is_file():
            m = re.search(r"simt_device_config<float>\s*:\s*simt_config<\s*(\d+)\s*,\s*(\d+)\s*,\s*(\d+)"
                          r"\s*,\s*(\d+)\s*,\s*(\d+)\s*>", sb.read_text())
            if m:
                t, r, bn, dk, dvc = map(int, m.groups())
                simt = Tiling("simt", t, t * r, bn, dk, dvc, 32 * r, source=_rel(sb))
        mb = d / "mma_block.hpp"
        if mb.is_file():
            text = mb.read_text()
            vals = {k: re.search(rf"\b{k}\s*=\s*(\d+)\s*;", text) for k in
                    ("threads", "warps", "bm", "bn", "dk", "dvc")}
            if all(vals.values()):
                v = {k: int(m.group(1)) for k, m in vals.items()}
                mma = Tiling("mma", v["threads"], v["bm"], v["bn"], v["dk"], v["dvc"],
                             v["bm"] // v["warps"], source=_rel(mb))
        if simt.source != "defaults" and mma.source != "defaults":
            break
    return {"simt": simt, "mma": mma}


# ---------------------------------------------------------------------------
# kernel profiles: what one warp issues per key tile, by unit
# ---------------------------------------------------------------------------


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
    stage_sts = 0
    stage_wave = 0.0
    notes = []
    for r in inner.nested:
        tot = _total(r)
        issued = sum(v for k, v in tot.items() if k != "nop")
        sts = sum(n for op, n in _opcodes_total(r).items() if op.startswith("STS"))
        if tot.get("tensor"):
            chunk = r
            for sub in r.nested:  # staging inside the chunk loop
                s_sts = sum(n for op, n in _opcodes_total(sub).items() if op.startswith("STS"))
                if s_sts:
                    stage_units += _total(sub)
                    stage_ops += _opcodes_total(sub)
                    stage_sts += s_sts
                    stage_wave += sum(x.shared_wavefronts for x in _flatten(sub))
        elif tot.get("fp32", 0) >= 0.5 * issued and not sts:
            distance = r
        elif sts:
            stage_units += tot
            stage_ops += _opcodes_total(r)
            stage_sts += sts
            stage_wave += sum(x.shared_wavefronts for x in _flatten(r))
        else:
            notes.append(f"nested loop {hex(r.start)}-{hex(r.end)} not classified; counted once per tile")
            inner.counts += tot
            inner.opcodes += _opcodes_total(r)
    per_elem = Counter({k: v / stage_sts for k, v in stage_units.items()}) if stage_sts else Counter()
    per_elem_ops = Counter({k: v / stage_sts for k, v in stage_ops.items()}) if stage_sts else Counter()
    online = None
    m = re.search(r"\b(true|false)\b", fn.demangled)
    if m:
        online = m.group(1) == "true"
    return KernelProfile(arch=fn.arch, name=fn.demangled or fn.name, path=path, online_max=online,
                         pair=inner, guarded_columns=gcount, guarded_opcodes=gops, guarded_wavefronts=gwave,
                         n_guards=len(guarded), distance=distance, chunk=chunk, staging=per_elem,
                         staging_opcodes=per_elem_ops,
                         staging_wavefronts=stage_wave / stage_sts if stage_sts else 0.0, notes=notes)


def _opcodes_total(region: Region) -> Counter:
    c = Counter(region.opcodes)
    for r in region.nested:
        c += _opcodes_total(r)
    return c


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


# ---------------------------------------------------------------------------
# putting it together
# ---------------------------------------------------------------------------


def _read_auto_min_d(default: int = 32) -> int:
    """``diffevo::cuda::mma_min_dim`` from cuda.cuh: the smallest float32 D that path="auto"
    sends to the tensor cores."""
    for d in _header_dirs():
        f = d.parent / "cuda.cuh"
        if f.is_file():
            m = re.search(r"mma_min_dim\s*=\s*(\d+)", f.read_text())
            if m:
                return int(m.group(1))
    return default


#: smallest D the auto dispatch sends to the tensor cores (float32)
AUTO_MMA_MIN_D = _read_auto_min_d()


def auto_path(d: int) -> str:
    """The path ``path="auto"`` takes for float32 at this D (cuda.cuh's choose_path)."""
    return "mma" if d >= AUTO_MMA_MIN_D else "simt"


def kernel_table() -> dict[str, dict]:
    """Mangled name -> {path, dtype, online_max} of the pairwise kernels: from
    ``diffevo._cuda.kernels()`` when importable, else from csrc/cuda/module_kernels.cu."""
    try:
        from diffevo import _cuda

        return {k["name"]: dict(k) for k in _cuda.kernels()}
    except Exception:
        pass
    src = ROOT / "csrc" / "cuda" / "module_kernels.cu"
    table = {}
    if src.is_file():
        for name, path, dtype, online in re.findall(
                r'\{"(_Z\w+)",\s*"(\w+)",\s*"(\w+)",\s*(true|false)\}', src.read_text()):
            table[name] = {"name": name, "path": path, "dtype": dtype, "online_max": online == "true"}
    return table


def load_profiles(module: Path) -> tuple[dict[tuple[str, str, bool], KernelProfile], list[dict]]:
    """Profiles of the float32 pair kernels per (arch, path, online_max), and resources.

    Kernels are picked by name from :func:`kernel_table` (float32 only); without a
    table, by content (a loop with MUFU.EX2; HMMA in it means the tensor-core path).
    """
    table = kernel_table()
    profiles: dict[tuple[str, str, bool], KernelProfile] = {}
    for fn in dump_sass(module):
        info = table.get(fn.name)
        if table and (info is None or info["dtype"] != "float32"):
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


def _res_for(resources: list[dict], prof: KernelProfile) -> dict:
    for r in resources:
        if r["arch"] == prof.arch and (r["demangled"] == prof.name or r["kernel"] == prof.name):
            return r
    return {}


def model(module: Path, cases=None, gpus=None) -> dict[str, Any]:
    cases = CASES + [(100000, 1024)] if cases is None else cases
    gpus = list(GPUS.values()) if gpus is None else gpus
    tilings = read_tilings()
    profiles, resources = load_profiles(module)
    preds = []
    for n, d in cases:
        for gpu in gpus:
            for path in ("simt", "mma"):
                prof = profiles.get((gpu.sass, path, False))
                if prof is None:
                    continue
                p = predict(prof, _res_for(resources, prof), tilings[path], gpu, n, d)
                row = p.as_dict()
                row["auto"] = path == auto_path(d)
                row["target_s"] = TARGETS.get((n, d)) if gpu.name.startswith("H100") else None
                preds.append(row)
    return {
        "kind": "model from machine code (SASS), not a measurement",
        "module": module.name,
        "date": _dt.date.today().isoformat(),
        "gpus": {g.name: dataclasses.asdict(g) for g in gpus},
        "tilings": {k: dataclasses.asdict(v) for k, v in tilings.items()},
        "auto_mma_min_d": AUTO_MMA_MIN_D,
        "profiles": {f"{a}/{p}/{'online' if o else 'reference'}": prof.as_dict()
                     for (a, p, o), prof in sorted(profiles.items())},
        "predictions": preds,
        "floors": {f"{n}x{d}": floors(GPUS["H100-SXM5-80GB"], n, d) for (n, d) in TARGETS},
    }


def resources_report(module: Path) -> dict[str, Any]:
    """Registers per thread and shared memory per block, per kernel and arch."""
    funcs = {(f.arch, f.name): f for f in dump_sass(module)}
    rows = []
    for r in resource_usage(module):
        fn = funcs.get((r["arch"], r["kernel"]))
        row = dict(r)
        row["ldl_stl"] = len(has_local_memory(fn)) if fn else None
        row["mufu_ex2"] = sum(1 for i in fn.instrs if i.opcode.startswith("MUFU.EX2")) if fn else None
        row["hmma"] = sum(1 for i in fn.instrs if i.base in ("HMMA", "HGMMA")) if fn else None
        rows.append(row)
    return {"module": module.name, "date": _dt.date.today().isoformat(),
            "archs": list_archs(module), "kernels": rows}


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
        if gpu.sass == "sm_90":
            out[f"tensor {label}, wgmma"] = pairs * fma / (2 * hmma)
    return out


def markdown(result: dict[str, Any]) -> str:
    """The README table: seconds per generation by GPU, the path auto takes, the bound."""
    gpus = list(result["gpus"])
    by_case: dict[tuple[int, int], dict[str, dict]] = {}
    for row in result["predictions"]:
        if row["auto"]:
            by_case.setdefault((row["n"], row["d"]), {})[row["gpu"]] = row
    lines = [
        "Model from machine code (SASS of the built module), not a measurement: seconds per "
        "generation (x0 estimate + DDIM step), float32, the path `auto` takes (tensor cores "
        f"from D = {AUTO_MMA_MIN_D}; a unit-variance population at alpha = 0.5 stays within "
        "cuda_backend.MMA_MAX_SPREAD).",
        "",
        "| N | D | path | " + " | ".join(f"{g} s/gen" for g in gpus) + " | bound (H100) | H100 target |",
        "|---|---|---|" + "---|" * len(gpus) + "---|---|",
    ]
    h100 = next((g for g in gpus if g.startswith("H100")), gpus[0])
    for (n, d), rows in sorted(by_case.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        h = rows.get(h100)
        target = h.get("target_s") if h else None
        verdict = "" if target is None else (f"{target} s: " + ("met" if h["seconds"] <= target else "**missed**"))
        cells = " | ".join(f"{rows[g]['seconds']:.3g}" if g in rows else "-" for g in gpus)
        lines.append(f"| {n:,} | {d} | {h['path'] if h else '?'} | {cells} | "
                     f"{h['bound'] if h else '-'} | {verdict} |")
    fl = result.get("floors", {})
    if fl:
        lines += ["", "Floors on the H100 SXM for the target cases (seconds; one unit alone, zero "
                  "overhead -- what no kernel of that form can beat):", "",
                  "| N | D | " + " | ".join(next(iter(fl.values())).keys()) + " |",
                  "|---|---|" + "---|" * len(next(iter(fl.values()))) ]
        for key, row in fl.items():
            n, d = map(int, key.split("x"))
            lines.append(f"| {n:,} | {d} | " + " | ".join(f"{v:.3g}" for v in row.values()) + " |")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--module", type=Path, help="the built diffevo/_cuda*.so (default: the installed one)")
    ap.add_argument("--json", type=Path, help="write the model here "
                    "(default bench/results/gpu-model-<date>.json)")
    ap.add_argument("--resources", action="store_true",
                    help="also write bench/results/sass-resources-<date>.json")
    ap.add_argument("--no-write", action="store_true", help="print only")
    args = ap.parse_args(argv)
    module = args.module or cuda_module_path()
    if module is None:
        print("gpu_model: diffevo was built without CUDA (no diffevo/_cuda*.so); rebuild with "
              "DIFFEVO_ENABLE_CUDA=ON", file=sys.stderr)
        return 2
    result = model(module)
    print(markdown(result))
    if not args.no_write:
        today = result["date"]
        out = args.json or RESULTS / f"gpu-model-{today}.json"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result, indent=1, default=str) + "\n")
        print(f"\nwrote {out}")
        if args.resources:
            res_out = RESULTS / f"sass-resources-{today}.json"
            res_out.write_text(json.dumps(resources_report(module), indent=1) + "\n")
            print(f"wrote {res_out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
