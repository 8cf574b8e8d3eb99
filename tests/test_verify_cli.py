"""``ttscale verify`` and ``ttscale list``: verdict shards, resuming, worker processes, time
limits, and bad input (one line, exit code 2, no verdicts written)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ttscale.cli import main
from ttscale.plugins import Problem, problems_frame
from ttscale.rundir.store import RunDir
from ttscale.verification.verify import verify_run


def sample_rows(pid: str, texts: list[str], first: int = 0) -> list[dict]:
    return [{"problem_id": pid, "temperature": 0.5, "sample_index": first + j, "seed": first + j,
             "text": t, "num_prompt_tokens": 2, "num_output_tokens": 3, "finish_reason": "stop"}
            for j, t in enumerate(texts)]


def make_run(path: Path, texts: dict[str, list[str]], answers: dict[str, str]) -> RunDir:
    run = RunDir(path)
    run.write_problems(problems_frame(
        [Problem(pid, "arithmetic", f"{pid}=", {"answer": a}) for pid, a in answers.items()]))
    run.write_samples(pd.DataFrame([r for pid, t in texts.items() for r in sample_rows(pid, t)]))
    return run


TEXTS = {"a": ["#### 3", "3", "4", "the answer is 3"], "b": ["\\boxed{0.5}", "1/2", "1/3", "x"],
         "c": ["7", "8", "9", "10"]}
ANSWERS = {"a": "3", "b": "\\frac{1}{2}", "c": "11"}


def test_verify_cli_writes_verdicts_with_exact_counts(tmp_path: Path, capsys) -> None:
    run = make_run(tmp_path / "run", TEXTS, ANSWERS)
    assert main(["verify", str(run.path), "--verifier", "exact"]) == 0
    out = capsys.readouterr().out
    assert "verdicts/exact: verified 12 samples (0 already done), passed 5" in out
    v = run.read_verdicts("exact").sort_values(["problem_id", "sample_index"])
    assert v["passed"].tolist() == [True, True, False, True, True, True, False, False] + [False] * 4
    assert run.verifiers() == ["exact"]
    # again: everything is skipped, nothing new is written
    assert main(["verify", str(run.path), "--verifier", "exact"]) == 0
    assert "nothing to verify (12 samples already done)" in capsys.readouterr().out
    assert len(list(run.verdicts_dir("exact").glob("part-*.parquet"))) == 1


def test_verify_resumes_with_exactly_the_missing_samples(tmp_path: Path) -> None:
    run = make_run(tmp_path / "run", TEXTS, ANSWERS)
    first = verify_run(run, "exact", workers=0)
    run.write_samples(pd.DataFrame(sample_rows("a", ["3", "5"], first=4)))  # K grows to 6 on a
    second = verify_run(run, "exact", workers=0)
    assert (first.verified, second.verified, second.skipped, second.passed) == (12, 2, 12, 1)
    v = run.read_verdicts("exact")
    assert len(v) == 14 and not v.duplicated(["problem_id", "temperature", "sample_index"]).any()


def test_worker_processes_give_the_same_verdicts_as_in_process(tmp_path: Path) -> None:
    run = make_run(tmp_path / "run", TEXTS, ANSWERS)
    inline = verify_run(run, "math", workers=0, out_name="math-inline", batch_problems=1)
    pooled = verify_run(run, "math", workers=2, out_name="math-pool", batch_problems=2)
    assert (inline.verified, inline.passed, inline.shards) == (12, 5, 3)
    assert (pooled.verified, pooled.passed, pooled.shards) == (12, 5, 2)
    key = ["problem_id", "sample_index"]
    a = run.read_verdicts("math-inline").sort_values(key).reset_index(drop=True)
    b = run.read_verdicts("math-pool").sort_values(key).reset_index(drop=True)
    pd.testing.assert_frame_equal(a, b)
    assert a["answer"].tolist()[4:6] == ["0.5", "0.5"]


def test_kept_workers_serve_every_verify_of_one_verifier(tmp_path: Path) -> None:
    """Inside keep_workers (as adaptive sampling runs its rounds), a second verify of the same
    verifier takes up the first one's worker process instead of spawning another; the verdicts
    equal those of a verify without it; the workers are gone when the block ends."""
    from ttscale.verification import pool as verifier_pool
    from ttscale.verification.verify import make_verifier

    run = make_run(tmp_path / "run", TEXTS, ANSWERS)
    verifier = make_verifier("math", {})
    before = verifier_pool.workers_started
    with verifier_pool.keep_workers(verifier):
        first = verify_run(run, verifier, workers=1, out_name="kept")
        run.write_samples(pd.DataFrame(sample_rows("a", ["3", "5"], first=4)))  # a new round
        second = verify_run(run, verifier, workers=1, out_name="kept")
        assert verifier_pool.workers_started - before == 1
        kept = list(verifier_pool._kept[id(verifier)])
        assert len(kept) == 1 and kept[0].proc.is_alive()
    assert not kept[0].proc.is_alive() and id(verifier) not in verifier_pool._kept
    assert (first.verified, second.verified, second.passed) == (12, 2, 1)
    fresh = verify_run(run, "math", workers=1, out_name="fresh")
    assert verifier_pool.workers_started - before == 2  # without the block: a worker of its own
    key = ["problem_id", "sample_index"]
    a = run.read_verdicts("kept").sort_values(key).reset_index(drop=True)
    b = run.read_verdicts("fresh").sort_values(key).reset_index(drop=True)
    pd.testing.assert_frame_equal(a, b)
    assert fresh.verified == 14


def test_timeouts_in_workers_and_the_wall_clock_limit(tmp_path: Path) -> None:
    texts = {"slow": ["\\boxed{2^{2^{30}}}", "\\boxed{3}"], "fast": ["#### 3", "4"]}
    run = make_run(tmp_path / "run", texts, {"slow": "3", "fast": "3"})
    # Math-Verify's own SIGALRM timeout works on a worker's main thread
    r = verify_run(run, "math", {"verify_timeout": "1"}, workers=1)
    v = run.read_verdicts(r.name).sort_values(["problem_id", "sample_index"])
    assert v["status"].tolist() == ["pass", "fail", "timeout", "pass"]
    assert r.errors == 1
    # with its timeouts off, the parent's wall-clock limit kills and replaces the worker
    r = verify_run(run, "math", {"verify_timeout": "0"}, workers=1, time_limit=3,
                   time_limit_per_sample=0)
    v = run.read_verdicts(r.name).sort_values(["problem_id", "sample_index"])
    assert v["status"].tolist() == ["pass", "fail", "timeout", "timeout"]
    assert v["error"].iloc[2] == "problem took over 3 s"


def _assert_one_line_exit_2(capsys, argv: list[str], message: str, run: Path) -> None:
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2, err
    assert message in err and err.count("\n") == 1, err
    assert not (run / "verdicts").exists()


def test_verify_bad_input(tmp_path: Path, capsys) -> None:
    run = make_run(tmp_path / "run", TEXTS, ANSWERS)
    p = str(run.path)
    _assert_one_line_exit_2(capsys, ["verify", p, "--verifier", "nope"],
                            "unknown verifier 'nope' (known: exact, imperfect", run.path)
    _assert_one_line_exit_2(capsys, ["verify", p, "--verifier", "imperfect",
                                     "--verifier-option", "fpr0.1"],
                            "--verifier-option 'fpr0.1': expected key=value", run.path)
    _assert_one_line_exit_2(capsys, ["verify", p, "--verifier", "exact",
                                     "--verifier-option", "x=1"], "unknown option 'x'", run.path)
    empty = RunDir(tmp_path / "empty")
    empty.write_problems(problems_frame([Problem("a", "arithmetic", "1+2=", {"answer": "3"})]))
    _assert_one_line_exit_2(capsys, ["verify", str(empty.path), "--verifier", "exact"],
                            "no samples in this run directory", empty.path)
    _assert_one_line_exit_2(capsys, ["verify", str(tmp_path / "absent"), "--verifier", "exact"],
                            "run directory does not exist", tmp_path / "absent")


def test_verifier_that_does_not_fit_the_task(tmp_path: Path, capsys) -> None:
    code_run = RunDir(tmp_path / "code")
    code_run.write_problems(problems_frame([Problem(
        "add", "jsonl", "def add(a, b):\n",
        {"tests": "def check(c):\n    assert c(1, 2) == 3\n", "entry_point": "add"})]))
    code_run.write_samples(pd.DataFrame(sample_rows("add", ["    return a + b\n"])))
    for name in ("exact", "math", "majority", "imperfect"):
        _assert_one_line_exit_2(
            capsys, ["verify", str(code_run.path), "--verifier", name],
            "needs reference field 'answer', which problem 'add' (task 'jsonl') lacks",
            code_run.path)


def test_samples_of_an_unknown_problem(tmp_path: Path, capsys) -> None:
    run = make_run(tmp_path / "run", TEXTS, ANSWERS)
    run.write_samples(pd.DataFrame(sample_rows("zzz", ["1"])))
    _assert_one_line_exit_2(capsys, ["verify", str(run.path), "--verifier", "exact"],
                            "samples of problem 'zzz'", run.path)


def test_list_tasks_and_verifiers(capsys) -> None:
    assert main(["list", "verifiers"]) == 0
    lines = capsys.readouterr().out.splitlines()
    table = {ln.split()[0]: ln.split()[1] for ln in lines}
    assert {k: table[k] for k in ("exact", "math", "majority", "reward", "imperfect",
                                  "reasoning_gym")} == {
        "exact": "oracle", "math": "oracle", "majority": "selector", "reward": "selector",
        "imperfect": "imperfect", "reasoning_gym": "oracle"}
    assert main(["list", "tasks"]) == 0
    lines = capsys.readouterr().out.splitlines()
    names = [ln.split()[0] for ln in lines]
    assert {"arithmetic", "gsm8k", "jsonl", "reasoning_gym"} <= set(names)
    assert all(ln.split()[1] == "task" for ln in lines)
    assert np.all([len(ln.split()) >= 3 for ln in lines])  # name, kind, description


def test_unit_tests_on_the_jsonl_code_problem_and_on_answer_problems(tmp_path: Path,
                                                                     capsys) -> None:
    import pytest

    pytest.importorskip("ttscale.verification.sandbox")
    from ttscale.core.registry import tasks

    fixture = Path(__file__).resolve().parent / "fixtures" / "mixed.jsonl"
    problems = tasks.get("jsonl")(path=str(fixture)).problems()
    run = RunDir(tmp_path / "code")
    run.write_problems(problems_frame(problems))
    run.write_samples(pd.DataFrame(sample_rows("add", ["    return a + b\n", "    return a - b\n",
                                                       "    while True: pass\n"])))
    # typed options: timeout_base=2 reaches the verifier as the number 2
    assert main(["verify", str(run.path), "--verifier", "unit_tests",
                 "--verifier-option", "timeout_base=2", "--name", "ut"]) == 0
    v = run.read_verdicts("ut").sort_values("sample_index")
    assert v["status"].tolist() == ["pass", "fail", "timeout"]
    assert "1 sample(s) ended in error or timeout" in capsys.readouterr().err
    # answer problems have no tests: refused before anything is written
    answers = make_run(tmp_path / "answers", TEXTS, ANSWERS)
    _assert_one_line_exit_2(capsys, ["verify", str(answers.path), "--verifier", "unit_tests"],
                            "needs reference field 'tests', which problem 'a'", answers.path)


def test_option_values_are_typed() -> None:
    from ttscale.verification.verify import parse_options

    assert parse_options(["a=10", "b=0.1", "c=true", "d=exact", "e=mod:fn", "f=/x/y.parquet",
                          "g=1/2"]) == {"a": 10, "b": 0.1, "c": True, "d": "exact",
                                        "e": "mod:fn", "f": "/x/y.parquet", "g": "1/2"}


def test_interrupted_verify_keeps_finished_problems_and_resumes(tmp_path: Path) -> None:
    import pytest

    run = make_run(tmp_path / "run", TEXTS, ANSWERS)

    def stop_after_two(done: int, total: int) -> None:  # done counts samples: 4 per problem
        if done == 8:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        verify_run(run, "exact", workers=0, progress=stop_after_two)
    assert sorted(run.read_verdicts("exact")["problem_id"].unique()) == ["a", "b"]
    rest = verify_run(run, "exact", workers=0)
    assert (rest.verified, rest.skipped) == (4, 8)
    assert len(run.read_verdicts("exact")) == 12
