"""pass@k, coverage, bootstrap CIs and PassUntil: exact values, brute force, properties."""

from __future__ import annotations

import itertools
import json
from fractions import Fraction
from math import comb
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ttscale.analysis.curves.estimators import (
    _log_tail_ratio_gammaln,
    bootstrap_ci,
    coverage,
    log_tail_ratio,
    pass_at_k,
    pass_until,
)
from ttscale.errors import InputError

CASES = json.loads((Path(__file__).parent / "cases" / "pass_at_k.json").read_text())["cases"]


def exact_pass(n: int, c: int, k: int) -> Fraction:
    return 1 - Fraction(comb(n - c, k), comb(n, k))


# -- pass@k ----------------------------------------------------------------------------------
@pytest.mark.parametrize("case", CASES, ids=[f"n{c['n']}-c{c['c']}-k{c['k']}" for c in CASES])
def test_pass_at_k_matches_json_case(case):
    got = pass_at_k(case["n"], [case["c"]], [case["k"]])[0, 0]
    if case["expected"] is None:
        assert np.isnan(got)
    else:
        assert got == pytest.approx(case["expected"], rel=1e-12, abs=1e-15)
        if "exact" in case:
            assert float(Fraction(case["exact"])) == case["expected"]


def test_pass_at_k_all_json_cases_in_one_call_with_differing_n():
    n = [c["n"] for c in CASES]
    c = [c["c"] for c in CASES]
    ks = sorted({case["k"] for case in CASES})
    got = pass_at_k(n, c, ks)
    assert got.shape == (len(CASES), len(ks))
    for i, case in enumerate(CASES):
        v = got[i, ks.index(case["k"])]
        if case["expected"] is None:
            assert np.isnan(v)
        else:
            assert v == pytest.approx(case["expected"], rel=1e-12, abs=1e-15)


def test_pass_at_k_equals_subset_enumeration_for_small_n():
    for n in range(1, 8):
        for c in range(n + 1):
            items = [1] * c + [0] * (n - c)
            got = pass_at_k(n, [c], np.arange(1, n + 1))[0]
            for k in range(1, n + 1):
                subsets = list(itertools.combinations(items, k))
                brute = Fraction(sum(any(s) for s in subsets), len(subsets))
                assert got[k - 1] == pytest.approx(float(brute), abs=1e-14)


def test_pass_at_k_exact_zero_and_one():
    got = pass_at_k([50, 50, 50], [0, 50, 45], [1, 5, 6, 50])
    assert (got[0] == 0.0).all()
    assert (got[1] == 1.0).all()
    assert got[2, 1] < 1.0 and got[2, 2] == 1.0 and got[2, 3] == 1.0


def test_pass_at_k_gammaln_path_agrees_with_cumulative_path():
    rng = np.random.default_rng(3)
    n = rng.integers(1, 3000, size=40)
    c = rng.integers(0, n + 1)
    ks = np.array([1, 2, 7, 50, 999, 2500, 3000])
    a = log_tail_ratio(n, c, ks)
    b = _log_tail_ratio_gammaln(n, c, ks)
    fin = np.isfinite(a)
    assert (np.isnan(a) == np.isnan(b)).all()
    assert (np.isneginf(a) == np.isneginf(b)).all()
    np.testing.assert_allclose(-np.expm1(a[fin]), -np.expm1(b[fin]), rtol=1e-9, atol=1e-12)


def test_pass_at_k_large_sparse_k_matches_fraction():
    # n = 200,000 with a few far-apart k takes the log-gamma path
    n, c = 200_000, np.array([1, 17, 150_000])
    ks = np.array([1, 10, 100_000, 199_999])
    got = pass_at_k(n, c, ks)
    for i, ci in enumerate(c):
        for j, k in enumerate(ks):
            if n - ci < k:
                assert got[i, j] == 1.0
            elif k <= 10:
                assert got[i, j] == pytest.approx(float(exact_pass(n, int(ci), int(k))), rel=1e-9)
    assert got[0, 2] == pytest.approx(0.5, rel=1e-9)  # c = 1: k/n


