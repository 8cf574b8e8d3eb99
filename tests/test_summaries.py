"""Summaries equal a recount from the per-sample verdicts after every kind of resume, SIGKILL
in the middle of an update included; analysis from summaries equals analysis from verdicts."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from ttscale.errors import InputError
from ttscale.plugins import Problem, problems_frame
from ttscale.rundir import summaries
from ttscale.rundir.store import RunDir, shard_paths

ROOT = Path(__file__).resolve().parents[1]


def _rows(problems: int, k: int, temps=(0.5, 1.0), seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    out = []
    for p in range(problems):
        for t in temps:
            for i in range(k):
                a = rng.choice(["7", "8", "9", None], p=[0.4, 0.3, 0.2, 0.1])
                out.append({"problem_id": f"p{p}", "temperature": t, "sample_index": i, "seed": i,
                            "text": f"#### {a}", "num_prompt_tokens": 3 + p,
                            "num_output_tokens": int(rng.integers(1, 9)), "finish_reason": "stop",
                            "answer": a, "passed": a == "7",
                            "score": float(rng.integers(0, 4)) if rng.random() > 0.2 else np.nan})
    return pd.DataFrame(out)


def _verdicts(rows: pd.DataFrame) -> pd.DataFrame:
    v = rows[["problem_id", "temperature", "sample_index", "passed", "score", "answer"]].copy()
    v["status"] = np.where(v["passed"], "pass", "fail")
    v["error"] = None
    return v


def _build(path: Path, rows: pd.DataFrame) -> RunDir:
    run = RunDir(path)
    ids = sorted(rows["problem_id"].unique())
    run.write_problems(problems_frame([Problem(p, "arithmetic", "x", {"answer": "7"}) for p in ids]))
    run.write_samples(rows)
    return run


def _same(run: RunDir, name: str) -> None:
    got = summaries.verdict_summary(run, name).table
    want = summaries.recount(run, name)
    assert got.num_rows == want.num_rows
    assert got.equals(want), (got.to_pandas(), want.to_pandas())


def test_incremental_updates_equal_recount(tmp_path: Path) -> None:
    rows = _rows(6, 30)
    run = _build(tmp_path / "r", rows)
    v = _verdicts(rows)
    parts = np.array_split(np.arange(len(v)), 5)
    run.write_verdicts("x", v.iloc[parts[0]])
    _same(run, "x")
    first = summaries.verdict_summary(run, "x")
    assert first.shards == [p.name for p in shard_paths(run.verdicts_dir("x"))]
    for idx in parts[1:]:  # resumes: each adds a shard, folded on its own
        run.write_verdicts("x", v.iloc[idx])
        _same(run, "x")
    s = summaries.verdict_summary(run, "x")
    assert len(s.shards) == 5 and s.content_hash != first.content_hash
    t = s.table.to_pandas()
    assert int(t["count"].sum()) == len(v) and int(t["passed"].sum()) == int(v["passed"].sum())
    # NaN scores are stored as null, null answers kept as a row of their own
    assert t["score"].isna().any() and t["answer"].isna().any()
    # a shard deleted by hand: the summary is recounted, not left stale
    shard_paths(run.verdicts_dir("x"))[0].unlink()
    _same(run, "x")
    # samples summary: counts and token sums per (problem, temperature)
    ss = summaries.samples_summary(run).table.to_pandas()
    want = rows.groupby(["problem_id", "temperature"])[["num_prompt_tokens", "num_output_tokens"]].sum()
    got = ss.set_index(["problem_id", "temperature"])
    assert (got["n"] == 30).all()
    assert (got["output_tokens"] == want["num_output_tokens"]).all()


def test_more_verdicts_than_samples_is_one_line(tmp_path: Path) -> None:
    rows = _rows(2, 5, temps=(1.0,))
    run = _build(tmp_path / "r", rows)
    run.write_verdicts("x", _verdicts(rows))
    run.write_verdicts("x", _verdicts(rows.iloc[:1]))  # the same sample verified twice
    with pytest.raises(InputError, match="verified twice"):
        summaries.verdict_summary(run, "x")
    other = _verdicts(rows.iloc[:1]).assign(problem_id="nope")
    run2 = _build(tmp_path / "r2", rows)
    run2.write_verdicts("y", other)
    with pytest.raises(InputError, match="not in samples"):
        summaries.verdict_summary(run2, "y")


_KILLER = """
import os, signal, sys
import ttscale.rundir.summaries as s
from ttscale.rundir.store import RunDir
mode = sys.argv[2]
if mode == "fold":  # killed while folding the new shards (second batch)
    orig, calls = s._verdicts_part, []
    def part(batch):
        calls.append(1)
        if len(calls) == 2:
            os.kill(os.getpid(), signal.SIGKILL)
        return orig(batch)
    s._verdicts_part = part
else:  # killed after the new summary is written to its temporary file, before the rename
    import ttscale.rundir.store as st
    def replace(src, dst):
        os.kill(os.getpid(), signal.SIGKILL)
    st.os.replace = replace
