"""``exact``: the fast oracle for numeric answers (arithmetic, GSM8K).

A sample passes when its final answer (``#### x``, else the last ``\\boxed{}``, else an
``<answer>`` tag or "the answer is x", else the last number; see :mod:`ttscale.verification.answers`)
normalises to the same string as the reference answer: ``1,000`` = ``1000.0`` = ``1000``,
``0.5`` = ``1/2`` = ``\\frac{1}{2}``. Pure string work, about a microsecond a sample.

This module also registers ``reasoning_gym``, the scorer of reasoning-gym's procedural datasets
(defined beside its task in ``tasks/reasoning_gym_task.py``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import pandas as pd
from ttscale._plugins.tasks.reasoning_gym_task import ReasoningGymVerifier

from ttscale.core.registry import verifiers
from ttscale.plugins import Problem, Verifier
from ttscale.verification.answers import extract_final_answer, normalize_answer
from ttscale.verification.verify import check_unknown_options, verdict_frame


def reference_answer(problem: Problem) -> str | None:
    """The normalised reference answer of a problem (a ``#### x`` reference is extracted)."""
    ref = problem.reference.get("answer")
    if ref is None:
        return None
    ref = str(ref)
    if "####" in ref or "\\boxed" in ref:
        ref = extract_final_answer(ref) or ref
    return normalize_answer(ref)


def exact_answers(texts: pd.Series) -> list[str | None]:
    """Normalised final answers of completions (None where a completion gives none).

    The extraction runs once per sample; the normalisation (numbers to exact fractions) once per
    distinct extracted answer: long completions are nearly all distinct, their answers are not."""
    cache: dict[str | None, str | None] = {}
    out = []
    for t in texts.fillna("").astype(str).tolist():
        raw = extract_final_answer(t)
        if raw not in cache:
            cache[raw] = normalize_answer(raw)
        out.append(cache[raw])
    return out


@verifiers.register("exact", "normalised final-answer match (#### x / boxed / last number)")
@dataclass
class ExactAnswer(Verifier):
    """Normalised string/number match of the final answer against the reference answer."""

    name: ClassVar[str] = "exact"
    kind: ClassVar[str] = "oracle"
    requires: ClassVar[tuple[str, ...]] = ("answer",)
    cheap: ClassVar[bool] = True  # microseconds a sample: no worker processes

    def __post_init__(self) -> None:
        check_unknown_options(self.name, self.options, set())

    def verify(self, problem: Problem, samples: pd.DataFrame) -> pd.DataFrame:
        gold = reference_answer(problem)
        answers = exact_answers(samples["text"])
        passed = [a is not None and a == gold for a in answers]
        return verdict_frame(samples, passed, answer=answers)


verifiers.register("reasoning_gym", "a reasoning-gym dataset's own score_answer")(
    ReasoningGymVerifier
)
