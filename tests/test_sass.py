"""Machine-code checks of the built CUDA module (no GPU needed: cuobjdump reads the .so).

Marked ``cuda_build``; skipped, with the reason, only when diffevo was built without
CUDA. The disassembly, the loop finding and the resource parsing are bench/gpu_model.py's
(the performance model reads the same SASS), so what is checked here is what the model
counts. Checks, for the sm_80 and the sm_90 code:

* both architectures are in the fat binary (CMake names them explicitly: 80;90);
* every pairwise kernel uses no local memory: no LDL/STL instruction and zero local and
  stack bytes in ``cuobjdump -res-usage`` (spills would land there);
* the float32 SIMT kernels take their exponentials on the special-function unit
  (MUFU.EX2) inside the pair loop, one per pair: at least rows x keys of them per pass
  (the tile shape read from simt_block.hpp);
* the tensor-core kernels issue HMMA (or HGMMA) inside the key loop;
* registers per thread and shared memory per block come out of the resource report for
  every kernel and architecture (what bench/results/sass-resources-<date>.json records:
  ``python bench/gpu_model.py --resources`` writes it).
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

from diffevo.backends import cuda_backend as cb

BENCH = Path(__file__).resolve().parents[1] / "bench"
ARCHS = ("sm_80", "sm_90")

pytestmark = [
    pytest.mark.cuda_build,
    pytest.mark.skipif(not cb.build_has_cuda(), reason="diffevo was built without CUDA"),
]


def _load_model():
    spec = importlib.util.spec_from_file_location("diffevo_bench_gpu_model", BENCH / "gpu_model.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    return mod


gm = _load_model()


@pytest.fixture(scope="module")
def module_path() -> Path:
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
    assert {r["path"] for r in rows} == {"simt", "mma"}, rows
    return rows


def test_both_architectures_present(module_path):
    archs = gm.list_archs(module_path)
    for arch in ARCHS:
        assert arch in archs, f"{arch} SASS missing from {module_path.name}: {archs}"


@pytest.mark.parametrize("arch", ARCHS)
def test_every_pairwise_kernel_is_in_the_binary(arch, kernels, functions):
    missing = [k["name"] for k in kernels if (arch, k["name"]) not in functions]
    assert not missing, f"{arch}: kernels named by diffevo._cuda.kernels() but absent: {missing}"


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


def test_resources_recorded_for_every_kernel_and_arch(module_path, kernels, tmp_path):
    report = gm.resources_report(module_path)
    rows = {(r["arch"], r["kernel"]): r for r in report["kernels"]}
    for arch in ARCHS:
        for k in kernels:
            r = rows[(arch, k["name"])]
            assert 0 < r["registers"] <= 255, r
            assert r["shared_bytes"] > 0, r  # every pair kernel stages key tiles in shared memory
    out = tmp_path / "sass-resources.json"
    out.write_text(json.dumps(report))
    assert json.loads(out.read_text())["archs"] == report["archs"]


def test_model_runs_on_this_module(module_path):
    """The performance model reads this module and predicts every benchmark case."""
    result = gm.model(module_path)
    cases = {(p["n"], p["d"]) for p in result["predictions"]}
    assert set(gm.CASES) <= cases
    for p in result["predictions"]:
        assert 0 < p["seconds"] < 1e4 and p["bound"] in p["unit_seconds"], p
    assert "not a measurement" in result["kind"]
