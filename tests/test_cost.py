"""Tests for ttscale.analysis.cost: FLOPs and eFLOPs of repeated sampling."""

from __future__ import annotations

import numpy as np
import pytest

from ttscale.analysis.cost import (
    H100,
    PRESETS,
    ModelShape,
    cost_per_sample,
    curve_cost,
    prompt_cost,
)
from ttscale.errors import InputError

SMALL = ModelShape(num_params=1000.0, num_layers=2, d_model=8, num_kv_heads=2, head_dim=4, bytes_per_param=2.0)


def brute_flops(shape: ModelShape, prompt: int, output: int, k: int) -> float:
    """Token by token: the prompt once, then each sample's completion tokens."""
    per = lambda t: 2 * (shape.num_params + 2 * shape.num_layers * shape.d_model * t)  # noqa: E731
    total = sum(per(t) for t in range(1, prompt + 1))
    total += k * sum(per(t) for t in range(prompt + 1, prompt + output + 1))
    return total


def brute_bytes(shape: ModelShape, prompt: int, output: int, k: int, batch: int) -> float:
    kv = 2 * shape.num_layers * shape.num_kv_heads * shape.head_dim * shape.bytes_per_param
    params = shape.num_params * shape.bytes_per_param
    total = params / batch + kv * prompt  # prefill: weights once, the prompt's cache written
    for _ in range(k):
        for t in range(prompt + 1, prompt + output + 1):
            total += params / batch + kv * t
    return total


@pytest.mark.parametrize("prompt, output, k", [(0, 1, 1), (5, 3, 1), (17, 11, 7), (100, 40, 25)])
def test_flops_match_token_by_token_sum(prompt: int, output: int, k: int) -> None:
    assert curve_cost([k], prompt, output, SMALL)[0] == pytest.approx(brute_flops(SMALL, prompt, output, k), rel=1e-12)


@pytest.mark.parametrize("prompt, output, k, batch", [(5, 3, 1, 1), (17, 11, 7, 4), (100, 40, 25, 64)])
def test_eflops_add_bytes_times_arithmetic_intensity(prompt: int, output: int, k: int, batch: int) -> None:
    got = curve_cost([k], prompt, output, SMALL, metric="eflops", batch_size=batch)[0]
    want = brute_flops(SMALL, prompt, output, k) + (989e12 / 3.35e12) * brute_bytes(SMALL, prompt, output, k, batch)
    assert got == pytest.approx(want, rel=1e-12)
    assert H100.arithmetic_intensity == pytest.approx(295.22, abs=0.01)


def test_curve_cost_is_prompt_once_plus_k_samples() -> None:
    shape = PRESETS["Llama-3-8B"]
    ks = np.array([0, 1, 10, 100])
    for metric in ("flops", "eflops"):
        cur = curve_cost(ks, 512, 256, shape, metric)
        once = prompt_cost(512, shape, metric)
        each = cost_per_sample(512, 256, shape, metric)
        np.testing.assert_allclose(cur, once + ks * each, rtol=1e-12)
        assert np.all(np.diff(cur) > 0)
    # eFLOPs exceed FLOPs: decoding is memory-bound
    assert curve_cost([10], 512, 256, shape, "eflops")[0] > 2 * curve_cost([10], 512, 256, shape)[0]


def test_llama3_8b_per_token_flops_near_2n() -> None:
    shape = PRESETS["Llama-3-8B"]
    # one output token after an empty prompt: 2 * (N + 2 * 32 * 4096 * 1)
    assert cost_per_sample(0, 1, shape)[()] == pytest.approx(2 * (8_030_261_248 + 2 * 32 * 4096))


@pytest.mark.parametrize(
    "name, billions",
    [("Llama-3-8B", 8.03), ("Llama-3-70B", 70.55), ("Llama-3.2-1B", 1.236), ("Qwen2.5-7B", 7.62)],
)
def test_preset_parameter_counts_match_published_sizes(name: str, billions: float) -> None:
    assert PRESETS[name].num_params / 1e9 == pytest.approx(billions, rel=2e-3)
    assert ModelShape.preset(name + "-Instruct") is PRESETS[name]


def test_preset_kv_cache_bytes() -> None:
    # Llama-3-8B in bf16: 2 (k, v) * 32 layers * 8 kv heads * 128 dims * 2 bytes = 128 KiB a token
    assert PRESETS["Llama-3-8B"].kv_bytes_per_token == 131072
    assert PRESETS["Qwen2.5-7B"].head_dim == 128 and PRESETS["Qwen2.5-7B"].num_kv_heads == 4


def test_from_hf_config_counts_a_tiny_llama_exactly() -> None:
    cfg = dict(vocab_size=32, hidden_size=128, intermediate_size=512, num_hidden_layers=4,
               num_attention_heads=2, num_key_value_heads=2, head_dim=64, tie_word_embeddings=True)
    shape = ModelShape.from_hf_config(cfg)
    per_layer = 4 * 128 * 128 + 3 * 128 * 512 + 2 * 128
    assert shape.num_params == 4 * per_layer + 32 * 128 + 128  # 1.05 M as in NOTES.md
    assert (shape.num_layers, shape.d_model, shape.num_kv_heads, shape.head_dim) == (4, 128, 2, 64)
    assert ModelShape.from_hf_config({**cfg, "num_params": 7}).num_params == 7


def test_bad_inputs_raise_input_error() -> None:
    with pytest.raises(InputError, match="hidden_size"):
        ModelShape.from_hf_config({"num_hidden_layers": 2})
    with pytest.raises(InputError, match="num_layers"):
        ModelShape(1e9, 0, 8, 1, 8)
    with pytest.raises(InputError, match="metric"):
        curve_cost([1], 10, 10, SMALL, metric="pass@k")
    with pytest.raises(InputError, match="avg_output_tokens"):
        cost_per_sample(10, -1, SMALL)
    with pytest.raises(InputError, match="preset"):
        ModelShape.preset("GPT-9")
