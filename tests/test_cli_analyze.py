"""``ttscale analyze`` and ``ttscale forecast`` end to end: counts tables, run directories, reference.

Curve values are checked against brute force (exact binomial ratios, enumeration of k-subsets),
fits against ``fit_from_counts`` on the same counts, files for their schema and determinism.
"""

from __future__ import annotations

import itertools
import json
from fractions import Fraction
from math import comb
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ttscale.cli import main
from ttscale.rundir.store import RunDir

REF_DIR = Path(__file__).resolve().parents[1] / "data" / "reference"  # shipped with the repo (data/reference/README.md)
CURVE_COLS = ["metric", "k", "estimate", "ci_low", "ci_high"]


def _exact_coverage(n: np.ndarray, c: np.ndarray, k: int) -> float:
    """Mean of 1 - C(n-c, k)/C(n, k) over problems, in exact rational arithmetic."""
    total = sum(1 - Fraction(comb(int(ni - ci), k), comb(int(ni), k)) for ni, ci in zip(n, c, strict=True))
    return float(total / len(n))


@pytest.fixture(scope="module")
def counts_csv(tmp_path_factory) -> Path:
    rng = np.random.default_rng(7)
    rows = []
    for bench, model, scale in [("MATH", "small", 0.15), ("MATH", "big", 0.4),
                                ("GSM8K", "small", 0.5), ("GSM8K", "big", 0.8)]:
        p = np.clip(rng.beta(0.4, 0.4 / scale, size=30), 0, 1)
        for i, pi in enumerate(p):
            rows.append((bench, model, f"p{i}", 50, int(rng.binomial(50, pi))))
    path = tmp_path_factory.mktemp("counts") / "counts.csv"
    pd.DataFrame(rows, columns=["benchmark", "model", "problem", "num_samples", "num_correct"]).to_csv(
        path, index=False)
    return path


