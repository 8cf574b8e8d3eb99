"""The public API: every verb called directly from Python (no subprocess, no CLI), on the real
embedded model and real counts, with values checked against the files the CLI writes and against
the estimators computed independently here.
"""

from __future__ import annotations

import json
from math import comb
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

import ttscale
from ttscale.analysis.curves.coverage import coverage_curves
from ttscale.errors import InputError

FIXTURE = Path(__file__).parent / "fixtures" / "embedded_arith_counts.csv"


def exact_coverage(counts: pd.DataFrame, k: int) -> float:
    """Mean over problems of 1 - C(n-c, k) / C(n, k), in exact integer arithmetic."""
    vals = [1 - comb(n - c, k) / comb(n, k) for n, c in zip(counts["num_samples"], counts["num_correct"],
                                                            strict=True)]
    return float(np.mean(vals))


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    """A real run: the embedded model on 6 arithmetic problems, K = 8 at two temperatures."""
    out = tmp_path_factory.mktemp("api") / "run"
    res = ttscale.sample("arithmetic", out=out, model="embedded", num_samples=8,
                         temperatures=[0.6, 1.0], num_problems=6, max_tokens=8, progress=False)
    assert isinstance(res, ttscale.SamplingResult)
    assert (res.written, res.total, res.num_problems) == (96, 96, 6)
    v = ttscale.verify(out, "exact", workers=0, progress=False)
    assert isinstance(v, ttscale.VerifyResult) and v.verified == 96 and v.skipped == 0
    return out


def test_sample_resumes_and_draws_only_what_is_missing(run, tmp_path):
    again = ttscale.sample(run_dir=run, progress=False)  # its own run.json, nothing missing
    assert (again.written, again.total) == (0, 96)
    grown = tmp_path / "grown"
    ttscale.sample("arithmetic", out=grown, num_samples=4, num_problems=2, max_tokens=8,
                   temperatures="1.0", progress=False)
    more = ttscale.sample(run_dir=grown, num_samples=6, progress=False)
    assert (more.written, more.total) == (2 * 2, 2 * 6)


def test_sample_bad_input_is_an_input_error_and_writes_nothing(tmp_path):
    with pytest.raises(InputError, match="num_samples"):
        ttscale.sample("arithmetic", out=tmp_path / "x", num_samples=0, progress=False)
    with pytest.raises(InputError, match="unknown key"):
        ttscale.sample("arithmetic", out=tmp_path / "x", num_samples=2, bogus=1, progress=False)
    assert not (tmp_path / "x").exists()


def test_verify_compact_form_and_resume(run):
    again = ttscale.verify(run, "exact", workers=0, progress=False)
    assert (again.verified, again.skipped) == (0, 96)
    imp = ttscale.verify(run, "imperfect(base=exact,fpr=0.5,fnr=0)", workers=0, progress=False)
    assert imp.name == "imperfect-exact-fpr0.5-fnr0" and imp.verified == 96
    with pytest.raises(InputError, match="time_limit must be positive"):
        ttscale.verify(run, "exact", time_limit=0)


def test_open_run_loads_tables_lazily(run):
    r = ttscale.open_run(run)
    assert isinstance(r, ttscale.Run) and "samples" not in r.__dict__  # nothing read yet
    assert len(r.samples) == 96 and len(r.problems) == 6
    assert {"exact", "imperfect-exact-fpr0.5-fnr0"} <= set(r.verifiers)
    exact = r.read_verdicts("exact")
    merged = r.samples.merge(exact, on=["problem_id", "temperature", "sample_index"])
    assert len(merged) == 96
    counts = r.counts[r.counts["verifier"] == "exact"]
    assert int(counts["num_samples"].sum()) == 96
    assert int(counts["num_correct"].sum()) == int(exact["passed"].sum())
    assert r.config["num_samples"] == 8
    with pytest.raises(InputError, match="no verdicts"):
        r.read_verdicts("nope")
    with pytest.raises(InputError, match="not a run directory"):
        ttscale.open_run(run / "samples")


def test_analyze_a_run_matches_the_exact_estimator(run, tmp_path):
    a = ttscale.analyze(run, tmp_path / "an", n_boot=50, law_boot=0, progress=False)
    assert isinstance(a, ttscale.Analysis)
    counts = ttscale.open_run(run).counts
    curves = a.curves[(a.curves["metric"] == "pass@k") & (a.curves["verifier"] == "exact")]
    for temp in (0.6, 1.0):
        c = counts[(counts["verifier"] == "exact") & (counts["temperature"] == temp)]
        for k in (1, 4, 8):
            got = curves[(curves["temperature"] == temp) & (curves["k"] == k)]["estimate"].item()
            assert got == pytest.approx(exact_coverage(c, k), abs=1e-12)
    # the files are those of `ttscale analyze`, and the same numbers
    on_disk = pd.read_parquet(tmp_path / "an" / "curves.parquet")
    pd.testing.assert_frame_equal(on_disk.reset_index(drop=True), a.curves.reset_index(drop=True))
    fits = json.loads((tmp_path / "an" / "fits.json").read_text())
    assert len(fits) == len(a.fits) and set(a.group_cols) <= set(a.fits.columns)


