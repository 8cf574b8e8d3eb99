"""maj@k, best-of-k and weighted-vote@k against enumeration of every k-subset and Monte Carlo."""

from __future__ import annotations

import itertools
from collections import Counter
from fractions import Fraction

import numpy as np
import pandas as pd
import pytest

from ttscale.analysis.curves.selection import (
    best_of_k,
    best_of_k_from_samples,
    maj_at_k,
    maj_at_k_from_samples,
    weighted_vote_at_k,
    weighted_vote_at_k_from_samples,
)
from ttscale.errors import InputError


def brute_maj(m, wc, m0, k) -> Fraction:
    """Average over every k-subset: plurality of non-null answers, ties split evenly."""
    labels = [a for a, c in enumerate(m) for _ in range(c)] + [-1] * m0
    total, count = Fraction(0), 0
    for sub in itertools.combinations(range(len(labels)), k):
        count += 1
        votes = Counter(labels[i] for i in sub if labels[i] >= 0)
        if not votes:
            continue  # all null: incorrect
        top = max(votes.values())
        tied = [a for a, v in votes.items() if v == top]
        total += sum(Fraction(wc[a]).limit_denominator(1000) for a in tied) / len(tied)
    return total / count


def brute_best(scores, correct, k) -> Fraction:
    """Average over every k-subset of the mean correctness among its top-scored samples."""
    total, count = Fraction(0), 0
    for sub in itertools.combinations(range(len(scores)), k):
        count += 1
        top = max(scores[i] for i in sub)
        best = [correct[i] for i in sub if scores[i] == top]
        total += Fraction(sum(best), len(best))
    return total / count


def brute_weighted(labels, scores, correct, k) -> float:
    total, count = 0.0, 0
    for sub in itertools.combinations(range(len(labels)), k):
        count += 1
        sums: dict[int, float] = {}
        for i in sub:
            if labels[i] >= 0:
                sums[labels[i]] = sums.get(labels[i], 0.0) + scores[i]
        if not sums:
            continue
        top = max(sums.values())
        tied = [a for a, v in sums.items() if v == top]
        total += sum(correct[a] for a in tied) / len(tied)
    return total / count


MAJ_CASES = [
    # (multiplicities, correctness, null count)
    ([3, 2, 2, 1], [0, 1, 1, 0], 2),  # two correct answers tied in size, nulls
    ([2, 2, 2, 2, 1, 1], [0, 1, 0.5, 0, 1, 0], 1),  # many ties, a half-correct answer
    ([5, 1, 1, 1, 1], [0, 1, 1, 0, 1], 0),  # a wrong answer dominates singletons
    ([4, 4], [1, 0], 3),  # a dead heat
    ([1, 1, 1, 1, 1, 1], [1, 0, 0, 0, 0, 0], 0),  # all singletons: every k is a tie
    ([6], [1], 5),  # one answer and many nulls: all-null subsets fail
    ([2, 3], [0, 0], 1),  # nothing correct
]


@pytest.mark.parametrize(("m", "wc", "m0"), MAJ_CASES)
def test_maj_at_k_exact_equals_subset_enumeration(m, wc, m0):
    n = sum(m) + m0
    ks = np.arange(1, n + 2)
    got = maj_at_k([np.array(m)], [np.array(wc, float)], ks, num_null=np.array([m0]), method="exact")
    for k in range(1, n + 1):
        assert got[0, k - 1] == pytest.approx(float(brute_maj(m, wc, m0, k)), abs=1e-12)
    assert np.isnan(got[0, n])  # k > n


def test_maj_at_k_known_values():
    # 2 correct vs 1 wrong, k = 3 takes every sample: correct wins; k = 1: 2/3
    got = maj_at_k([np.array([2, 1])], [np.array([1.0, 0.0])], [1, 2, 3], method="exact")[0]
    # k = 2: {c,c} wins (1/3); {c,w} is a tie (2/3 * 1/2)
    np.testing.assert_allclose(got, [2 / 3, 1 / 3 + 1 / 3, 1.0], atol=1e-14)


def test_maj_at_k_monte_carlo_cross_check_on_a_larger_problem():
    rng = np.random.default_rng(11)
    m = np.array([60, 55, 30, 20, 8, 5, 3, 2, 1, 1, 1, 1])
    wc = np.zeros(m.size)
    wc[1] = 1.0  # the second most common answer is the correct one
    m0 = 13
    ks = np.array([1, 2, 5, 10, 25, 64, 150])
    exact = maj_at_k([m], [wc], ks, num_null=np.array([m0]), method="exact")[0]
    labels = np.r_[np.repeat(np.arange(m.size), m), np.full(m0, -1)]
    draws = 20_000
    for j, k in enumerate(ks):
        # independent draws: each row a uniform k-subset, votes counted per answer
        sub = labels[np.argsort(rng.random((draws, labels.size)), axis=1)[:, :k]]
        votes = (sub[:, :, None] == np.arange(m.size)).sum(axis=1)
        top = votes.max(axis=1, keepdims=True)
        tied = (votes == top) & (top > 0)
        wins = (tied * wc).sum(axis=1) / np.maximum(tied.sum(axis=1), 1)
        est = wins.mean()
        se = max(wins.std() / np.sqrt(draws), 1e-4)
        assert abs(est - exact[j]) < 4.5 * se, (k, est, exact[j])
    assert exact[-1] < exact[0]  # with many draws the more common wrong answer wins more often


def test_maj_at_k_monte_carlo_method_agrees_with_exact():
    m, wc = np.array([40, 35, 10, 5, 1]), np.array([0.0, 1.0, 0.0, 1.0, 0.0])
    ks = np.array([1, 3, 9, 30, 91])
    exact = maj_at_k([m], [wc], ks, method="exact")[0]
    mc = maj_at_k([m], [wc], ks, method="mc", n_mc=8000, seed=3)[0]
    np.testing.assert_allclose(mc, exact, atol=4.5 * 0.5 / np.sqrt(8000))
    assert mc[-1] == exact[-1] == 0.0  # all 91 samples: the wrong answer always wins


