"""The two plugin contracts: a Task makes problems, a Verifier judges samples.

Both are small on purpose. Built-ins live in the top-level ``tasks/`` and ``verifiers/``
folders and register with :data:`ttscale.core.registry.tasks` / :data:`ttscale.core.registry.verifiers`.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

import pandas as pd

from ttscale.errors import InputError

#: columns of problems.parquet (``reference`` and ``messages`` hold JSON text)
PROBLEM_COLUMNS = ["problem_id", "task", "prompt", "messages", "reference"]


@dataclass
class Problem:
    problem_id: str
    task: str
    prompt: str  # the plain-completion prompt
    reference: dict[str, Any]  # task-specific: {"answer": "42"} or {"tests": ..., "entry_point": ...}
    messages: list[dict[str, str]] | None = None  # the chat form of the prompt, where it has one

    def to_row(self) -> dict[str, Any]:
        return {
            "problem_id": self.problem_id,
            "task": self.task,
            "prompt": self.prompt,
            "messages": json.dumps(self.messages) if self.messages is not None else None,
            "reference": json.dumps(self.reference),
        }

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Problem:
        msgs = row.get("messages")
        return cls(
            problem_id=str(row["problem_id"]),
            task=str(row["task"]),
            prompt=str(row["prompt"]),
            reference=json.loads(row["reference"]) if row.get("reference") else {},
            messages=json.loads(msgs) if isinstance(msgs, str) and msgs else None,
        )


def problems_frame(problems: list[Problem]) -> pd.DataFrame:
    return pd.DataFrame([p.to_row() for p in problems], columns=PROBLEM_COLUMNS)


class Task(ABC):
    """A benchmark: where its problems come from, how to prompt, which verifiers fit it."""

    name: ClassVar[str]
    #: verifier names that make sense for this task, the first being the oracle
    verifiers: ClassVar[tuple[str, ...]] = ()
    #: stop strings for sampling (besides the model's end-of-sequence token)
    stop: ClassVar[tuple[str, ...]] = ()

    #: the option names this task accepts (None: any, e.g. options passed on to a library)
    option_names: ClassVar[tuple[str, ...] | None] = None

    def __init__(self, **options: Any):
        if self.option_names is not None:
            unknown = sorted(set(options) - set(self.option_names))
            if unknown:
                known = ", ".join(self.option_names) or "none"
                raise InputError(f"task '{self.name}': unknown option '{unknown[0]}' (known: {known})")
        self.options = options

    @abstractmethod
    def problems(self, num_problems: int | None = None, seed: int = 0) -> list[Problem]:
        """The task's problems (the first ``num_problems``, deterministically for a seed)."""


VerifierKind = Literal["oracle", "selector", "imperfect"]


@dataclass
class Verifier(ABC):
    """Judges the samples of one problem at a time; stateless, picklable, batched.

    ``verify`` returns one row per sample with the columns of
    :data:`ttscale.rundir.store.VERDICT_SCHEMA` (problem_id, temperature, sample_index, passed, score,
    answer, status, error). A verifier must be safe to call in a worker process.
    """

    name: ClassVar[str]
    kind: ClassVar[VerifierKind] = "oracle"
    #: the reference fields this verifier needs, checked before any sample is verified
    requires: ClassVar[tuple[str, ...]] = ()
    #: option name -> "help (default X)": shown by `ttscale list verifiers`
    option_help: ClassVar[dict[str, str]] = {}
    options: dict[str, Any] = field(default_factory=dict)

    @abstractmethod
    def verify(self, problem: Problem, samples: pd.DataFrame) -> pd.DataFrame:
        """Verdicts for ``samples`` (rows of samples.parquet, all of ``problem``)."""
