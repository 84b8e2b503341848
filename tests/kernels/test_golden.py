"""Every golden case of the reference (float64) on every CPU backend.

Tolerance: 1e-10 relative to the case's scale. The reference ran in float64; our
rewrite of the sum (SPEC section 3) reorders additions, which moves results by a
few ulps times the number of terms -- far below 1e-10 for these sizes.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

import diffevo
from diffevo import examples
from golden_data import case_ids, load_golden

RTOL = 1e-10

SCHED = load_golden("schedulers")
MAPS = load_golden("mappings")
GEN = load_golden("generator")
LAT = load_golden("latent")
STEP = load_golden("ddim_step")
OPT = load_golden("optimize")
EX = load_golden("examples")


def assert_close(actual, expected, rtol=RTOL):
    """|a - e| <= rtol * max(1, max|e|): relative to the case's scale."""
    expected = np.asarray(expected)
    scale = max(1.0, float(np.max(np.abs(expected)))) if expected.size else 1.0
    np.testing.assert_allclose(actual, expected, rtol=0, atol=rtol * scale)


@pytest.mark.parametrize("n", [2, 10, 100])
def test_schedulers(n):
    for p in (1, 2):
        assert_close(diffevo.DDIMScheduler(n, power=p).alpha, SCHED[f"ddim_n{n}_p{p}"])
    assert_close(diffevo.DDIMSchedulerCosine(n).alpha, SCHED[f"cosine_n{n}"])
    assert_close(diffevo.DDPMScheduler(n).alpha, SCHED[f"ddpm_n{n}"])


def test_scheduler_iteration():
    sched = diffevo.DDIMScheduler(10)
    rows = [(t, at, ap) for t, (at, ap) in sched]
    assert len(sched) == 9
    assert_close(np.array(rows), SCHED["ddim_n10_iter"])
    assert [r[0] for r in sched] == [r[0] for r in rows]  # iterating again restarts


@pytest.mark.parametrize(
    "key, mapping",
    [
        ("identity", diffevo.Identity()),
        ("identity_l2", diffevo.Identity(l2_factor=0.01)),
        ("energy_T1", diffevo.Energy(temperature=1)),
        ("energy_T0.3", diffevo.Energy(temperature=0.3, l2_factor=0.001)),
        ("power_3", diffevo.Power(3)),
        ("power_2_T2", diffevo.Power(2, temperature=2, l2_factor=0.01)),
    ],
)
def test_mappings(key, mapping):
    assert_close(mapping(MAPS["fitness"]), MAPS[key])


@pytest.mark.parametrize("case", case_ids(GEN))
def test_generator(case, cpu_backend):
    x, f, meta = GEN[f"c{case}_x"], GEN[f"c{case}_fitness"], GEN[f"c{case}_meta"]
    alpha_t, alpha_prev, h, is_kde = meta
    density = "kde" if is_kde else "uniform"
    gen = diffevo.BayesianGenerator(x, f, (alpha_t, alpha_prev), density, h, backend=cpu_backend)
    x_next, x0 = gen(noise=0, return_x0=True)
    assert_close(x0, GEN[f"c{case}_x0"])
    assert_close(x_next, GEN[f"c{case}_xnext_noise0"])
    # the functional core gives the same x0
    x0_fn = diffevo.x0_estimate(x, f, alpha_t, density=density, bandwidth=h, backend=cpu_backend)
    assert_close(x0_fn, GEN[f"c{case}_x0"])


@pytest.mark.parametrize("case", case_ids(LAT))
def test_latent_generator(case, cpu_backend):
    x, z, f = LAT[f"c{case}_x"], LAT[f"c{case}_latent"], LAT[f"c{case}_fitness"]
    alpha_t, alpha_prev = LAT[f"c{case}_alphas"]
    gen = diffevo.LatentBayesianGenerator(x, z, f, (alpha_t, alpha_prev), backend=cpu_backend)
    x_next, x0 = gen(noise=0, return_x0=True)
    assert_close(x0, LAT[f"c{case}_x0"])
    assert_close(x_next, LAT[f"c{case}_xnext_noise0"])


@pytest.mark.parametrize("case", case_ids(STEP))
def test_ddim_step(case):
    alpha_t, alpha_prev, noise = STEP[f"c{case}_meta"]
    out = diffevo.ddim_step(STEP[f"c{case}_xt"], STEP[f"c{case}_x0"], alpha_t, alpha_prev,
                            noise=noise, z=STEP[f"c{case}_z"])
    assert_close(out, STEP[f"c{case}_xnext"])


def _fitness_fn(meta):
    if meta["fitness"] == "two_peak":
        return lambda x: examples.two_peak_density(x, std=meta["std"])
    return lambda x: examples.two_peak_density_step(x, std=meta["std"])


@pytest.mark.parametrize("run", case_ids(OPT, "r"))
def test_optimize(run, cpu_backend):
    meta = json.loads(str(OPT[f"r{run}_meta"]))
    mapping = {None: None, "power3": diffevo.Power(3)}[meta["mapping"]]
    opt = diffevo.DiffEvo(num_step=meta["num_step"], noise=meta["noise"], scaling=meta["scaling"],
                          fitness_mapping=mapping, backend=cpu_backend)
    final, trace, fitness = opt.optimize(_fitness_fn(meta), OPT[f"r{run}_init"], trace=True)
    # whole runs compound rounding over up to 29 generations: 1e-9 of the scale
    assert_close(final, OPT[f"r{run}_final"], rtol=1e-9)
    assert_close(trace, OPT[f"r{run}_trace"], rtol=1e-9)
    assert_close(np.stack(fitness), OPT[f"r{run}_fitness"], rtol=1e-9)


def test_examples():
    pts = EX["points"]
    assert_close(examples.two_peak_density(pts, std=0.1), EX["two_peak_std0.1"])
    assert_close(examples.two_peak_density(pts, std=0.25), EX["two_peak_std0.25"])
    step = examples.two_peak_density_step(pts, std=0.5)
    assert step.dtype == EX["two_peak_step_std0.5"].dtype
    np.testing.assert_array_equal(step, EX["two_peak_step_std0.5"])
