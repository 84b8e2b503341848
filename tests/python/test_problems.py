"""Benchmark problems: values at the optima, stationarity, vectorisation, known points."""

from __future__ import annotations

import numpy as np
import pytest

from diffevo import problems
from diffevo.problems import PROBLEMS


def _dims(prob):
    return [prob.fixed_dim] if prob.fixed_dim else [prob.min_dim, 3, 10]


CASES = [(name, d) for name, prob in PROBLEMS.items() for d in _dims(prob)]


@pytest.mark.parametrize("name,d", CASES)
def test_value_at_every_known_optimum(name, d):
    """f(optimum) = fmin to 1e-12 relative to the scale 1 + |fmin| (rounding only)."""
    prob = problems.get(name)
    opt = prob.optima(d)
    assert opt.shape[1] == d and opt.shape[0] >= 1
    np.testing.assert_allclose(prob(opt), prob.fmin(d), rtol=0, atol=1e-12 * (1 + abs(prob.fmin(d))))


@pytest.mark.parametrize("name,d", CASES)
def test_optima_are_stationary_minima_inside_the_box(name, d):
    """Central differences of the gradient vanish (to O(h^2)), and nearby points are worse."""
    prob = problems.get(name)
    box = prob.bounds(d)
    rng = np.random.default_rng(0)
    for x in prob.optima(d):
        assert np.all(box[:, 0] < x) and np.all(x < box[:, 1])
        h = 1e-6
        eye = np.eye(d) * h
        grad = (prob(x + eye) - prob(x - eye)) / (2 * h)
        # the error of a central difference is O(h^2 f''') plus rounding ~1e-16 |f| / h
        assert np.abs(grad).max() < 1e-6 * (1 + abs(prob.fmin(d))), grad
        nearby = x + rng.normal(scale=1e-3, size=(64, d))
        assert np.all(prob(nearby) > prob.fmin(d))


@pytest.mark.parametrize("name,d", CASES)
def test_vectorised_equals_pointwise(name, d):
    prob = problems.get(name)
    box = prob.bounds(d)
    x = np.random.default_rng(1).uniform(box[:, 0], box[:, 1], size=(20, d))
    batch = prob(x)
    assert batch.shape == (20,)
    np.testing.assert_array_equal(batch, [prob(row) for row in x])
    assert np.ndim(prob(x[0])) == 0


def test_known_values_closed_forms():
    assert problems.sphere(np.array([1.0, 2.0, 3.0])) == 14.0
    assert problems.rosenbrock(np.zeros(2)) == 1.0
    assert problems.rosenbrock(np.array([-1.0, 1.0, 1.0])) == 4.0  # 4 + 0 and 0 + 0
    assert problems.beale(np.zeros(2)) == pytest.approx(1.5**2 + 2.25**2 + 2.625**2, abs=1e-15)
    assert problems.himmelblau(np.zeros(2)) == 170.0
    assert problems.rastrigin(np.ones(4)) == pytest.approx(4.0, abs=1e-12)
    assert problems.rastrigin(np.full(3, 0.5)) == pytest.approx(30 + 3 * (0.25 + 10), abs=1e-12)
    assert problems.ackley(np.zeros(5)) == pytest.approx(0.0, abs=1e-14)
    assert problems.styblinski_tang(np.zeros(7)) == 0.0
    assert problems.styblinski_tang(np.full(2, 1.0)) == pytest.approx(2 * 0.5 * (1 - 16 + 5))


def test_himmelblau_has_four_distinct_minima():
    opt = problems.get("himmelblau").optima(2)
    assert opt.shape == (4, 2)
    assert np.all(problems.himmelblau(opt) < 1e-25)
    gaps = np.linalg.norm(opt[:, None] - opt[None], axis=-1) + np.eye(4) * 99
    assert gaps.min() > 2


def test_registry_and_dimension_checks():
    assert set(PROBLEMS) == {"sphere", "rosenbrock", "beale", "himmelblau", "ackley", "rastrigin",
                             "styblinski_tang"}
    assert problems.get("Styblinski-Tang") is PROBLEMS["styblinski_tang"]
    with pytest.raises(ValueError, match="problem must be one of"):
        problems.get("griewank")
    with pytest.raises(ValueError, match="dim: himmelblau is defined for D=2"):
        PROBLEMS["himmelblau"].bounds(3)
    with pytest.raises(ValueError, match="dim: rosenbrock needs D >= 2"):
        PROBLEMS["rosenbrock"].optima(1)
    with pytest.raises(TypeError, match="dim"):
        PROBLEMS["sphere"].bounds(2.5)
    with pytest.raises(ValueError, match="beale is defined for D=2"):
        problems.beale(np.zeros((3, 3)))
    with pytest.raises(ValueError, match="scalar"):
        problems.sphere(np.float64(1.0))
    assert PROBLEMS["rastrigin"].bounds(3).tolist() == [[-5.12, 5.12]] * 3
    assert PROBLEMS["styblinski_tang"].fmin(10) == pytest.approx(-391.6616570377141)
