"""``reasoning_gym``: reasoning-gym's procedural datasets (about 100 types), with their scorers.

Task options: ``dataset`` (a reasoning-gym name such as ``basic_arithmetic``; required),
``size`` (how many problems the dataset holds; default the number asked for, else 100), ``seed``
(the dataset's seed; default the run's seed), and any other option is passed to the dataset's
config (``min_terms=2``). The chat prompt uses reasoning-gym's default system prompt (answer in
``<answer></answer>`` tags); the plain prompt is the question followed by ``\\nAnswer:``.

The ``reasoning_gym`` verifier (registered by ``verifiers/exact.py``) rebuilds the dataset from
the reference (name, size, seed, config; cached per process) and scores each sample with that
dataset's own ``score_answer``. The answer scored is the last ``<answer>`` tag, else the final
answer :func:`ttscale.verification.answers.extract_final_answer` finds, else the whole stripped completion. The
score (in [0, 1]) goes in ``score``; ``passed`` is ``score >= threshold`` (option, default 1).
reasoning-gym is imported only when this task or verifier is used (``pip install reasoning-gym``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, ClassVar

import pandas as pd

from ttscale.core.registry import tasks
from ttscale.errors import InputError
from ttscale.plugins import Problem, Task, Verifier
from ttscale.verification.answers import extract_final_answer, normalize_answer
from ttscale.verification.verify import check_unknown_options, option_float, verdict_frame

_DATASETS: dict[str, Any] = {}  # per process: reference key -> dataset


def _import_gym() -> Any:
    try:
        import reasoning_gym
    except ImportError:
        raise InputError("task 'reasoning_gym' needs the reasoning-gym package: "
                         "pip install reasoning-gym (or ttscale[gym])") from None
    return reasoning_gym


def _coerce(value: Any) -> Any:
    if isinstance(value, str):
        import yaml

        try:
            return yaml.safe_load(value)
        except yaml.YAMLError:
            return value
    return value


def build_dataset(name: str, size: int, seed: int, config: dict[str, Any]) -> Any:
    """A reasoning-gym dataset, cached per process (rebuilding one is deterministic)."""
    key = json.dumps([name, size, seed, config], sort_keys=True)
    if key not in _DATASETS:
        gym = _import_gym()
        if name not in gym.factory.DATASETS:
            raise InputError(f"task 'reasoning_gym': option 'dataset': unknown dataset {name!r} "
                             f"(e.g. {', '.join(sorted(gym.factory.DATASETS)[:5])}, ...)")
        try:
            _DATASETS[key] = gym.create_dataset(name, size=size, seed=seed, **config)
        except (TypeError, ValueError, AssertionError) as e:
            raise InputError(f"task 'reasoning_gym': dataset {name!r} rejects its options "
                             f"({type(e).__name__}: {e})") from e
    return _DATASETS[key]


@tasks.register("reasoning_gym", "reasoning-gym procedural datasets (option dataset=NAME)")
class ReasoningGymTask(Task):
    name = "reasoning_gym"
    verifiers = ("reasoning_gym", "exact", "majority", "imperfect")

    def problems(self, num_problems: int | None = None, seed: int = 0) -> list[Problem]:
        opts = dict(self.options)
        name = opts.pop("dataset", None)
        if not name:
            raise InputError("task 'reasoning_gym': option 'dataset' is required (e.g. "
                             "dataset=basic_arithmetic)")
        size = int(_coerce(opts.pop("size", num_problems or 100)))
        data_seed = int(_coerce(opts.pop("seed", seed)))
        n = size if num_problems is None else int(num_problems)
        if not 1 <= n <= size:
            raise InputError(f"task 'reasoning_gym': num_problems {n} must be in [1, size={size}]")
        config = {k: _coerce(v) for k, v in opts.items()}
        data = build_dataset(str(name), size, data_seed, config)
        from reasoning_gym.utils import SYSTEM_PROMPTS

        out = []
        for i in range(n):
            entry = data[i]
            out.append(Problem(
                problem_id=f"{name}-{i:05d}",
                task=self.name,
                prompt=f"{entry['question']}\nAnswer:",
                reference={"answer": None if entry["answer"] is None else str(entry["answer"]),
                           "dataset": str(name), "size": size, "seed": data_seed, "index": i,
                           "config": config},
                messages=[{"role": "system", "content": SYSTEM_PROMPTS["default"]},
                          {"role": "user", "content": entry["question"]}],
            ))
        return out


def gym_answer(text: str) -> str:
    """The answer reasoning-gym scores: last <answer> tag, else the final answer, else the text."""
    from reasoning_gym.utils import extract_answer

    tagged = extract_answer(text)
    if tagged is not None:
        return tagged
    return extract_final_answer(text) or text.strip()


@dataclass
class ReasoningGymVerifier(Verifier):
    """A reasoning-gym dataset's own scorer (``score_answer``) on the extracted answer."""

    name: ClassVar[str] = "reasoning_gym"
    kind: ClassVar[str] = "oracle"
    requires: ClassVar[tuple[str, ...]] = ("dataset", "index")

    def __post_init__(self) -> None:
        check_unknown_options(self.name, self.options, {"threshold"})
        self.threshold = option_float(self.name, self.options, "threshold", 1.0, 0.0, 1.0)

    def check_run(self, problems: list[Problem], samples: pd.DataFrame) -> None:
        _import_gym()

    def verify(self, problem: Problem, samples: pd.DataFrame) -> pd.DataFrame:
        ref = problem.reference
        data = build_dataset(ref["dataset"], int(ref["size"]), int(ref["seed"]),
                             dict(ref.get("config") or {}))
        entry = data[int(ref["index"])]
        n = len(samples)
        if ref.get("answer") is not None and str(entry["answer"]) != str(ref["answer"]):
            msg = (f"dataset {ref['dataset']!r} rebuilt a different problem {ref['index']} "
                   "(another reasoning-gym version?)")
            return verdict_frame(samples, [False] * n, status=["error"] * n, error=[msg] * n)
        cache: dict[str, tuple[float, str | None]] = {}
        scores, answers = [], []
        for text in samples["text"].fillna("").astype(str):
            if text not in cache:
                ans = gym_answer(text)
                cache[text] = (float(data.score_answer(answer=ans, entry=entry)),
                               normalize_answer(ans))
            scores.append(cache[text][0])
            answers.append(cache[text][1])
        passed = [s >= self.threshold for s in scores]
        return verdict_frame(samples, passed, score=scores, answer=answers)
