"""Tests for ttscale.analysis.ceilings.ceilings: saturation points and the false-positive ceiling."""

from __future__ import annotations

import math

import numpy as np
import pytest

from ttscale.analysis.ceilings.ceilings import (
    accuracy_limit,
    benchmark_accuracy,
    expected_utility,
    false_positive_rate_at_k,
    optimal_k,
    resample_accuracy,
    saturation_point,
    saturation_point_from_fit,
)
from ttscale.analysis.laws.power_law import FitResult
from ttscale.errors import InputError


def law(a: float, b: float) -> FitResult:
    return FitResult("exp_power", {"a": a, "b": b}, {"a": 0.0, "b": 0.0}, 0.0, 0.0, 10, (1, 100))


def test_saturation_point_of_geometric_curve_is_exact() -> None:
    ks = np.arange(1, 21)
    cov = 1 - 0.5**ks  # gain from k to k+1 is 0.5**(k+1)
    assert saturation_point(ks, cov, 0.01) == 6  # 0.5**7 < 0.01 <= 0.5**6
    assert saturation_point(ks, cov, 0.01, cost_per_sample=2.0) == 5  # 0.5**6/2 < 0.01
    assert saturation_point(ks, cov, 1e-9) is None


def test_saturation_point_uses_slope_over_uneven_gaps() -> None:
    ks = [1, 10, 100, 1000]
    cov = [0.1, 0.5, 0.8, 0.9]  # slopes 0.0444, 0.00333, 0.000111
    assert saturation_point(ks, cov, 0.01) == 10
    assert saturation_point(ks, cov, 0.001) == 100


def test_saturation_point_from_fit_matches_brute_force_over_integers() -> None:
    fit = law(-1.0, -0.5)
    for threshold, cost in [(1e-3, 1.0), (1e-4, 1.0), (1e-4, 5.0)]:
        k = 1
        while math.exp(-1.0 * (k + 1) ** -0.5) - math.exp(-1.0 * k**-0.5) >= threshold * cost:
            k += 1
        assert saturation_point_from_fit(fit, threshold, cost) == k


def test_saturation_point_from_fit_bisects_beyond_dense_range() -> None:
    fit = law(-1.0, -0.5)
    # gain ~ 0.5 k**-1.5 in the tail: below 1e-10 around k ~ 3e6, past the dense 2**20
    k = saturation_point_from_fit(fit, 1e-10)
    gain = lambda x: float(fit.predict(x + 1) - fit.predict(x))  # noqa: E731
    assert k is not None and k > 2**20
    assert gain(k) < 1e-10 <= gain(k - 1)
    assert saturation_point_from_fit(fit, 1e-10, k_max=2**21) is None


def test_resample_accuracy_closed_form_special_cases() -> None:
    ks = np.array([0, 1, 2, 5])
    # a perfect verifier: accuracy is coverage 1 - (1 - r)^k
    np.testing.assert_allclose(resample_accuracy([0.3], 1.0, 1.0, ks)[0], 1 - 0.7**ks, atol=1e-15)
    # a verifier that accepts everything: the first attempt decides
    np.testing.assert_allclose(resample_accuracy([0.3], 0.0, 1.0, ks)[0], [0, 0.3, 0.3, 0.3])
    # a verifier that never accepts: nothing is ever answered
    np.testing.assert_allclose(resample_accuracy([0.3], 1.0, 0.0, ks)[0], 0.0)


def test_accuracy_limit_formula_and_convergence() -> None:
    r = np.array([0.01, 0.2, 0.9])
    lim = accuracy_limit(r, 0.95, 1.0)
    np.testing.assert_allclose(lim, r / (r + (1 - r) * 0.05))
    assert lim[0] == pytest.approx(0.01 / (0.01 + 0.99 * 0.05))  # ~0.168: the ceiling
    far = resample_accuracy(r, 0.95, 1.0, [100_000])[:, 0]
    np.testing.assert_allclose(far, lim, rtol=1e-12)
    lim_c = accuracy_limit(r, 0.95, 0.8)
    np.testing.assert_allclose(lim_c, 0.8 * r / (0.8 * r + (1 - r) * 0.05))


