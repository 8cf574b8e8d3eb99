"""Streaming verification: only samples without verdicts are read, shard by shard; a re-run
with nothing to do reads no sample at all."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ttscale.plugins import Problem, problems_frame
from ttscale.rundir.store import RunDir, shard_paths
from ttscale.verification.verify import verify_run


def _samples(pids: list[str], k: int, start: int = 0) -> pd.DataFrame:
    rows = []
    for pid in pids:
        for t in (0.5, 1.0):
            for i in range(start, start + k):
                rows.append({"problem_id": pid, "temperature": t, "sample_index": i, "seed": i,
                             "text": f"#### {i % 3}", "num_prompt_tokens": 2,
                             "num_output_tokens": 3, "finish_reason": "stop"})
    return pd.DataFrame(rows)


def _garble(path: Path) -> None:
    """Unreadable, at its old size: the summaries' size check does not open it (a shard whose
    size changed is opened, and named as damaged: tests/test_newcomer_inputs.py)."""
    path.write_bytes(b"x" * path.stat().st_size)


def test_noop_and_incremental_verify_read_only_new_shards(tmp_path: Path) -> None:
    run = RunDir(tmp_path / "r")
    pids = ["a", "b", "c"]
    run.write_problems(problems_frame([Problem(p, "arithmetic", "x", {"answer": "1"}) for p in pids]))
    run.write_samples(_samples(pids, 6))
    first = verify_run(run, "exact", workers=0)
    assert (first.verified, first.skipped) == (36, 0)
    # the verified shard is unreadable now: a re-run with nothing to do must not open it
    _garble(shard_paths(run.samples_dir)[0])
    again = verify_run(run, "exact", workers=0)
    assert (again.verified, again.skipped, again.shards) == (0, 36, 0)
    # new samples in a new shard (a larger K): only that shard is read
    run.write_samples(_samples(pids, 4, start=6))
    more = verify_run(run, "exact", workers=0)
    assert (more.verified, more.skipped) == (24, 36)
    v = pd.concat([pd.read_parquet(p) for p in shard_paths(run.verdicts_dir("exact"))])
    assert len(v) == 60 and not v.duplicated(["problem_id", "temperature", "sample_index"]).any()
    assert set(v["sample_index"]) == set(range(10))
    expect = np.array([i % 3 == 1 for i in v["sample_index"]])
    assert (v["passed"].to_numpy() == expect).all()


def test_partly_verified_problem_gets_only_missing_samples(tmp_path: Path) -> None:
    run = RunDir(tmp_path / "r")
    run.write_problems(problems_frame([Problem("a", "arithmetic", "x", {"answer": "1"})]))
    s = _samples(["a"], 10)
    run.write_samples(s)
    # verdicts for half of the samples of T=0.5, made by hand (a resumed, interrupted verify)
    half = s[(s["temperature"] == 0.5) & (s["sample_index"] < 5)]
    v = half[["problem_id", "temperature", "sample_index"]].assign(
        passed=False, score=np.nan, answer=None, status="fail", error=None)
    run.write_verdicts("exact", v)
    res = verify_run(run, "exact", workers=0)
    assert (res.verified, res.skipped) == (15, 5)
    got = pd.concat([pd.read_parquet(p) for p in shard_paths(run.verdicts_dir("exact"))])
    assert len(got) == 20 and not got.duplicated(["problem_id", "temperature", "sample_index"]).any()


def test_verify_progress_bar_shows_samples_and_rate(tmp_path: Path, capsys) -> None:
    from ttscale.core.progress import progress_bar

    run = RunDir(tmp_path / "r")
    run.write_problems(problems_frame([Problem(p, "arithmetic", "x", {"answer": "1"}) for p in "ab"]))
    run.write_samples(_samples(["a", "b"], 5))
    with progress_bar("verify", "sample", force=True) as bar:
        verify_run(run, "exact", workers=0, progress=bar)
    err = capsys.readouterr().err
    assert "verify" in err and "20.0/20.0" in err and "sample/s" in err
    with progress_bar("verify", "sample", force=True) as bar:  # nothing to do: no bar at all
        verify_run(run, "exact", workers=0, progress=bar)
    assert capsys.readouterr().err == ""
