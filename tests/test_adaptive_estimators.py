"""The stopping-rule estimators: exact unbiasedness by enumeration, by simulation, and edge cases."""

from __future__ import annotations

import itertools
from fractions import Fraction

import numpy as np
import pytest

from ttscale.analysis.adaptive.estimators import (
    StoppingRule,
    adaptive_pass_at_k,
    adaptive_survival,
    simulate_rule,
)
from ttscale.analysis.curves.estimators import pass_at_k
from ttscale.errors import InputError

BOUNDS = [3, 6, 10, 12]


def _run_rule(seq: tuple[int, ...], bounds: list[int], r: int, m: int) -> tuple[int, int, int]:
    """Apply the rule to a full sequence, written out plainly: (T, S, T')."""
    prev = 0
    for b in bounds:
        s = sum(seq[:b])
        if (b >= m and s >= r) or b == bounds[-1]:
            return b, s, prev
        prev = b
    raise AssertionError("unreachable")


def _outcomes(bounds: list[int], r: int, m: int) -> dict[tuple[int, ...], tuple[int, int, int]]:
    """Every distinct observed prefix (the samples actually drawn) and its (T, S, T')."""
    out = {}
    for seq in itertools.product((0, 1), repeat=bounds[-1]):
        t, s, prev = _run_rule(seq, bounds, r, m)
        out[seq[:t]] = (t, s, prev)
    return out


@pytest.mark.parametrize("m", [1, 4, 6])
@pytest.mark.parametrize("r", [1, 2, 3])
def test_exhaustive_enumeration_is_exactly_unbiased(r: int, m: int) -> None:
    outcomes = _outcomes(BOUNDS, r, m)
    prefixes = list(outcomes)
    t, s, prev = (np.array([outcomes[q][i] for q in prefixes]) for i in range(3))
    ks = np.arange(1, BOUNDS[-1] + 1)
    est = adaptive_survival(t, s, prev, ks, r, m)
    assert np.isfinite(est).all()
    for p in (0.05, 0.3, 0.7):
        w = p ** s * (1 - p) ** (t - s)
        assert abs(w.sum() - 1.0) < 1e-13  # the prefixes are the whole outcome space
        mean = w @ est
        assert np.abs(mean - (1 - p) ** ks).max() < 1e-13
        assert np.abs(w @ adaptive_pass_at_k(t, s, prev, ks, r, m) - (1 - (1 - p) ** ks)).max() < 1e-13


@pytest.mark.parametrize("r,m", [(1, 1), (2, 1), (3, 4), (2, 6), (3, 1)])
def test_estimate_is_the_conditional_probability_of_k_failures(r: int, m: int) -> None:
    """Rao-Blackwell by brute force: given (T, S, T') the estimate is the fraction of the
    allowed patterns (exact fractions) whose first k samples all fail."""
    outcomes = _outcomes(BOUNDS, r, m)
    groups: dict[tuple[int, int, int], list[tuple[int, ...]]] = {}
    for q, key in outcomes.items():
        groups.setdefault(key, []).append(q)
    keys = sorted(groups)
    t, s, prev = (np.array([k[i] for k in keys]) for i in range(3))
    ks = np.arange(1, BOUNDS[-1] + 1)
    est = adaptive_survival(t, s, prev, ks, r, m)
    for row, key in enumerate(keys):
        pats = groups[key]
        for k in ks:
            if k > key[0]:
                want = 0.0 if key[1] >= r else np.nan
            else:
                want = float(Fraction(sum(1 for q in pats if not any(q[:k])), len(pats)))
            if np.isnan(want):
                assert np.isnan(est[row, k - 1])
            else:
                assert abs(est[row, k - 1] - want) < 1e-13, (key, k)


def test_unconstrained_rows_equal_the_plain_estimator() -> None:
    n = np.array([10, 64, 100, 32, 1000])
    c = np.array([0, 2, 100, 7, 3])
    prev = np.array([5, 32, 64, 0, 512])  # row 4: c < r, row 3: no earlier boundary
    ks = np.arange(1, 11)
    got = adaptive_pass_at_k(n, c, prev, ks, r=4, m=200)  # m beyond every prev but the last
    want = pass_at_k(n, c, ks)
    assert np.allclose(got[:4], want[:4], rtol=0, atol=1e-14)
    assert np.allclose(got[4], want[4], rtol=0, atol=1e-14)  # c=3 < r: plain too


def test_stopped_rows_are_solved_beyond_n_and_unstopped_undefined() -> None:
    got = adaptive_pass_at_k([64, 1000], [4, 2], [32, 512], [64, 65, 1000, 2000], r=4)
    assert got[0, 1] == 1.0 and got[0, 2] == 1.0
    assert got[1, 1] < 1.0 and got[1, 2] == 1.0 and np.isnan(got[1, 3])


def test_large_counts_stay_finite_and_monotone() -> None:
    """K = 10,000 sizes: weights from log-gamma, ratios from cumulative sums."""
    n = np.array([1024, 8192, 10000, 64, 128])
    c = np.array([4, 9, 1000, 30, 8])
    prev = np.array([512, 4096, 8192, 32, 64])
    ks = np.arange(1, 10001)
    got = adaptive_pass_at_k(n, c, prev, ks, r=8, m=32)
    for row in range(n.size):
        v = got[row, : n[row]]
        assert np.isfinite(v).all() and (v >= -1e-12).all() and (v <= 1 + 1e-12).all()
        assert (np.diff(v) >= -1e-12).all()
    # row 2: 1,000 successes yet fewer than 8 in the first 8,192 (C(T, S)/N_0 ~ e^2000): the
    # weights favour 7 successes there ~10^4 : 1 over 6, so pass@T' is 1 - w_0, about 1 - 1e-26
    assert got[2, 8191] == pytest.approx(1.0, abs=1e-12) and got[2, 0] == pytest.approx(7 / 8192, rel=1e-3)


