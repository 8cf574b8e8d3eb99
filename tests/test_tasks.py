"""Tasks: the GSM8K fixture, reasoning-gym with its own scorer, generic JSONL, and bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ttscale.core.registry import tasks
from ttscale.errors import InputError
from ttscale.verification.verify import make_verifier

FIXTURES = Path(__file__).resolve().parent / "fixtures"


def frame(texts: list[str], pid: str) -> pd.DataFrame:
    n = len(texts)
    return pd.DataFrame({"problem_id": [pid] * n, "temperature": [0.7] * n,
                         "sample_index": np.arange(n), "text": texts})


def test_gsm8k_fixture_loads_with_final_numbers() -> None:
    task = tasks.get("gsm8k")(path=str(FIXTURES / "gsm8k_mini.jsonl"))
    problems = task.problems()
    assert [p.reference["answer"] for p in problems] == [
        "14", "30", "41", "25", "46", "25", "2520", "12", "65", "77"]
    assert [p.problem_id for p in problems[:2]] == ["gsm8k-00000", "gsm8k-00001"]
    assert problems[0].prompt.startswith("Question: Mara buys 3 notebooks")
    assert problems[0].prompt.endswith("\nAnswer:")
    assert "####" in problems[0].messages[0]["content"]
    assert problems[6].reference["solution"].endswith("#### 2,520")
    assert len(task.problems(num_problems=3)) == 3
    # its own solutions pass the exact and math oracles; a wrong number does not
    exact, math = make_verifier("exact"), make_verifier("math")
    for p in problems:
        texts = [p.reference["solution"], "#### 99999"]
        assert exact.verify(p, frame(texts, p.problem_id))["passed"].tolist() == [True, False]
    p = problems[6]
    assert math.verify(p, frame(["so #### 2,520", "2520.0", "2519"], p.problem_id))[
        "passed"].tolist() == [True, True, False]


def test_gsm8k_bad_lines(tmp_path: Path) -> None:
    f = tmp_path / "bad.jsonl"
    f.write_text(json.dumps({"question": "q?", "answer": "6 * 7 = 42"}) + "\n")
    with pytest.raises(InputError, match=r"bad.jsonl: line 1: field 'answer' has no '#### <number>'"):
        tasks.get("gsm8k")(path=str(f)).problems()
    f.write_text(json.dumps({"question": "q?", "answer": "#### 1"}) + "\n"
                 + json.dumps({"answer": "#### 2"}) + "\n")
    with pytest.raises(InputError, match=r"bad.jsonl: line 2: field 'question' is missing"):
        tasks.get("gsm8k")(path=str(f)).problems(num_problems=1)  # every line is checked
    with pytest.raises(InputError, match="no such file"):
        tasks.get("gsm8k")(path=str(tmp_path / "absent.jsonl")).problems()


def test_reasoning_gym_task_and_its_scorer() -> None:
    pytest.importorskip("reasoning_gym")
    task = tasks.get("reasoning_gym")(dataset="basic_arithmetic", seed="7")
    problems = task.problems(num_problems=6)
    again = tasks.get("reasoning_gym")(dataset="basic_arithmetic", seed="7").problems(6)
    assert [p.prompt for p in problems] == [p.prompt for p in again]  # deterministic
    assert problems[0].problem_id == "basic_arithmetic-00000"
    assert problems[0].reference["size"] == 6 and problems[0].reference["seed"] == 7
    v = make_verifier("reasoning_gym")
    for p in problems:
        gold = p.reference["answer"]
        wrong = str(int(gold) + 1)
        texts = [f"Thinking...\n<answer>{gold}</answer>", f"<answer>{wrong}</answer>",
                 f"the result is {gold}", ""]
        out = v.verify(p, frame(texts, p.problem_id))
        assert out["passed"].tolist() == [True, False, True, False]
        assert out["score"].iloc[0] == 1.0 and out["score"].iloc[1] < 1.0
        assert out["answer"].iloc[0] == gold
    with pytest.raises(InputError, match="option 'dataset' is required"):
        tasks.get("reasoning_gym")().problems(3)
    with pytest.raises(InputError, match="unknown dataset 'no_such_thing'"):
        tasks.get("reasoning_gym")(dataset="no_such_thing").problems(3)


def test_jsonl_answer_and_code_problems() -> None:
    problems = tasks.get("jsonl")(path=str(FIXTURES / "mixed.jsonl")).problems()
    assert [p.problem_id for p in problems] == ["half", "mixed-00001", "add"]
    assert problems[0].reference == {"answer": "0.5"}
    assert problems[1].reference == {"answer": "42"}
    assert problems[2].reference["entry_point"] == "add"
    assert "assert candidate(1, 2) == 3" in problems[2].reference["tests"]
    assert problems[2].reference["canonical_solution"] == "    return a + b\n"


@pytest.mark.parametrize("line, message", [
    ({"id": "a", "answer": "1"}, "line 2: field 'prompt' is missing"),
    ({"prompt": "p"}, "line 2: field 'answer' or 'tests' is missing"),
    ({"prompt": "p", "answer": "1", "tests": "pass", "entry_point": "f"}, "ambiguous"),
    ({"prompt": "p", "tests": "def check(c):\n    assert c(1) ==\n", "entry_point": "f"},
     "line 2: field 'tests' is not valid Python"),
    ({"prompt": "p", "tests": "def check(c): pass", "entry_point": "not a name"},
     "line 2: field 'entry_point'"),
    ({"prompt": "p", "tests": "def check(c): pass"}, "line 2: field 'entry_point' is missing"),
    ({"id": "first", "prompt": "p", "answer": "2"}, "line 2: field 'id' 'first' repeats line 1"),
    ({"prompt": ["a"], "answer": "1"}, "line 2: field 'prompt' must be text"),
])
def test_jsonl_bad_lines_name_file_line_and_field(tmp_path: Path, line: dict, message: str) -> None:
    f = tmp_path / "probs.jsonl"
    f.write_text(json.dumps({"id": "first", "prompt": "ok", "answer": "1"}) + "\n"
                 + json.dumps(line) + "\n")
    with pytest.raises(InputError, match=message) as e:
        tasks.get("jsonl")(path=str(f)).problems()
    assert str(f) in str(e.value) and "\n" not in str(e.value)


def test_jsonl_not_json(tmp_path: Path) -> None:
    f = tmp_path / "x.jsonl"
    f.write_text('{"prompt": "p", "answer": "1"}\n{not json\n')
    with pytest.raises(InputError, match=r"x.jsonl: line 2: not valid JSON"):
        tasks.get("jsonl")(path=str(f)).problems()
    with pytest.raises(InputError, match="option 'path' is required"):
        tasks.get("jsonl")().problems()


@pytest.mark.parametrize("task", ["arithmetic", "gsm8k", "humaneval", "jsonl"])
def test_unknown_task_option_is_one_line_naming_it(task):
    from ttscale.core.registry import tasks

    with pytest.raises(InputError, match=rf"task '{task}': unknown option 'nope' \(known: "):
        tasks.get(task)(nope=1)
