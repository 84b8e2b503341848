"""Machine-code checks of the built CUDA module (no GPU needed: cuobjdump reads the .so).

The SASS checks are marked ``cuda_build`` and skip, with the reason, only when diffevo was
built without CUDA (two model checks need no CUDA). The disassembly, the loop finding and the resource parsing are bench/gpumodel's
(the performance model reads the same SASS), so what is checked here is what the model
counts. Checks, for the sm_80 and the sm_90a code:

* both architectures are in the fat binary (CMake names them explicitly: 80;90);
* every pairwise kernel uses no local memory: no LDL/STL instruction and zero local and
  stack bytes in ``cuobjdump -res-usage`` (spills would land there);
* the float32 SIMT kernels take their exponentials on the special-function unit
  (MUFU.EX2) inside the pair loop, one per pair: at least rows x keys of them per pass
  (the tile shape from diffevo._core.kernel_configs());
* the tensor-core kernels issue HMMA (or HGMMA) inside the key loop;
* registers per thread and shared memory per block come out of the resource report for
  every kernel and architecture (what bench/results/sass-resources-<date>.json records:
  ``python bench/gpu_model.py --resources`` writes it).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bench import (
    gpumodel as gm,  # the repository root is on pytest's pythonpath (pyproject)
)
from diffevo.backends import cuda_backend as cb

ROOT = Path(__file__).resolve().parents[2]
ARCHS = ("sm_80", "sm_90a")  # the default build (CMakeLists.txt: 80;90a)


def needs_cuda_build(fn):
    """Marked ``cuda_build``; skipped, with the reason, where diffevo was built without CUDA."""
    fn = pytest.mark.skipif(not cb.build_has_cuda(), reason="diffevo was built without CUDA")(fn)
    return pytest.mark.cuda_build(fn)


def test_stored_elements_counts_words_per_store():
    """Staging costs are per staged element: a vector store counts for every word it stores."""
    assert [gm.stored_elements(op) for op in ("STS", "STS.64", "STS.128", "STS.U16", "LDS.128", "STG.E")] == [
        1, 2, 4, 1, 0, 0]


def test_tilings_and_path_rule_come_from_the_built_module():
    """The model reads the C++ side's one definition (diffevo._core.kernel_configs())."""
    from diffevo import _core

    cfg = _core.kernel_configs()
    tilings = gm.read_tilings()
    for path, key in (("simt", "simt_f32"), ("mma", "mma_f32")):
        t, c = tilings[path], cfg[key]
        assert (t.threads, t.bm, t.bn, t.dk, t.dvc, t.rows_per_warp) == (
            c["threads"], c["block_rows"], c["tile_keys"], c["chunk_dims"], c["value_cols"], c["rows_per_warp"])
    rule = cfg["tensor_core_min_d"]
    assert gm.tensor_core_min_d() == rule
    assert gm.auto_path(rule) == "mma" and gm.auto_path(rule - 1) == "simt"


@pytest.fixture(scope="module")
def module_path() -> Path:
    if not cb.build_has_cuda():
        pytest.skip("diffevo was built without CUDA")
    path = gm.cuda_module_path()
    assert path is not None, "diffevo._core says CUDA was built, but no diffevo/_cuda*.so was found"
    for tool in ("cuobjdump",):
        if gm.find_tool(tool) is None:
            pytest.fail(f"{tool} not found: pip install nvidia-cuda-cuobjdump nvidia-cuda-nvdisasm "
                        "(or put the CUDA toolkit's bin on PATH)")
    return path


@pytest.fixture(scope="module")
def functions(module_path):
    return {(f.arch, f.name): f for f in gm.dump_sass(module_path)}


@pytest.fixture(scope="module")
def resources(module_path):
    return {(r["arch"], r["kernel"]): r for r in gm.resource_usage(module_path)}


@pytest.fixture(scope="module")
def kernels():
    """The pairwise kernels as the module describes them (mangled name, path, dtype)."""
    mod = cb._cuda_module()
    listing = getattr(mod, "kernels", None)
    assert listing is not None, "diffevo._cuda.kernels() is missing"
    rows = list(listing())
    assert {r["path"] for r in rows} == {"simt", "mma", "wgmma", "simt_small"}, rows
    return rows


