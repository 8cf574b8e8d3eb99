"""Tests for ttscale.analysis.temperatures.best: pooled multi-temperature coverage and budget splits."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest

from ttscale.analysis.laws.power_law import pass_at_k_matrix
from ttscale.analysis.temperatures.best import best_split, counts_by_temperature, pooled_coverage
from ttscale.errors import InputError


def brute_pooled(n: np.ndarray, c: np.ndarray, alloc: tuple[int, ...]) -> float:
    """Enumerate every choice of k_t samples at each temperature; average 'any right'."""
    per_problem = []
    for i in range(n.shape[0]):
        pools = [[j < c[i, t] for j in range(n[i, t])] for t in range(n.shape[1])]
        choices = [list(itertools.combinations(range(n[i, t]), alloc[t])) for t in range(n.shape[1])]
        hits = total = 0
        for combo in itertools.product(*choices):
            total += 1
            hits += any(pools[t][j] for t, picked in enumerate(combo) for j in picked)
        per_problem.append(hits / total)
    return float(np.mean(per_problem))


def test_pooled_coverage_matches_enumeration_of_draws() -> None:
    n = np.array([[6, 5], [6, 5], [4, 7]])
    c = np.array([[1, 0], [0, 2], [2, 1]])
    allocs = [(0, 0), (1, 0), (0, 3), (2, 2), (3, 1), (4, 4)]
    got = pooled_coverage(n, c, allocs)
    for value, alloc in zip(got, allocs, strict=True):
        assert value == pytest.approx(brute_pooled(n, c, alloc), abs=1e-12)


def test_one_temperature_is_unbiased_pass_at_k() -> None:
    rng = np.random.default_rng(3)
    n = np.full(20, 50)
    c = rng.integers(0, 51, 20)
    ks = np.arange(0, 51, 7)
    got = pooled_coverage(n[:, None], c[:, None], ks[:, None])
    want = np.concatenate([[0.0], pass_at_k_matrix(n, c, ks[1:]).mean(axis=0)])
    np.testing.assert_allclose(got, want, atol=1e-12)


def test_pooling_complementary_temperatures_beats_either_alone() -> None:
    # problem 0 solvable only at T0, problem 1 only at T1
    n = np.array([[10, 10], [10, 10]])
    c = np.array([[5, 0], [0, 5]])
    assert best_split(n, c, 4).allocation == (2, 2)
    assert pooled_coverage(n, c, (2, 2))[0] == pytest.approx(7 / 9)  # each problem misses w.p. C(5,2)/C(10,2) = 2/9
    assert pooled_coverage(n, c, (4, 0))[0] == pytest.approx(0.5 * (1 - 5 / 210))


@pytest.mark.parametrize("seed", range(6))
def test_greedy_split_matches_exhaustive(seed: int) -> None:
    rng = np.random.default_rng(seed)
    temps = 2 + seed % 2
    n = np.full((30, temps), 40)
    p = rng.beta(0.4, 0.8, size=(30, 1)) * rng.uniform(0.2, 1.5, size=(1, temps))
    c = rng.binomial(40, np.clip(p, 0, 1))
    for total in (5, 17, 40):
        exact = best_split(n, c, total, method="exhaustive")
        greedy = best_split(n, c, total, method="greedy")
        assert sum(greedy.allocation) == sum(exact.allocation) == total
        assert greedy.coverage == pytest.approx(pooled_coverage(n, c, greedy.allocation)[0], abs=1e-12)
        assert greedy.coverage <= exact.coverage + 1e-12
        assert greedy.coverage == pytest.approx(exact.coverage, abs=1e-12)


def test_counts_by_temperature_pivots_a_counts_table() -> None:
    df = pd.DataFrame({
        "problem": [0, 0, 1, 1], "temperature": [0.6, 1.0, 0.6, 1.0],
        "num_samples": [10, 20, 10, 20], "num_correct": [1, 2, 3, 4],
    })
    n, c, temps = counts_by_temperature(df)
    np.testing.assert_array_equal(n, [[10, 20], [10, 20]])
    np.testing.assert_array_equal(c, [[1, 2], [3, 4]])
    assert temps == [0.6, 1.0]
    with pytest.raises(InputError, match="problem 1 has no counts at 1.0"):
        counts_by_temperature(df.iloc[:3], source="t.csv")


def test_bad_inputs_raise_input_error() -> None:
    n = np.array([[10, 10]])
    c = np.array([[1, 2]])
    with pytest.raises(InputError, match="allocation"):
        pooled_coverage(n, c, (11, 0))
    with pytest.raises(InputError, match="allocation"):
        pooled_coverage(n, c, (1, 1, 1))
    with pytest.raises(InputError, match="total"):
        best_split(n, c, 21)
    with pytest.raises(InputError, match="num_correct"):
        pooled_coverage(n, np.array([[11, 0]]), (1, 1))
