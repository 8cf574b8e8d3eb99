"""Frame-level curves: default ks, coverage curves per group, selection curves, reference data."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ttscale.analysis.curves.coverage import coverage_curves, default_ks, selection_curves
from ttscale.analysis.curves.estimators import pass_at_k
from ttscale.analysis.curves.selection import maj_at_k
from ttscale.errors import InputError
from ttscale.rundir.counts import load_counts

REFERENCE = Path(__file__).resolve().parents[1] / "data" / "reference"  # shipped with the repo
MONKEYS = REFERENCE / "monkeys_llama3_counts.csv"
COLUMNS = ["metric", "k", "estimate", "ci_low", "ci_high"]


def test_default_ks_dense_up_to_256():
    np.testing.assert_array_equal(default_ks(7), np.arange(1, 8))
    np.testing.assert_array_equal(default_ks(256), np.arange(1, 257))


@pytest.mark.parametrize("n, size", [(1000, 294), (10_000, 358), (100_000, 422)])
def test_default_ks_log_spaced_above_256(n, size):
    ks = default_ks(n)
    assert ks[0] == 1 and ks[-1] == n and ks.size == size
    np.testing.assert_array_equal(ks[:256], np.arange(1, 257))
    assert (np.diff(ks) > 0).all()
    # log-spaced above 256
    ratios = ks[255:][1:] / ks[255:][:-1]
    assert ratios.max() < 1.04  # 10 ** (1 / 64) = 1.037, rounded to integers
    assert default_ks(257)[-1] == 257 and default_ks(257).size == 257


def test_default_ks_rejects_zero():
    with pytest.raises(InputError, match="n_min"):
        default_ks(0)


def _counts() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "model": ["a", "a", "a", "b", "b"],
            "temperature": [0.5, 0.5, 0.5, 1.0, 1.0],
            "problem": [1, 2, 3, 1, 2],
            "num_samples": [10, 10, 8, 5, 5],
            "num_correct": [3, 0, 8, 1, 4],
        }
    )


def test_coverage_curves_one_curve_per_group_with_exact_estimates():
    cur = coverage_curves(_counts(), n_boot=200, seed=1)
    assert list(cur.columns) == ["model", "temperature", *COLUMNS]
    a = cur[cur.model == "a"]
    b = cur[cur.model == "b"]
    assert a["k"].tolist() == list(range(1, 9))  # up to the group's smallest n (8)
    assert b["k"].tolist() == list(range(1, 6))
    assert (cur["metric"] == "pass@k").all()
    expected = pass_at_k([10, 10, 8], [3, 0, 8], np.arange(1, 9)).mean(axis=0)
    np.testing.assert_allclose(a["estimate"], expected, rtol=1e-14)
    assert a["estimate"].iloc[0] == pytest.approx((0.3 + 0 + 1) / 3)
    assert b["estimate"].iloc[-1] == pytest.approx(1.0)  # k = n: any correct sample counts
    assert ((cur["ci_low"] <= cur["estimate"] + 1e-12) & (cur["estimate"] <= cur["ci_high"] + 1e-12)).all()


def test_coverage_curves_given_ks_and_errors():
    cur = coverage_curves(_counts(), ks=[5, 1, 5], n_boot=0)
    assert cur["k"].tolist() == [1, 5, 1, 5]
    assert cur["ci_low"].isna().all()
    with pytest.raises(InputError, match="exceeds the samples available"):
        coverage_curves(_counts(), ks=[6])
    with pytest.raises(InputError, match="num_correct"):
        coverage_curves(_counts().assign(num_correct=[11, 0, 0, 0, 0]))


def test_coverage_curves_without_group_columns():
    cur = coverage_curves(_counts().drop(columns=["model", "temperature"]).iloc[:3], n_boot=10)
    assert list(cur.columns) == COLUMNS
    assert cur["k"].max() == 8


def _samples() -> pd.DataFrame:
    rng = np.random.default_rng(5)
    rows = []
    for model in ("x", "y"):
        for pid in range(4):
            n = 12 if model == "x" else 9
            answers = rng.choice(["1", "2", "3", None], size=n, p=[0.4, 0.3, 0.2, 0.1])
            for i, ans in enumerate(answers):
                rows.append(
                    {
                        "model": model,
                        "problem_id": f"p{pid}",
                        "answer": ans,
                        "passed": ans == str(1 + pid % 3),
                        "score": float(rng.normal() + (ans == "1")),
                        "sample_index": i,
                    }
                )
    return pd.DataFrame(rows)


@pytest.mark.parametrize("metric", ["maj@k", "best-of-k", "weighted-vote@k"])
def test_selection_curves_format_and_range(metric):
    cur = selection_curves(_samples(), group_by=["model"], metric=metric, n_boot=100, n_mc=300)
    assert list(cur.columns) == ["model", *COLUMNS]
    assert (cur["metric"] == metric).all()
    assert cur[cur.model == "x"]["k"].tolist() == list(range(1, 13))
    assert cur[cur.model == "y"]["k"].tolist() == list(range(1, 10))
    assert cur["estimate"].between(0, 1).all()


def test_selection_curves_maj_matches_direct_estimator():
    s = _samples()
    cur = selection_curves(s, group_by=["model"], metric="maj@k", ks=[1, 3, 9], n_boot=0)
    g = s[s.model == "y"]
    counts, correct, nulls = [], [], []
    for _, p in g.groupby("problem_id"):
        a = p[p["answer"].notna()]
        vc = a.groupby("answer")["passed"].agg(["size", "mean"])
        counts.append(vc["size"].to_numpy())
        correct.append(vc["mean"].to_numpy())
        nulls.append(int(p["answer"].isna().sum()))
    direct = maj_at_k(counts, correct, [1, 3, 9], num_null=np.array(nulls)).mean(axis=0)
    np.testing.assert_allclose(cur[cur.model == "y"]["estimate"], direct, rtol=1e-12)


def test_selection_curves_bad_metric_and_missing_column():
    with pytest.raises(InputError, match="metric"):
        selection_curves(_samples(), group_by=[], metric="pass@k")
    with pytest.raises(InputError, match="'score'"):
        selection_curves(_samples().drop(columns=["score"]), group_by=[], metric="best-of-k")


def test_reference_math_llama3_8b_coverage_matches_paper():
    counts = load_counts(MONKEYS)
    g = counts[(counts.benchmark == "MATH") & (counts.model == "Llama-3-8B-Instruct")]
    cur = coverage_curves(g, ks=[100, 10_000], n_boot=200)
    est = dict(zip(cur["k"], cur["estimate"], strict=True))
    assert round(est[100], 3) == 0.829
    assert round(est[10_000], 4) == 0.9844
    assert len(g) == 128
    assert est[10_000] == 126 / 128  # two problems never solved in 10,000 samples