@needs_cuda_build
def test_both_architectures_present(module_path):
    archs = gm.list_archs(module_path)
    for arch in ARCHS:
        assert arch in archs, f"{arch} SASS missing from {module_path.name}: {archs}"


@needs_cuda_build
@pytest.mark.parametrize("arch", ARCHS)
def test_every_pairwise_kernel_is_in_the_binary(arch, kernels, functions):
    missing = [k["name"] for k in kernels if (arch, k["name"]) not in functions]
    assert not missing, f"{arch}: kernels named by diffevo._cuda.kernels() but absent: {missing}"


@needs_cuda_build
@pytest.mark.parametrize("arch", ARCHS)
def test_no_local_memory(arch, kernels, functions, resources):
    for k in kernels:
        fn = functions[(arch, k["name"])]
        local = gm.has_local_memory(fn)
        assert not local, f"{arch} {fn.demangled}: local memory instructions {local[:3]}"
        res = resources[(arch, k["name"])]
        assert res["local_bytes"] == 0 and res["stack_bytes"] == 0, (
            f"{arch} {fn.demangled}: {res['local_bytes']} local / {res['stack_bytes']} stack bytes "
            "(register spills or a dynamically indexed array)")


@needs_cuda_build
@pytest.mark.parametrize("arch", ARCHS)
def test_simt_kernel_uses_fast_exp_in_its_loop(arch, kernels, functions):
    tiling = gm.read_tilings()["simt"]
    pairs_per_lane = tiling.rows_per_warp // 32 * tiling.bn  # exps per thread per pass
    checked = 0
    for k in kernels:
        if k["path"] != "simt" or k["dtype"] != "float32":
            continue
        fn = functions[(arch, k["name"])]
        loop = gm.pair_loop(fn)
        assert loop is not None, f"{arch} {fn.demangled}: no loop holds MUFU.EX2"
        assert loop.n_ex2 >= pairs_per_lane, (
            f"{arch} {fn.demangled}: {loop.n_ex2} MUFU.EX2 in the pair loop, expected >= {pairs_per_lane} "
            f"(rows x keys of a tile, {tiling.source})")
        checked += 1
    assert checked == 2, "expected the float32 SIMT kernel in its two variants (reference, online max)"


@needs_cuda_build
@pytest.mark.parametrize("arch", ARCHS)
def test_mma_kernel_uses_tensor_cores(arch, kernels, functions):
    checked = 0
    for k in kernels:
        if k["path"] != "mma":
            continue
        fn = functions[(arch, k["name"])]
        prof = gm.profile_kernel(fn)
        assert prof is not None and prof.path == "mma", f"{arch} {fn.demangled}: no tensor-core pair loop"
        in_loop = [i for i in fn.instrs if prof.pair.start <= i.addr <= prof.pair.end
                   and i.base in ("HMMA", "HGMMA")]
        assert in_loop, f"{arch} {fn.demangled}: no HMMA/HGMMA in the key loop"
        checked += 1
    assert checked == 2


@needs_cuda_build
def test_resources_recorded_for_every_kernel_and_arch(module_path, kernels, tmp_path):
    report = gm.resources_report(module_path)
    rows = {(r["arch"], r["kernel"]): r for r in report["kernels"]}
    for arch in ARCHS:
        for k in kernels:
            r = rows[(arch, k["name"])]
            assert 0 < r["registers"] <= 255, r
            # every pair kernel stages key tiles in shared memory (the warpgroup path's is
            # dynamic, sizeof(wg_smem), set at launch: none static)
            assert r["shared_bytes"] > 0 or k["path"] == "wgmma", r
    out = tmp_path / "sass-resources.json"
    out.write_text(json.dumps(report))
    assert json.loads(out.read_text())["archs"] == report["archs"]


