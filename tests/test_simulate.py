"""``ttscale simulate`` against closed forms computed independently of ttscale.

- coverage under a Beta(A, B) difficulty: ``1 - B(A, B + k) / B(A, B)``;
- resampling with an imperfect verifier (Inference Scaling fLaws): the accuracy ceiling
  ``E[r c / (r c + (1 - r)(1 - s))]`` by numerical integration over the beta;
- expected utility and the optimal k: an explicit sum over attempts, integrated with
  Gauss-Jacobi quadrature (exact for polynomials in p up to degree 2n - 1, so exact here);
- majority vote and best-of-n for one pass rate: exact enumeration and Monte Carlo;
- counts tables: each problem's posterior under the empirical-Bayes prior, in closed form;
- the exponent plan: b_std shrinks with more problems and more samples.
"""

from __future__ import annotations

import itertools
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import integrate, stats
from scipy.special import betaln, roots_jacobi

from ttscale.analysis.forecasting.simulation import (
    Difficulty,
    best_of_n_accuracy,
    simulate_curves,
    vote_accuracy,
)
from ttscale.cli import main


def simulate(tmp_path: Path, capsys, *args: str) -> tuple[pd.DataFrame, list[dict]]:
    out = tmp_path / "sim"
    assert main(["simulate", *args, "--out", str(out), "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    summary = json.loads((out / "summary.json").read_text())
    assert printed == summary
    assert (out / "figures" / "simulate.png").stat().st_size > 1000
    return pd.read_parquet(out / "simulation.parquet"), summary


def beta_nodes(a: float, b: float, n: int = 400) -> tuple[np.ndarray, np.ndarray]:
    """Gauss-Jacobi nodes and weights for the Beta(a, b) density on [0, 1] (weights sum to 1)."""
    x, w = roots_jacobi(n, b - 1, a - 1)  # weight (1 - x)^(b-1) (1 + x)^(a-1), p = (1 + x) / 2
    return (1 + x) / 2, w / w.sum()


def beta_expectation(f, a: float, b: float) -> float:
    """E[f(p)] for p ~ Beta(a, b) by adaptive quadrature."""
    val, err = integrate.quad(lambda p: f(p) * stats.beta.pdf(p, a, b), 0, 1, limit=400)
    assert err < 1e-7
    return val


def utility_by_attempts(p, w, fpr, fnr, fp_cost, cost_per_sample, ks) -> np.ndarray:
    """Expected utility of resampling: sum over attempts j < k of P(none accepted before j) x value."""
    s, c = 1 - fpr, 1 - fnr
    accept = p * c + (1 - p) * (1 - s)
    value = p * c - fp_cost * (1 - p) * (1 - s) - cost_per_sample
    out, total, none_yet = {}, np.zeros_like(p), np.ones_like(p)
    for j in range(1, int(max(ks)) + 1):
        total = total + none_yet * value
        none_yet = none_yet * (1 - accept)
        out[j] = float(w @ total)
    return np.array([out[int(k)] for k in ks])


# -- coverage and the oracle ---------------------------------------------------------------------
@pytest.mark.parametrize(("a", "b"), [(0.3, 2.0), (2.0, 5.0), (0.5, 0.5)])
def test_coverage_is_the_beta_closed_form(tmp_path, capsys, a, b):
    table, (summary,) = simulate(tmp_path, capsys, "--difficulty", f"beta:{a},{b}", "--k-max", "10000")
    k = table["k"].to_numpy()
    assert k[0] == 1 and k[-1] == 10_000 and (np.diff(k) > 0).all()
    assert list(k[:100]) == list(range(1, 101))
    exact = 1 - np.exp(betaln(a, b + k) - betaln(a, b))
    np.testing.assert_allclose(table["coverage"], exact, atol=1e-4, rtol=0)
    assert (np.diff(table["coverage"]) >= -1e-12).all()
    # a perfect verifier at no cost: accuracy is coverage, nothing is ever wrongly accepted
    np.testing.assert_allclose(table["accuracy"], table["coverage"], atol=1e-12, rtol=0)
    np.testing.assert_allclose(table["false_positive_rate"], 0.0, atol=1e-15)
    assert summary["accuracy_ceiling"] == pytest.approx(1.0)
    assert summary["coverage_at_max_k"] == pytest.approx(exact[-1], abs=1e-4)


def test_zero_mass_caps_coverage(tmp_path, capsys):
    table, _ = simulate(tmp_path, capsys, "--difficulty", "beta:1,1,zero=0.25", "--k-max", "1000")
    k = table["k"].to_numpy()
    exact = 0.75 * (1 - np.exp(betaln(1, 1 + k) - betaln(1, 1)))  # Beta(1,1): 1 - 1/(k+1)
    np.testing.assert_allclose(table["coverage"], exact, atol=1e-4, rtol=0)
    assert table["coverage"].iloc[-1] < 0.75


# -- the false-positive ceiling ------------------------------------------------------------------
def test_fpr_accuracy_plateaus_at_the_flaws_ceiling(tmp_path, capsys):
    a, b, fpr = 0.3, 2.0, 0.2
    table, (summary,) = simulate(tmp_path, capsys, "--difficulty", f"beta:{a},{b}", "--fpr", str(fpr),
                                 "--k-max", "10000")
    ceiling = beta_expectation(lambda p: p / (p + (1 - p) * fpr), a, b)
    assert 0.2 < ceiling < 0.6  # far below coverage: the verifier's false positives cap accuracy
    assert summary["accuracy_ceiling"] == pytest.approx(ceiling, abs=1e-3)
    acc = table["accuracy"].to_numpy()
    assert acc[-1] == pytest.approx(ceiling, abs=1e-3)
    assert (np.diff(acc) >= -1e-12).all()
    at = dict(zip(table["k"], acc, strict=True))
    assert at[10_000] - at[100] < 1e-6  # flat: q >= fpr per attempt, so it converges fast
    assert table["coverage"].iloc[-1] - acc[-1] > 0.4
    # the chance a wrong answer is returned is what accuracy lacks of "an answer was accepted"
    assert table["false_positive_rate"].iloc[-1] == pytest.approx(1 - ceiling, abs=1e-3)


@pytest.mark.parametrize(("a", "b", "fpr", "fnr"), [(1.0, 3.0, 0.1, 0.3), (0.5, 0.5, 0.05, 0.5)])
def test_fnr_ceiling(tmp_path, capsys, a, b, fpr, fnr):
    s, c = 1 - fpr, 1 - fnr
    table, (summary,) = simulate(tmp_path, capsys, "--difficulty", f"beta:{a},{b}", "--fpr", str(fpr),
                                 "--fnr", str(fnr), "--k-max", "10000")
    ceiling = beta_expectation(lambda r: r * c / (r * c + (1 - r) * (1 - s)), a, b)
    assert summary["accuracy_ceiling"] == pytest.approx(ceiling, abs=1e-3)
    assert table["accuracy"].iloc[-1] == pytest.approx(ceiling, abs=1e-3)
    assert (table["accuracy"] <= table["coverage"] + 1e-12).all()


def test_one_pass_rate_resampling_matches_the_attempt_sum():
    r, fpr, fnr = 0.3, 0.1, 0.3
    d = Difficulty(np.array([r]), np.array([1.0]), "point")
    ks = np.array([1, 2, 3, 5, 10, 50, 200])
    curves = simulate_curves(d, ks, "resample", fpr=fpr, fnr=fnr, fp_cost=0.5, cost_per_sample=0.01)
    s, c = 1 - fpr, 1 - fnr
    acc, fp, drawn = [], [], []
    for k in ks:  # P(first acceptance at attempt j) = (1 - accept)^(j-1) * accept
        miss = [(1 - (r * c + (1 - r) * (1 - s))) ** (j - 1) for j in range(1, k + 1)]
        acc.append(sum(m * r * c for m in miss))
        fp.append(sum(m * (1 - r) * (1 - s) for m in miss))
        drawn.append(sum(miss))
    np.testing.assert_allclose(curves["accuracy"], acc, rtol=1e-12)
    np.testing.assert_allclose(curves["false_positive_rate"], fp, rtol=1e-12)
    np.testing.assert_allclose(curves["samples_drawn"], drawn, rtol=1e-12)
    np.testing.assert_allclose(curves["utility"], np.array(acc) - 0.5 * np.array(fp) - 0.01 * np.array(drawn),
                               rtol=1e-12)
    assert curves["accuracy"].iloc[-1] == pytest.approx(0.21 / (0.21 + 0.07), rel=1e-12)  # r c / (r c + (1-r)(1-s))


# -- utility and the optimal k -------------------------------------------------------------------
@pytest.mark.parametrize(("a", "b", "fpr", "fnr", "fp_cost", "cost"), [
    (0.73, 2.0, 0.1, 0.0, 1.0, 0.0),     # false positives cost: stop early, no sampling cost
    (1.0, 3.0, 0.1, 0.1, 1.0, 0.0005),   # both
    (0.5, 2.0, 0.0, 0.0, 0.0, 0.002),    # a perfect verifier, only the samples cost
])
def test_optimal_k_is_the_argmax_of_the_expected_utility(tmp_path, capsys, a, b, fpr, fnr, fp_cost, cost):
    k_max = 300
    table, (summary,) = simulate(tmp_path, capsys, "--difficulty", f"beta:{a},{b}", "--fpr", str(fpr),
                                 "--fnr", str(fnr), "--fp-cost", str(fp_cost), "--cost-per-sample", str(cost),
                                 "--k-max", str(k_max))
    ks = table["k"].to_numpy()
    p, w = beta_nodes(a, b)  # exact: the utility at k is a polynomial of degree k in p
    util = utility_by_attempts(p, w, fpr, fnr, fp_cost, cost, ks)
    np.testing.assert_allclose(table["utility"], util, atol=1e-5, rtol=0)
    best = int(np.argmax(util))
    top2 = np.sort(util)[-2:]
    assert top2[1] - top2[0] > 1e-6  # a clear optimum, not a tie within quadrature error
    assert util[best] > 0
    assert summary["optimal_k"] == ks[best]
    assert 1 <= summary["optimal_k"] < k_max and not summary["optimal_k_is_max_k"]
    assert summary["optimal_utility"] == pytest.approx(util[best], abs=1e-5)
    if fnr == 0 and cost == 0:
        # U(k+1) - U(k) = (1-fpr)^k E[(1-p)^k ((1 + V fpr) p - V fpr)] has the sign of
        # mean(Beta(a, b + k)) - V fpr / (1 + V fpr): positive while k < a (1 + V fpr)/(V fpr) - a - b
        assert summary["optimal_k"] == math.floor(a * (1 + fp_cost * fpr) / (fp_cost * fpr) - a - b) + 1


def test_optimal_k_on_an_exact_tie_is_the_smaller_k(tmp_path, capsys):
    # Beta(0.5, 2), fpr 0.1, V = 1: U(4) - U(3) = 0.729 E[(1-p)^3 (1.1 p - 0.1)] = 0, since
    # E[p (1-p)^3] / E[(1-p)^3] is the mean of Beta(0.5, 5), 1/11. So k = 3 and 4 tie exactly.
    table, (summary,) = simulate(tmp_path, capsys, "--difficulty", "beta:0.5,2", "--fpr", "0.1",
                                 "--fp-cost", "1", "--k-max", "300")
    u = dict(zip(table["k"], table["utility"], strict=True))
    assert u[4] == pytest.approx(u[3], abs=1e-9) and u[3] > u[2] and u[4] > u[5]
    assert summary["optimal_k"] == 3


def test_false_positives_too_costly_means_abstain(tmp_path, capsys):
    _, (summary,) = simulate(tmp_path, capsys, "--difficulty", "beta:0.5,2", "--fpr", "0.2",
                             "--fp-cost", "2", "--k-max", "100")
    # every attempt: E[p] - 2 * 0.2 * E[1 - p] = 0.2 - 0.32 < 0, and later attempts are worse
    assert summary["optimal_k"] == 0 and summary["optimal_utility"] == 0.0


# -- selection by vote and by reward -------------------------------------------------------------
def _vote_exact(p: float, k: int, wrong: int) -> float:
    """maj@k for one problem by enumerating every sequence of k answers (ties split evenly)."""
    probs = [p] + [(1 - p) / wrong] * wrong
    total = 0.0
    for seq in itertools.product(range(wrong + 1), repeat=k):
        counts = np.bincount(seq, minlength=wrong + 1)
        top = counts.max()
        if counts[0] == top:
            total += math.prod(probs[i] for i in seq) / int((counts == top).sum())
    return total


@pytest.mark.parametrize(("p", "k"), [(0.4, 1), (0.4, 3), (0.3, 5), (0.6, 4)])
def test_vote_accuracy_matches_enumeration(p, k):
    d = Difficulty(np.array([p]), np.array([1.0]), "point")
    got = vote_accuracy(d, np.array([k]), wrong_answers=3, draws=2000, seed=1)[0]
    assert got == pytest.approx(_vote_exact(p, k, 3), abs=0.006)  # 128,000 draws: SE < 0.0015


def test_best_of_n_matches_monte_carlo():
    p, k, sep = 0.3, 4, 1.0
    d = Difficulty(np.array([p]), np.array([1.0]), "point")
    got = best_of_n_accuracy(d, np.array([1, k]), sep)
    rng = np.random.default_rng(0)
    right = rng.random((400_000, k)) < p
    scores = rng.standard_normal((400_000, k)) + sep * right
    mc = right[np.arange(len(right)), scores.argmax(axis=1)].mean()
    assert got[0] == pytest.approx(p, abs=1e-4)
    assert got[1] == pytest.approx(mc, abs=0.004)  # SE 0.0007


@pytest.mark.parametrize("selection", ["vote", "best-of-n"])
def test_selection_accuracy_rises_below_coverage_on_easy_problems(tmp_path, capsys, selection):
    table, (summary,) = simulate(tmp_path, capsys, "--difficulty", "beta:8,2", "--selection", selection,
                                 "--k-max", "64")
    assert "accuracy_ceiling" not in summary
    acc = dict(zip(table["k"], table["accuracy"], strict=True))
    cov = dict(zip(table["k"], table["coverage"], strict=True))
    assert acc[1] == pytest.approx(0.8, abs=0.01)  # E[p] of Beta(8, 2)
    checkpoints = [acc[k] for k in (1, 3, 9, 27, 64)]
    assert all(x < y for x, y in itertools.pairwise(checkpoints)), checkpoints
    assert all(acc[k] <= cov[k] + 0.005 for k in acc)
    assert acc[3] < cov[3] - 0.02  # solved by one of 3 samples is not winning the vote
    np.testing.assert_allclose(table["samples_drawn"], table["k"])


# -- counts tables -------------------------------------------------------------------------------
def eb_coverage(n: list[int], c: list[int], k: np.ndarray) -> np.ndarray:
    """Closed form: mean over problems of the posterior coverage under the fitted ZI-Beta prior."""
    from ttscale.analysis.forecasting.forecast import fit_zero_inflated_beta

    n_a, c_a = np.asarray(n, float), np.asarray(c, float)
    a, b, pi0 = fit_zero_inflated_beta(np.asarray(n), np.asarray(c))
    zero = np.where(c_a == 0, pi0 / (pi0 + (1 - pi0) * np.exp(betaln(a, b + n_a) - betaln(a, b))), 0.0)
    miss = np.exp(betaln(a + c_a[:, None], b + (n_a - c_a)[:, None] + k) - betaln(a + c_a, b + n_a - c_a)[:, None])
    return 1 - np.mean(zero[:, None] + (1 - zero[:, None]) * miss, axis=0)


def test_empirical_bayes_prior_beats_jeffreys_far_beyond_the_samples():
    # 300 problems: 40% never solvable, the rest Beta(0.6, 2): from n = 50 samples each, the
    # empirical-Bayes prior finds the point mass at 0; per-problem Jeffreys posteriors do not
    from ttscale.analysis.forecasting.simulation import coverage, difficulty_from_counts

    rng = np.random.default_rng(5)
    p = np.where(rng.random(300) < 0.4, 0.0, rng.beta(0.6, 2.0, 300))
    c = rng.binomial(50, p)
    truth = float(np.mean(1 - (1 - p) ** 10_000))
    d = difficulty_from_counts(np.full(300, 50), c)
    got = float(coverage(d, np.array([10_000]))[0])
    jeffreys = float(np.mean(1 - np.exp(betaln(c + 0.5, 50 - c + 0.5 + 10_000) - betaln(c + 0.5, 50 - c + 0.5))))
    # measured: truth 0.582, empirical Bayes 0.650 (the fitted point mass 0.33 against 0.42: a
    # heavy tail and a point mass are hard to tell apart from 50 samples), Jeffreys 0.965
    assert abs(got - truth) < 0.1
    assert abs(jeffreys - truth) > 4 * abs(got - truth)
    assert d.observed_k == 50 and "empirical-Bayes prior" in d.source
def test_counts_table_gives_one_curve_per_group(tmp_path, capsys):
    rows = [("small", f"q{i}", 20, c) for i, c in enumerate([0, 1, 3, 10, 20, 0])]
    rows += [("big", f"q{i}", 40, c) for i, c in enumerate([2, 8, 30, 40, 39, 5])]
    csv = tmp_path / "counts.csv"
    pd.DataFrame(rows, columns=["model", "problem", "num_samples", "num_correct"]).to_csv(csv, index=False)
    table, summary = simulate(tmp_path, capsys, str(csv), "--k-max", "1000")
    assert [s["model"] for s in summary] == ["big", "small"]
    assert list(table.columns) == ["model", "k", "coverage", "accuracy", "false_positive_rate",
                                   "samples_drawn", "utility", "extrapolated"]
    for model, g in table.groupby("model"):
        sub = [r for r in rows if r[0] == model]
        k = g["k"].to_numpy()
        np.testing.assert_allclose(g["coverage"], eb_coverage([r[2] for r in sub], [r[3] for r in sub], k),
                                   atol=2e-3, rtol=0)
        n = sub[0][2]
        assert (g["extrapolated"] == (g["k"] > n)).all()
        assert next(s for s in summary if s["model"] == model)["extrapolated_from_k"] == n
        assert np.all(np.diff(g["coverage"]) >= -1e-9)


def test_run_directory_gives_one_curve_per_temperature(tmp_path, capsys):
    right = {0.6: [0, 2, 5, 10], 1.0: [1, 1, 4, 9]}  # of 10 samples per problem
    lines = [{"problem_id": f"p{i}", "temperature": t, "text": str(i + 1 if j < c else i + 50),
              "prompt": f"{i}+1=", "answer": str(i + 1)}
             for t, cs in right.items() for i, c in enumerate(cs) for j in range(10)]
    src = tmp_path / "samples.jsonl"
    src.write_text("".join(json.dumps(x) + "\n" for x in lines))
    run = tmp_path / "run"
    assert main(["sample", "--backend", "import", "--from", str(src), "--temperatures", "0.6,1.0",
                 "--out", str(run), "--quiet"]) == 0
    assert main(["verify", str(run), "--verifier", "exact"]) == 0
    assert main(["verify", str(run), "--verifier", "majority"]) == 0
    capsys.readouterr()
    table, summary = simulate(tmp_path, capsys, str(run), "--k-max", "200")
    assert [s["temperature"] for s in summary] == [0.6, 1.0]
    for t, g in table.groupby("temperature"):
        k = g["k"].to_numpy()
        np.testing.assert_allclose(g["coverage"], eb_coverage([10] * 4, right[t], k), atol=2e-3, rtol=0)
    # a selector's verdicts are no correctness counts
    code = main(["simulate", str(run), "--verifier", "majority"])
    err = capsys.readouterr().err
    assert code == 2 and len(err.splitlines()) == 1 and "--verifier 'majority'" in err


# -- planning ------------------------------------------------------------------------------------
def test_plan_b_std_shrinks_with_problems_and_samples(tmp_path, capsys):
    # b's spread comes from which problems are drawn and from binomial noise in their counts:
    # four times the problems about halves it; 4 -> 64 samples cuts the counts' noise.
    _, (summary,) = simulate(tmp_path, capsys, "--difficulty", "beta:2,2", "--k-max", "100",
                             "--plan-b-precision", "0.1", "--plan-problems", "25,100",
                             "--plan-samples", "4,64", "--replicates", "30")
    plan = pd.DataFrame(summary["plan"]).set_index(["num_problems", "samples_per_problem"])
    assert len(plan) == 4 and (plan["fits"] >= 28).all()
    std = plan["b_std"]
    assert std[(100, 4)] < 0.75 * std[(25, 4)] and std[(100, 64)] < 0.75 * std[(25, 64)]
    assert std[(25, 64)] < 0.85 * std[(25, 4)] and std[(100, 64)] < 0.85 * std[(100, 4)]
    assert (plan["meets"] == (plan["b_std"] <= 0.1)).all()
    assert list(plan["total_samples"]) == [25 * 4, 25 * 64, 100 * 4, 100 * 64]
    rec = summary["plan_recommendation"]
    meeting = plan[plan["meets"]]
    if len(meeting):
        assert rec["total_samples"] == meeting["total_samples"].min()
    else:
        assert rec is None


# -- bad input -----------------------------------------------------------------------------------
@pytest.mark.parametrize(("args", "expected"), [
    (["counts.csv", "--difficulty", "beta:1,2"], "give exactly one of INPUT or --difficulty"),
    ([], "give exactly one of INPUT or --difficulty"),
    (["--difficulty", "beta:1,2", "--fpr", "1.5"], "--fpr must be in [0, 1], got 1.5"),
    (["--difficulty", "beta:1,2", "--fnr", "-0.1"], "--fnr must be in [0, 1], got -0.1"),
    (["--difficulty", "beta:1,2", "--fpr", "0.6", "--fnr", "0.5"], "--fpr + --fnr must be below 1"),
    (["--difficulty", "beta:1"], "--difficulty 'beta:1': expected beta:ALPHA,BETA"),
    (["--difficulty", "gamma:1,2"], "--difficulty 'gamma:1,2': expected beta:ALPHA,BETA"),
    (["--difficulty", "beta:one,2"], "--difficulty 'beta:one,2': expected beta:ALPHA,BETA"),
    (["--difficulty", "beta:-1,2"], "--difficulty 'beta:-1,2': need ALPHA, BETA > 0"),
    (["--difficulty", "beta:1,2,zero=1.2"], "--difficulty 'beta:1,2,zero=1.2': need ALPHA, BETA > 0 and zero + one < 1"),
    (["--difficulty", "beta:1,2,tail=0.1"], "--difficulty 'beta:1,2,tail=0.1': unknown field 'tail'"),
    (["--difficulty", "beta:1,2", "--k-max", "0"], "--k-max must be at least 1, got 0"),
    (["--difficulty", "beta:1,2", "--fp-cost", "-1"], "--fp-cost and --cost-per-sample must be >= 0"),
])
def test_bad_input_is_one_line_and_exit_2(tmp_path, capsys, monkeypatch, args, expected):
    monkeypatch.chdir(tmp_path)
    pd.DataFrame({"problem": ["a"], "num_samples": [4], "num_correct": [1]}).to_csv("counts.csv", index=False)
    code = main(["simulate", *args, "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 2
    assert len(err.splitlines()) == 1, err
    assert err.startswith(f"ttscale simulate: error: {expected}")
    assert not (tmp_path / "out").exists()


def test_bad_counts_table_is_one_line(tmp_path, capsys):
    csv = tmp_path / "counts.csv"
    pd.DataFrame({"problem": ["a", "b"], "num_samples": [4, 4], "num_correct": [1, 7]}).to_csv(csv, index=False)
    code = main(["simulate", str(csv), "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 2 and len(err.splitlines()) == 1 and str(csv) in err and "num_correct" in err
    assert not (tmp_path / "out").exists()
