"""``gsm8k``: grade-school math word problems (Cobbe et al., 2021), answers checked as numbers.

Source: option ``path``, a local JSONL file in the official format, one
``{"question": ..., "answer": "...reasoning...\\n#### 72"}`` per line (GSM8K's
``test.jsonl``); without it, the Hugging Face hub's ``openai/gsm8k`` (config ``main``, option
``split``, default ``test``) through the optional ``datasets`` package, for users with access.
Every line is checked; problems keep the file's order and ``num_problems`` takes the first ones (ids ``gsm8k-00000``, ...,
by position, or option ``name`` as the prefix).

The reference answer is the number after ``####``, normalised (``1,000`` -> ``1000``); the full
solution is kept as ``reference["solution"]``. The plain prompt is ``Question: ...\\nAnswer:``
(a model continues in GSM8K's own style and ends with ``#### N``); the chat form asks for the
final answer on its own line as ``#### <number>``. Oracles: ``exact`` (fast) or ``math``.
"""

from __future__ import annotations

from typing import Any

from ttscale._plugins.tasks.jsonl import read_jsonl, require_text

from ttscale.core.registry import tasks
from ttscale.errors import InputError
from ttscale.plugins import Problem, Task
from ttscale.verification.answers import normalize_answer, parse_number

INSTRUCTION = ("Solve the problem step by step. Then give the final answer, a number, on its own "
               "line as '#### <number>'.")


def final_number(path: str, lineno: int, solution: str) -> str:
    """The normalised number after the last ``####`` of a GSM8K solution."""
    if "####" not in solution:
        raise InputError(f"{path}: line {lineno}: field 'answer' has no '#### <number>' line")
    raw = solution.rsplit("####", 1)[1].strip()
    if parse_number(raw.replace("$", "").strip()) is None:
        raise InputError(f"{path}: line {lineno}: field 'answer': {raw!r} after '####' is not "
                         "a number")
    norm = normalize_answer(raw)
    assert norm is not None
    return norm


def _hub_rows(split: str) -> list[tuple[int, dict[str, Any]]]:
    try:
        import datasets
    except ImportError:
        raise InputError("task 'gsm8k': option 'path' is not given and the 'datasets' package "
                         "(for the Hugging Face hub) is not installed: give path=test.jsonl") from None
    try:
        data = datasets.load_dataset("openai/gsm8k", "main", split=split)
    except Exception as e:  # noqa: BLE001 - no network, no access, unknown split
        raise InputError(f"task 'gsm8k': cannot load openai/gsm8k split {split!r} from the hub "
                         f"({type(e).__name__}: {e}); give path=test.jsonl") from e
    return [(i + 1, dict(row)) for i, row in enumerate(data)]


@tasks.register("gsm8k", "GSM8K word problems from a local JSONL (option path) or the HF hub")
class Gsm8kTask(Task):
    name = "gsm8k"
    verifiers = ("exact", "math", "majority", "reward", "imperfect")
    option_names = ("path", "split", "name")
    stop = ("\n\nQuestion:",)

    def problems(self, num_problems: int | None = None, seed: int = 0) -> list[Problem]:
        path = self.options.get("path")
        source = str(path) if path else f"hf:openai/gsm8k[{self.options.get('split', 'test')}]"
        rows = read_jsonl(path) if path else _hub_rows(str(self.options.get("split", "test")))
        if num_problems is not None and num_problems < 1:
            raise InputError(f"task 'gsm8k': num_problems must be at least 1, got {num_problems}")
        prefix = str(self.options.get("name") or "gsm8k")
        out = []
        for i, (lineno, obj) in enumerate(rows):
            question = require_text(source, lineno, obj, "question")
            solution = require_text(source, lineno, obj, "answer")
            out.append(Problem(
                problem_id=f"{prefix}-{i:05d}",
                task=self.name,
                prompt=f"Question: {question}\nAnswer:",
                reference={"answer": final_number(source, lineno, solution), "solution": solution},
                messages=[{"role": "user", "content": f"{question}\n\n{INSTRUCTION}"}],
            ))
        return out if num_problems is None else out[:num_problems]
