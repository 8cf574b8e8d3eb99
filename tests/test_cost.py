"""Tests for ttscale.analysis.costs.cost: FLOPs and eFLOPs of repeated sampling."""

from __future__ import annotations

import numpy as np
import pytest

from ttscale.analysis.costs.cost import (
    B200_INTENSITY,
    H100,
    PRESETS,
    ModelShape,
    cost_per_sample,
    curve_cost,
    kinetics_cost,
    kinetics_shared_prompt_cost,
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
    got = curve_cost([k], prompt, output, SMALL, metric="eflops_weights", batch_size=batch)[0]
    want = brute_flops(SMALL, prompt, output, k) + (989e12 / 3.35e12) * brute_bytes(SMALL, prompt, output, k, batch)
    assert got == pytest.approx(want, rel=1e-12)
    assert H100.arithmetic_intensity == pytest.approx(295.22, abs=0.01)


def test_curve_cost_is_prompt_once_plus_k_samples() -> None:
    shape = PRESETS["Llama-3-8B"]
    ks = np.array([0, 1, 10, 100])
    for metric in ("flops", "eflops_weights", "kinetics"):
        cur = curve_cost(ks, 512, 256, shape, metric)
        once = (kinetics_shared_prompt_cost(shape, 512, 256) if metric == "kinetics"
                else prompt_cost(512, shape, metric))
        each = cost_per_sample(512, 256, shape, metric)
        np.testing.assert_allclose(cur, once + ks * each, rtol=1e-12)
        assert np.all(np.diff(cur) > 0)
    # eFLOPs exceed FLOPs: decoding is memory-bound
    assert curve_cost([10], 512, 256, shape, "eflops_weights")[0] > 2 * curve_cost([10], 512, 256, shape)[0]


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


# -- Kinetics' dense_cost, transcribed from their cost_model/utils.py with their conventions:
# head_dim passed as config.head_dim * num_hidden_layers, results in units of 1e-12 --------------
def kinetics_dense_cost(nparams, num_attn_heads, num_kv_heads, head_dim, E_flops,  # noqa: N803
                        context_length, generation_length, num_trials=1):
    compute = (2 * nparams * generation_length + 2 * (2 * context_length + generation_length)
               * generation_length * num_attn_heads * head_dim) * num_trials * 1e-12
    memory = (2 * (2 * context_length + generation_length * num_trials) * generation_length
              * num_kv_heads * head_dim) * E_flops * 1e-12
    return compute, memory


def test_kinetics_by_hand_on_a_small_shape() -> None:
    # P = 1000, L = 2, H = 2 heads (d_model 8 / head_dim 4), K = 2, d = 4; c = 10, g = 5, N = 3:
    # compute = 3 * (2*1000*5 + 2*(20+5)*5*2*4*2) = 3 * (10000 + 4000) = 42000
    # memory  = 2*(20 + 5*3)*5*2*4*2 * 562.5 = 5600 * 562.5 = 3150000
    compute, memory = kinetics_cost(SMALL, 10, 5, 3)
    assert (float(compute), float(memory)) == (42000.0, 3150000.0)
    assert B200_INTENSITY == 562.5
    assert curve_cost([3], 10, 5, SMALL, "kinetics")[0] == 42000.0 + 3150000.0
    # the part shared by the N samples: the prompt's KV read once per step, 2*2*10*5*2*4*2 * 562.5
    assert float(kinetics_shared_prompt_cost(SMALL, 10, 5)) == 3200 * 562.5


@pytest.mark.parametrize("name", ["Llama-3-8B", "Llama-3-70B", "Qwen2.5-7B", "Llama-3.2-1B"])
@pytest.mark.parametrize("c, g, n", [(512, 256, 1), (512, 256, 100), (1200, 4000, 32)])
def test_kinetics_matches_their_formula(name: str, c: int, g: int, n: int) -> None:
    s = PRESETS[name]
    comp, mem = kinetics_dense_cost(s.num_params, s.attention_heads, s.num_kv_heads,
                                    s.head_dim * s.num_layers, 562.5, c, g, n)
    got_c, got_m = kinetics_cost(s, c, g, n)
    assert float(got_c) * 1e-12 == pytest.approx(comp, rel=1e-12)
    assert float(got_m) * 1e-12 == pytest.approx(mem, rel=1e-12)
    assert curve_cost([n], c, g, s, "kinetics")[0] * 1e-12 == pytest.approx(comp + mem, rel=1e-12)


def test_kinetics_llama3_8b_numbers() -> None:
    # Llama-3-8B (8,030,261,248 parameters, 32 layers, 32 heads, 8 KV heads of 128), c=512, g=256:
    # compute per sample = 2*8030261248*256 + 2*1280*256*32*128*32 = 4197393104896
    # memory, N = 1 = 2*1280*256*8*128*32 * 562.5 = 12079595520000
    compute, memory = kinetics_cost(PRESETS["Llama-3-8B"], 512, 256, 1)
    assert float(compute) == 4197393104896.0 and float(memory) == 12079595520000.0
    # the earlier variant (weights traffic, per-sample prompt KV, prefill, H100) is 2-5x larger
    for n, low, high in ((1, 2.0, 2.6), (100, 4.0, 4.8)):
        ratio = (curve_cost([n], 512, 256, PRESETS["Llama-3-8B"], "eflops_weights")[0]
                 / curve_cost([n], 512, 256, PRESETS["Llama-3-8B"], "kinetics")[0])
        assert low < ratio < high


def test_kinetics_leaves_out_prefill() -> None:
    with pytest.raises(InputError, match="prefill"):
        prompt_cost(100, SMALL, "kinetics")
