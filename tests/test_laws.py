"""Tests for ttscale.analysis.laws.power_law: the exponentiated power law of coverage against k."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ttscale.analysis.laws.power_law import (
    coverage_curve,
    exp_power,
    fit_from_counts,
    fit_power_law,
    log_spaced_ks,
    pass_at_k_matrix,
)
from ttscale.errors import InputError

REFERENCE = Path(__file__).resolve().parents[1] / "data" / "reference"  # shipped with the repo
MONKEYS = REFERENCE / "monkeys_llama3_counts.csv"


def brute_pass_at_k(n: int, c: int, k: int) -> float:
    return 1.0 - math.comb(n - c, k) / math.comb(n, k)


def test_pass_at_k_matches_exact_binomials_on_all_small_cases() -> None:
    cases = [(n, c) for n in range(1, 13) for c in range(n + 1)]
    n = np.array([x[0] for x in cases])
    c = np.array([x[1] for x in cases])
    ks = np.arange(1, 13)
    for got in (pass_at_k_matrix(n, c, ks),):
        for i, (ni, ci) in enumerate(cases):
            for j, k in enumerate(ks):
                if k > ni:
                    assert np.isnan(got[i, j])
                else:
                    assert got[i, j] == pytest.approx(brute_pass_at_k(ni, ci, int(k)), abs=1e-12)


def test_pass_at_k_large_n_matches_exact_fraction() -> None:
    got = pass_at_k_matrix(np.array([10_000, 10_000]), np.array([1, 37]), np.array([100, 5000]))
    assert got[0, 0] == pytest.approx(100 / 10_000, rel=1e-9)  # one correct: k/n exactly
    assert got[0, 1] == pytest.approx(0.5, rel=1e-9)
    assert got[1, 0] == pytest.approx(brute_pass_at_k(10_000, 37, 100), rel=1e-9)


def test_log_spaced_ks_follow_the_paper_grid() -> None:
    ks = log_spaced_ks(10_000)
    assert ks[0] == 1 and ks[-1] == 10_000
    assert len(ks) == 37  # 40 log-spaced values, 3 duplicates among 1..3 removed
    assert np.all(np.diff(ks) > 0)
    np.testing.assert_array_equal(log_spaced_ks(3, num=10), [1, 2, 3])


def test_fit_recovers_exact_parameters_of_noise_free_law() -> None:
    ks = log_spaced_ks(10_000)
    fit = fit_power_law(ks, exp_power(ks, -1.2, -0.4))
    assert fit.law == "exp_power"
    assert fit.params["a"] == pytest.approx(-1.2, abs=1e-7)
    assert fit.params["b"] == pytest.approx(-0.4, abs=1e-7)
    assert fit.rmse < 1e-9 and fit.max_abs_error < 1e-9
    assert fit.n_points == 37 and fit.k_range == (1, 10_000)
    assert fit.predict(1e6) == pytest.approx(math.exp(-1.2 * 1e6**-0.4), rel=1e-6)


def test_ceiling_fit_recovers_the_ceiling() -> None:
    ks = log_spaced_ks(1000)
    y = 0.9 * exp_power(ks, -0.8, -0.5)
    fit = fit_power_law(ks, y, ceiling=True)
    assert fit.law == "exp_power_ceiling"
    assert fit.params["c_max"] == pytest.approx(0.9, abs=1e-6)
    assert fit.params["a"] == pytest.approx(-0.8, abs=1e-5)
    assert fit.params["b"] == pytest.approx(-0.5, abs=1e-5)
    # without the ceiling the law cannot fit a curve that stalls at 0.9
    plain = fit_power_law(ks, y)
    assert plain.rmse > 10 * fit.rmse


def test_fit_errors_are_measured_on_the_fitted_points() -> None:
    ks = log_spaced_ks(1000)
    y = exp_power(ks, -1.0, -0.5)
    noisy = y.copy()
    noisy[5] += 0.02
    fit = fit_power_law(ks, noisy)
    resid = fit.predict(ks) - noisy
    assert fit.rmse == pytest.approx(float(np.sqrt(np.mean(resid**2))), rel=1e-12)
    assert fit.max_abs_error == pytest.approx(float(np.abs(resid).max()), rel=1e-12)
    assert fit.stderr["a"] > 0 and fit.stderr["b"] > 0


def test_to_record_is_json_ready() -> None:
    ks = log_spaced_ks(100)
    rec = fit_power_law(ks, exp_power(ks, -1.0, -0.5) * 0.97, ceiling=True).to_record()
    back = json.loads(json.dumps(rec))
    assert back["law"] == "exp_power_ceiling"
    assert set(back["params"]) == {"a", "b", "c_max"}
    assert back["k_range"] == [1, 100]


def test_coverage_curve_is_mean_of_per_problem_pass_at_k() -> None:
    n = np.array([10, 10, 10])
    c = np.array([0, 1, 10])
    cov = coverage_curve(n, c, np.array([1, 5, 10]))
    np.testing.assert_allclose(cov, [(0 + 0.1 + 1) / 3, (0 + 0.5 + 1) / 3, (0 + 1 + 1) / 3])


@pytest.mark.parametrize(
    "ks, cov, ceiling",
    [
        ([1, 2, 3], [0.1, 0.2], False),
        ([1, 2, 3], [0.1, 0.2, 1.5], False),
        ([0, 2, 3], [0.1, 0.2, 0.3], False),
        ([1, 2], [0.1, 0.2], False),
        ([1, 2, 3], [0.1, 0.2, 0.3], True),
        ([1, 2, 3], [0.0, 0.0, 0.0], False),
    ],
)
def test_bad_curves_raise_input_error(ks: list, cov: list, ceiling: bool) -> None:
    with pytest.raises(InputError, match="curve"):
        fit_power_law(ks, cov, ceiling=ceiling, source="curve")


def test_bad_counts_raise_input_error() -> None:
    with pytest.raises(InputError, match="num_correct"):
        fit_from_counts([10, 10], [3, 11])
    with pytest.raises(InputError, match="max_k"):
        fit_from_counts([10, 10], [3, 4], max_k=11)
    with pytest.raises(InputError, match="num_samples"):
        fit_from_counts([10, 0], [3, 0])


@pytest.mark.parametrize(
    "model, a, b",
    [("Llama-3-8B-Instruct", -1.33, -0.43), ("Llama-3-70B-Instruct", -0.75, -0.46)],
)
def test_reference_fits_reproduce_large_language_monkeys(model: str, a: float, b: float) -> None:
    df = pd.read_csv(MONKEYS)
    g = df[(df.benchmark == "MATH") & (df.model == model)]
    tol_a = 0.03 if "8B" in model else 0.04
    fit = fit_from_counts(g.num_samples.to_numpy(), g.num_correct.to_numpy())
    assert fit.params["a"] == pytest.approx(a, abs=tol_a)
    assert fit.params["b"] == pytest.approx(b, abs=0.02)
    assert fit.rmse < 0.01
    if "8B" in model:  # published coverage: 82.9% at k=100, 98.44% at k=10,000
        cov = coverage_curve(g.num_samples.to_numpy(), g.num_correct.to_numpy(), [100, 10_000])
        assert cov[0] == pytest.approx(0.829, abs=5e-4)
        assert cov[1] == pytest.approx(0.984375, abs=1e-12)
