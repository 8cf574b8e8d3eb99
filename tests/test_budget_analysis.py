"""Everything per thinking budget (issue 21): counts, curves, token costs, the sequential saturation point."""

from __future__ import annotations

import math
from math import comb

import numpy as np
import pandas as pd
import pytest

import ttscale
from ttscale.analysis.laws.sequential import (
    budget_curve,
    saturation_rounds,
    sequential_record,
    sequential_saturation,
)


def test_saturation_rounds_is_the_first_round_whose_next_gains_less_than_eps():
    # F_max p (1-p)^N < eps: 0.5^(N+1) < 0.01 from N = 6 on
    assert saturation_rounds(1.0, 0.5, 0.01) == 6
    assert 0.5 * 0.5 ** 6 < 0.01 <= 0.5 * 0.5 ** 5
    assert saturation_rounds(0.5, 0.1, 1.0) == 0  # the first round already gains less


def test_sequential_saturation_equals_its_closed_form_on_synthetic_data():
    budgets = np.array([64, 128, 256, 512, 1024, 2048])
    f_max, rate, eps = 0.8, 0.004, 1e-3
    acc = budget_curve(budgets, f_max, rate)
    fit = sequential_saturation(budgets, acc, eps)
    assert fit.f_max == pytest.approx(f_max, rel=1e-6) and fit.rate == pytest.approx(rate, rel=1e-6)
    p = 1 - math.exp(-rate * 64)
    n_star = math.ceil(math.log(eps / (f_max * p)) / math.log(1 - p))
    assert fit.rounds == n_star and fit.saturation_budget == n_star * 64


def test_sequential_record_interval_covers_the_truth_and_flags_extrapolation():
    budgets = np.array([100, 200, 400, 800])
    rng = np.random.default_rng(0)
    truth = budget_curve(budgets, 0.7, 0.005)
    n = np.full((400, 4), 50)
    correct = rng.binomial(50, np.broadcast_to(truth, (400, 4)))
    rec = sequential_record(budgets, correct, n, eps=1e-3, n_boot=100)
    exact = sequential_saturation(budgets, truth, 1e-3).saturation_budget
    lo, hi = rec["sequential_saturation_budget_ci"]
    assert lo <= exact <= hi
    few = sequential_record(budgets[:2], correct[:, :2], n[:, :2], eps=1e-3, n_boot=10)
    assert "fewer than 3 budgets" in few["sequential_note"]


def _brute_pass_at_k(n: int, c: int, k: int) -> float:
    return 1.0 - comb(n - c, k) / comb(n, k)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("budget-run") / "run"
    ttscale.sample("arithmetic", out=out, num_samples=6, num_problems=5, budgets=[1, 2, 3],
                   think_end="1", answer_cue="", max_tokens=6, progress=False,
                   backend_options={"threads": 1})
    ttscale.verify(out, verifier="exact", progress=False)
    return out


def test_per_budget_curves_equal_brute_force_on_a_small_run(run):
    res = ttscale.analyze(run, n_boot=20, law_boot=0)
    samples = ttscale.open_run(run).samples
    verdicts = ttscale.open_run(run).read_verdicts("exact")
    df = samples.merge(verdicts, on=["problem_id", "temperature", "budget", "sample_index"])
    curves = res.curves[res.curves["metric"] == "pass@k"]
    assert sorted(curves["budget"].unique()) == [1, 2, 3]
    for b in (1, 2, 3):
        per = df[df["budget"] == b].groupby("problem_id")["passed"].agg(["size", "sum"])
        for k in (1, 3, 6):
            brute = np.mean([_brute_pass_at_k(int(n), int(c), k) for n, c in per.to_numpy()])
            got = curves[(curves["budget"] == b) & (curves["k"] == k)]["estimate"].iloc[0]
            assert got == pytest.approx(brute, abs=1e-12)
    fits = res.fits
    assert "sequential_saturation_budget" in fits.columns
    assert fits["sequential_saturation_budget"].nunique() == 1  # one per group without budget


def test_counts_from_a_budget_run_carry_budget_and_the_tokens_used(run):
    counts = ttscale.open_run(run).counts
    assert {"budget", "mean_output_tokens", "mean_thinking_tokens", "mean_answer_tokens"} <= set(counts.columns)
    samples = ttscale.open_run(run).samples
    for b in (1, 2, 3):
        s = samples[samples["budget"] == b]
        c = counts[counts["budget"] == b]
        # sample-weighted means of the counts give back the samples' own means
        for col, src in (("mean_output_tokens", "num_output_tokens"), ("mean_thinking_tokens", "thinking_tokens")):
            assert (c[col] * c["num_samples"]).sum() / c["num_samples"].sum() == pytest.approx(s[src].mean())
        assert (c["mean_thinking_tokens"] <= b).all()
    # a counts table with these columns is a valid input; budget groups like temperature
    from ttscale.analysis.inputs import input_from_counts

    inp = input_from_counts(counts.drop(columns="verifier"))
    assert "budget" in inp.group_cols and inp.tokens is not None
    tok = inp.tokens.set_index(["temperature", "budget"])["avg_output_tokens"]
    for b in (1, 2, 3):
        assert tok.loc[(1.0, b)] == pytest.approx(samples[samples["budget"] == b]["num_output_tokens"].mean())


def test_a_counts_table_with_a_budget_column_groups_by_it():
    from ttscale.analysis.inputs import input_from_counts

    df = pd.DataFrame({"budget": [256, 256, 512, 512], "problem": ["a", "b", "a", "b"],
                       "num_samples": [4, 4, 4, 4], "num_correct": [1, 0, 3, 1]})
    inp = input_from_counts(df)
    assert inp.group_cols == ["budget"] and len(inp.groups()) == 2


