"""What-if beyond the sampled budgets (issue 22): the sequential law's forecast, its checks, its cost."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

import ttscale
from ttscale.analysis.frontier.configs import build_configurations
from ttscale.analysis.frontier.whatif_budget import extrapolate_budget
from ttscale.analysis.laws.sequential import budget_curve

BUDGETS = [64, 128, 256, 512]


def _counts(seed: int, shape: str = "law", problems: int = 200, n: int = 16) -> tuple[pd.DataFrame, np.ndarray]:
    """Counts whose per-problem rates follow ``min(1, d_i F(B))``, and each problem's d_i."""
    rng = np.random.default_rng(seed)
    d = rng.beta(1, 1, problems) * 1.25

    def f(b: float) -> float:
        return float(budget_curve(np.array([b]), 0.8, 0.004)[0]) if shape == "law" else min(1.0, b / 600)

    rows = []
    for b in BUDGETS:
        c = rng.binomial(n, np.clip(d * f(b), 0, 1))
        rows += [{"problem": i, "budget": b, "num_samples": n, "num_correct": int(c[i]),
                  "mean_output_tokens": 0.8 * b} for i in range(problems)]
    return pd.DataFrame(rows), d


def _truth(d: np.ndarray, budget: int, k: int) -> float:
    p = np.clip(d * budget_curve(np.array([budget]), 0.8, 0.004)[0], 0, 1)
    return float((1 - (1 - p) ** k).mean())


@pytest.mark.slow
def test_the_budget_forecast_interval_covers_the_true_coverage_where_the_law_holds():
    hits, total = 0, 0
    for seed in range(6):
        df, d = _counts(seed)
        ex, notes = extrapolate_budget(build_configurations(df), [2], level=0.9, n_boot=60, seed=seed)
        if not len(ex):  # the back-test's false alarm: allowed, but said
            assert any("not safe to extrapolate" in x for x in notes)
            continue
        assert set(ex["budget"]) == {1024} and ex["extrapolated"].all()
        assert (ex["method"] == "sequential_law").all()
        for k in (1, 4, 16):
            r = ex[ex["k"] == k].iloc[0]
            hits += r["ci_low"] <= _truth(d, 1024, k) <= r["ci_high"]
            total += 1
    assert total >= 12 and hits / total >= 0.8


def test_the_cost_beyond_the_largest_budget_continues_the_tokens_used():
    df, _ = _counts(0)
    ex, _ = extrapolate_budget(build_configurations(df), [2, 4], n_boot=0)
    for budget in (1024, 2048):
        rows = ex[ex["budget"] == budget]
        # 0.8 tokens per budget token between the last two budgets: every trace keeps thinking
        assert np.allclose(rows["cost_tokens"], rows["k"] * 0.8 * budget)


def test_a_curve_the_law_does_not_fit_gets_a_note_and_no_forecast():
    df, _ = _counts(0, shape="line")
    ex, notes = extrapolate_budget(build_configurations(df), [2], n_boot=20)
    assert len(ex) == 0
    assert any("does not fit" in x for x in notes)


def test_fewer_than_three_budgets_or_no_budget_axis_give_a_note():
    df, _ = _counts(0)
    ex, notes = extrapolate_budget(build_configurations(df[df["budget"] <= 128]), [2], n_boot=0)
    assert len(ex) == 0 and any("three or more" in x for x in notes)
    ex, notes = extrapolate_budget(build_configurations(df[df["budget"] == 64].drop(columns="budget")), [2])
    assert len(ex) == 0 and any("no configuration family" in x for x in notes)


def test_the_frontier_verb_and_cli_add_budget_what_if_points(tmp_path):
    df, _ = _counts(1)
    fr = ttscale.frontier(df, n_boot=50, whatif_budget=[2], allocation=False)
    assert len(fr.extrapolated) and (fr.extrapolated["budget"] == 1024).all()
    assert fr.whatif["extrapolated"].any()
    path = tmp_path / "counts.csv"
    df.to_csv(path, index=False)
    out = subprocess.run([sys.executable, "-m", "ttscale", "frontier", str(path), "--n-boot", "50",
                          "--no-allocation", "--what-if-budget", "2"], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert "budget=1024 (what-if)" in out.stdout
    bad = subprocess.run([sys.executable, "-m", "ttscale", "frontier", str(path), "--n-boot", "50",
                          "--no-allocation", "--what-if-budget", "1"], capture_output=True, text=True, timeout=300)
    assert bad.returncode == 2 and "what-if-budget" in bad.stderr and "Traceback" not in bad.stderr
