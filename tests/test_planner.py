"""The streaming planner: missing ranges, not indices; lazily generated requests equal to the
planned ones; a local run fed in windows draws the same samples as one fed at once."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from ttscale.rundir.store import SAMPLE_KEY, RunDir
from ttscale.sampling.backends.base import seed_base
from ttscale.sampling.planner import gaps, iter_chunks, missing_ranges
from ttscale.sampling.sampler import SampleSettings, load_problems, plan_requests, run_sampling


def test_gaps_are_the_missing_ranges():
    assert gaps(np.array([0, 1, 2, 5, 6, 9]), 12) == [(3, 5), (7, 9), (10, 12)]
    assert gaps(np.array([3, 1, 2, 2, 40]), 5) == [(0, 1), (4, 5)]  # repeats, beyond k
    assert gaps(np.array([], np.int64), 1_000_000) == [(0, 1_000_000)]
    assert gaps(np.arange(7), 7) == []


def test_missing_ranges_per_problem_and_temperature():
    have = pd.DataFrame({"problem_id": ["p", "p", "p", "q"], "temperature": [1.0, 1.0, 0.5, 1.0],
                         "sample_index": [0, 2, 1, 0]})
    assert missing_ranges(have, ["p", "q", "r"], [1.0, 0.5], 3) == {
        ("p", 1.0): [(1, 2)], ("p", 0.5): [(0, 1), (2, 3)], ("q", 1.0): [(1, 3)],
        ("q", 0.5): [(0, 3)], ("r", 1.0): [(0, 3)], ("r", 0.5): [(0, 3)]}


def test_a_million_samples_a_pair_is_planned_as_ranges_and_generated_lazily():
    s = SampleSettings(task="arithmetic", num_problems=50, num_samples=1_000_000,
                       temperatures=[0.7, 1.0], max_tokens=8)
    problems, stop = load_problems(s)
    plan = plan_requests(problems, s, RunDir("/nonexistent").read_samples(SAMPLE_KEY), stop)
    assert plan.samples == 100_000_000 and len(plan) == 100 * 3907  # ceil(1e6 / 256) a pair
    assert all(r == [(0, 1_000_000)] for r in plan.ranges.values()) and len(plan.ranges) == 100
    it = iter(plan)
    first, second = next(it), next(it)
    base = seed_base(0, problems[0].problem_id, 0.7)
    assert (first.first_index, first.n, first.seed) == (0, 256, base)
    assert (second.first_index, second.n, second.seed) == (256, 256, base + 256)
    assert [r.n for r in plan.distinct()] == [256] * 100  # one per pair, to check the prompts


def test_iter_chunks_cut_at_sample_boundaries_keeping_seeds():
    s = SampleSettings(task="arithmetic", num_problems=3, num_samples=10, max_tokens=8)
    problems, stop = load_problems(s)
    reqs = list(plan_requests(problems, s, RunDir("/nonexistent").read_samples(SAMPLE_KEY), stop))
    chunks = list(iter_chunks(iter(reqs), 4))
    assert [sum(r.n for r in c) for c in chunks] == [4] * 7 + [2]
    flat = [(r.problem_id, r.first_index + j, r.seed + j) for c in chunks for r in c for j in range(r.n)]
    assert flat == [(r.problem_id, r.first_index + j, r.seed + j) for r in reqs for j in range(r.n)]


def test_a_local_run_fed_in_windows_draws_the_same_samples(tmp_path, monkeypatch):
    import ttscale.sampling.planner as planner

    base = dict(task="arithmetic", model="embedded", num_problems=3, num_samples=10, max_tokens=6,
                backend_options={"threads": 1, "batch_size": 4})
    run_sampling(SampleSettings(**base), tmp_path / "whole", progress=False)
    monkeypatch.setattr(planner, "WINDOW_SAMPLES", 9)  # windows of 8 samples: 2 batches each
    run_sampling(SampleSettings(**base), tmp_path / "windows", progress=False)
    a = RunDir(tmp_path / "whole").read_samples().sort_values(SAMPLE_KEY).reset_index(drop=True)
    b = RunDir(tmp_path / "windows").read_samples().sort_values(SAMPLE_KEY).reset_index(drop=True)
    assert len(a) == 30
    pd.testing.assert_frame_equal(a, b)


def test_a_resume_fits_the_stored_replicas_and_replicas_asked_now_must_fit(tmp_path):
    from ttscale.orchestration.samples import resolve_settings

    run = tmp_path / "run"
    run.mkdir()
    (run / "run.json").write_text(json.dumps({"task": "arithmetic", "num_samples": 2, "executor": "ray",
                                              "executor_options": {"replicas": 2}}))
    s, _ = resolve_settings(run_dir=run)
    assert s.executor_options == {"replicas": 2, "fit": True}
    s, _ = resolve_settings(run_dir=run, executor_options={"replicas": 3})
    assert s.executor_options == {"replicas": 3, "fit": False}
    s, _ = resolve_settings(run_dir=run, executor="local")
    assert s.executor_options == {}
