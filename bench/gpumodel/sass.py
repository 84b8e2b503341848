"""SASS of the built module: the tools (cuobjdump, c++filt), the listing's functions and
instructions, the resource report, the execution unit of each opcode, and the loops.

A loop is a branch back to an earlier address; a Region is one loop body's static
instruction counts by unit (its nested loops excluded, kept as child regions).
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

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
    out = subprocess.run([exe], input="\n".join(names), capture_output=True, text=True, check=False)
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


def stored_elements(opcode: str) -> int:
    """32-bit words one lane stores to shared memory with this opcode: STS 1, STS.64 2,
    STS.128 4 (sub-word stores count 1); 0 for anything else."""
    if not opcode.startswith("STS"):
        return 0
    mods = opcode.split(".")[1:]
    return 4 if "128" in mods else 2 if "64" in mods else 1


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
    nested: list[Region] = field(default_factory=list)

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

