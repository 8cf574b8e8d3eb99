"""How sure the law is: bootstrap refits, the fit verdict, the tail and distributional exponents,
and intervals that do not collapse at the ceiling.

tests/fixtures/embedded_arith_counts.csv holds the project's main job's counts: the embedded model
on 50 arithmetic problems, K = 100 at T = 0.6 and 1.0, oracle verdicts, made by
``ttscale sample --backend transformers --model embedded --task arithmetic --num-problems 50 -k 100
--temperatures 0.6,1.0 --max-tokens 8 --seed 0 --out RUN`` and ``ttscale verify RUN --verifier
exact`` (counts per problem of ``ttscale.analysis.pipeline.load_input(RUN).counts``).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.special import betaln

from ttscale.analysis.ceilings.ceilings import saturation_point_from_fit
from ttscale.analysis.ceilings.interval import clopper_pearson, subset_trials, widen_at_ceiling
from ttscale.analysis.curves.coverage import coverage_curves
from ttscale.analysis.curves.estimators import bootstrap_ci, pass_at_k
from ttscale.analysis.laws.bootstrap import bootstrap_law, saturation_k_many
from ttscale.analysis.laws.power_law import FitResult, fit_power_law, log_spaced_ks
from ttscale.cli import main

FIXTURE = Path(__file__).parent / "fixtures" / "embedded_arith_counts.csv"
REF_DIR = Path(__file__).resolve().parents[1] / "data" / "reference"  # shipped with the repo
MONKEYS = REF_DIR / "monkeys_llama3_counts.csv"


def _true_coverage(alpha: float, beta: float, ks: np.ndarray) -> np.ndarray:
    """Coverage of an infinite benchmark with pass rates ~ Beta(alpha, beta): 1 - E[(1-p)^k]."""
    ks = np.asarray(ks, dtype=float)
    return 1.0 - np.exp(betaln(alpha, beta + ks) - betaln(alpha, beta))


def test_bootstrap_intervals_of_a_and_b_cover_the_true_law_at_about_the_nominal_rate():
    # 128 problems from Beta(0.4, 1.5), 100 samples each; the truth is the C.1 law fitted to the
    # population's coverage curve on the same k. Measured: 0.94 (a), 0.955 (b) over 200 draws.
    alpha, beta, p, n, draws = 0.4, 1.5, 128, 100, 100
    ks = log_spaced_ks(n)
    truth = fit_power_law(ks, _true_coverage(alpha, beta, ks)).params
    rng = np.random.default_rng(5)
    hit_a = hit_b = hit_se = 0
    for r in range(draws):
        c = rng.binomial(n, rng.beta(alpha, beta, p))
        boot = bootstrap_law(np.full(p, n), c, n_boot=100, seed=r)
        ci = boot.param_ci()
        hit_a += ci["a"][0] <= truth["a"] <= ci["a"][1]
        hit_b += ci["b"][0] <= truth["b"] <= ci["b"][1]
        se = boot.fit.stderr["b"]  # curve_fit's conditional error, as a 95% interval
        hit_se += abs(boot.fit.params["b"] - truth["b"]) <= 1.96 * se
        assert boot.n_failed == 0
    assert 0.88 <= hit_a / draws <= 0.99
    assert 0.88 <= hit_b / draws <= 0.99
    assert hit_se / draws < 0.6  # why the conditional errors are not reported as intervals


def test_vectorised_saturation_equals_the_exact_search():
    rng = np.random.default_rng(0)
    params = np.column_stack([rng.uniform(-3, -0.05, 10), rng.uniform(-1.5, -0.1, 10),
                              rng.uniform(0.5, 1.0, 10)])
    for law, cols in (("exp_power", 2), ("exp_power_ceiling", 3)):
        for threshold in (1e-3, 1e-4, 1e-6):
            got = saturation_k_many(params[:, :cols], law, threshold)
            names = ("a", "b", "c_max")[:cols]
            for row, g in zip(params[:, :cols], got, strict=True):
                fit = FitResult(law, dict(zip(names, row, strict=True)), {}, 0.0, 0.0, 0, (1, 1))
                want = saturation_point_from_fit(fit, threshold)
                assert (want is None and np.isnan(g)) or want == g


def test_ceiling_interval_covers_at_its_nominal_rate_with_ten_problems():
    # 10 problems from Beta(0.5, 0.5), n = 100: pass@100 is 0.944; the bootstrap alone covers it
    # in about 43% of draws (all 10 problems solved -> [1, 1]).
    p, n, k, draws = 10, 100, 100, 1000
    truth = float(_true_coverage(0.5, 0.5, [k])[0])
    assert truth == pytest.approx(0.9437, abs=1e-4)
    rng = np.random.default_rng(1)
    hits = boot_hits = 0
    for r in range(draws):
        c = rng.binomial(n, rng.beta(0.5, 0.5, p))
        per = pass_at_k(np.full(p, n), c, [k])
        lo, hi = bootstrap_ci(per, n_boot=200, seed=r)
        boot_hits += lo[0] <= truth <= hi[0]
        lo, hi = widen_at_ceiling(per, lo, hi, 0.95, subset_trials(np.full(p, n), [k]))
        hits += lo[0] <= truth <= hi[0]
    assert boot_hits / draws < 0.6
    assert 0.95 <= hits / draws <= 0.995


def test_ceiling_interval_is_clopper_pearson_when_every_problem_is_solved():
    counts = pd.DataFrame({"problem": range(10), "num_samples": 100, "num_correct": range(1, 11)})
    cur = coverage_curves(counts, ks=[1, 100], n_boot=300)
    top = cur[cur["k"] == 100].iloc[0]
    assert top["estimate"] == 1.0 and top["ci_high"] == 1.0
    assert top["ci_low"] == pytest.approx(0.025 ** (1 / 10), abs=1e-9)  # exact: 0.6915
    lo, hi = clopper_pearson(np.array([0.0, 3.0]), np.array([10.0, 10.0]))
    assert lo[0] == 0.0 and hi[0] == pytest.approx(1 - 0.025 ** (1 / 10))
    assert (lo[1], hi[1]) == pytest.approx((0.0667395, 0.6524529), abs=1e-6)


def test_main_job_law_is_rejected_with_reasons(tmp_path):
    out = tmp_path / "a"
    assert main(["analyze", str(FIXTURE), "--out", str(out), "--n-boot", "1000",
                 "--law-boot", "200"]) == 0
    fits = json.loads((out / "fits.json").read_text())
    assert [r["temperature"] for r in fits] == [0.6, 1.0]
    for rec in fits:
        assert rec["fit_status"] == "rejected"
        assert rec["fit_check"]["band"]["outside_k"][:2] == [1, 2]
        assert "k = 1, 2" in rec["fit_reasons"][0]
        assert rec["saturation_k_fit_status"] == "rejected" and "rejected" in rec["saturation_k_fit_note"]
        assert rec["fit_check"]["curvature"]["significant"] is True
        loc = [e["exponent"] for e in rec["fit_check"]["local_exponent"]]
        assert loc[0] > -0.5 and min(loc) < -0.9  # the exponent drifts from -0.4 to about -1
        assert rec["fits_data"]["monkeys_c1"]["fits"] is False
        assert rec["a_ci"][0] < rec["a"] < rec["a_ci"][1]
        assert rec["b_ci"][0] < rec["b"] < rec["b_ci"][1]


def test_monkeys_fits_judged_and_intervals_contain_published_values(tmp_path):
    out = tmp_path / "m"
    assert main(["analyze", str(MONKEYS), "--out", str(out), "--n-boot", "500",
                 "--law-boot", "300"]) == 0
    fits = {(r["benchmark"], r["model"]): r for r in json.loads((out / "fits.json").read_text())}
    for model, a, b in (("Llama-3-8B-Instruct", -1.33, -0.43), ("Llama-3-70B-Instruct", -0.75, -0.46)):
        rec = fits[("MATH", model)]
        assert rec["a"] == pytest.approx(a, abs=0.03) and rec["b"] == pytest.approx(b, abs=0.02)
        assert rec["a_ci"][0] <= a <= rec["a_ci"][1] and rec["b_ci"][0] <= b <= rec["b_ci"][1]
        assert rec["fit_status"] == "ok" and rec["fit_reasons"] == [] and rec["fit_warnings"] == []
        assert rec["fits_data"]["tail"]["fits"] is True
        # the bootstrap interval is far wider than curve_fit's conditional error (16x for 8B)
        assert (rec["b_ci"][1] - rec["b_ci"][0]) > 10 * 2 * 1.96 * rec["b_se_conditional"] / 2
        lo, hi = rec["saturation_k_fit_ci"]
        assert lo < rec["saturation_k_fit"] < hi
    for model in ("Llama-3-8B-Instruct", "Llama-3-70B-Instruct"):
        rec = fits[("GSM8K", model)]
        # inside the (ceiling-widened) band, but log(-log C) bends: the exponent runs away
        assert rec["fit_status"] == "ok"
        assert any("curved" in w for w in rec["fit_warnings"])
        assert rec["fits_data"]["tail"]["fits"] is False and "leaves" in rec["fits_data"]["tail"]["why"]
    curves = pd.read_parquet(out / "curves.parquet")
    top = curves[(curves["benchmark"] == "GSM8K") & (curves["k"] == 10000)]
    assert (top["estimate"] == 1.0).all() and (top["ci_low"] < 0.98).all()  # no [1, 1]


def test_distributional_exponent_recovers_alpha_of_a_scaled_beta():
    from ttscale.analysis.laws.distributional import distributional_fit

    rng = np.random.default_rng(3)
    p, n, alpha = 400, 200, 0.4
    c = rng.binomial(n, 0.9 * rng.beta(alpha, 1.2, p))
    weights = rng.multinomial(p, np.full(p, 1 / p), size=60).astype(float)
    rec, lik, point = distributional_fit(np.full(p, n), c, weights, n_boot=60)
    assert rec["alpha"] == pytest.approx(alpha, abs=0.1) and rec["b"] == -rec["alpha"]
    assert rec["alpha_ci"][0] <= alpha <= rec["alpha_ci"][1]
    assert rec["scale_ci"][0] <= 0.9 <= rec["scale_ci"][1] + 0.02
    # the implied coverage matches the population's
    ks = np.array([1, 10, 100])
    truth = [1 - np.mean((1 - 0.9 * rng.beta(alpha, 1.2, 200_000)) ** k) for k in ks]
    assert lik.coverage(point, ks) == pytest.approx(truth, abs=0.03)


def test_analyze_with_distributional_reports_which_fit_fits(tmp_path):
    out = tmp_path / "d"
    assert main(["analyze", str(FIXTURE), "--out", str(out), "--law-boot", "60",
                 "--distributional", "--tail-k-min", "5"]) == 0
    rec = json.loads((out / "fits.json").read_text())[0]
    dist = rec["distributional"]
    assert dist["b"] == -dist["alpha"] and dist["b_ci"][0] <= dist["b"] <= dist["b_ci"][1]
    assert set(rec["fits_data"]) == {"monkeys_c1", "tail", "distributional"}
    assert rec["tail_fit"]["k_min"] == 5 and rec["tail_fit"]["k_max"] == 100
    for v in rec["fits_data"].values():
        assert v["fits"] in (True, False) and v["why"]


def test_rejected_law_is_drawn_grey_and_labelled(tmp_path):
    from ttscale.analysis.figures import build_figures
    from ttscale.analysis.pipeline import Options, analyze, load_input

    result = analyze(load_input(FIXTURE), Options(n_boot=300, law_boot=50))
    figs = dict(build_figures(result))
    ax = figs["coverage_k-arithmetic"].axes[0]
    fit_lines = [ln for ln in ax.get_lines() if "fit" in ln.get_label()]
    assert len(fit_lines) == 2
    for ln in fit_lines:
        assert ln.get_label().endswith("REJECTED") and ln.get_linestyle() == "-."
        assert ln.get_color() == "0.55"
        assert "b=-0.8" in ln.get_label() and "[" in ln.get_label()


def test_bad_law_options_are_one_line_errors(tmp_path, capsys):
    assert main(["analyze", str(FIXTURE), "--out", str(tmp_path / "x"), "--law-boot", "-1"]) == 2
    assert "--law-boot" in capsys.readouterr().err
    assert main(["analyze", str(FIXTURE), "--out", str(tmp_path / "x"), "--tail-k-min", "0"]) == 2
    assert not (tmp_path / "x").exists()


def test_optimal_k_interval_holds_the_point_and_the_truth():
    from ttscale.analysis.ceilings.ceilings import optimal_k, optimal_k_interval

    rng = np.random.default_rng(2)
    pop = rng.beta(0.5, 5.0, 200_000)  # the population; its optimal k (46) is the truth
    truth = optimal_k(pop[:50_000], 0.995, 1.0, 2.0, k_max=500).k
    assert 20 < truth < 100
    hits = 0
    for seed in range(40):  # measured: 37 of 40
        r = rng.choice(pop, 100)
        out = optimal_k_interval(r, 0.995, 1.0, 2.0, k_max=500, n_boot=200, seed=seed)
        assert out["k"] == optimal_k(r, 0.995, 1.0, 2.0, k_max=500).k
        assert out["k_ci"][0] <= out["k"] <= out["k_ci"][1]
        hits += out["k_ci"][0] <= truth <= out["k_ci"][1]
    assert hits / 40 >= 0.85


def test_law_status_for_callers_that_forecast_from_the_law():
    from ttscale.analysis.laws.assess import law_status

    counts = pd.read_csv(FIXTURE)
    g = counts[counts["temperature"] == 0.6]
    out = law_status(g["num_samples"], g["num_correct"])
    assert out["status"] == "rejected" and "k = 1, 2" in out["reasons"][0]