def test_the_report_shows_accuracy_over_the_budget_and_tokens_per_budget(run, tmp_path):
    ttscale.analyze(run, out=run / "analysis", n_boot=20, law_boot=0, progress=False)
    from ttscale.reporting.html import build_report

    page = build_report(run, out=tmp_path / "report.html").read_text()
    assert "Thinking budgets: accuracy over the budget at each k" in page
    assert "pass@1 (verifier=exact, temperature=1)" in page and "budget = 3" in page
    assert "mean thinking tokens" in page and "sequential saturation budget [CI]" in page
    assert "measured saturation budget [CI]" in page


def test_a_sweep_gives_each_model_its_budgets_and_how_it_forces_answers(tmp_path):
    from ttscale.orchestration.config import load_sweep_config
    from ttscale.orchestration.sweeps import Cell, sample_settings

    cfg = load_sweep_config("examples/gpu_qwen.yaml")
    by = {m.label: m for m in cfg.models}
    task = cfg.tasks[0]
    plain = sample_settings(cfg, Cell(by["qwen2.5-7b-instruct"], task, [], tmp_path / "a"))
    think = sample_settings(cfg, Cell(by["r1-distill-qwen-7b"], task, [], tmp_path / "b"))
    assert plain.budgets is None
    assert think.budgets == [512, 1024, 2048, 4096]
    assert (think.think_end, think.answer_cue) == ("</think>", "\n\n")


def test_the_temperature_view_is_per_budget():
    from ttscale.analysis.inputs import input_from_counts
    from ttscale.analysis.temperatures.view import temperature_view

    rng = np.random.default_rng(0)
    rows = [dict(budget=b, temperature=t, problem=f"p{p}", num_samples=8,
                 num_correct=int(rng.integers(0, 9)))
            for b in (256, 512) for t in (0.6, 1.0) for p in range(10)]
    inp = input_from_counts(pd.DataFrame(rows))
    view = temperature_view(inp.counts, inp.group_cols, None, 20, 0.95, 0, n_splits=2)
    assert sorted(view.best["budget"].unique()) == [256, 512]
    for b in (256, 512):  # each budget's k=1 winner is the temperature with the larger pass@1
        sub = inp.counts[inp.counts["budget"] == b]
        rates = sub.assign(r=sub["num_correct"] / sub["num_samples"]).groupby("temperature")["r"].mean()
        best = view.best[(view.best["budget"] == b) & (view.best["k"] == 1)]["best_temperature"].iloc[0]
        assert best == rates.idxmax()


def test_the_fit_check_rejects_a_straight_line_and_accepts_the_law():
    budgets = np.array([4, 8, 12, 16, 20, 24, 28, 32])
    rng = np.random.default_rng(3)
    n = np.full((40, 8), 32)
    line = np.broadcast_to(np.linspace(0.12, 0.99, 8), (40, 8))  # think-llama's measured shape
    rec = sequential_record(budgets, rng.binomial(32, line), n, eps=1e-4, n_boot=20)
    assert rec["sequential_fit_status"] == "rejected" and rec["sequential_fit_p"] < 1e-6
    assert "does not fit" in rec["sequential_note"]
    law = np.broadcast_to(budget_curve(budgets, 0.9, 0.08), (400, 8))
    rec = sequential_record(budgets, rng.binomial(32, law), np.full((400, 8), 32), eps=1e-4, n_boot=20)
    assert rec["sequential_fit_status"] == "ok" and rec["sequential_fit_p"] >= 0.01


def test_the_measured_saturation_budget_is_the_first_budget_after_the_last_steep_step():
    from ttscale.analysis.laws.sequential import measured_saturation

    b = np.array([10, 20, 40, 80])
    # gains per round of 10 tokens: 0.3, 0.05 (over two rounds: 0.025), 0.0005 (over four)
    acc = np.array([0.3, 0.6, 0.65, 0.652])
    assert measured_saturation(b, acc, eps=0.01, unit=10) == 40
    assert measured_saturation(b, acc, eps=0.1, unit=10) == 20
    assert measured_saturation(b, acc, eps=1e-4, unit=10) is None  # still rising at 80
    assert measured_saturation(b, np.full(4, 0.5), eps=1e-4, unit=10) == 10
    rng = np.random.default_rng(0)
    n = np.full((300, 4), 40)
    rec = sequential_record(b, rng.binomial(40, np.broadcast_to(acc, (300, 4))), n, eps=0.01, n_boot=100)
    assert rec["sequential_measured_saturation_budget"] == 40
    lo, hi = rec["sequential_measured_saturation_budget_ci"]
    assert lo <= 40 and (hi is None or hi >= 40)


def test_the_report_examples_are_the_texts_of_the_judged_budget(run):
    from ttscale.reporting.sections import first_examples
    from ttscale.rundir.store import RunDir

    r = ttscale.open_run(run)
    df = r.samples.merge(r.read_verdicts("exact"), on=["problem_id", "temperature", "budget", "sample_index"])
    picks = sorted(df["problem_id"].unique())
    found = first_examples(RunDir(run), "exact", picks)
    for pid in picks:
        for slot, flag in ((0, True), (1, False)):
            rows = df[(df["problem_id"] == pid) & (df["passed"] == flag)]
            if not len(rows):
                assert found[pid][slot] is None
                continue
            first = rows.sort_values(["temperature", "budget", "sample_index"]).iloc[0]
            head = f"[budget {first['budget']}{', answer forced' if first['forced'] else ''}] "
            assert found[pid][slot] == head + first["text"]