def test_a_pattern_the_rule_forbids_is_an_input_error() -> None:
    # 30 successes in 40 samples, yet fewer than 4 in the first 32: impossible
    with pytest.raises(InputError, match="entry 0.*cannot come from"):
        adaptive_pass_at_k([40], [30], [32], [1], r=4)


def test_simulated_unbiasedness_at_realistic_sizes() -> None:
    """Mean of 20,000 replications within 4 standard errors of 1 - (1-p)^k."""
    rng = np.random.default_rng(12)
    reps, k_max = 20_000, 256
    ks = np.array([1, 2, 5, 10, 20, 32, 33, 50, 64, 100, 200, 256])
    checked = 0
    for p in (0.002, 0.02, 0.1, 0.4):
        for r in (1, 2, 4, 8):
            for first, growth, m in ((8, 2.0, 1), (16, 1.5, 20), (32, 2.0, 64)):
                rule = StoppingRule(successes=r, min_samples=m, first_round=first, growth=growth)
                sim = simulate_rule(np.full(reps, p), rule, k_max, rng)
                est = adaptive_pass_at_k(sim["n"], sim["c"], sim["prev"], ks, r, m)
                assert np.isfinite(est).all()
                mean, se = est.mean(axis=0), est.std(axis=0, ddof=1) / np.sqrt(reps)
                truth = 1 - (1 - p) ** ks
                # + the rare event's own mass where it is below 1/reps: when "k failures in a
                # row" (probability (1-p)^k) is never drawn, every replication gives ~1
                tol = 4 * se + np.minimum((1 - p) ** ks, 1 / reps) + 1e-13
                assert (np.abs(mean - truth) < tol).all(), (p, r, first, growth, m, mean - truth, se)
                checked += ks.size
    assert checked == 4 * 4 * 3 * ks.size


def test_simulation_draws_follow_the_rule() -> None:
    rule = StoppingRule(successes=2, min_samples=50, first_round=32, growth=2.0)
    assert rule.boundaries(1000) == [32, 64, 128, 256, 512, 1000]
    sim = simulate_rule(np.array([1.0, 0.0, 0.5]), rule, 1000, np.random.default_rng(0))
    assert list(sim["n"]) == [64, 1000, 64] and list(sim["prev"]) == [32, 512, 32]
    assert list(sim["c"][:2]) == [64, 0] and sim["c_full"][0] == 1000


def test_boundaries_grow_and_end_at_k() -> None:
    assert StoppingRule(first_round=10, growth=1.5).boundaries(60) == [10, 15, 23, 35, 53, 60]
    assert StoppingRule(first_round=1, growth=1.01).boundaries(5) == [1, 2, 3, 4, 5]
    assert StoppingRule(first_round=32).boundaries(32) == [32]
    assert StoppingRule(first_round=32).boundaries(20) == [20]


@pytest.mark.parametrize("field,kwargs", [
    ("successes", {"successes": 0}), ("min_samples", {"min_samples": 0}),
    ("first_round", {"first_round": 0}), ("growth", {"growth": 1.0}),
    ("growth", {"growth": float("nan")}), ("successes", {"successes": 2.5}),
])
def test_bad_rules_name_the_field(field: str, kwargs: dict) -> None:
    with pytest.raises(InputError, match=f"field '{field}'"):
        StoppingRule(**kwargs)


def test_rule_against_k() -> None:
    with pytest.raises(InputError, match="field 'min_samples'.*K=100"):
        StoppingRule(min_samples=101).check(100)


@pytest.mark.parametrize("args,field", [
    (([10], [11], [0]), "c"), (([10], [3], [10]), "prev"), (([0], [0], [0]), "n"),
    (([10, 5], [3], [0, 0]), "differ"),
])
def test_bad_counts_are_input_errors(args: tuple, field: str) -> None:
    with pytest.raises(InputError, match=field):
        adaptive_pass_at_k(*args, ks=[1], r=1)


def test_subset_trials_count_a_stopped_row_as_k_samples_beyond_t() -> None:
    import pandas as pd

    from ttscale.analysis.adaptive.run import subset_trials_for

    counts = pd.DataFrame({"problem": ["a", "b", "c"], "num_samples": [32, 64, 64],
                           "num_correct": [4, 1, 5], "adaptive_prev": [0, 32, 32],
                           "adaptive_successes": 4, "adaptive_min_samples": 1, "adaptive_max_samples": 64})
    # k = 16: (32 + 64 + 64)/16; k = 33: a stopped, counts K = 64 beyond its 32 samples
    got = subset_trials_for(counts, np.array([16, 33, 64]))
    assert np.allclose(got, [160 / 16, 3 * 64 / 33, 3.0])
    plain = counts.drop(columns=["adaptive_prev", "adaptive_successes", "adaptive_min_samples",
                                 "adaptive_max_samples"])
    assert np.allclose(subset_trials_for(plain, np.array([33])), [160 / 33])