def test_analyze_a_counts_frame_writes_nothing_without_out(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    counts = pd.read_csv(FIXTURE)
    a = ttscale.analyze(counts, ks=[1, 10, 100], n_boot=100, law_boot=0, progress=False)
    assert list(tmp_path.iterdir()) == [] and a.written == []
    for temp, g in counts.groupby("temperature"):
        row = a.curves[(a.curves["temperature"] == temp) & (a.curves["k"] == 10)]
        assert row["estimate"].item() == pytest.approx(exact_coverage(g, 10), abs=1e-12)
        assert row["ci_low"].item() <= row["estimate"].item() <= row["ci_high"].item()
    assert len(a.fits) == 2 and a.fits["law"].notna().all()
    fig = a.plot()
    assert isinstance(fig, Figure) and fig.axes[0].get_xscale() == "log"
    with pytest.raises(InputError, match="no figure 'nope'"):
        a.plot("nope")
    written = a.save(tmp_path / "later")
    assert (tmp_path / "later" / "curves.parquet") in written


def test_analyze_passes_options_through_and_rejects_unknown_ones():
    counts = pd.read_csv(FIXTURE)
    a = ttscale.analyze(counts, ks=[1, 2], n_boot=0, max_k=50, law_boot=0, progress=False)
    assert a.fits["k_max"].max() <= 50
    with pytest.raises(InputError, match="unknown option 'nboot'"):
        ttscale.analyze(counts, nboot=3)
    with pytest.raises(InputError, match="missing column 'num_correct'"):
        ttscale.analyze(counts.drop(columns="num_correct"))


def test_compare_puts_the_oracle_first_and_accept_at_k_below_it(run, tmp_path):
    c = ttscale.compare(run, ["exact", "imperfect(base=exact,fpr=0.5,fnr=0)"], n_boot=50,
                        workers=0, out=tmp_path / "cmp", progress=False)
    assert isinstance(c, ttscale.Comparison)
    t = c.table
    assert t["verifier"].iloc[0] == "exact" and set(t["metric"]) == {"pass@k", "accept@k"}
    for temp in (0.6, 1.0):
        top = t[(t["verifier"] == "exact") & (t["temperature"] == temp)].set_index("k")["accuracy"]
        acc = t[(t["metric"] == "accept@k") & (t["temperature"] == temp)].set_index("k")["accuracy"]
        assert (acc <= top + 1e-12).all()
    assert (tmp_path / "cmp" / "compare.parquet").is_file() and isinstance(c.plot(), Figure)
    with pytest.raises(InputError, match="n_boot=-1"):
        ttscale.compare(run, "exact", n_boot=-1)


def test_forecast_in_sample_equals_the_measured_coverage():
    counts = pd.read_csv(FIXTURE)
    f = ttscale.forecast(counts, to=100, method="all", group_by=["temperature"])
    assert set(f["method"]) == {"power_law", "beta", "beta_eb", "beta_mixture", "beta_zi_eb"}
    assert len(f) == 2 * 5 and f["coverage"].between(0, 1).all()
    assert (f["ci_low"] <= f["coverage"]).all() and (f["coverage"] <= f["ci_high"]).all()
    # at K = n every method returns the unbiased estimate, with the measured curve's interval
    for t, g in counts.groupby("temperature"):
        rows = f[f["temperature"] == t]
        assert rows["coverage"].to_numpy() == pytest.approx(exact_coverage(g, 100), abs=1e-12)
        assert rows["coverage"].nunique() == 1
        top = coverage_curves(g.drop(columns="temperature"), ks=[100], ci=0.9).iloc[0]
        assert rows["ci_low"].to_numpy() == pytest.approx(top["ci_low"], abs=1e-12)
        assert rows["ci_high"].to_numpy() == pytest.approx(top["ci_high"], abs=1e-12)
    back = ttscale.forecast(counts, to=100, from_k=10, seed=3)
    assert (back["from_k"] == 10).all() and back["coverage"].between(0, 1).all()
    with pytest.raises(InputError, match="to=0: must be between 1 and"):
        ttscale.forecast(counts, to=0)
    with pytest.raises(InputError, match="not a forecast method"):
        ttscale.forecast(counts, to=10, method="magic")


def test_temperatures_picks_the_temperature_with_the_higher_exact_coverage(tmp_path):
    counts = pd.read_csv(FIXTURE)
    view = ttscale.temperatures(FIXTURE, ks=[1, 10], n_boot=100, splits=2, out=tmp_path / "t")
    for k in (1, 10):
        exact = {t: exact_coverage(g, k) for t, g in counts.groupby("temperature")}
        best = view.best[view.best["k"] == k]
        assert best["best_temperature"].item() == max(exact, key=exact.get)
        by_t = view.by_temperature[view.by_temperature["k"] == k].set_index("temperature")
        for t, cov in exact.items():
            assert by_t.loc[t, "coverage"] == pytest.approx(cov, abs=1e-12)
    assert (tmp_path / "t" / "temperatures.parquet").is_file()


def test_simulate_a_perfect_verifier_reaches_coverage(tmp_path):
    s = ttscale.simulate(difficulty="beta:0.5,2", k_max=1000, out=tmp_path / "sim")
    assert isinstance(s, ttscale.Simulation)
    t = s.table
    # a perfect verifier under resampling returns a right answer whenever one was drawn
    assert np.allclose(t["accuracy"], t["coverage"], atol=1e-9)
    # coverage of Beta(a, b) at k: 1 - B(a, b + k) / B(a, b) (closed form)
    from scipy.special import betaln

    k = t["k"].to_numpy()
    assert np.allclose(t["coverage"], 1 - np.exp(betaln(0.5, 2 + k) - betaln(0.5, 2)), atol=2e-3)
    assert (tmp_path / "sim" / "simulation.parquet").is_file() and isinstance(s.plot(), Figure)
    noisy = ttscale.simulate(pd.read_csv(FIXTURE), fpr=0.2, k_max=200)
    assert len(noisy.summaries) == 2 and (noisy.summary["accuracy_ceiling"] < 1).all()
    with pytest.raises(InputError, match="exactly one of source or difficulty"):
        ttscale.simulate()
    with pytest.raises(InputError, match=r"fpr must be in \[0, 1\], got 2.0"):
        ttscale.simulate(difficulty="beta:1,1", fpr=2.0)


def test_report_of_an_analysed_run(run, tmp_path):
    ttscale.analyze(run, run / "analysis", n_boot=20, law_boot=0, progress=False)
    page = ttscale.report(run, tmp_path / "r.html")
    html = page.read_text()
    assert page == tmp_path / "r.html" and "<html>" in html and "exact" in html


def test_sweep_plan_and_sweep_from_a_dict(tmp_path):
    cfg = {"name": "api-sweep", "out": str(tmp_path / "sw"), "num_samples": 4,
           "temperatures": [1.0], "max_tokens": 6,
           "models": [{"name": "m", "backend": "transformers", "model": "embedded"}],
           "tasks": [{"name": "arithmetic", "num_problems": 3}],
           "verifiers": [{"name": "exact"}], "analysis": {"n_boot": 20}, "report": False}
    rows = ttscale.sweep_plan(cfg)
    assert [(r["model"], r["task"], r["samples"], r["done"]) for r in rows] == [("m", "arithmetic", 12, 0)]
    lines: list[str] = []
    root = ttscale.sweep(cfg, progress=False, log=lines.append)
    assert root == tmp_path / "sw" and any("analysed" in x for x in lines)
    assert len(ttscale.open_run(root / "m" / "arithmetic").samples) == 12
    assert ttscale.sweep_plan(cfg)[0]["done"] == 12
    with pytest.raises(InputError, match="num_samples"):
        ttscale.sweep_plan({**cfg, "num_samples": 0})


def test_list_plugins():
    tasks = dict((n, k) for n, k, _ in ttscale.list_plugins("tasks"))
    verifiers = dict((n, k) for n, k, _ in ttscale.list_plugins("verifiers"))
    assert tasks["arithmetic"] == "task" and verifiers["exact"] == "oracle"
    assert verifiers["majority"] == "selector" and verifiers["imperfect"] == "imperfect"
    with pytest.raises(InputError):
        ttscale.list_plugins("models")


def test_estimators_at_the_top_level():
    n, c = np.array([10, 10, 5]), np.array([0, 3, 5])
    got = ttscale.pass_at_k(n, c, [1, 3])
    want = [[1 - comb(int(a) - int(b), k) / comb(int(a), k) for k in (1, 3)] for a, b in zip(n, c, strict=True)]
    assert np.allclose(got, want, atol=1e-15)
