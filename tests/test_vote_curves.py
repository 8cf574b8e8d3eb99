"""maj@k / best-of-k / weighted vote from histograms on the curve grid equal the per-sample
estimators of ttscale.analysis.curves.selection (exact), or lie within Monte Carlo error of them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ttscale.analysis.curves import selection
from ttscale.analysis.curves import vote_curves as vc
from ttscale.analysis.curves.coverage import default_ks


def _samples(problems: int, seed: int, n_range=(20, 120)) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for p in range(problems):
        n = int(rng.integers(*n_range))
        probs = rng.dirichlet(np.ones(5))
        for _ in range(n):
            a = rng.choice(["1", "2", "3", "4", None], p=probs)
            rows.append((f"q{p:03d}", a, float(rng.integers(0, 6)), a == "1"))
    return pd.DataFrame(rows, columns=["problem_id", "answer", "score", "passed"])


def _hist(df: pd.DataFrame) -> pd.DataFrame:
    h = df.assign(count=1, passed=df["passed"].astype(int))
    return h.groupby(["problem_id", "answer", "score"], dropna=False)[["count", "passed"]].sum().reset_index()


def test_maj_and_best_on_grid_equal_exact_estimators() -> None:
    df = _samples(15, seed=4)
    n_min = int(df.groupby("problem_id").size().min())
    ks = default_ks(n_min)
    _, want = selection.maj_at_k_from_samples(df, ks, method="exact")
    got = vc.maj_matrix(_hist(df), ks)
    assert np.allclose(got.values, want, atol=1e-12, equal_nan=True)
    assert (got.k_exact >= ks.max()).all()  # all exact under the default budget
    _, want_b = selection.best_of_k_from_samples(df, ks)
    got_b = vc.best_matrix(_hist(df), ks)
    assert np.allclose(got_b.values, want_b, atol=1e-12, equal_nan=True)


def test_one_answer_closed_form() -> None:
    df = pd.DataFrame({"problem_id": "a", "answer": ["5"] * 6 + [None] * 4, "score": 0.0,
                       "passed": [True] * 6 + [False] * 4})
    ks = np.arange(1, 11)
    _, want = selection.maj_at_k_from_samples(df, ks, method="exact")
    got = vc.maj_matrix(_hist(df), ks)
    assert np.allclose(got.values, want, atol=1e-12)


def test_monte_carlo_above_the_budget_is_recorded_and_close() -> None:
    df = _samples(6, seed=9, n_range=(150, 260))
    ks = np.array([1, 2, 5, 10, 20, 50, 100, 150])
    _, want = selection.maj_at_k_from_samples(df, ks, method="exact")
    got = vc.maj_matrix(_hist(df), ks, exact_budget=2e4, n_mc=4000, seed=1)
    # a prefix of the grid is exact, the rest Monte Carlo; k_exact says where the switch is
    assert (got.k_exact < 150).sum() >= 2 and (got.k_exact >= 1).all()
    for i in range(len(got.problems)):
        exact = ks <= got.k_exact[i]
        assert np.allclose(got.values[i, exact], want[i, exact], atol=1e-12)
    # Monte Carlo: standard error <= 0.5 / sqrt(4000) = 0.0079 per cell; means over problems
    assert np.abs(got.values - want).max() < 0.04
    assert np.abs(got.values.mean(axis=0) - want.mean(axis=0)).max() < 0.015
    again = vc.maj_matrix(_hist(df), ks, exact_budget=2e4, n_mc=4000, seed=1)
    assert np.array_equal(again.values, got.values)  # seeded


def test_weighted_vote_matches_per_sample_estimator() -> None:
    df = _samples(4, seed=2, n_range=(10, 30))
    ks = np.array([1, 3, 10])
    _, want = selection.weighted_vote_at_k_from_samples(df.fillna({"score": 0.0}), ks, n_mc=6000)
    got = vc.weighted_matrix(_hist(df), ks, n_mc=6000)
    assert np.abs(got.values - want).max() < 0.05
    assert np.allclose(got.values[:, 0], want[:, 0], atol=0.03)


def test_cache_shared_and_keyed_by_content(tmp_path: Path) -> None:
    df = _samples(5, seed=5)
    ks = np.arange(1, 11)
    h = _hist(df)
    a = vc.selection_matrix(h, "maj@k", ks, cache_dir=tmp_path)
    files = list(tmp_path.glob("*.npz"))
    assert len(files) == 1
    # rows in another order are the same content: same cache entry, same values
    b = vc.selection_matrix(h.sample(frac=1.0, random_state=0), "maj@k", ks, cache_dir=tmp_path)
    assert len(list(tmp_path.glob("*.npz"))) == 1 and np.array_equal(a.values, b.values)
    h2 = h.copy()
    h2.loc[0, "count"] += 1
    vc.selection_matrix(h2, "maj@k", ks, cache_dir=tmp_path)
    assert len(list(tmp_path.glob("*.npz"))) == 2


def test_chernoff_bound_settles_large_k_within_1e_6() -> None:
    # 600 right, 100 and 50 wrong, 20 unparsed: sum_b (1 - (sqrt(p1) - sqrt(pb))^2)^k <= 1e-6
    # from k = 44 on: from there the plurality answer wins with probability >= 1 - 1e-6
    df = pd.DataFrame({"problem_id": "a", "score": 0.0,
                       "answer": ["7"] * 600 + ["8"] * 100 + ["9"] * 50 + [None] * 20,
                       "passed": [True] * 600 + [False] * 170})
    ks = np.arange(1, 121)
    got = vc.maj_matrix(_hist(df), ks, exact_budget=1e9)
    assert 40 <= got.k_bound[0] <= 50 and got.k_exact[0] == got.k_bound[0] - 1
    _, want = selection.maj_at_k_from_samples(df, ks, method="exact")
    assert np.abs(got.values - want).max() <= 1e-6
    assert (got.values[0, ks >= got.k_bound[0]] == 1.0).all()


def test_monte_carlo_single_draw_steps_match_exact() -> None:
    # a dense grid from k = 1: every step is one categorical draw (the path of k <= 256)
    df = _samples(6, seed=11, n_range=(150, 260))
    ks = np.arange(1, 151)
    _, want = selection.maj_at_k_from_samples(df, ks, method="exact")
    got = vc.maj_matrix(_hist(df), ks, exact_budget=1.0, n_mc=4000, seed=3)
    assert (got.k_exact == 0).all()  # nothing exact: all Monte Carlo
    # standard error <= 0.5 / sqrt(4000) = 0.0079 per cell
    assert np.abs(got.values - want).max() < 0.04
    assert np.abs(got.values.mean(axis=0) - want.mean(axis=0)).max() < 0.015
    # and steps of more than three draws (the hypergeometric chain) on a sparse grid
    sparse = ks[::7]
    got_s = vc.maj_matrix(_hist(df), sparse, exact_budget=1.0, n_mc=4000, seed=3)
    assert np.abs(got_s.values - want[:, ::7]).max() < 0.04


def test_contenders_drop_only_answers_that_cannot_reach_the_top() -> None:
    # shares 0.85 / 0.14 / 0.003: at k = 100 the two rare answers reach the top's votes with
    # probability <= 0.70 ** 100 + 0.24 ** 100 (Chernoff), far below 1e-6: only the top is kept
    m = np.array([600, 100, 2])
    assert vc._contenders(m, 702, 100).tolist() == [True, False, False]
    # at k = 5 either could tie: all kept; two equally common answers are always both kept
    assert vc._contenders(m, 702, 5).all()
    assert vc._contenders(np.array([300, 300, 1]), 601, 10_000).tolist() == [True, True, False]
    # lumping changes maj@k by at most 1e-6: one problem forced to Monte Carlo from k = 60
    df = pd.DataFrame({"problem_id": "a", "score": 0.0,
                       "answer": ["7"] * 600 + ["8"] * 100 + ["9"] * 2,
                       "passed": [True] * 600 + [False] * 102})
    ks = np.array([60, 80, 100])
    _, want = selection.maj_at_k_from_samples(df, ks, method="exact")
    got = vc.maj_matrix(_hist(df), ks, exact_budget=1.0, n_mc=50)
    assert np.abs(got.values - want).max() <= 1e-6
