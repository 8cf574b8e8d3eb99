"""Adaptive sampling with the embedded model: decisions follow the rule, samples are a prefix of a
full run's, K can grow, a rule change is refused, bad rules are one-line errors, and SIGKILL at
random moments resumes to the very samples and decisions of an uninterrupted run."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from ttscale.cli import main
from ttscale.errors import InputError
from ttscale.orchestration.samples import draw
from ttscale.rundir.adaptive_state import read_state
from ttscale.rundir.store import SAMPLE_KEY, RunDir, shard_paths
from ttscale.sampling.sampler import SampleSettings

PROBLEMS, TEMPS = 8, [0.6, 1.0]
RULE = {"successes": 2, "first_round": 4, "growth": 2.0}


@pytest.fixture(scope="module")
def backend():
    from ttscale.sampling.backends import get_backend

    b = get_backend("transformers", model="embedded", threads=1, batch_size=32)
    yield b
    b.close()


def settings(k: int, adaptive: dict | None = RULE, **kw) -> SampleSettings:
    return SampleSettings(task="arithmetic", num_problems=PROBLEMS, num_samples=k, temperatures=TEMPS,
                          max_tokens=8, backend_options={"threads": 1}, max_n_per_request=8,
                          adaptive=adaptive, **kw)


def _sorted(df: pd.DataFrame) -> pd.DataFrame:
    return df.sort_values(SAMPLE_KEY).reset_index(drop=True)


def test_decisions_follow_the_rule_and_samples_are_a_prefix_of_full_sampling(tmp_path, backend):
    draw(settings(32), tmp_path / "ad", backend=backend, progress=False)
    draw(settings(32, adaptive=None), tmp_path / "full", backend=backend, progress=False)
    ad, full = RunDir(tmp_path / "ad"), RunDir(tmp_path / "full")
    state = read_state(ad)
    assert len(state) == PROBLEMS * len(TEMPS)
    samples = ad.read_samples()
    verdicts = ad.read_verdicts("exact")
    assert len(verdicts) == len(samples) == int(state["n"].sum())
    # every adaptive sample is the full run's sample with the same key (the seed contract)
    ref = full.read_samples().merge(samples[SAMPLE_KEY], on=SAMPLE_KEY)
    pd.testing.assert_frame_equal(_sorted(samples), _sorted(ref))
    passed = verdicts.set_index(["problem_id", "temperature", "sample_index"])["passed"]
    for row in state.itertuples():
        idx = sorted(samples[(samples.problem_id == row.problem_id)
                             & (samples.temperature == row.temperature)]["sample_index"])
        assert idx == list(range(row.n))  # no gap, nothing past the last boundary
        g = passed.loc[row.problem_id, row.temperature]
        checks = [int(x) for x in row.checks.split(",")]
        assert checks[-1] == row.n and (checks[-2] if len(checks) > 1 else 0) == row.prev
        assert set(checks) <= {4, 8, 16, 32}
        assert int(g[g.index < row.n].sum()) == row.successes
        assert row.stopped == (row.successes >= 2)
        for b in checks[:-1]:  # not stopped earlier: fewer than r successes at every earlier check
            assert int(g[g.index < b].sum()) < 2
    assert state["stopped"].any() and (state["n"] < 32).any()  # the rule saved samples here
    summary = json.loads(ad.run_json.read_text())["adaptive_summary"]
    assert summary["samples_drawn"] == len(samples) and summary["samples_full"] == PROBLEMS * 2 * 32
    assert json.loads(ad.run_json.read_text())["adaptive"]["successes"] == 2


def test_growing_k_continues_the_same_rule(tmp_path, backend):
    draw(settings(8), tmp_path / "grown", backend=backend, progress=False)
    small = read_state(RunDir(tmp_path / "grown"))
    assert (small["n"] <= 8).all()
    draw(settings(32), tmp_path / "grown", backend=backend, progress=False)
    draw(settings(32), tmp_path / "direct", backend=backend, progress=False)
    a, b = RunDir(tmp_path / "grown"), RunDir(tmp_path / "direct")
    pd.testing.assert_frame_equal(read_state(a), read_state(b))  # 8 is a boundary of both
    pd.testing.assert_frame_equal(_sorted(a.read_samples()), _sorted(b.read_samples()))


def test_growing_k_past_an_old_k_that_is_no_boundary_checks_it_once_more(tmp_path, backend):
    out = tmp_path / "grown"
    draw(settings(20), out, backend=backend, progress=False)  # boundaries 4, 8, 16, 20
    before = read_state(RunDir(out)).set_index(["problem_id", "temperature"])
    draw(settings(32), out, backend=backend, progress=False)  # then 32 (not 40)
    after = read_state(RunDir(out)).set_index(["problem_id", "temperature"])
    passed = RunDir(out).read_verdicts("exact").set_index(["problem_id", "temperature", "sample_index"])["passed"].sort_index()
    moved = 0
    for key, row in after.iterrows():
        old = before.loc[key]
        if old["stopped"]:  # decided at K=20 already: untouched
            assert row.to_dict() == old.to_dict()
        elif old["n"] == 20:  # went on from the old K: 20 is the boundary checked before 32
            moved += 1
            assert row["checks"] == old["checks"] + ",32" and row["prev"] == 20 and row["n"] == 32
            g = passed.loc[key]
            assert int(g[g.index < 32].sum()) == row["successes"]
    assert moved > 0


@pytest.mark.parametrize("change,field", [
    ({"successes": 3}, "adaptive.successes"), ({"growth": 3.0}, "adaptive.growth"),
    ({"min_samples": 4}, "adaptive.min_samples"), (None, "'adaptive'"),
])
def test_a_rule_change_on_resume_is_refused_naming_the_field(tmp_path, backend, change, field):
    out = tmp_path / "run"
    draw(settings(8), out, backend=backend, progress=False)
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file() and p.name != ".lock"}
    with pytest.raises(InputError, match=field):
        draw(settings(8, adaptive=None if change is None else {**RULE, **change}), out,
                     backend=backend, progress=False)
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file() and p.name != ".lock"} == before


def test_an_adaptive_rule_on_a_full_run_is_refused(tmp_path, backend):
    out = tmp_path / "run"
    draw(settings(4, adaptive=None), out, backend=backend, progress=False)
    with pytest.raises(InputError, match="field 'adaptive'.*without a stopping rule"):
        draw(settings(8), out, backend=backend, progress=False)


@pytest.mark.parametrize("rule,needle", [
    ("{successes: 0}", "adaptive.successes"), ("{growth: 1.0}", "adaptive.growth"),
    ("{min_samples: 65}", "field 'min_samples': 65 exceeds K=64"), ("{first_round: 0}", "adaptive.first_round"),
    ("{successes: 2, colour: red}", "adaptive.colour: unknown key"),
])
def test_bad_rules_are_one_line_errors_with_exit_2(tmp_path, capsys, rule, needle):
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(f"task: arithmetic\nnum_problems: 2\nk: 64\nadaptive: {rule}\n")
    out = tmp_path / "out"
    code = main(["sample", "--config", str(cfg), "--out", str(out), "--quiet"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and needle in err[0], err
    assert not out.exists()


# -- SIGKILL -----------------------------------------------------------------------------------
def _command(cfg: Path, out: Path) -> list[str]:
    return [sys.executable, "-m", "ttscale", "sample", "--config", str(cfg), "--out", str(out), "--quiet"]


@pytest.mark.slow
def test_sigkill_at_random_moments_resumes_to_the_same_samples_and_decisions(tmp_path, backend):
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text("task: arithmetic\nnum_problems: 8\nk: 32\ntemperatures: [0.6, 1.0]\nmax_tokens: 8\n"
                   "threads: 1\nbatch_size: 4\nmax_n_per_request: 3\n"
                   "adaptive: {successes: 2, first_round: 4, growth: 2.0}\n")
    out = tmp_path / "killed"
    rng = random.Random(20261129)
    kills = 0
    watched = [out / "samples", out / "verdicts" / "exact", out / "adaptive"]
    for attempt in range(6):
        before = sum(len(list(d.glob("*"))) for d in watched if d.is_dir())
        state_before = (out / "adaptive" / "state.parquet").stat().st_mtime_ns \
            if (out / "adaptive" / "state.parquet").exists() else 0
        proc = subprocess.Popen(_command(cfg, out), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        start = time.time()
        try:
            if attempt == 0:
                time.sleep(rng.uniform(0.5, 4.0))  # in start-up
            else:  # after something lands (a shard, a verdict shard or a decision), a bit later
                while proc.poll() is None and time.time() - start < 300:
                    now = sum(len(list(d.glob("*"))) for d in watched if d.is_dir())
                    sp = out / "adaptive" / "state.parquet"
                    if now > before or (sp.exists() and sp.stat().st_mtime_ns != state_before):
                        break
                    time.sleep(0.005)
                time.sleep(rng.uniform(0.0, 0.2))
            if proc.poll() is None:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait()
                kills += 1
            else:
                assert proc.returncode == 0, proc.stderr.read().decode()
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert kills >= 3
    done = subprocess.run(_command(cfg, out), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    ref = tmp_path / "reference"
    draw(SampleSettings(task="arithmetic", num_problems=8, num_samples=32, temperatures=[0.6, 1.0],
                                max_tokens=8, backend_options={"threads": 1, "batch_size": 4},
                                max_n_per_request=3, adaptive={"successes": 2, "first_round": 4, "growth": 2.0}),
                 ref, backend=backend, progress=False)
    a, b = RunDir(out), RunDir(ref)
    for path in shard_paths(out / "samples"):
        assert not path.name.startswith(".")
    got = a.read_samples()
    assert not got.duplicated(SAMPLE_KEY).any()
    pd.testing.assert_frame_equal(_sorted(got), _sorted(b.read_samples()))
    pd.testing.assert_frame_equal(read_state(a), read_state(b))
    va = a.read_verdicts("exact")
    assert not va.duplicated(SAMPLE_KEY).any() and len(va) == len(got)


# -- analysis -----------------------------------------------------------------------------------
def test_analyze_reads_an_adaptive_run_with_the_stopping_rule_estimator(tmp_path, backend, capsys):
    from ttscale.analysis.adaptive.estimators import adaptive_pass_at_k

    out = tmp_path / "ad"
    draw(settings(32, adaptive={**RULE, "min_samples": 4}), out, backend=backend, progress=False)
    assert main(["analyze", str(out)]) == 0
    capsys.readouterr()
    curves = pd.read_parquet(out / "analysis" / "curves.parquet")
    fits = json.loads((out / "analysis" / "fits.json").read_text())
    fits = fits if isinstance(fits, list) else fits.get("fits", fits)
    state = read_state(RunDir(out))
    for t in TEMPS:
        st = state[state.temperature == t].sort_values("problem_id")
        pk = curves[(curves.metric == "pass@k") & (curves.temperature == t)].sort_values("k")
        assert pk["k"].max() == 32  # K, although most rows drew fewer
        want = adaptive_pass_at_k(st["n"], st["successes"], st["prev"], pk["k"], 2, 4).mean(axis=0)
        assert abs(pk["estimate"].to_numpy() - want).max() < 1e-12
        assert (pk["ci_low"] <= pk["estimate"] + 1e-12).all() and (pk["estimate"] <= pk["ci_high"] + 1e-12).all()
        sel = curves[(curves.metric != "pass@k") & (curves.temperature == t)]
        assert len(sel) and sel["k"].max() <= 4  # maj@k only on the first m samples
        rec = next(f for f in fits if f.get("temperature") == t)
        assert rec["adaptive"]["selection_max_k"] == 4 and rec["adaptive"]["samples_drawn"] == st["n"].sum()
        # the law is fitted to, and bootstrapped from, the stopping-rule curve up to K
        assert rec["k_max"] == 32 and rec["fit_status"] in ("ok", "rejected")
        assert rec["b_ci"][0] <= rec["b"] <= rec["b_ci"][1]


# -- sweeps -------------------------------------------------------------------------------------
SWEEP = """name: ad
out: {out}
num_samples: 16
temperatures: [1.0]
max_tokens: 8
models: [{{name: m, backend: transformers, model: embedded, options: {{threads: 1, batch_size: 64}}}}]
tasks: [{{name: arithmetic, num_problems: 4}}]
verifiers: [{{name: exact}}, {{name: majority}}]
analysis: {{n_boot: 20}}
report: false
adaptive: {rule}
"""


def test_a_sweep_samples_until_solved_in_every_cell(tmp_path, capsys):
    cfg = tmp_path / "s.yaml"
    cfg.write_text(SWEEP.format(out=tmp_path / "out", rule="{successes: 1, first_round: 4}"))
    assert main(["sweep", str(cfg), "--no-progress"]) == 0
    capsys.readouterr()
    run = RunDir(tmp_path / "out" / "m" / "arithmetic")
    assert json.loads(run.run_json.read_text())["adaptive"]["successes"] == 1
    state = read_state(run)
    assert len(state) == 4 and int(state["n"].sum()) == len(run.read_samples())
    curves = pd.read_parquet(run.path / "analysis" / "curves.parquet")
    pk = curves[curves.metric == "pass@k"].set_index("k")["estimate"]
    assert pk.index.max() == 16
    # compare: the deciding verifier's pass@k is the same stopping-rule estimate; the selector
    # is estimated on the first m (= 1) samples only
    table = pd.read_parquet(run.path / "analysis" / "compare" / "compare.parquet")
    ex = table[table.verifier == "exact"].set_index("k")["accuracy"]
    assert ex.index.max() == 16 and all(abs(ex[k] - pk[k]) < 1e-12 for k in ex.index)
    assert table[table.verifier == "majority"]["k"].max() == 1


def test_a_sweep_with_a_bad_rule_is_one_line_and_writes_nothing(tmp_path, capsys):
    cfg = tmp_path / "s.yaml"
    cfg.write_text(SWEEP.format(out=tmp_path / "out", rule="{successes: 1, min_samples: 17}"))
    assert main(["sweep", str(cfg), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "min_samples" in err[0] and "K=16" in err[0], err
    assert not (tmp_path / "out").exists()
    cfg.write_text(SWEEP.format(out=tmp_path / "out", rule="{successes: 1, growth: 0.5}"))
    assert main(["sweep", str(cfg), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "adaptive.growth" in err[0], err


def test_the_report_states_the_rule_and_the_samples_saved(tmp_path, backend):
    from ttscale.reporting.html import build_report

    out = tmp_path / "ad"
    draw(settings(16), out, backend=backend, progress=False)
    assert main(["analyze", str(out)]) == 0
    html = build_report(out).read_text()
    state = read_state(RunDir(out))
    drawn, full = int(state["n"].sum()), PROBLEMS * len(TEMPS) * 16
    assert "<h3>Adaptive sampling</h3>" in html and "stopped at the first round boundary" in html
    assert f"<td>{drawn}</td>" in html and f"<td>{full}</td>" in html and f"<td>{full - drawn}</td>" in html


def test_import_cannot_sample_until_solved(tmp_path):
    with pytest.raises(InputError, match="adaptive: field 'backend'"):
        draw(SampleSettings(backend="import", from_file=str(tmp_path / "x.jsonl"), num_samples=4,
                                    adaptive={"successes": 1}), tmp_path / "out", progress=False)
    assert not (tmp_path / "out").exists()


def test_the_sample_command_says_what_the_rule_saved(tmp_path, capsys):
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text("task: arithmetic\nnum_problems: 4\nk: 16\nmax_tokens: 8\nthreads: 1\n"
                   "adaptive: {successes: 1, first_round: 4}\n")
    assert main(["sample", "--config", str(cfg), "--out", str(tmp_path / "out"), "--quiet"]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    state = read_state(RunDir(tmp_path / "out"))
    assert out[-1].startswith("adaptive (r=1, m=1, boundaries 4,8,16): ")
    assert f"{int(state['n'].sum())} of 64 samples drawn" in out[-1]