@needs_cuda_build
def test_model_runs_on_this_module(module_path):
    """The performance model reads this module and predicts every benchmark case."""
    result = gm.model(module_path)
    cases = {(p["n"], p["d"]) for p in result["predictions"]}
    assert set(gm.CASES) <= cases
    for p in result["predictions"]:
        assert 0 < p["seconds"] < 1e4 and p["bound"] in p["unit_seconds"], p
    assert "not a measurement" in result["kind"]


@needs_cuda_build
def test_gpu_model_command_writes_its_json(module_path, tmp_path):
    """``python bench/gpu_model.py --json F`` stays the command (a thin entry point)."""
    out = tmp_path / "model.json"
    run = subprocess.run([sys.executable, str(ROOT / "bench" / "gpu_model.py"), "--json", str(out)],
                         capture_output=True, text=True, timeout=300, check=False)
    assert run.returncode == 0, run.stderr
    result = json.loads(out.read_text())
    assert result["auto_mma_min_d"] == gm.tensor_core_min_d()
    assert {(p["n"], p["d"]) for p in result["predictions"]} >= set(gm.CASES)


# ---- issue 17's bodies: the sm_90a warpgroup path and the small-D SIMT body -------------


def _item_loop(fn):
    lo, hi = max(gm.find_loops(fn), key=lambda x: x[1] - x[0])
    return [i.opcode for i in fn.instrs if lo <= i.addr <= hi]


@needs_cuda_build
def test_warpgroup_kernels_use_wgmma_and_cp_async(kernels, functions):
    """sm_90a: HGMMA (three split products per 16-wide k-step: S over 64 dimensions and
    W.V over 64 keys, or W.V alone in the latent form) fed by LDGSTS copies, with the
    async-proxy fence and the warpgroup waits. sm_80 has the kernels (one module) but
    never runs them: no HGMMA there."""
    checked = 0
    for k in kernels:
        if k["path"] != "wgmma":
            continue
        latent = "ILi0E" not in k["name"]
        wide = "ELi256E" in k["name"]
        loop = _item_loop(functions[("sm_90a", k["name"])])
        hgmma = [op for op in loop if op.startswith("HGMMA.")]
        assert len(hgmma) == (12 if latent else 24), (k["name"], len(hgmma))
        vv = "64x256x16" if wide else "64x64x16"
        assert sum(vv in op for op in hgmma) >= 12 and all(".F32" in op for op in hgmma)
        assert any(op.startswith("LDGSTS.E.BYPASS.128") for op in loop)
        assert any(op.startswith("WARPGROUP.ARRIVE") for op in loop)
        assert any(op.startswith("WARPGROUP.DEPBAR") for op in loop)
        ops = [i.opcode for i in functions[("sm_90a", k["name"])].instrs]
        assert any(op.startswith("FENCE.VIEW.ASYNC.S") for op in ops)
        assert not [i for i in functions[("sm_80", k["name"])].instrs if i.opcode.startswith("HGMMA")]
        checked += 1
    assert checked == 12


@needs_cuda_build
@pytest.mark.parametrize("arch", ARCHS)
def test_small_d_loop_is_at_its_irreducible_instructions(arch, kernels, functions):
    """D = 2 with two value columns: per pair 2 FADD + 2 FFMA (distance), 1 MUFU.EX2,
    1 FADD (B), 2 FFMA (A) = 8, the key loads and loop control amortised over 4 keys x 32
    rows (the README's general loop issues 13)."""
    (k,) = [k for k in kernels if k["path"] == "simt_small" and "ILi2ELi2ELi32E" in k["name"]]
    fn = functions[(arch, k["name"])]
    lo, hi = min(gm.find_loops(fn), key=lambda x: x[1] - x[0])
    loop = [i.opcode.split(".")[0] for i in fn.instrs if lo <= i.addr <= hi]
    pairs = 4 * 32
    assert loop.count("MUFU") == pairs
    assert loop.count("FFMA") == 4 * pairs and loop.count("FADD") == 3 * pairs
    assert len(loop) / pairs < 8.2, len(loop) / pairs
