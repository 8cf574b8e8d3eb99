"""``jsonl``: problems from any JSON-lines file.

Each line is an object, either an answer problem ``{"id"?, "prompt", "answer"}`` or a code
problem ``{"id"?, "prompt", "tests", "entry_point"}`` (``tests`` is Python source that checks
the completion, e.g. HumanEval's ``def check(candidate): ...``). Options: ``path`` (required) and
``name`` (the problem-id prefix for lines without ``id``; default the file's stem). Optional
fields ``messages`` (chat form of the prompt) and ``canonical_solution`` are kept.

Everything is checked at load, before any sampling: a line that is not JSON, a missing or
empty field, both or neither of ``answer`` / ``tests``, a ``tests`` field that is not valid
Python, a duplicate id: each is an InputError naming the file, the line and the field.
"""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

from ttscale.core.jsonl import iter_json_objects
from ttscale.core.registry import tasks
from ttscale.errors import InputError
from ttscale.plugins import Problem, Task


def read_jsonl(path: str | Path) -> list[tuple[int, dict[str, Any]]]:
    """(line number, object) for each non-blank line; InputError for a missing file or bad line."""
    out = list(iter_json_objects(path))
    if not out:
        raise InputError(f"{path}: file has no problems")
    return out


def require_text(path: Path | str, lineno: int, obj: dict[str, Any], field: str) -> str:
    """A field that must be a non-empty string (numbers are accepted and turned into text)."""
    if field not in obj or obj[field] is None:
        raise InputError(f"{path}: line {lineno}: field '{field}' is missing")
    value = obj[field]
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise InputError(f"{path}: line {lineno}: field '{field}' must be text, got "
                         f"{type(value).__name__}")
    text = str(value)
    if not text.strip():
        raise InputError(f"{path}: line {lineno}: field '{field}' is empty")
    return text


def check_tests(path: Path | str, lineno: int, tests: str, entry_point: str) -> None:
    """InputError when the tests are not valid Python or the entry point is not a name."""
    try:
        ast.parse(tests)
    except SyntaxError as e:
        raise InputError(f"{path}: line {lineno}: field 'tests' is not valid Python "
                         f"({e.msg}, at its line {e.lineno})") from None
    if not entry_point.isidentifier():
        raise InputError(f"{path}: line {lineno}: field 'entry_point' {entry_point!r} is not a "
                         "Python name")


def problem_from_line(path: Path | str, lineno: int, obj: dict[str, Any], task: str,
                      default_id: str) -> Problem:
    prompt = require_text(path, lineno, obj, "prompt")
    has_answer, has_tests = obj.get("answer") is not None, obj.get("tests") is not None
    if has_answer == has_tests:
        raise InputError(f"{path}: line {lineno}: field 'answer' or 'tests' is "
                         f"{'ambiguous (both given)' if has_answer else 'missing (give one)'}")
    if has_answer:
        reference: dict[str, Any] = {"answer": require_text(path, lineno, obj, "answer")}
    else:
        tests = require_text(path, lineno, obj, "tests")
        entry = require_text(path, lineno, obj, "entry_point")
        check_tests(path, lineno, tests, entry)
        reference = {"tests": tests, "entry_point": entry}
        if obj.get("canonical_solution") is not None:
            reference["canonical_solution"] = str(obj["canonical_solution"])
    pid = require_text(path, lineno, obj, "id") if "id" in obj else default_id
    messages = obj.get("messages")
    if messages is not None and not (
        isinstance(messages, list)
        and all(isinstance(m, dict) and {"role", "content"} <= set(m) for m in messages)
    ):
        raise InputError(f"{path}: line {lineno}: field 'messages' must be a list of "
                         "{role, content} objects")
    return Problem(problem_id=pid, task=task, prompt=prompt, reference=reference,
                   messages=messages)


@tasks.register("jsonl", "problems from a JSONL file: {id?, prompt, answer} or {id?, prompt, tests, entry_point}")
class JsonlTask(Task):
    name = "jsonl"
    verifiers = ("math", "exact", "majority", "reward", "imperfect", "unit_tests")
    option_names = ("path", "name")

    def problems(self, num_problems: int | None = None, seed: int = 0) -> list[Problem]:
        path = self.options.get("path")
        if not path:
            raise InputError("task 'jsonl': option 'path' is required")
        prefix = str(self.options.get("name") or Path(path).stem)
        out: list[Problem] = []
        seen: dict[str, int] = {}
        for i, (lineno, obj) in enumerate(read_jsonl(path)):
            p = problem_from_line(path, lineno, obj, self.name, f"{prefix}-{i:05d}")
            if p.problem_id in seen:
                raise InputError(f"{path}: line {lineno}: field 'id' {p.problem_id!r} repeats "
                                 f"line {seen[p.problem_id]}")
            seen[p.problem_id] = lineno
            out.append(p)
        if num_problems is not None:
            if num_problems < 1:
                raise InputError(f"task 'jsonl': num_problems must be at least 1, got {num_problems}")
            out = out[:num_problems]
        return out
