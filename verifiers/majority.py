"""``majority``: majority vote (maj@k / self-consistency) over normalised answers.

A selector, not a judge of single samples: each verdict row carries the sample's normalised
answer in ``answer`` and, in ``passed``, whether that answer is correct. maj@k is then estimated
from all n samples by :func:`ttscale.analysis.curves.coverage.selection_curves` (never from "the first k"
samples, which is biased and noisy).

Option ``normalizer``: ``exact`` (default; :mod:`ttscale.verification.answers`, microseconds a sample) or
``math`` (Math-Verify's parse, so that ``0.5`` and ``\\frac{1}{2}`` vote together, and its
equivalence for correctness).

Tie rule (what the maj@k estimator implements): samples without an answer (``answer`` null)
do not vote; among the answers with the most votes in a draw of k, one is chosen uniformly at
random, so a tie of t answers that includes the correct one scores 1/t; a draw in which no sample
has an answer scores 0. :func:`majority_vote` applies the same rule to one set of samples.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

import pandas as pd
from ttscale._plugins.verifiers.exact import ExactAnswer

from ttscale.core.registry import verifiers
from ttscale.errors import InputError
from ttscale.plugins import Problem, Verifier
from ttscale.verification.verify import check_unknown_options

NORMALIZERS = ("exact", "math")


def majority_vote(answers: Sequence[str | None], passed: Sequence[bool]) -> float:
    """Expected correctness of a majority vote over these samples, under the tie rule above."""
    votes = Counter(a for a in answers if a is not None)
    if not votes:
        return 0.0
    top = max(votes.values())
    winners = {a for a, c in votes.items() if c == top}
    correct = {a for a, ok in zip(answers, passed, strict=True) if ok and a is not None}
    return len(winners & correct) / len(winners)


@verifiers.register("majority", "majority vote over normalised answers (maj@k)")
@dataclass
class MajorityVote(Verifier):
    """Majority vote: normalised answer per sample plus its correctness, for maj@k."""

    name: ClassVar[str] = "majority"
    option_help: ClassVar[dict[str, str]] = {
        "normalizer": "exact (default) or math (Math-Verify: 0.5 and \\frac{1}{2} vote together); "
                      "with math, the math verifier's options too",
    }
    kind: ClassVar[str] = "selector"
    requires: ClassVar[tuple[str, ...]] = ("answer",)

    def __post_init__(self) -> None:
        check_unknown_options(self.name, self.options, {"normalizer"} | _math_options())
        norm = str(self.options.get("normalizer", "exact"))
        if norm not in NORMALIZERS:
            raise InputError(f"verifier 'majority': option 'normalizer': {norm!r} is not one of "
                             f"{', '.join(NORMALIZERS)}")
        self.normalizer = norm
        rest = {k: v for k, v in self.options.items() if k != "normalizer"}
        if norm == "exact" and rest:
            raise InputError(f"verifier 'majority': option '{sorted(rest)[0]}' needs normalizer=math")
        if norm == "math":
            from ttscale._plugins.verifiers.math_answer import MathAnswer

            self._inner: Verifier = MathAnswer(options=rest)
        else:
            self._inner = ExactAnswer()
        self.cheap = bool(getattr(self._inner, "cheap", False))

    def verify(self, problem: Problem, samples: pd.DataFrame) -> pd.DataFrame:
        return self._inner.verify(problem, samples)


def _math_options() -> set[str]:
    return {"dedup", "parse_timeout", "verify_timeout", "float_rounding"}
