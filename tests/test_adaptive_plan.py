"""Planning an adaptive run: ``plan_adaptive`` and ``ttscale simulate --adaptive``."""

from __future__ import annotations

import json

import numpy as np
import pytest

from ttscale.analysis.adaptive.plan import fixed_rates, plan_adaptive, rates_from_counts
from ttscale.cli import main
from ttscale.sampling.stopping import StoppingRule


def test_always_and_never_solved_problems_draw_the_first_round_and_k():
    rule = StoppingRule(successes=2, first_round=16)
    easy = plan_adaptive(fixed_rates(np.ones(20)), rule, 1000, [1, 10], replicates=3)
    assert easy["fraction_drawn"].iloc[0] == pytest.approx(16 / 1000)
    hard = plan_adaptive(fixed_rates(np.zeros(20)), rule, 1000, [1, 10], replicates=3)
    assert hard["fraction_drawn"].iloc[0] == 1.0
    assert (hard["coverage_adaptive"] == 0).all() and (easy["coverage_adaptive"] == 1).all()


def test_both_estimates_are_unbiased_and_the_rule_saves_samples():
    rng = np.random.default_rng(1)
    p = rng.beta(0.3, 3.0, size=200)
    plan = plan_adaptive(fixed_rates(p), StoppingRule(successes=4), 2000, [1, 10, 100, 2000],
                         replicates=30, n_boot=200)
    truth = np.array([np.mean(1 - (1 - p) ** k) for k in plan["k"]])
    for col, sd in (("coverage_adaptive", "sd_adaptive"), ("coverage_full", "sd_full")):
        se = plan[sd].to_numpy() / np.sqrt(30)
        assert (np.abs(plan[col].to_numpy() - truth) < 4 * se + 1e-9).all(), col
    assert plan["fraction_drawn"].iloc[0] < 0.5
    assert (plan["width_ratio"] < 1.3).all() and (plan["width_ratio"] > 0.8).all()


def test_rates_from_counts_follow_the_jeffreys_posterior():
    draw = rates_from_counts(np.array([100, 100]), np.array([0, 100]))
    x = np.array([draw(np.random.default_rng(i)) for i in range(200)])
    assert 0 < x[:, 0].mean() < 0.02 and x[:, 1].mean() > 0.98


def test_simulate_adaptive_from_a_prior(tmp_path, capsys):
    out = tmp_path / "sim"
    code = main(["simulate", "--difficulty", "beta:0.4,2,zero=0.1", "--k-max", "1000", "--adaptive", "1,4",
                 "--adaptive-ks", "1,10,100,1000", "--adaptive-problems", "100", "--replicates", "4",
                 "--json", "--out", str(out)])
    assert code == 0
    summary = json.loads(capsys.readouterr().out)
    plan = summary[0]["adaptive_plan"]
    assert sorted({row["successes"] for row in plan}) == [1, 4] and len(plan) == 8
    drawn = {row["successes"]: row["fraction_drawn"] for row in plan}
    assert 0.1 <= drawn[1] < drawn[4] < 1.0  # 10% never solved draw all K; r=4 draws more than r=1
    assert (out / "adaptive_plan.parquet").is_file()


@pytest.mark.parametrize("args,needle", [
    (["--adaptive", "0"], "field 'successes'"), (["--adaptive", "2", "--growth", "1.0"], "field 'growth'"),
    (["--adaptive", "2", "--min-samples", "2000"], "field 'min_samples': 2000 exceeds K=1000"),
])
def test_simulate_adaptive_bad_rules_are_one_line(capsys, args, needle):
    code = main(["simulate", "--difficulty", "beta:1,1", "--k-max", "1000", *args])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and needle in err[0], err


def test_forecasts_from_adaptive_counts_agree_with_full_sampling():
    """Same draws, K = 1,000: forecasting coverage@10,000 from the adaptive counts (power law on
    the stopping-rule curve; beta methods by likelihood, which the rule leaves unchanged) lands
    where the full counts' forecast does."""
    import pandas as pd

    from ttscale.analysis.adaptive.estimators import simulate_rule
    from ttscale.analysis.forecasting.forecast import forecast_adaptive, forecast_coverage

    rng = np.random.default_rng(7)
    p = rng.beta(0.2, 2.0, size=400)
    rule = StoppingRule(successes=4)
    sim = simulate_rule(p, rule, 1000, rng)
    counts = pd.DataFrame({"problem": np.arange(400), "num_samples": sim["n"], "num_correct": sim["c"],
                           "adaptive_prev": sim["prev"], "adaptive_successes": 4,
                           "adaptive_min_samples": 1, "adaptive_max_samples": 1000})
    assert sim["n"].sum() < 0.6 * 400 * 1000
    for method in ("power_law", "beta", "beta_eb"):
        full = forecast_coverage(np.full(400, 1000), sim["c_full"], 10_000, method)
        ad = forecast_adaptive(counts, 10_000, method, "test")
        assert abs(ad - full) < 0.02, (method, ad, full)


def test_forecast_reads_adaptive_counts_and_refuses_subsampling_them():
    import pandas as pd

    from ttscale.analysis.adaptive.estimators import simulate_rule
    from ttscale.analysis.forecasting.forecast import forecast_adaptive
    from ttscale.api import forecast_records
    from ttscale.errors import InputError

    rng = np.random.default_rng(3)
    sim = simulate_rule(rng.beta(0.3, 2.0, size=100), StoppingRule(successes=2, first_round=16), 512, rng)
    counts = pd.DataFrame({"problem": np.arange(100), "num_samples": sim["n"], "num_correct": sim["c"],
                           "adaptive_prev": sim["prev"], "adaptive_successes": 2,
                           "adaptive_min_samples": 1, "adaptive_max_samples": 512})
    records = forecast_records(counts, 5000, method="all")
    for rec in records:
        assert rec["coverage"] == pytest.approx(forecast_adaptive(counts, 5000, rec["method"], "x"))
    # the power law's verdict is analyze's, judged on the stopping-rule curve
    from ttscale.analysis.inputs import input_from_counts
    from ttscale.analysis.pipeline import Options, analyze

    (fit,) = analyze(input_from_counts(counts), Options(n_boot=1000, law_boot=300)).fits
    (law,) = [r for r in records if r["method"] == "power_law"]
    assert fit["fit_status"] in ("ok", "rejected")
    assert (law["law_status"], law["law_reasons"]) == (fit["fit_status"], fit["fit_reasons"])
    assert all(r["law_status"] is None for r in records if r["method"] != "power_law")
    with pytest.raises(InputError, match="from_k: an adaptive run"):
        forecast_records(counts, 5000, from_k=16)