s.BATCH_ROWS = 7
s.verdict_summary(RunDir(sys.argv[1]), "x")
"""


@pytest.mark.parametrize("mode", ["fold", "rename"])
def test_sigkill_mid_update_then_resume(tmp_path: Path, mode: str) -> None:
    rows = _rows(4, 20)
    run = _build(tmp_path / "r", rows)
    v = _verdicts(rows)
    run.write_verdicts("x", v.iloc[:50])
    _same(run, "x")
    before = summaries.verdict_summary(run, "x")
    run.write_verdicts("x", v.iloc[50:120])
    run.write_verdicts("x", v.iloc[120:])
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(_KILLER), str(run.path), mode],
                          env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    # the stored summary is the old one, whole, and still names only what it folded
    stored = summaries._read(summaries.verdict_summary_path(run, "x"), summaries.VERDICT_SUMMARY_SCHEMA)
    assert stored is not None and stored.shards == before.shards
    assert stored.table.replace_schema_metadata(None).equals(before.table)
    _same(run, "x")  # the next update folds the rest: equal to a recount


def test_verify_interrupted_and_resumed_keeps_summary_exact(tmp_path: Path) -> None:
    from ttscale.verification.verify import verify_run

    rows = _rows(5, 12, temps=(1.0,))
    run = _build(tmp_path / "r", rows)

    def stop_after_two(done: int, total: int) -> None:  # done counts samples: 12 per problem
        if done == 24:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        verify_run(run, "exact", workers=0, batch_problems=1, progress=stop_after_two)
    name = "exact"
    assert len(shard_paths(run.verdicts_dir(name))) >= 1
    _same(run, name)
    res = verify_run(run, "exact", workers=0)
    assert res.skipped > 0 and res.verified + res.skipped == len(rows)
    _same(run, name)
    t = summaries.verdict_summary(run, name).table.to_pandas()
    assert int(t["count"].sum()) == len(rows)


def test_analysis_from_summaries_matches_per_sample_estimators(tmp_path: Path) -> None:
    """analyze's maj@k / best-of-k on a run equal the per-sample exact estimators."""
    from ttscale.analysis.curves import selection
    from ttscale.analysis.pipeline import Options, analyze, load_input

    rows = _rows(5, 16, temps=(1.0,), seed=3)
    rows["score"] = rows["score"].fillna(0.5)
    run = _build(tmp_path / "r", rows)
    run.write_verdicts("rm", _verdicts(rows))
    (run.verdicts_dir("rm") / "verifier.json").write_text('{"name": "rm", "kind": "oracle"}')
    res = analyze(load_input(run.path), Options(n_boot=0))
    ks = np.arange(1, 17)
    df = rows.assign(passed=rows["passed"].astype(bool))
    _, maj = selection.maj_at_k_from_samples(df, ks, method="exact")
    _, best = selection.best_of_k_from_samples(df, ks)
    curves = res.curves.set_index(["metric", "k"])["estimate"]
    assert np.allclose(curves.loc["maj@k"].to_numpy(), maj.mean(axis=0), atol=1e-12)
    assert np.allclose(curves.loc["best-of-k"].to_numpy(), best.mean(axis=0), atol=1e-12)
    # the selection curves were cached; a second analysis reads them back
    cached = list((run.path / "summaries" / "cache").glob("*.npz"))
    assert len(cached) >= 2
    again = analyze(load_input(run.path), Options(n_boot=0))
    assert again.curves["estimate"].equals(res.curves["estimate"])
    assert pa is not None


def test_joint_summary_dense_equals_the_join(tmp_path: Path) -> None:
    """The one-byte-a-sample joint counts equal a hash join of the two verifiers' verdicts, with
    shuffled shards and one verifier covering only part of the samples; sample indices outside
    0 .. n-1 take the join."""
    rows = _rows(6, 30, seed=3)
    run = _build(tmp_path / "run", rows)
    truth = _verdicts(rows).sample(frac=1.0, random_state=1)
    for lo in range(0, len(truth), 60):
        run.write_verdicts("exact", truth.iloc[lo:lo + 60])
    other = _verdicts(rows).sample(frac=0.7, random_state=2)
    other["passed"] = np.random.default_rng(4).random(len(other)) < 0.5
    for lo in range(0, len(other), 130):
        run.write_verdicts("noisy", other.iloc[lo:lo + 130])
    dense = summaries._joint_dense(run, "noisy", "exact")
    join = summaries._joint_join(run, "noisy", "exact")
    assert dense is not None
    key = [("problem_id", "ascending"), ("temperature", "ascending")]
    assert dense.sort_by(key).cast(summaries.JOINT_SCHEMA).equals(join.sort_by(key).cast(summaries.JOINT_SCHEMA))
    # by hand for one group
    m = other.merge(truth, on=["problem_id", "temperature", "sample_index"], suffixes=("", "_t"))
    g = m[(m.problem_id == "p2") & (m.temperature == 1.0)]
    row = dense.filter(pa.compute.and_(pa.compute.equal(dense["problem_id"], "p2"),
                                       pa.compute.equal(dense["temperature"], 1.0))).to_pylist()[0]
    assert (row["n"], row["passed"], row["truth"], row["both"]) == (
        len(g), int(g.passed.sum()), int(g.passed_t.sum()), int((g.passed & g.passed_t).sum()))
    # an index beyond its group's samples: the dense path declines, joint_summary joins
    odd = _verdicts(rows.head(1)).assign(sample_index=999)
    run.write_verdicts("noisy", odd)
    assert summaries._joint_dense(run, "noisy", "exact") is None