def test_pass_at_k_rare_success_keeps_relative_precision():
    # c = 1, n = 10,000: pass@1 = 1e-4 to full relative precision (no 1 - (1 - x) cancellation)
    got = pass_at_k(10_000, [1, 2], [1, 2])
    assert got[0, 0] == pytest.approx(1e-4, rel=1e-14)
    assert got[1, 1] == pytest.approx(float(exact_pass(10_000, 2, 2)), rel=1e-13)


@settings(max_examples=60, deadline=None)
@given(n=st.integers(1, 60), data=st.data())
def test_pass_at_k_in_unit_interval_and_non_decreasing(n, data):
    c = data.draw(st.lists(st.integers(0, n), min_size=1, max_size=6))
    got = pass_at_k(n, c, np.arange(1, n + 1))
    assert ((got >= 0) & (got <= 1)).all()
    assert (np.diff(got, axis=1) >= -1e-15).all()


@settings(max_examples=40, deadline=None)
@given(n=st.integers(1, 80), p=st.floats(0.0, 1.0), k=st.integers(1, 80))
def test_pass_at_k_is_unbiased_over_binomial_counts(n, p, k):
    k = min(k, n)
    c = np.arange(n + 1)
    pmf = np.array([comb(n, int(i)) * p**i * (1 - p) ** (n - i) for i in c])  # Binomial(n, p)
    expectation = pmf @ pass_at_k(n, c, [k])[:, 0]
    assert expectation == pytest.approx(1 - (1 - p) ** k, abs=1e-12)


def test_coverage_is_mean_and_nan_beyond_smallest_n():
    n, c = np.array([10, 4]), np.array([3, 1])
    cov = coverage(n, c, [1, 2, 4, 5])
    assert cov[0] == pytest.approx((0.3 + 0.25) / 2)
    assert cov[1] == pytest.approx((float(exact_pass(10, 3, 2)) + 0.5) / 2)
    assert cov[2] == pytest.approx((float(exact_pass(10, 3, 4)) + 1.0) / 2)
    assert np.isnan(cov[3])


@pytest.mark.parametrize(
    ("n", "c", "ks", "field"),
    [
        ([5], [6], [1], "'c'"),
        ([5], [-1], [1], "'c'"),
        ([0], [0], [1], "'n'"),
        ([5], [2.5], [1], "'c'"),
        ([5], [2], [0], "'ks'"),
        ([5, 6], [2], [1], "'n'"),
        ([5], [2], [], "'ks'"),
    ],
)
def test_pass_at_k_bad_input_names_the_field(n, c, ks, field):
    with pytest.raises(InputError, match=field):
        pass_at_k(n, c, ks)


# -- bootstrap -------------------------------------------------------------------------------
def test_bootstrap_ci_contains_estimate_and_narrows_with_more_problems():
    rng = np.random.default_rng(0)
    ks = np.arange(1, 101)
    widths = []
    for p in (32, 512):
        c = rng.binomial(100, rng.beta(0.3, 1.0, size=p))
        per = pass_at_k(100, c, ks)
        low, high = bootstrap_ci(per, n_boot=1000, seed=1)
        est = per.mean(axis=0)
        assert (low <= est).all() and (est <= high).all()
        assert (low < high).all()
        widths.append(np.mean(high - low))
    assert widths[1] < widths[0] / 2.5  # about sqrt(16) = 4 times narrower


def test_bootstrap_ci_width_matches_normal_theory():
    rng = np.random.default_rng(1)
    x = rng.random(400)
    low, high = bootstrap_ci(x, n_boot=4000, ci=0.95, seed=2)
    se = x.std() / np.sqrt(x.size)
    assert high - low == pytest.approx(2 * 1.959964 * se, rel=0.08)
    assert (low + high) / 2 == pytest.approx(x.mean(), abs=0.15 * se)


