"""think-llama on the real vLLM engine (vllm-cpu here): the think markers are one token each, the
greedy traces are the reference scratchpads, and a forced prefix gets the model's answer.

Run in the vLLM environment (``-m vllm``, as .ci/run does for the other vLLM tests); skipped where
``import vllm`` fails unless TTSCALE_REQUIRE_VLLM=1.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

pytestmark = pytest.mark.vllm
REPO = Path(__file__).resolve().parents[1]
MODEL = REPO / "ttscale" / "models" / "think-llama"
REQUIRE = os.environ.get("TTSCALE_REQUIRE_VLLM") == "1"

if not REQUIRE:
    pytest.importorskip("vllm")


@pytest.fixture(scope="module")
def llm():
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "2")
    from vllm import LLM

    try:
        engine = LLM(model=str(MODEL), enforce_eager=True, dtype="float32", max_num_batched_tokens=16384,
                     seed=0)
    except RuntimeError as exc:
        if REQUIRE:
            raise
        pytest.skip(f"no vLLM engine could start: {exc}")
    yield engine
    del engine


def test_vllm_tokenizes_the_markers_and_writes_the_reference_scratchpad(llm):
    from ttscale._plugins.tasks.long_addition import scratchpad
    from vllm import SamplingParams

    pairs = [(4057, 968), (123456, 654321), (7, 8076), (999, 1)]
    outs = llm.generate([f"{a}+{b}=<think>" for a, b in pairs], SamplingParams(temperature=0.0, max_tokens=48))
    for (a, b), out in zip(pairs, outs, strict=True):
        assert out.prompt_token_ids[-1] == 19  # <think>, one token
        assert out.outputs[0].text == f"{scratchpad(a, b)}</think>{a + b}"
    forced = llm.generate(["4057+968=<think>7851,5621,</think>"], SamplingParams(temperature=0.0, max_tokens=10))
    assert forced[0].outputs[0].text == "5025"

