"""The report's per-problem section reads summaries and the picked problems' rows only, and shows
what the full per-sample tables give.

``reference_section`` is the section as it was computed from the whole samples and verdicts
tables (every verdict for the pass rates, every sample's text for the examples); the section must
render the same page from the oracle's summary and the picked problems' rows: the same rates,
the same problems picked, the same examples (the first passing and the first failing sample by
(temperature, sample_index) among the verified ones). Checked on an ordinary run (imported,
verified) and on a hand-made one whose samples and verdicts lie in shuffled shards, whose verdicts
cover only some samples, and one of whose verdicts names a sample that is not there.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import pandas as pd
import pytest

from ttscale.cli import main
from ttscale.reporting import sections as report_sections
from ttscale.reporting.sections import (
    examples_table,
    first_examples,
    pass_rates,
    pick_problems,
    problems_section,
    rates_block,
)
from ttscale.rundir.store import RunDir


def reference_section(run: Path, oracle: str, examples: int = 3) -> str:
    """The section computed from the full per-sample tables (every verdict for the rates, every
    sample's text for the examples), rendered by the report's own blocks."""
    rd = RunDir(run)
    verdicts = rd.read_verdicts(oracle, columns=["problem_id", "temperature", "sample_index", "passed"])
    rates = verdicts.groupby("problem_id")["passed"].mean().sort_values()
    picks = list(dict.fromkeys([rates.index[0], rates.index[len(rates) // 2], rates.index[-1]]))[:examples]
    assert pick_problems(rates, examples) == picks
    merged = full_examples_table(rd, oracle)
    found = {pid: reference_examples(merged, pid) for pid in picks}
    problems = rd.read_problems().set_index("problem_id")
    return rates_block(oracle, rates) + examples_table(picks, rates, problems, found)


def full_examples_table(rd: RunDir, oracle: str) -> pd.DataFrame:
    verdicts = rd.read_verdicts(oracle, columns=["problem_id", "temperature", "sample_index", "passed"])
    samples = rd.read_samples(["problem_id", "temperature", "sample_index", "text"])
    return samples.merge(verdicts, on=["problem_id", "temperature", "sample_index"], how="inner")


def reference_examples(merged: pd.DataFrame, pid: str) -> tuple[str | None, str | None]:
    sub = merged[merged["problem_id"] == pid].sort_values(["temperature", "sample_index"])
    good = sub[sub["passed"]].head(1)["text"].tolist()
    bad = sub[~sub["passed"]].head(1)["text"].tolist()
    return (good[0] if good else None, bad[0] if bad else None)


def check_against_full_tables(run: Path, oracle: str) -> None:
    rd = RunDir(run)
    verdicts = rd.read_verdicts(oracle)
    expected = verdicts.groupby("problem_id")["passed"].mean().sort_values()
    got = pass_rates(rd, oracle)
    assert got.index.tolist() == expected.index.tolist()
    assert got.tolist() == expected.tolist()  # exactly: both are passed / count
    merged = full_examples_table(rd, oracle)
    every = sorted(set(verdicts["problem_id"]))
    assert first_examples(rd, oracle, every) == {pid: reference_examples(merged, pid) for pid in every}
    section = problems_section(run, {})
    assert section == reference_section(run, oracle)
    assert "a passing sample" in section


def test_ordinary_run_matches_full_tables(tmp_path):
    rng = random.Random(3)
    lines = []
    for i in range(9):
        for t in (0.6, 1.0):
            for j in range(12):
                right = rng.random() < i / 8
                lines.append({"problem_id": f"q{i}", "temperature": t, "prompt": f"what is {i}?",
                              "answer": str(i), "text": f"T={t} #{j}: answer {i if right else i + 1}"})
    src = tmp_path / "samples.jsonl"
    src.write_text("".join(json.dumps(x) + "\n" for x in lines))
    run = tmp_path / "run"
    assert main(["sample", "--backend", "import", "--from", str(src), "--temperatures", "0.6,1.0",
                 "--out", str(run), "--quiet"]) == 0
    assert main(["verify", str(run), "--verifier", "exact"]) == 0
    check_against_full_tables(run, "exact")


def _hand_made_run(path: Path) -> RunDir:
    """Samples in three shuffled shards, verdicts for about two thirds of them in two shuffled
    shards, plus a verdict (the smallest key of its problem) for a sample that is not there."""
    rng = random.Random(7)
    rd = RunDir(path)
    pids = [f"p{i}" for i in range(7)]
    rd.write_problems(pd.DataFrame({"problem_id": pids, "task": "t", "prompt": [f"prompt {p}" for p in pids],
                                    "reference": [json.dumps(p) for p in pids]}))
    samples = pd.DataFrame([{"problem_id": p, "temperature": t, "sample_index": j, "seed": j,
                             "text": f"{p} at {t}, sample {j}", "num_prompt_tokens": 3,
                             "num_output_tokens": 5, "finish_reason": "stop"}
                            for p in pids for t in (0.6, 1.0) for j in range(10)])
    samples = samples.sample(frac=1.0, random_state=1).reset_index(drop=True)
    for part in (samples[:50], samples[50:90], samples[90:]):
        rd.write_samples(part)
    share = {"p0": 0.0, "p1": 1.0}  # never and always passed; the others in between
    rows = [{"problem_id": r.problem_id, "temperature": r.temperature, "sample_index": r.sample_index,
             "passed": rng.random() < share.get(r.problem_id, 0.5), "score": float("nan"),
             "answer": None, "status": "pass", "error": None}
            for r in samples.itertuples() if rng.random() < 0.65]
    verdicts = pd.DataFrame(rows)
    orphan = {"problem_id": "p3", "temperature": 0.6, "sample_index": -1, "passed": True,
              "score": float("nan"), "answer": None, "status": "pass", "error": None}
    rd.write_verdicts("exact", verdicts[:25])
    rd.write_verdicts("exact", pd.concat([verdicts[25:], pd.DataFrame([orphan])], ignore_index=True))
    return rd


def test_partial_verdicts_in_shuffled_shards_match_full_tables(tmp_path):
    rd = _hand_made_run(tmp_path / "run")
    n_verdicts = len(rd.read_verdicts("exact"))
    assert n_verdicts < len(rd.read_samples(["problem_id"]))  # they cover only some samples
    check_against_full_tables(rd.path, "exact")
    section = problems_section(rd.path, {})
    assert "7 problems; 1 never solved, 1 always solved" in section
    assert "<i>none</i>" in section  # the always (never) solved problem has no failing (passing) one
    # the first passing verdict of p3 is of a missing sample: passed over for the next one
    assert report_sections._first_keys(rd, "exact", ["p3"], set())[("p3", True)] == ("p3", 0.6, 0, -1)  # budget 0: no budget axis
    assert first_examples(rd, "exact", ["p3"])["p3"][0].startswith("p3 at ")


def test_section_reads_no_per_sample_table(tmp_path, monkeypatch):
    rd = _hand_made_run(tmp_path / "run")
    expected = reference_section(rd.path, "exact")

    def refuse(*args, **kwargs):
        raise AssertionError("the per-problem section read a whole per-sample table")

    monkeypatch.setattr(RunDir, "read_samples", refuse)
    monkeypatch.setattr(RunDir, "read_verdicts", refuse)
    monkeypatch.setattr("ttscale.rundir.store.read_shards", refuse)
    assert problems_section(rd.path, {}) == expected


@pytest.mark.parametrize("examples", [1, 2])
def test_fewer_examples(tmp_path, examples):
    rd = _hand_made_run(tmp_path / "run")
    assert problems_section(rd.path, {}, examples=examples) == reference_section(rd.path, "exact", examples)


def test_texts_found_across_small_batches(tmp_path, monkeypatch):
    rd = _hand_made_run(tmp_path / "run")
    monkeypatch.setattr(report_sections, "TEXT_BATCH", 7)  # rows fall in later batches of a shard
    check_against_full_tables(rd.path, "exact")