def simulate(r: np.ndarray, s: float, c: float, k_max: int, trials: int, seed: int):
    """Monte Carlo: per problem and trial, the first accepted attempt and whether it is right."""
    rng = np.random.default_rng(seed)
    right = rng.random((len(r), trials, k_max)) < r[:, None, None]
    accept = np.where(right, rng.random(right.shape) < c, rng.random(right.shape) >= s)
    first = np.where(accept.any(axis=2), accept.argmax(axis=2), k_max)  # index of first accept
    was_right = np.take_along_axis(right, np.minimum(first, k_max - 1)[..., None], 2)[..., 0]
    return first, was_right


def test_resample_accuracy_and_false_positives_match_monte_carlo() -> None:
    r = np.array([0.02, 0.3, 0.8])
    s, c, ks, trials = 0.9, 0.85, np.array([1, 3, 10]), 40_000
    first, was_right = simulate(r, s, c, 10, trials, seed=1)
    acc = resample_accuracy(r, s, c, ks)
    fp = false_positive_rate_at_k(r, s, c, ks)
    for j, k in enumerate(ks):
        accepted = first < k
        mc_acc = (accepted & was_right).mean(axis=1)
        mc_fp = (accepted & ~was_right).mean(axis=1)
        se = np.sqrt(0.25 / trials)
        np.testing.assert_allclose(mc_acc, acc[:, j], atol=5 * se)
        np.testing.assert_allclose(mc_fp, fp[:, j], atol=5 * se)
    bench = benchmark_accuracy(r, s, c, ks, weights=[1, 2, 1])
    np.testing.assert_allclose(bench, (acc[0] + 2 * acc[1] + acc[2]) / 4)


def test_expected_utility_matches_monte_carlo_with_sampling_cost() -> None:
    r = np.array([0.05, 0.6])
    # cost 0.05 a sample: one sample more or less per problem moves the utility by about 0.05,
    # over ten standard errors of the Monte Carlo mean (about 0.004)
    s, c, v, cost, k = 0.8, 0.9, 2.0, 0.05, 6
    first, was_right = simulate(r, s, c, k, 100_000, seed=2)
    accepted = first < k
    drawn = np.minimum(first + 1, k)
    util = np.where(accepted, np.where(was_right, 1.0, -v), 0.0) - cost * drawn
    got = expected_utility(r, s, c, v, [k], cost_per_sample=cost)[0]
    se = util.std() / np.sqrt(util.size)
    assert got == pytest.approx(util.mean(), abs=4 * se)
    off_by_one = util.mean() + cost * accepted.mean()  # the cost of one sample fewer when accepted
    assert abs(off_by_one - got) > 8 * se


def utility_by_recursion(r: np.ndarray, s: float, c: float, v: float, k: int) -> float:
    """Independent computation: sum over attempts j of P(reach j) * payoff of attempt j."""
    total = 0.0
    for ri in r:
        reach, u = 1.0, 0.0
        for _ in range(k):
            u += reach * (ri * c - v * (1 - ri) * (1 - s))
            reach *= 1 - ri * c - (1 - ri) * (1 - s)
        total += u
    return total / len(r)


def test_optimal_k_is_finite_with_false_positive_cost_and_matches_brute_force() -> None:
    r = np.array([0.9, 0.5, 0.05, 0.01, 0.002])
    s, c, v = 0.95, 1.0, 1.0
    brute = [utility_by_recursion(r, s, c, v, k) for k in range(0, 201)]
    best = optimal_k(r, s, c, v, k_max=200)
    assert best.k == int(np.argmax(brute))
    assert 0 < best.k < 200
    assert best.expected_utility == pytest.approx(max(brute), rel=1e-12)
    # without a penalty for false positives the utility only grows: the largest k wins
    assert optimal_k(r, s, c, 0.0, k_max=50).k == 50
    # a single problem is monotone: all-or-nothing
    assert optimal_k([0.01], s, c, v, k_max=50).k == 0
    assert optimal_k([0.3], s, c, v, k_max=50).k == 50


def test_bad_verifier_inputs_raise_input_error() -> None:
    with pytest.raises(InputError, match="soundness"):
        resample_accuracy([0.1], 1.2, 1.0, [1])
    with pytest.raises(InputError, match="'r'"):
        resample_accuracy([-0.1], 0.9, 1.0, [1])
    with pytest.raises(InputError, match="ks"):
        resample_accuracy([0.1], 0.9, 1.0, [1.5])
    with pytest.raises(InputError, match="weights"):
        benchmark_accuracy([0.1, 0.2], 0.9, 1.0, [1], weights=[1.0])
    with pytest.raises(InputError, match="coverage"):
        saturation_point([1, 2, 3], [0.1, 0.2], 0.01)