@pytest.fixture(scope="module")
def analyzed(counts_csv, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("analysis") / "out"
    assert main(["analyze", str(counts_csv), "--out", str(out), "--n-boot", "300"]) == 0
    return out


def test_curves_equal_exact_pass_at_k(counts_csv, analyzed):
    counts = pd.read_csv(counts_csv)
    curves = pd.read_parquet(analyzed / "curves.parquet")
    assert list(curves.columns) == ["benchmark", "model", *CURVE_COLS]
    assert set(curves["metric"]) == {"pass@k"}
    assert not (analyzed / "costs.parquet").exists()  # no cost without --model-shape
    for (bench, model), g in counts.groupby(["benchmark", "model"]):
        cur = curves[(curves["benchmark"] == bench) & (curves["model"] == model)].sort_values("k")
        ks = cur["k"].to_list()
        assert ks[0] == 1 and ks[-1] == 50 and ks == sorted(set(ks)) and len(ks) >= 20
        n, c = g["num_samples"].to_numpy(), g["num_correct"].to_numpy()
        for k, est in zip(ks, cur["estimate"], strict=True):
            assert est == pytest.approx(_exact_coverage(n, c, k), abs=1e-12)
        assert (cur["ci_low"] <= cur["estimate"] + 1e-12).all()
        assert (cur["estimate"] <= cur["ci_high"] + 1e-12).all()
        assert (cur["ci_high"] - cur["ci_low"]).iloc[0] > 0.01  # 30 problems: a real band


def test_fits_json_schema_and_values(counts_csv, analyzed):
    from ttscale.analysis.laws.power_law import fit_from_counts

    fits = json.loads((analyzed / "fits.json").read_text())
    counts = pd.read_csv(counts_csv)
    curves = pd.read_parquet(analyzed / "curves.parquet")
    assert [(r["benchmark"], r["model"]) for r in fits] == [
        ("GSM8K", "big"), ("GSM8K", "small"), ("MATH", "big"), ("MATH", "small")]
    for rec in fits:
        assert set(rec) == {
            "benchmark", "model", "metric", "law", "a", "b", "a_se_conditional",
            "b_se_conditional", "rmse", "max_abs_error", "k_min", "k_max",
            "saturation_threshold", "saturation_k", "saturation_k_fit", "saturation_flops",
            "flops_per_sample", "ci_level", "ci_method", "law_boot", "law_boot_failed", "a_ci",
            "b_ci", "fit_status", "fit_reasons", "fit_warnings", "fit_check",
            "saturation_k_fit_ci", "saturation_k_fit_never", "saturation_k_fit_status",
            "tail_fit", "fits_data", "extrapolation",
        } | ({"saturation_k_fit_note"} if rec["fit_status"] == "rejected"
             or rec["extrapolation"]["status"] == "unsafe" else set())
        assert rec["extrapolation"]["status"] in ("safe", "unsafe", "unchecked")
        assert rec["extrapolation"]["backtest"]["fit_k_max"] == 5  # k <= 50 / 10, predicting 50
        g = counts[(counts["benchmark"] == rec["benchmark"]) & (counts["model"] == rec["model"])]
        fit = fit_from_counts(g["num_samples"], g["num_correct"])
        assert rec["law"] == "exp_power" and rec["metric"] == "pass@k"
        assert rec["a"] == fit.params["a"] and rec["b"] == fit.params["b"]
        assert rec["a_se_conditional"] == fit.stderr["a"] and rec["rmse"] == fit.rmse
        assert rec["a_ci"][0] < rec["a"] < rec["a_ci"][1] and rec["b_ci"][0] < rec["b"] < rec["b_ci"][1]
        assert (rec["k_min"], rec["k_max"]) == (1, 50)
        assert rec["flops_per_sample"] is None and rec["saturation_threshold"] == 1e-4
        # the measured curve's slope first drops below 1e-4 per sample at saturation_k
        cur = curves[(curves["benchmark"] == rec["benchmark"]) & (curves["model"] == rec["model"])]
        k, y = cur["k"].to_numpy(), cur["estimate"].to_numpy()
        slope = np.diff(y) / np.diff(k)
        below = np.flatnonzero(slope < 1e-4)
        assert rec["saturation_k"] == (int(k[below[0]]) if below.size else None)
        kf = rec["saturation_k_fit"]
        assert fit.predict(kf + 1) - fit.predict(kf) < 1e-4 <= fit.predict(kf) - fit.predict(kf - 1)


def test_figures_exist_png_and_svg(analyzed):
    names = sorted(p.name for p in (analyzed / "figures").iterdir())
    assert names == ["coverage_k-GSM8K.png", "coverage_k-GSM8K.svg",
                     "coverage_k-MATH.png", "coverage_k-MATH.svg"]
    for p in (analyzed / "figures").iterdir():
        data = p.read_bytes()
        assert len(data) > 2000
        assert data.startswith(b"\x89PNG") if p.suffix == ".png" else b"<svg" in data
    assert not [p for p in analyzed.iterdir()  # no temporary left (.locks holds the stage lock)
                if p.name.startswith(".") and p.name != ".locks"]


def test_same_input_same_bytes(counts_csv, analyzed, tmp_path):
    out = tmp_path / "again"
    assert main(["analyze", str(counts_csv), "--out", str(out), "--n-boot", "300"]) == 0
    for rel in ["curves.parquet", "fits.json", "figures/coverage_k-MATH.svg"]:
        assert (out / rel).read_bytes() == (analyzed / rel).read_bytes(), rel


def test_rerun_into_same_dir_removes_stale_outputs_only(counts_csv, tmp_path):
    out = tmp_path / "o"
    assert main(["analyze", str(counts_csv), "--out", str(out), "--n-boot", "0"]) == 0
    (out / "notes.txt").write_text("mine")
    math_only = tmp_path / "math.csv"
    counts = pd.read_csv(counts_csv)
    counts[counts["benchmark"] == "MATH"].to_csv(math_only, index=False)
    assert main(["analyze", str(math_only), "--out", str(out), "--n-boot", "0"]) == 0
    assert sorted(p.name for p in (out / "figures").iterdir()) == [
        "coverage_k-MATH.png", "coverage_k-MATH.svg"]
    assert (out / "notes.txt").read_text() == "mine"
    assert set(pd.read_parquet(out / "curves.parquet")["benchmark"]) == {"MATH"}


def test_explicit_ks_ceiling_and_max_k(counts_csv, tmp_path):
    out = tmp_path / "o"
    assert main(["analyze", str(counts_csv), "--out", str(out), "--ks", "1,5,20", "--max-k", "20",
                 "--ceiling", "--n-boot", "50"]) == 0
    curves = pd.read_parquet(out / "curves.parquet")
    assert sorted(set(curves["k"])) == [1, 5, 20]
    for rec in json.loads((out / "fits.json").read_text()):
        assert rec["law"] == "exp_power_ceiling"
        assert 0 < rec["c_max"] <= 1 and "c_max_se_conditional" in rec
        assert 0 < rec["c_max_ci"][0] <= rec["c_max_ci"][1] <= 1
        assert rec["k_max"] == 20


def test_group_by_pools_counts_of_left_out_columns(tmp_path):
    rows = [("B", s, i, 8, (3 * i + s) % 9) for s in range(3) for i in range(6)]
    src = tmp_path / "seeds.csv"
    pd.DataFrame(rows, columns=["benchmark", "seed", "problem", "num_samples", "num_correct"]).to_csv(
        src, index=False)
    out = tmp_path / "o"
    assert main(["analyze", str(src), "--out", str(out), "--group-by", "benchmark",
                 "--n-boot", "0"]) == 0
    curves = pd.read_parquet(out / "curves.parquet")
    assert list(curves.columns) == ["benchmark", *CURVE_COLS]
    assert curves["k"].max() == 24  # three seeds of 8 samples each
    n = np.full(6, 24)
    c = np.array([sum((3 * i + s) % 9 for s in range(3)) for i in range(6)])
    for k, est in zip(curves["k"], curves["estimate"], strict=True):
        assert est == pytest.approx(_exact_coverage(n, c, int(k)), abs=1e-12)
    assert curves["ci_low"].isna().all()  # --n-boot 0: no interval


def test_counts_table_with_cost_axis(counts_csv, tmp_path):
    from ttscale.analysis.costs import cost

    shape = cost.PRESETS["Llama-3-8B"]
    out = tmp_path / "o"
    assert main(["analyze", str(counts_csv), "--out", str(out), "--model-shape", "llama-3-8b",
                 "--prompt-tokens", "200", "--output-tokens", "300", "--n-boot", "0"]) == 0
    costs = pd.read_parquet(out / "costs.parquet")
    assert list(costs.columns) == ["benchmark", "model", "k", "flops", "kinetics_eflops"]
    np.testing.assert_allclose(costs["kinetics_eflops"], cost.curve_cost(
        costs["k"].to_numpy(), 200.0, 300.0, shape, "kinetics"), rtol=1e-12)
    curves = pd.read_parquet(out / "curves.parquet")
    assert costs[["benchmark", "model", "k"]].equals(curves[["benchmark", "model", "k"]])
    expect = cost.curve_cost(costs["k"].to_numpy(), 200.0, 300.0, shape, "flops")
    # one prompt prefill plus k completions: linear in k, from the 8B model's FLOPs per token
    assert expect[1] - expect[0] == pytest.approx(
        float(cost.cost_per_sample(200.0, 300.0, shape)) * (costs["k"].iloc[1] - costs["k"].iloc[0]))
    np.testing.assert_allclose(costs["flops"], expect, rtol=1e-12)
    rec = json.loads((out / "fits.json").read_text())[0]
    assert rec["flops_per_sample"] == pytest.approx(float(np.asarray(
        cost.curve_cost(np.array([1]), 200.0, 300.0, shape, "flops"))[0]))
    # prefill of 200 tokens plus one completion of 300: about 2 N FLOPs for each of 500 tokens
    assert 2 * 8.0e9 * 500 < rec["flops_per_sample"] < 2.1 * 8.1e9 * 500
    figs = {p.name for p in (out / "figures").iterdir()}
    assert {"coverage_flops-MATH.png", "coverage_flops-GSM8K.svg"} <= figs


MONKEYS = REF_DIR / "monkeys_llama3_counts.csv"


def test_model_shape_auto_on_a_counts_table_assumes_token_counts(tmp_path, capsys):
    from ttscale.analysis.costs import cost
    from ttscale.analysis.costs.model_shape import DEFAULT_OUTPUT_TOKENS, DEFAULT_PROMPT_TOKENS

    out = tmp_path / "o"
    assert main(["analyze", str(MONKEYS), "--out", str(out), "--model-shape", "auto",
                 "--n-boot", "0", "--ks", "1,10,100"]) == 0
    said = capsys.readouterr().out
    assert "cost assumes 512 prompt and 256 output tokens" in said
    fits = json.loads((out / "fits.json").read_text())
    assert len(fits) == 4
    for rec in fits:
        assert rec["tokens_assumed"] is True
        assert rec["model_shape"] == rec["model"]
        shape = cost.PRESETS[rec["model"]]
        assert rec["kinetics_eflops_per_sample"] == pytest.approx(float(cost.cost_per_sample(
            DEFAULT_PROMPT_TOKENS, DEFAULT_OUTPUT_TOKENS, shape, "kinetics")), rel=1e-12)


def test_model_shape_embedded_is_known(counts_csv, tmp_path):
    from ttscale.analysis.costs import cost

    out = tmp_path / "o"
    assert main(["analyze", str(counts_csv), "--out", str(out), "--model-shape", "embedded",
                 "--prompt-tokens", "8", "--output-tokens", "5", "--n-boot", "0"]) == 0
    rec = json.loads((out / "fits.json").read_text())[0]
    assert rec["tokens_assumed"] is False and rec["model_shape"] == "embedded"
    shape = ModelShape_of_embedded()
    assert shape.num_params == 4 * (4 * 128 * 128 + 3 * 128 * 512 + 2 * 128) + 32 * 128 + 128
    assert rec["flops_per_sample"] == pytest.approx(float(cost.curve_cost(1, 8.0, 5.0, shape)))


def ModelShape_of_embedded():  # noqa: N802
    from ttscale.analysis.costs.model_shape import find_shape

    return find_shape("embedded")[0]


def test_model_shape_auto_takes_each_groups_model(tmp_path):
    from ttscale.analysis.costs import cost

    src = tmp_path / "two_models.csv"
    rows = [(m, i, 20, (i * 7 + j) % 21) for j, m in enumerate(["Llama-3-8B-Instruct",
                                                               "Llama-3-70B-Instruct"])
            for i in range(10)]
    pd.DataFrame(rows, columns=["model", "problem", "num_samples", "num_correct"]).to_csv(
        src, index=False)
    out = tmp_path / "o"
    assert main(["analyze", str(src), "--out", str(out), "--model-shape", "auto",
                 "--prompt-tokens", "100", "--output-tokens", "100", "--n-boot", "0"]) == 0
    fits = {r["model"]: r for r in json.loads((out / "fits.json").read_text())}
    for name, rec in fits.items():
        assert rec["model_shape"] == name
        assert rec["flops_per_sample"] == pytest.approx(
            float(cost.curve_cost(1, 100.0, 100.0, cost.PRESETS[name], "flops")))
    ratio = fits["Llama-3-70B-Instruct"]["flops_per_sample"] / fits["Llama-3-8B-Instruct"]["flops_per_sample"]
    assert 8.0 < ratio < 9.0  # 70.6e9 / 8.03e9 parameters, plus attention
    assert {"coverage_flops.png", "coverage_flops.svg", "coverage_k.png"} <= {
        p.name for p in (out / "figures").iterdir()}


# -- a tiny hand-built run directory ---------------------------------------------------------
ANSWERS = {  # problem -> per-sample answers (None: unparsed); the reference answer is "1"
    "p0": ["1", "1", "2", None],
    "p1": ["2", "2", "1", "3"],
    "p2": [None, "5", "5", "4"],
}
SCORES = {"p0": [0.9, 0.2, 0.5, 0.1], "p1": [0.3, 0.8, 0.6, 0.4], "p2": [0.7, 0.1, 0.25, 0.3]}
#: weighted vote over all 4 samples (score sums): p0 -> "1" (1.1 vs 0.5), p1 -> "2" (1.1),
#: p2 -> "5" (0.35 vs 0.3); correct at T=0.5 ("1"): p0 only; at T=1.0 ("1" or "5"): p0 and p2
WEIGHTED_AT_4 = {0.5: 1 / 3, 1.0: 2 / 3}


def _brute_maj(answers: list, passed: list[bool], k: int) -> float:
    correct = {a: np.mean([p for b, p in zip(answers, passed, strict=True) if b == a])
               for a in set(answers) if a is not None}
    vals = []
    for sub in itertools.combinations(range(len(answers)), k):
        votes = pd.Series([answers[i] for i in sub if answers[i] is not None], dtype=object)
        if votes.empty:
            vals.append(0.0)
            continue
        counts = votes.value_counts()
        top = counts[counts == counts.max()].index
        vals.append(float(np.mean([correct[a] for a in top])))
    return float(np.mean(vals))


def _brute_best(scores: list[float], passed: list[bool], k: int) -> float:
    return float(np.mean([passed[max(sub, key=lambda i: scores[i])]
                          for sub in itertools.combinations(range(len(scores)), k)]))


@pytest.fixture
def run_dir(tmp_path) -> Path:
    run = RunDir(tmp_path / "run")
    run.write_problems(pd.DataFrame({"problem_id": list(ANSWERS), "task": "arith",
                                     "prompt": "q", "reference": '{"answer": "1"}'}))
    for t in (0.5, 1.0):
        rows, exact, reward = [], [], []
        for pid, answers in ANSWERS.items():
            for j, a in enumerate(answers):
                rows.append({"problem_id": pid, "temperature": t, "sample_index": j, "seed": j,
                             "text": str(a), "num_prompt_tokens": 10, "num_output_tokens": 2 + j,
                             "finish_reason": "stop"})
                passed = a == "1" if t == 0.5 else a in ("1", "5")
                base = {"problem_id": pid, "temperature": t, "sample_index": j, "passed": passed,
                        "status": "pass" if passed else "fail", "error": None}
                exact.append({**base, "score": float("nan"), "answer": a})
                reward.append({**base, "score": SCORES[pid][j], "answer": None})
        run.write_samples(pd.DataFrame(rows))
        run.write_verdicts("exact", pd.DataFrame(exact))
        run.write_verdicts("reward", pd.DataFrame(reward))
        judge = [{**r, "answer": e["answer"]} for r, e in zip(reward, exact, strict=True)]
        run.write_verdicts("judge", pd.DataFrame(judge))
    return run.path


def test_run_directory_curves_by_verifier_and_temperature(run_dir):
    assert main(["analyze", str(run_dir), "--n-boot", "0"]) == 0
    out = run_dir / "analysis"
    curves = pd.read_parquet(out / "curves.parquet")
    assert list(curves.columns) == ["task", "verifier", "temperature", *CURVE_COLS]
    got = {(v, t, m): g.sort_values("k")["estimate"].to_list()
           for (v, t, m), g in curves.groupby(["verifier", "temperature", "metric"])}
    assert sorted(got) == sorted(
        [("exact", t, m) for t in (0.5, 1.0) for m in ("maj@k", "pass@k")]
        + [("reward", t, m) for t in (0.5, 1.0) for m in ("best-of-k", "pass@k")]
        + [("judge", t, m) for t in (0.5, 1.0)
           for m in ("best-of-k", "maj@k", "pass@k", "weighted-vote@k")])
    for t in (0.5, 1.0):
        passed = {p: [(a == "1") if t == 0.5 else (a in ("1", "5")) for a in ans]
                  for p, ans in ANSWERS.items()}
        n = np.full(3, 4)
        c = np.array([sum(v) for v in passed.values()])
        for k in range(1, 5):
            assert got[("exact", t, "pass@k")][k - 1] == pytest.approx(_exact_coverage(n, c, k))
            assert got[("reward", t, "pass@k")][k - 1] == pytest.approx(_exact_coverage(n, c, k))
            maj = np.mean([_brute_maj(ANSWERS[p], passed[p], k) for p in ANSWERS])
            assert got[("exact", t, "maj@k")][k - 1] == pytest.approx(maj, abs=1e-12)
            best = np.mean([_brute_best(SCORES[p], passed[p], k) for p in ANSWERS])
            assert got[("reward", t, "best-of-k")][k - 1] == pytest.approx(best, abs=1e-12)
            for m in ("pass@k", "maj@k", "best-of-k"):  # same answers, scores, verdicts
                assert got[("judge", t, m)][k - 1] == pytest.approx(
                    got[("exact" if m == "maj@k" else "reward", t, m)][k - 1], abs=1e-12)
        assert got[("judge", t, "weighted-vote@k")][3] == pytest.approx(WEIGHTED_AT_4[t], abs=1e-12)
        assert all(0 <= v <= 1 for v in got[("judge", t, "weighted-vote@k")])
    names = {p.name for p in (out / "figures").iterdir()}
    assert {"coverage_k-arith.png", "coverage_k-arith.svg", "selection_k-arith.png"} <= names
    fits = json.loads((out / "fits.json").read_text())
    assert [(r["task"], r["verifier"], r["temperature"]) for r in fits] == [
        ("arith", v, t) for v in ("exact", "judge", "reward") for t in (0.5, 1.0)]


def test_run_directory_cost_from_sample_tokens(run_dir, tmp_path):
    out = tmp_path / "o"
    assert main(["analyze", str(run_dir), "--out", str(out), "--model-shape", "Llama-3.2-1B",
                 "--group-by", "verifier", "--n-boot", "0"]) == 0
    rec = json.loads((out / "fits.json").read_text())[0]
    assert rec["avg_prompt_tokens"] == 10.0 and rec["avg_output_tokens"] == 3.5  # (2+3+4+5)/4
    curves = pd.read_parquet(out / "curves.parquet")
    assert list(curves.columns) == ["verifier", *CURVE_COLS]
    costs = pd.read_parquet(out / "costs.parquet")
    assert list(costs.columns) == ["verifier", "k", "flops", "kinetics_eflops"]
    assert sorted(set(costs["verifier"])) == ["exact", "judge", "reward"] and (costs["flops"] > 0).all()


def test_run_directory_gets_a_cost_axis_from_its_model(run_dir, tmp_path):
    from ttscale.analysis.costs import cost

    RunDir(run_dir).write_config({"model": "embedded", "backend": "transformers"})
    out = tmp_path / "o"
    assert main(["analyze", str(run_dir), "--out", str(out), "--group-by", "verifier",
                 "--n-boot", "0"]) == 0  # no --model-shape: the run's model is known
    rec = json.loads((out / "fits.json").read_text())[0]
    assert rec["model_shape"] == "embedded" and rec["tokens_assumed"] is False
    shape = ModelShape_of_embedded()
    assert rec["kinetics_eflops_per_sample"] == pytest.approx(
        float(cost.cost_per_sample(10.0, 3.5, shape, "kinetics")), rel=1e-12)
    # a folder holding a config.json works too, and an unknown model leaves the cost unknown
    RunDir(run_dir).write_config({"model": str(tmp_path / "nowhere"), "backend": "vllm"})
    assert main(["analyze", str(run_dir), "--out", str(out), "--n-boot", "0"]) == 0
    assert json.loads((out / "fits.json").read_text())[0]["flops_per_sample"] is None
    assert not (out / "costs.parquet").exists()


def test_run_directory_orphan_verdict_is_bad_input(run_dir, tmp_path, capsys):
    run = RunDir(run_dir)
    run.write_verdicts("exact", pd.DataFrame([{
        "problem_id": "p9", "temperature": 0.5, "sample_index": 0, "passed": True,
        "score": float("nan"), "answer": "1", "status": "pass", "error": None}]))
    assert main(["analyze", str(run_dir), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "verdicts/exact" in err[0] and "'p9'" in err[0]
    assert not (tmp_path / "o").exists()


# -- forecast --------------------------------------------------------------------------------
def test_subsample_without_replacement_is_seeded_and_exact_at_n(counts_csv):
    from ttscale.analysis.forecasting.forecast import subsample

    counts = pd.read_csv(counts_csv)
    same = subsample(counts, 50, seed=3)
    assert (same["num_correct"] == counts["num_correct"]).all()  # all 50 of 50: nothing random
    a, b = subsample(counts, 10, seed=3), subsample(counts, 10, seed=3)
    assert (a["num_correct"] == b["num_correct"]).all() and (a["num_samples"] == 10).all()
    assert (a["num_correct"] <= np.minimum(10, counts["num_correct"])).all()
    assert (a["num_correct"] >= np.maximum(0, counts["num_correct"] - 40)).all()


def test_forecast_from_k_forecasts_from_the_subsample(counts_csv, capsys):
    from ttscale.analysis.forecasting import forecast as fc
    from ttscale.analysis.forecasting.forecast import subsample

    method = "power_law"
    assert main(["forecast", str(counts_csv), "--to", "50", "--from-k", "10", "--seed", "5",
                 "--method", method, "--json"]) == 0
    recs = json.loads(capsys.readouterr().out)
    sub = subsample(pd.read_csv(counts_csv), 10, seed=5)
    assert len(recs) == 4
    for r in recs:
        assert r["from_k"] == 10 and r["method"] == method
        g = sub[(sub["benchmark"] == r["benchmark"]) & (sub["model"] == r["model"])]
        expect = fc.forecast_coverage(g["num_samples"].to_numpy(), g["num_correct"].to_numpy(),
                                      50, method)
        assert r["coverage"] == pytest.approx(float(expect), abs=1e-12)


def test_forecast_table_output(counts_csv, capsys):
    from ttscale.analysis.forecasting import forecast as fc
    assert main(["forecast", str(counts_csv), "--to", "200"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].split() == ["benchmark", "model", "method", "k", "coverage", "90%", "low", "90%", "high",
                                "law"]
    assert len(lines) == 5 and all(fc.DEFAULT_METHOD in ln for ln in lines[1:])


def test_forecast_json_all_methods(counts_csv, capsys):
    from ttscale.analysis.forecasting import forecast as fc
    assert main(["forecast", str(counts_csv), "--to", "500", "--method", "all", "--json",
                 "--n-boot", "0"]) == 0  # intervals: tests/test_forecast.py
    recs = json.loads(capsys.readouterr().out)
    assert len(recs) == 4 * len(fc.METHODS)
    counts = pd.read_csv(counts_csv)
    for r in recs:
        assert set(r) - {"ceiling_forecast"} == {
            "benchmark", "model", "method", "k", "coverage", "from_k", "from_n", "extrapolated",
            "ci_low", "ci_high", "ci_level", "law_status", "law_reasons", "law_warnings",
            "law_extrapolation", "law_extrapolation_reasons"}
        assert (r["law_status"] is None) == (r["method"] != "power_law")
        assert (r["law_extrapolation"] is None) == (r["method"] != "power_law")
        assert ("ceiling_forecast" in r) == (r["law_extrapolation"] == "unsafe")
        assert r["k"] == 500 and r["from_k"] is None and r["extrapolated"] is True
        assert r["ci_low"] is None and r["ci_high"] is None
        g = counts[(counts["benchmark"] == r["benchmark"]) & (counts["model"] == r["model"])]
        expect = fc.forecast_coverage(g["num_samples"].to_numpy(), g["num_correct"].to_numpy(),
                                      500, r["method"])
        assert r["coverage"] == pytest.approx(float(expect), abs=1e-12)
        # a forecast at k = 500 is no lower than the measured coverage at k = 50
        assert r["coverage"] >= _exact_coverage(g["num_samples"], g["num_correct"], 50) - 0.05


# -- the published reference ------------------------------------------------------------------
def test_monkeys_math_8b_reproduces_published_coverage_and_law(tmp_path):
    out = tmp_path / "monkeys"
    src = REF_DIR / "monkeys_llama3_counts.csv"
    assert main(["analyze", str(src), "--out", str(out), "--ks", "1,10,100,1000,10000",
                 "--n-boot", "200"]) == 0
    curves = pd.read_parquet(out / "curves.parquet")
    math8 = curves[(curves["benchmark"] == "MATH") & (curves["model"] == "Llama-3-8B-Instruct")]
    at = dict(zip(math8["k"], math8["estimate"], strict=True))
    assert round(at[100], 3) == 0.829
    assert round(at[10000], 4) == 0.9844
    fits = {(r["benchmark"], r["model"]): r for r in json.loads((out / "fits.json").read_text())}
    f8 = fits[("MATH", "Llama-3-8B-Instruct")]
    assert f8["a"] == pytest.approx(-1.33, abs=0.03) and f8["b"] == pytest.approx(-0.43, abs=0.02)
    f70 = fits[("MATH", "Llama-3-70B-Instruct")]
    assert f70["a"] == pytest.approx(-0.75, abs=0.03) and f70["b"] == pytest.approx(-0.46, abs=0.02)
    assert (f8["k_min"], f8["k_max"]) == (1, 10000)