def test_bootstrap_ci_is_seeded_and_handles_nan_and_no_resamples():
    per = np.array([[0.1, np.nan], [0.5, 0.2], [0.9, 0.3]])
    a = bootstrap_ci(per, n_boot=200, seed=5)
    b = bootstrap_ci(per, n_boot=200, seed=5)
    np.testing.assert_array_equal(a[0], b[0])
    assert np.isnan(a[0][1]) and np.isnan(a[1][1])
    low, high = bootstrap_ci(per, n_boot=0)
    assert np.isnan(low).all() and np.isnan(high).all()
    same = bootstrap_ci(np.full((5, 3), 0.25), n_boot=50)
    assert (same[0] == 0.25).all() and (same[1] == 0.25).all()


def test_bootstrap_ci_rejects_bad_ci():
    with pytest.raises(InputError, match="'ci'"):
        bootstrap_ci(np.ones((3, 2)), ci=1.5)


# -- PassUntil -------------------------------------------------------------------------------
def _outcomes(r: int, cap: int, p: float):
    """Every outcome of 'sample until r successes, at most cap' with its probability."""
    for t in range(r, cap + 1):  # stopped by the r-th success at attempt t
        yield t, r, comb(t - 1, r - 1) * p**r * (1 - p) ** (t - r)
    for s in range(r):  # censored at the cap with s < r successes
        yield cap, s, comb(cap, s) * p**s * (1 - p) ** (cap - s)


@pytest.mark.parametrize(("r", "cap"), [(1, 5), (2, 7), (3, 12), (5, 30)])
@pytest.mark.parametrize("p", [0.01, 0.2, 0.7])
def test_pass_until_unbiased_estimator_has_expectation_p_exactly(r, cap, p):
    t, s, prob = map(np.array, zip(*_outcomes(r, cap, p), strict=True))
    assert prob.sum() == pytest.approx(1.0, abs=1e-12)
    est = pass_until(t, s, r, cap)
    assert prob @ est["unbiased"].to_numpy() == pytest.approx(p, abs=1e-12)
    # the MLE is s/t, and is biased upwards for inverse binomial sampling
    np.testing.assert_allclose(est["mle"], s / t)


def test_pass_until_interval_covers_at_least_nominal_exactly():
    r, cap = 3, 40
    for p in (0.005, 0.05, 0.3):
        t, s, prob = map(np.array, zip(*_outcomes(r, cap, p), strict=True))
        est = pass_until(t, s, r, cap, ci=0.9)
        covered = (est["ci_low"] <= p) & (p <= est["ci_high"])
        assert prob @ covered.to_numpy() >= 0.9 - 1e-9


def test_pass_until_recovers_tiny_p_on_simulated_data():
    rng = np.random.default_rng(7)
    p, r, cap, problems = 2e-5, 4, 250_000, 400
    # positions of the first r successes: cumulative sums of geometric gaps
    positions = np.cumsum(rng.geometric(p, size=(problems, r)), axis=1)
    succ = (positions <= cap).sum(axis=1)
    t = np.where(succ == r, positions[:, -1], cap)
    est = pass_until(t, succ, r, cap)
    assert 0 < est["censored"].sum() < problems  # both kinds of outcome occur
    se = est["unbiased"].std() / np.sqrt(problems)
    assert abs(est["unbiased"].mean() - p) < 4 * se
    assert est["unbiased"].mean() == pytest.approx(p, rel=0.15)
    cover = ((est["ci_low"] <= p) & (p <= est["ci_high"])).mean()
    assert cover >= 0.9


def test_pass_until_values_for_simple_outcomes():
    est = pass_until([10, 50], [3, 1], r=3, cap=50)
    assert est["unbiased"].tolist() == [pytest.approx(2 / 9), pytest.approx(1 / 50)]
    assert est["mle"].tolist() == [pytest.approx(0.3), pytest.approx(0.02)]
    assert est["censored"].tolist() == [False, True]
    assert est["ci_low"][0] < 0.3 < est["ci_high"][0]


@pytest.mark.parametrize(
    ("t", "s", "match"),
    [([5], [2], "cannot come"), ([60], [3], "cannot come"), ([10], [4], "cannot come")],
)
def test_pass_until_rejects_impossible_outcomes(t, s, match):
    with pytest.raises(InputError, match=match):
        pass_until(t, s, r=3, cap=50)
