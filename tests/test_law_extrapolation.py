"""The law's second verdict: safe to extrapolate (a back-test inside the data), and one problem."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ttscale.analysis.laws.extrapolation import extrapolation_check


def _counts(zero: float, a: float, b: float, problems: int, n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    p = np.where(rng.random(problems) < zero, 0.0, rng.beta(a, b, problems))
    return rng.binomial(n, p)


def test_a_ceiling_fails_the_back_test_and_a_true_tail_passes() -> None:
    # 30% of the problems never solvable: fitted on k <= 10 the law over-predicts coverage at 100
    c = _counts(0.3, 0.5, 2.0, 400, 100, seed=1)
    out = extrapolation_check(np.full(c.size, 100), c)
    bt = out["backtest"]
    assert out["status"] == "unsafe" and bt["fit_k_max"] == 10 and bt["k"] == 100
    assert bt["predicted"] > bt["measured"] and bt["z"] < -1.645
    assert bt["measured"] == np.mean(1 - np.array([np.prod(1 - x / (100 - np.arange(100)))
                                                   for x in c]))  # pass@100 = 1 if solved
    assert out["ceiling"]["c_max"] < 1 and out["ceiling"]["predicted"] < bt["predicted"]
    assert "do not extrapolate" in out["reasons"][0]
    # the same tail without the point mass: the law's back-test holds
    c = _counts(0.0, 0.5, 2.0, 400, 100, seed=1)
    ok = extrapolation_check(np.full(c.size, 100), c)
    assert ok["status"] == "safe" and -1.645 < ok["backtest"]["z"] < 2.576


def test_too_few_samples_or_one_problem_is_unchecked_with_the_reason() -> None:
    c = _counts(0.0, 0.5, 2.0, 100, 40, seed=2)
    out = extrapolation_check(np.full(c.size, 40), c)
    assert out["status"] == "unchecked" and "n >= 50" in out["reasons"][0]
    one = extrapolation_check([100], [37])
    assert one["status"] == "unchecked" and "one problem" in one["reasons"][0]


def test_analyze_on_one_problem_gives_no_interval_and_no_law_verdict(tmp_path) -> None:
    import ttscale

    counts = pd.DataFrame({"problem": [0], "num_samples": [100], "num_correct": [37]})
    res = ttscale.analyze(counts, n_boot=200, law_boot=20)
    cur = res.curves
    assert cur["estimate"].iloc[0] == 0.37
    assert cur["ci_low"].isna().all() and cur["ci_high"].isna().all()  # not a zero-width interval
    (fit,) = [f for f in res.result.fits if f.get("metric") == "pass@k" and f.get("law") == "exp_power"]
    assert fit["fit_status"] == "unchecked" and "one problem" in fit["fit_reasons"][0]
    assert fit["a_ci"] == [None, None] and fit["extrapolation"]["status"] == "unchecked"
    recs = ttscale.forecast_records(counts, to=1000, n_boot=10)
    assert recs[0]["ci_low"] is None and "one problem" in recs[0]["interval_note"]


def test_a_forecast_from_an_unsafe_law_is_marked_and_reaches_the_ceiling_law() -> None:
    from scipy.special import betaln

    import ttscale

    c = _counts(0.3, 0.5, 2.0, 400, 100, seed=1)
    counts = pd.DataFrame({"problem": range(c.size), "num_samples": 100, "num_correct": c})
    (rec,) = ttscale.forecast_records(counts, to=1000, method="power_law", n_boot=5)
    assert rec["law_extrapolation"] == "unsafe" and "back-test" in rec["law_extrapolation_reasons"][0]
    truth = 0.7 * (1 - np.exp(betaln(0.5, 2.0 + 1000) - betaln(0.5, 2.0)))  # about 0.67
    assert rec["ceiling_forecast"] < rec["coverage"]
    assert rec["ci_low"] <= rec["ceiling_forecast"]
    # the plain law's forecast is far off, which is why it is marked; the ceiling law is nearer
    # the truth (though here still about 1.7 points above it)
    assert rec["coverage"] - truth > 0.05 and abs(rec["ceiling_forecast"] - truth) < 0.03
