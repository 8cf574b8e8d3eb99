"""Stale results are refused (exit 2, one line naming what and the command) or, with
--allow-stale, warned about: after more samples, a new verifier, a partial verify."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from ttscale.cli import main
from ttscale.rundir.staleness import StaleError, check_run_outputs, read_state
from ttscale.rundir.store import RunDir


def _jsonl(path: Path, n: int) -> Path:
    """4 problems x n samples at T = 1.0; problem i is right on every (i + 2)-th sample."""
    lines = []
    for i in range(4):
        for j in range(n):
            lines.append({"problem_id": f"p{i}", "temperature": 1.0, "prompt": f"q{i}",
                          "text": f"answer: {i if j % (i + 2) == 0 else 99}", "answer": str(i)})
    path.write_text("".join(json.dumps(x) + "\n" for x in lines))
    return path


def _ok(argv: list[str]) -> None:
    assert main(argv) == 0, argv


def _refused(argv: list[str], capsys, *needles: str) -> str:
    capsys.readouterr()
    assert main(argv) == 2, argv
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and "stale" in err and "--allow-stale" in err, err
    for needle in needles:
        assert needle in err, (needle, err)
    return err


@pytest.fixture
def run(tmp_path) -> Path:
    """A run with 10 samples per problem, verified by exact, analysed and reported."""
    src = _jsonl(tmp_path / "samples.jsonl", 10)
    run = tmp_path / "run"
    _ok(["sample", "--backend", "import", "--from", str(src), "--out", str(run), "--quiet"])
    _ok(["verify", str(run), "--verifier", "exact"])
    _ok(["analyze", str(run), "--n-boot", "30", "--law-boot", "10"])
    _ok(["report", str(run)])
    return run


def test_analysis_records_what_it_was_computed_from(run):
    state = read_state(run / "analysis")
    assert state["samples"]["count"] == 40
    assert state["verifiers"]["exact"]["verdicts"] == 40
    assert check_run_outputs(RunDir(run)) == []


def test_more_samples_are_detected_until_verified_and_analysed(run, capsys):
    _jsonl(run.parent / "samples.jsonl", 20)  # the same file, grown: 40 more samples
    _ok(["sample", "--backend", "import", "--from", str(run.parent / "samples.jsonl"),
         "--out", str(run), "--quiet"])
    verify = f"`ttscale verify {run} --verifier exact`"
    _refused(["analyze", str(run)], capsys, "verifier 'exact' has verdicts for 40 of 80 samples", verify)
    _refused(["report", str(run)], capsys, "40 of 80 samples", verify)
    import ttscale  # the API names its own argument, not the flag

    with pytest.raises(StaleError, match=r"or pass allow_stale=True$") as e:
        ttscale.analyze(run)
    assert f"run `ttscale.verify({str(run)!r}, 'exact')`" in str(e.value) and "--" not in str(e.value)
    assert read_state(run / "analysis")["samples"]["count"] == 40  # nothing rewritten
    _ok(["verify", str(run), "--verifier", "exact"])
    _refused(["report", str(run)], capsys,
             f"{run / 'analysis'} was computed from 40 samples, the run now has 80",
             f"`ttscale analyze {run}`")
    _ok(["analyze", str(run), "--n-boot", "30", "--law-boot", "10"])
    _ok(["report", str(run)])


def test_a_new_verifier_makes_the_analysis_and_report_stale(run, capsys):
    _ok(["verify", str(run), "--verifier", "majority"])
    err = _refused(["report", str(run)], capsys, "predates verifier 'majority'", f"`ttscale analyze {run}`")
    assert "more)" not in err
    # with --allow-stale: a warning on stderr and on the page
    capsys.readouterr()
    assert main(["report", str(run), "--allow-stale"]) == 0
    assert "warning:" in capsys.readouterr().err
    page = (run / "report.html").read_text()
    assert "Stale results" in page and "predates verifier" in page
    _ok(["analyze", str(run), "--n-boot", "30", "--law-boot", "10"])
    _ok(["report", str(run)])
    assert "Stale results" not in (run / "report.html").read_text()


def test_a_partial_verify_is_refused_or_warned(run, capsys):
    # a verify stopped half-way: the first shards of a verifier's verdicts, the rest missing
    r = RunDir(run)
    full = r.read_verdicts("exact")
    half = full.iloc[: len(full) // 2]
    r.write_verdicts("exact-partial", half)
    shutil.copy(r.verdicts_dir("exact") / "verifier.json", r.verdicts_dir("exact-partial") / "verifier.json")
    _refused(["analyze", str(run)], capsys, "verifier 'exact-partial' has verdicts for 20 of 40 samples",
             f"`ttscale verify {run} --verifier exact --name exact-partial`")
    capsys.readouterr()
    assert main(["analyze", str(run), "--allow-stale", "--n-boot", "30", "--law-boot", "10"]) == 0
    assert "warning:" in capsys.readouterr().err
    state = read_state(run / "analysis")
    assert state["verifiers"]["exact-partial"]["verdicts"] == 20  # recorded as it was
    with pytest.raises(StaleError, match="20 of 40"):
        check_run_outputs(r)
    # the suggested command completes it
    _ok(["verify", str(run), "--verifier", "exact", "--name", "exact-partial"])
    _ok(["analyze", str(run), "--n-boot", "30", "--law-boot", "10"])
    assert check_run_outputs(r) == []


def test_compare_records_its_state_and_goes_stale_with_more_samples(run, capsys):
    _ok(["compare", str(run), "--verifiers", "exact,majority", "--n-boot", "20"])
    assert set(read_state(run / "analysis" / "compare")["verifiers"]) == {"exact", "majority"}
    _ok(["analyze", str(run), "--n-boot", "30", "--law-boot", "10"])  # majority is new to it
    _ok(["report", str(run)])
    _jsonl(run.parent / "samples.jsonl", 20)
    _ok(["sample", "--backend", "import", "--from", str(run.parent / "samples.jsonl"),
         "--out", str(run), "--quiet"])
    _ok(["verify", str(run), "--verifier", "exact"])
    _ok(["verify", str(run), "--verifier", "majority"])
    _ok(["analyze", str(run), "--n-boot", "30", "--law-boot", "10"])
    _refused(["report", str(run)], capsys, "compare was computed from 40 samples",
             f"`ttscale compare {run} --verifiers exact,majority`")
    _ok(["compare", str(run), "--verifiers", "exact,majority", "--n-boot", "20"])
    _ok(["report", str(run)])
