"""Thinking budgets in sampling (issue 21): one trace per sample, cut at each budget, answer forced.

The embedded arith model stands in for a thinking model: with ``think_end="1"`` a trace "closes
its thinking" where it first writes the digit 1, and with an empty cue a forced answer is the
trace cut after B tokens, then "1", then whatever the model writes next. Its tokenizer is one
character a token, so "the first B thinking tokens" are the first B characters of the text.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from ttscale.errors import InputError
from ttscale.rundir.store import SAMPLE_KEY, RunDir, shard_paths
from ttscale.sampling.sampler import SampleSettings, parse_settings, run_sampling

BASE = dict(task="arithmetic", num_problems=4, num_samples=6, temperatures=[1.0], max_tokens=6,
            think_end="1", answer_cue="", backend_options={"threads": 1, "batch_size": 16})
ALL = [1, 2, 3]


def draw(out, budgets, **kw) -> pd.DataFrame:
    run_sampling(SampleSettings(**{**BASE, **kw, "budgets": budgets}), out, progress=False)
    return sorted_samples(out)


def sorted_samples(out) -> pd.DataFrame:
    df = RunDir(out).read_samples()
    return df.sort_values(SAMPLE_KEY).reset_index(drop=True)


@pytest.fixture(scope="module")
def together(tmp_path_factory):
    return draw(tmp_path_factory.mktemp("together") / "run", ALL)


def test_budgets_drawn_together_give_one_sample_per_budget_with_its_fields(together):
    df = together
    assert len(df) == 4 * 6 * len(ALL) and not df.duplicated(SAMPLE_KEY).any()
    assert sorted(df["budget"].unique()) == ALL
    forced = df[df["forced"]]
    assert len(forced) > 0 and (~df["forced"]).sum() > 0  # both kinds occur
    # a forced sample thought exactly B tokens; a natural one at most B
    assert (forced["thinking_tokens"] == forced["budget"]).all()
    natural = df[~df["forced"]]
    assert (natural["thinking_tokens"] <= natural["budget"]).all()
    # output = thinking + the forced marker (one token: "1") + the answer
    assert (forced["num_output_tokens"] == forced["thinking_tokens"] + 1 + forced["answer_tokens"]).all()


def test_a_forced_sample_shares_its_first_b_thinking_tokens_with_the_full_trace(together):
    df = together
    for (_pid, _t, _i), g in df.groupby(["problem_id", "temperature", "sample_index"]):
        full = g[g["budget"] == max(ALL)].iloc[0]
        for _, row in g[g["forced"]].iterrows():
            b = int(row["budget"])
            assert row["text"][:b] == full["text"][:b]
            assert row["text"][b] == "1"  # then the marker, forced
            assert "1" not in row["text"][:b]  # the trace had not closed its thinking by B


def test_a_trace_that_ended_before_b_is_the_same_sample_at_every_larger_budget(together):
    df = together
    checked = 0
    for _, g in df.groupby(["problem_id", "temperature", "sample_index"]):
        nat = g[~g["forced"]].sort_values("budget")
        if len(nat) > 1:
            assert nat["text"].nunique() == 1 and nat["num_output_tokens"].nunique() == 1
            assert nat["thinking_tokens"].nunique() == 1
            checked += 1
        # natural from the first budget the trace's thinking fits, forced below it
        g = g.sort_values("budget")
        seen_natural = False
        for _, row in g.iterrows():
            seen_natural = seen_natural or not row["forced"]
            assert not (seen_natural and row["forced"])
    assert checked > 0


def test_budgets_drawn_one_at_a_time_give_the_same_samples(together, tmp_path):
    parts = [draw(tmp_path / f"b{b}", [b], backend_options={"threads": 1, "batch_size": 5})
             for b in ALL]
    pd.testing.assert_frame_equal(
        pd.concat(parts).sort_values(SAMPLE_KEY).reset_index(drop=True), together)


def test_budgets_added_later_give_the_same_samples(together, tmp_path):
    out = tmp_path / "grow"
    draw(out, [2])
    draw(out, [2, 3])
    got = draw(out, ALL)
    pd.testing.assert_frame_equal(got, together)


def test_budgets_can_only_be_added_and_need_a_forcing_backend(tmp_path):
    out = tmp_path / "r"
    draw(out, [2], num_problems=1, num_samples=1)
    with pytest.raises(InputError, match="budgets.*can only be added"):
        draw(out, [3], num_problems=1, num_samples=1)
    with pytest.raises(InputError, match="thinking"):  # how answers are forced is fixed
        draw(out, [2], num_problems=1, num_samples=1, answer_cue="=")
    with pytest.raises(InputError, match="budgets repeat"):
        parse_settings({"budgets": [2, 2]}, "cfg.yaml")
    with pytest.raises(InputError, match="cfg.yaml: budgets"):
        parse_settings({"budgets": [0]}, "cfg.yaml")
    with pytest.raises(InputError, match="cfg.yaml: budgets: backend 'openai' cannot force"):
        parse_settings({"budgets": [8], "backend": "openai"}, "cfg.yaml")
    with pytest.raises(InputError, match="cfg.yaml: budgets: adaptive"):
        parse_settings({"budgets": [8], "adaptive": {"successes": 1}}, "cfg.yaml")


def test_no_budgets_gives_budget_zero_rows_and_the_samples_of_before(tmp_path):
    s = SampleSettings(**{k: v for k, v in BASE.items() if k not in ("think_end", "answer_cue")})
    run_sampling(s, tmp_path / "plain", progress=False)
    df = sorted_samples(tmp_path / "plain")
    assert (df["budget"] == 0).all() and not df["forced"].any()
    assert (df["thinking_tokens"] == 0).all()
    assert (df["answer_tokens"] == df["num_output_tokens"]).all()


def test_a_run_directory_from_before_budgets_reads_as_budget_zero(tmp_path):
    run = RunDir(tmp_path / "old")
    old = pa.table({"problem_id": ["p"], "temperature": [1.0], "sample_index": [0], "seed": [7],
                    "text": ["42"], "num_prompt_tokens": [3], "num_output_tokens": [3],
                    "finish_reason": ["stop"]})
    (run.samples_dir).mkdir(parents=True)
    pq.write_table(old, run.samples_dir / "part-00000000000000000001-aaaaaaaa.parquet")
    df = run.read_samples()
    assert df[["budget", "thinking_tokens", "answer_tokens", "forced"]].iloc[0].tolist() == [0, 0, 3, False]
    from ttscale.rundir.summaries import samples_summary

    t = samples_summary(run).table.to_pylist()
    assert t == [{"problem_id": "p", "temperature": 1.0, "budget": 0, "n": 1, "prompt_tokens": 3,
                  "output_tokens": 3, "thinking_tokens": 0, "answer_tokens": 3, "forced": 0}]


def _command(out) -> list[str]:
    return [sys.executable, "-m", "ttscale", "sample", "--model", "embedded", "--task", "arithmetic",
            "--num-problems", "6", "-k", "40", "--temperatures", "1.0", "--max-tokens", "6",
            "--budgets", "1,2,3", "--think-end", "1", "--answer-cue", "", "--batch-size", "8",
            "--max-n-per-request", "4", "--threads", "1", "--out", str(out), "--quiet"]


@pytest.mark.slow
def test_budgets_resumed_after_sigkill_give_the_uninterrupted_samples(tmp_path):
    out = tmp_path / "killed"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    kills = 0
    for _ in range(3):
        before = len(shard_paths(out / "samples"))
        proc = subprocess.Popen(_command(out), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
        start = time.time()
        while proc.poll() is None and len(shard_paths(out / "samples")) <= before:
            assert time.time() - start < 300, "no shard appeared"
            time.sleep(0.01)
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            kills += 1
        proc.wait()
    assert kills >= 1
    done = subprocess.run(_command(out), capture_output=True, text=True, timeout=600, env=env)
    assert done.returncode == 0, done.stderr
    ref = tmp_path / "ref"
    run_sampling(SampleSettings(**{**BASE, "num_problems": 6, "num_samples": 40, "budgets": ALL,
                                   "max_n_per_request": 4}), ref, progress=False)
    got = sorted_samples(out)
    assert not got.duplicated(SAMPLE_KEY).any() and len(got) == 6 * 40 * 3
    pd.testing.assert_frame_equal(got, sorted_samples(ref))


def test_a_forced_answer_from_the_kept_kv_cache_equals_one_generated_from_its_whole_prefix(together, tmp_path):
    """The KV-cache snapshot path against brute force: the prompt, the cut trace and the marker as
    one fresh prompt, sampled with the forced answer's seed by the plain (no budget) path."""
    from ttscale.sampling.backends.base import Request, answer_seed
    from ttscale.sampling.backends.transformers_backend import TransformersBackend
    from ttscale.sampling.sampler import load_problems

    problems = {p.problem_id: p.prompt for p in load_problems(SampleSettings(**BASE))[0]}
    forced = together[together["forced"]].head(12)
    be = TransformersBackend("embedded", threads=1, batch_size=16)
    reqs = [Request(r.problem_id, problems[r.problem_id] + r.text[: r.budget] + "1", 1.0, 1,
                    answer_seed(int(r.seed), int(r.budget)), 0, BASE["max_tokens"])
            for r in forced.itertuples()]
    got = [s for batch in be.generate(reqs) for s in batch]
    for r, s in zip(forced.itertuples(), got, strict=True):
        assert r.text == r.text[: r.budget] + "1" + s.text
        assert r.answer_tokens == s.num_output_tokens
