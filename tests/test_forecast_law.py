"""A power-law forecast says whether the law it extrapolates fits the data (issue 9).

Two groups of counts: ``embedded`` is the project's main job at T = 0.6
(tests/fixtures/embedded_arith_counts.csv, see tests/test_law_uncertainty.py), whose law
``ttscale analyze`` rejects (it leaves the 95% band at k = 1, 2); ``beta`` is 50 problems with
pass rates drawn from Beta(0.4, 1.5) (seed 0), 100 samples each, whose law fits (``ok`` for
each of 10 seeds at 50 and 100 problems).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import ttscale
from ttscale.analysis.forecasting import forecast as fc
from ttscale.analysis.forecasting import law as fl
from ttscale.analysis.laws.assess import law_status
from ttscale.cli import main

FIXTURE = Path(__file__).parent / "fixtures" / "embedded_arith_counts.csv"
LAW_FIELDS = ("law_status", "law_reasons", "law_warnings")


def _beta_counts(problems: int = 50, n: int = 100, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.binomial(n, rng.beta(0.4, 1.5, problems))


@pytest.fixture(scope="module")
def counts() -> pd.DataFrame:
    main_job = pd.read_csv(FIXTURE)
    main_job = main_job[main_job["temperature"] == 0.6]
    embedded = pd.DataFrame({"model": "embedded", "problem": main_job["problem"].to_numpy(),
                             "num_samples": main_job["num_samples"].to_numpy(),
                             "num_correct": main_job["num_correct"].to_numpy()})
    beta = pd.DataFrame({"model": "beta", "problem": [f"b{i:02d}" for i in range(50)],
                         "num_samples": 100, "num_correct": _beta_counts()})
    return pd.concat([embedded, beta], ignore_index=True)


@pytest.fixture(scope="module")
def counts_csv(counts, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("fclaw") / "counts.csv"
    counts.to_csv(path, index=False)
    return path


def test_power_law_records_carry_the_verdict_fits_json_gives(counts, counts_csv, tmp_path):
    recs = ttscale.forecast_records(counts, 1000, method=["power_law", "beta_eb"], n_boot=0)
    assert [(r["model"], r["method"]) for r in recs] == [
        ("beta", "power_law"), ("beta", "beta_eb"), ("embedded", "power_law"), ("embedded", "beta_eb")]
    by = {(r["model"], r["method"]): r for r in recs}
    # the verdict of ttscale analyze with its defaults, and of law_status at the same sizes
    assert main(["analyze", str(counts_csv), "--out", str(tmp_path / "a")]) == 0
    fits = {r["model"]: r for r in json.loads((tmp_path / "a" / "fits.json").read_text())}
    for model, want in (("embedded", "rejected"), ("beta", "ok")):
        rec, fit = by[(model, "power_law")], fits[model]
        g = counts[counts["model"] == model]
        direct = law_status(g["num_samples"], g["num_correct"], n_boot=fl.LAW_N_BOOT,
                            law_boot=fl.LAW_BOOT)
        assert rec["law_status"] == fit["fit_status"] == direct["status"] == want
        assert rec["law_reasons"] == fit["fit_reasons"] == direct["reasons"]
        assert rec["law_warnings"] == fit["fit_warnings"] == direct["warnings"]
        for f in LAW_FIELDS:  # not the power law: nothing to say about it
            assert by[(model, "beta_eb")][f] is None
    assert "k = 1, 2" in by[("embedded", "power_law")]["law_reasons"][0]
    assert by[("beta", "power_law")]["law_reasons"] == []
    # the DataFrame verb carries the same columns
    frame = ttscale.forecast(counts, 1000, n_boot=0)
    assert list(frame["law_status"]) == ["ok", "rejected"]


def test_law_is_judged_on_the_counts_the_forecast_used(counts):
    from ttscale.analysis.inputs import input_from_counts

    recs = ttscale.forecast_records(counts, 1000, from_k=10, seed=3, n_boot=0)
    sub = fc.subsample(input_from_counts(counts).counts, 10, 3)
    for rec in recs:
        g = sub[sub["model"] == rec["model"]]
        want = law_status(g["num_samples"], g["num_correct"], n_boot=fl.LAW_N_BOOT,
                          law_boot=fl.LAW_BOOT)
        assert rec["from_n"] == 10
        assert (rec["law_status"], rec["law_reasons"]) == (want["status"], want["reasons"])


def test_a_group_without_a_correct_sample_has_no_verdict():
    df = pd.DataFrame({"model": ["a"] * 3 + ["b"] * 3, "problem": list(range(6)), "num_samples": 20,
                       "num_correct": [0, 0, 0, 3, 0, 9]})
    recs = {r["model"]: r for r in ttscale.forecast_records(df, 100, n_boot=0)}
    assert recs["a"]["coverage"] is None and recs["a"]["law_status"] is None
    assert recs["b"]["law_status"] in ("ok", "rejected", "unchecked")


def test_cli_warns_for_the_rejected_law_only(counts_csv, capsys):
    assert main(["forecast", str(counts_csv), "--to", "1000", "--n-boot", "0"]) == 0
    out, err = capsys.readouterr()
    lines = out.splitlines()
    assert lines[0].split() == ["model", "method", "k", "coverage", "90%", "low", "90%", "high", "law"]
    assert lines[1].split()[0] == "beta" and lines[1].split()[-1] == "ok"
    assert lines[2].split()[0] == "embedded" and lines[2].split()[-1] == "rejected"
    (line,) = err.splitlines()
    assert line.startswith("warning: model=embedded: the power law is rejected (the law leaves the "
                           "95% band at 2 of 100 measured k (k = 1, 2);")
    assert line.endswith("); its forecast extrapolates a law the data do not follow: "
                         "compare --method all")
    assert "model=beta" not in err
    # --json: the fields in the records, the same warning on stderr
    assert main(["forecast", str(counts_csv), "--to", "1000", "--method", "all", "--n-boot", "0",
                 "--json"]) == 0
    out, err = capsys.readouterr()
    recs = json.loads(out)
    assert {(r["model"], r["method"]): r["law_status"] for r in recs if r["method"] == "power_law"} == {
        ("beta", "power_law"): "ok", ("embedded", "power_law"): "rejected"}
    for r in recs:
        assert set(LAW_FIELDS) <= set(r)
        if r["method"] != "power_law":
            assert all(r[f] is None for f in LAW_FIELDS)
    assert err.splitlines() == [line]
    # a table the law fits: no warning at all
    beta_only = counts_csv.parent / "beta.csv"
    pd.read_csv(counts_csv).query("model == 'beta'").to_csv(beta_only, index=False)
    assert main(["forecast", str(beta_only), "--to", "1000", "--n-boot", "0"]) == 0
    out, err = capsys.readouterr()
    assert out.splitlines()[1].split()[-1] == "ok" and err == ""


# -- a run directory: the verdict of its fresh analysis is reused ------------------------------
@pytest.fixture(scope="module")
def run(counts, tmp_path_factory) -> Path:
    """A hand-made run: 50 problems, 100 samples each; at T = 0.6 the main job's counts (the
    ``embedded`` group), at T = 1.0 the ``beta`` group's; verified by exact, analysed with the
    defaults."""
    root = tmp_path_factory.mktemp("fclaw-run")
    right = {0.6: counts.loc[counts["model"] == "embedded", "num_correct"].to_numpy(),
             1.0: counts.loc[counts["model"] == "beta", "num_correct"].to_numpy()}
    lines = []
    for t, cs in right.items():
        for i, c in enumerate(cs):
            for j in range(100):
                lines.append({"problem_id": f"p{i:02d}", "temperature": t, "prompt": f"q{i}",
                              "text": f"answer: {i if j < c else i + 1}", "answer": str(i)})
    src = root / "samples.jsonl"
    src.write_text("".join(json.dumps(x) + "\n" for x in lines))
    out = root / "run"
    for argv in (["sample", "--backend", "import", "--from", str(src), "--out", str(out), "--quiet"],
                 ["verify", str(out), "--verifier", "exact"],
                 ["analyze", str(out)]):
        assert main(argv) == 0, argv
    return out


def _counting(monkeypatch) -> list[int]:
    """Count the verdicts computed (not reused) by the forecast."""
    from ttscale.analysis.laws import assess as law_assess

    calls: list[int] = []
    real = law_assess.group_law_status

    def wrapped(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(law_assess, "group_law_status", wrapped)
    return calls


def test_a_fresh_analysis_verdict_is_reused_and_equals_a_recomputation(run, monkeypatch):
    from ttscale.analysis.inputs import load_input

    fits = {r["temperature"]: r for r in json.loads((run / "analysis" / "fits.json").read_text())}
    assert fits[0.6]["fit_status"] == "rejected" and fits[1.0]["fit_status"] == "ok"
    calls = _counting(monkeypatch)
    reused = {r["temperature"]: r for r in ttscale.forecast_records(run, 1000, n_boot=0)}
    assert calls == []  # both verdicts read from fits.json
    for t, fit in fits.items():
        assert (reused[t]["law_status"], reused[t]["law_reasons"], reused[t]["law_warnings"]) == (
            fit["fit_status"], fit["fit_reasons"], fit["fit_warnings"])
    # the same counts as a table: computed, and the same verdict
    table = load_input(run).counts
    computed = {r["temperature"]: r for r in ttscale.forecast_records(table, 1000, n_boot=0)}
    assert len(calls) == 2
    for t in fits:
        assert [computed[t][f] for f in LAW_FIELDS] == [reused[t][f] for f in LAW_FIELDS]


def test_an_analysis_that_does_not_match_is_not_reused(run, monkeypatch, tmp_path):
    calls = _counting(monkeypatch)
    # another grouping than the analysis's (task, verifier, temperature)
    recs = ttscale.forecast_records(run, 1000, group_by=["temperature"], n_boot=0)
    assert len(calls) == 2 and [r["law_status"] for r in recs] == ["rejected", "ok"]
    # subsampled counts (--from-k) are judged afresh
    ttscale.forecast_records(run, 1000, from_k=50, n_boot=0)
    assert len(calls) == 4
    # an analysis older than the run's samples (state.json differs): not reused
    state = run / "analysis" / "state.json"
    saved = state.read_text()
    try:
        stale = json.loads(saved)
        stale["samples"]["hash"] = "0" * 16
        state.write_text(json.dumps(stale))
        assert [r["law_status"] for r in ttscale.forecast_records(run, 1000, n_boot=0)] == [
            "rejected", "ok"]
        assert len(calls) == 6
    finally:
        state.write_text(saved)
    # an analysis with --max-k judged another law: not reused
    assert main(["analyze", str(run), "--out", str(tmp_path / "mk"), "--max-k", "50",
                 "--n-boot", "50", "--law-boot", "20"]) == 0
    mk = fl.analysis_verdicts(tmp_path / "mk", json.loads(saved), *_loaded(run))
    assert mk == {}
    assert len(fl.analysis_verdicts(run / "analysis", json.loads(saved), *_loaded(run))) == 2


def _loaded(run: Path) -> tuple[pd.DataFrame, list[str]]:
    from ttscale.analysis.inputs import load_input

    inp = load_input(run)
    return inp.counts, inp.group_cols