def test_maj_at_k_from_samples_treats_null_as_a_non_voting_sample():
    df = pd.DataFrame(
        {
            "problem_id": ["a"] * 6 + ["b"] * 4,
            "answer": ["1", "1", "2", None, "2", "3", "x", "x", "y", np.nan],
            "passed": [False, False, True, False, True, False, True, True, False, False],
        }
    )
    ids, got = maj_at_k_from_samples(df, [1, 2, 4])
    assert ids.tolist() == ["a", "b"]
    for row, (m, wc, m0) in enumerate([([2, 2, 1], [0, 1, 0], 1), ([2, 1], [1, 0], 1)]):
        for j, k in enumerate([1, 2, 4]):
            assert got[row, j] == pytest.approx(float(brute_maj(m, wc, m0, k)), abs=1e-12)


def test_maj_at_k_rejects_bad_input():
    with pytest.raises(InputError, match="'correct'"):
        maj_at_k([np.array([2, 1])], [np.array([2.0, 0.0])], [1])
    with pytest.raises(InputError, match="'method'"):
        maj_at_k([np.array([2, 1])], [np.array([1.0, 0.0])], [1], method="fast")
    with pytest.raises(InputError, match="missing column 'answer'"):
        maj_at_k_from_samples(pd.DataFrame({"problem_id": ["a"], "passed": [True]}), [1])


BEST_CASES = [
    ([0.9, 0.5, 0.5, 0.5, 0.1, 0.1, 0.0], [0, 1, 0, 1, 1, 0, 1]),  # ties in the middle and low
    ([1.0, 1.0, 1.0, 1.0], [1, 0, 0, 0]),  # all tied: the mean correctness
    ([3.0, 2.0, 1.0, 0.0, -1.0], [0, 0, 1, 1, 1]),  # distinct, best ones wrong
    ([0.2, 0.7, 0.7, 0.3, 0.7, 0.2, 0.9, 0.9], [1, 0, 1, 1, 1, 0, 0, 1]),  # unsorted input
]


@pytest.mark.parametrize(("scores", "correct"), BEST_CASES)
def test_best_of_k_equals_subset_enumeration_with_score_ties(scores, correct):
    n = len(scores)
    got = best_of_k(np.array(scores), np.array(correct), np.arange(1, n + 2))
    for k in range(1, n + 1):
        assert got[k - 1] == pytest.approx(float(brute_best(scores, correct, k)), abs=1e-12)
    assert np.isnan(got[n])


def test_best_of_k_distinct_scores_match_rank_formula():
    from math import comb

    rng = np.random.default_rng(2)
    scores, correct = rng.random(30), rng.random(30) < 0.4
    order = np.argsort(-scores)
    ks = np.array([1, 4, 13, 30])
    got = best_of_k(scores, correct, ks)
    for j, k in enumerate(ks):
        formula = sum(comb(30 - 1 - r, k - 1) * correct[order[r]] for r in range(30)) / comb(30, k)
        assert got[j] == pytest.approx(formula, abs=1e-12)


def test_best_of_k_from_samples_and_nan_scores():
    df = pd.DataFrame(
        {"problem_id": [1, 1, 1, 2, 2], "score": [0.1, 0.9, 0.5, 2.0, 2.0], "passed": [1, 0, 1, 1, 0]}
    )
    ids, got = best_of_k_from_samples(df, [1, 2])
    assert ids.tolist() == [1, 2]
    np.testing.assert_allclose(got[0], [2 / 3, 1 / 3], atol=1e-14)  # k=2: best is the 0.9 unless absent
    np.testing.assert_allclose(got[1], [0.5, 0.5], atol=1e-14)
    bad = df.assign(score=[0.1, np.nan, 0.5, 2.0, 2.0])
    with pytest.raises(InputError, match="'score'"):
        best_of_k_from_samples(bad, [1])


def test_weighted_vote_matches_enumeration_within_monte_carlo_error():
    labels = np.array([0, 0, 0, 1, 1, 2, -1, 2, 1, 0])
    scores = np.array([0.1, 0.2, 0.15, 0.9, 0.8, 0.3, 5.0, 0.35, 0.05, 0.1])
    correct = np.array([0.0, 1.0, 0.0])
    ks = np.array([1, 2, 3, 5, 8, 10])
    n_mc = 20_000
    got = weighted_vote_at_k(labels, scores, correct, ks, n_mc=n_mc, seed=4)
    for j, k in enumerate(ks):
        exact = brute_weighted(labels, scores, correct, int(k))
        assert abs(got[j] - exact) < 4.5 * 0.5 / np.sqrt(n_mc), (k, got[j], exact)
    assert got[-1] == 1.0  # every sample drawn: answer 1 (sum 1.75) beats 0 (0.55) and 2 (0.65)


def test_weighted_vote_from_samples_is_seeded():
    df = pd.DataFrame(
        {
            "problem_id": ["p"] * 5,
            "answer": ["a", "b", "b", None, "a"],
            "passed": [True, False, False, False, True],
            "score": [0.9, 0.3, 0.4, np.nan, 0.2],
        }
    )
    ids, a = weighted_vote_at_k_from_samples(df, [1, 5], n_mc=500, seed=1)
    _, b = weighted_vote_at_k_from_samples(df, [1, 5], n_mc=500, seed=1)
    np.testing.assert_array_equal(a, b)
    assert a[0, 1] == 1.0  # all five: a sums 1.1 > b 0.7
