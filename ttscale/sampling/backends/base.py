"""The backend contract: requests in, samples out.

A request asks for ``n`` samples of one (problem, temperature), with sample indices
``first_index .. first_index + n - 1``. Sample ``j`` of a (problem, temperature) is drawn with
seed ``seed_base(run_seed, problem_id, temperature) + j``: vLLM V1 seeds the children of a request
with ``n > 1`` as ``seed + i``, so a request with ``seed = base + first_index`` gives exactly those
seeds. Every backend keeps this contract, so a run can resume, grow K, and (where the backend is
deterministic for a seed) reproduce its samples.
"""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

#: seeds of one (problem, temperature) lie in [base, base + SEED_STRIDE): K up to 2**24
SEED_STRIDE = 1 << 24


def seed_base(run_seed: int, problem_id: str, temperature: float) -> int:
    """First seed of a (problem, temperature): a hash of both and the run's seed, times the stride.

    Hash-based rather than ordinal, so that adding problems or temperatures later never moves the
    seeds of those already sampled. Bases are multiples of SEED_STRIDE below 2**62, so ranges of
    different (problem, temperature) pairs never overlap unless two 38-bit hashes collide.
    """
    key = f"{int(run_seed)}\x00{problem_id}\x00{float(temperature)!r}".encode()
    h = int.from_bytes(hashlib.blake2b(key, digest_size=8).digest(), "little")
    return (h % (1 << 38)) * SEED_STRIDE


@dataclass
class Request:
    problem_id: str
    prompt: str | list[dict[str, str]]  # plain text, or chat messages
    temperature: float
    n: int
    seed: int  # seed of the first sample: seed_base(...) + first_index
    first_index: int = 0
    max_tokens: int = 256
    stop: tuple[str, ...] = ()
    top_p: float = 1.0
    #: thinking budgets (issue 21): each of the n traces is generated once, its thinking capped
    #: at max(budgets) tokens, and gives one sample per budget; empty: one sample per trace, no
    #: budget (``max_tokens`` caps the whole output). With budgets ``max_tokens`` caps the answer.
    budgets: tuple[int, ...] = ()
    thinking: Thinking | None = None  # how a trace closes its thinking and how an answer is forced


@dataclass(frozen=True)
class Thinking:
    """How a model thinks: the string that ends its think block, and the cue appended after it
    when an answer is forced. A forced answer's prompt is the trace cut after B thinking
    tokens, then ``think_end`` and ``answer_cue`` (s1's budget forcing)."""

    think_end: str = "</think>"
    answer_cue: str = "\n"

    @property
    def force_text(self) -> str:
        return self.think_end + self.answer_cue


def answer_seed(seed: int, budget: int) -> int:
    """The seed of the answer forced after ``budget`` thinking tokens of the trace with ``seed``
    (a hash: it never collides with a trace's seed range in practice, and fits in 63 bits)."""
    key = f"{int(seed)}\x00forced\x00{int(budget)}".encode()
    return int.from_bytes(hashlib.blake2b(key, digest_size=8).digest(), "little") >> 1


@dataclass
class Sample:
    problem_id: str
    temperature: float
    sample_index: int
    seed: int
    text: str
    num_prompt_tokens: int
    num_output_tokens: int
    finish_reason: str  # "stop" | "length" | ...
    budget: int = 0  # 0: no budget axis
    thinking_tokens: int = 0
    answer_tokens: int = -1  # -1: all of num_output_tokens (a sample without a think block)
    forced: bool = False

    def __post_init__(self) -> None:
        if self.answer_tokens < 0:
            self.answer_tokens = self.num_output_tokens


@dataclass
class BackendInfo:
    name: str
    model: str
    versions: dict[str, str] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)


class Backend(ABC):
    """Turns requests into samples. ``generate`` yields batches as they finish."""

    name: str = "backend"

    @abstractmethod
    def generate(self, requests: list[Request]) -> Iterator[list[Sample]]:
        """Yield lists of samples; each list holds whole requests (all n samples of each)."""

    def info(self) -> BackendInfo:
        return BackendInfo(name=self.name, model=getattr(self, "model", "?"))

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release the engine (GPU memory, server connections)."""
