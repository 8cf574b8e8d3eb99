"""Inference cost of repeated sampling: FLOPs and memory-aware eFLOPs per sample and per curve.

FLOPs (Large Language Monkeys, Brown et al. 2024): a token at context position t (1-based, the
number of tokens it attends to, itself included) costs ``2 * (num_params + 2 * num_layers *
d_model * t)``. The prompt is processed once per problem (its prefix is shared by all k samples);
completion tokens are paid for by every sample. Sums over positions are exact (closed form), not
averaged; fractional average token counts are allowed (they come from averages over samples).

Kinetics eFLOPs (metric ``"kinetics"``; Sadhukhan et al. 2025, "Kinetics: Rethinking Test-Time
Scaling Laws", their repository's ``cost_model/utils.py`` ``dense_cost``), exactly as they define
it, for N samples of a prompt of c tokens, each generating g tokens::

    compute = N * (2 P g + 2 (2 c + g) g H d L)
    memory  = 2 (2 c + g N) g K d L * I            eFLOPs = compute + memory

with P parameters, L layers, H attention heads, K key-value heads of dimension d (Kinetics passes
``head_dim * num_hidden_layers`` as its ``head_dim``), and ``I = 562.5`` FLOP/byte (NVIDIA B200,
their default). What it counts and leaves out, as they do: the attention FLOPs over prompt and
generated tokens; the KV cache read at every decoding step in bf16 (2 bytes a value), the shared
prompt's cache read once per step for all N samples; no weight-memory traffic (it is amortised
over a large batch), no prefill. Kinetics averages ``dense_cost`` over the samples' generation
lengths; given only an average length (what ttscale records) the quadratic terms are taken at
the mean, which understates them by the length variance (Jensen). :func:`kinetics_cost` is the
formula itself; ``curve_cost(..., metric="kinetics")`` the same per problem at each k.

ttscale's earlier memory-aware variant (metric ``"eflops_weights"``; not Kinetics' definition,
kept for comparison): ``FLOPs + I * bytes_moved`` with ``I = peak FLOP/s / memory bandwidth``
(H100 SXM: 989e12 / 3.35e12 ~ 295), prefill counted. Assumptions, stated once:

* decoding a token at position t moves the model's parameters once per *batch step*, shared by
  ``batch_size`` sequences (``num_params * bytes_per_param / batch_size`` per token), plus the
  KV cache of the sequence: ``2 * num_layers * num_kv_heads * head_dim * t * bytes_per_kv_value``
  (keys and values of all t positions; the new token's own write is counted in t);
* the prompt's prefill is compute-bound: it moves the parameters once per problem (amortised over
  the batch like decoding) and writes the prompt's KV cache once;
* activations, the embedding lookup and the sampling step are ignored (small beside the above).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ttscale.errors import InputError

METRICS = ("flops", "kinetics", "eflops_weights")
#: Kinetics' default arithmetic intensity: NVIDIA B200, FLOP/s per byte/s of memory bandwidth
B200_INTENSITY = 562.5


@dataclass(frozen=True)
class Hardware:
    """An accelerator's peak dense FLOP/s and memory bandwidth (bytes/s)."""

    peak_flops: float
    memory_bandwidth: float

    @property
    def arithmetic_intensity(self) -> float:
        """FLOPs the chip can do in the time it moves one byte: peak / bandwidth."""
        return self.peak_flops / self.memory_bandwidth


#: NVIDIA H100 SXM: 989 TFLOP/s dense BF16, 3.35 TB/s HBM3 (NVIDIA H100 datasheet)
H100 = Hardware(peak_flops=989e12, memory_bandwidth=3.35e12)


@dataclass(frozen=True)
class ModelShape:
    """What the cost model needs to know about a decoder-only transformer."""

    num_params: float
    num_layers: int
    d_model: int
    num_kv_heads: int
    head_dim: int
    bytes_per_param: float = 2.0
    #: bytes per cached key/value element; defaults to bytes_per_param
    bytes_per_kv_value: float | None = None
    #: attention (query) heads; defaults to d_model // head_dim
    num_heads: int | None = None

    def __post_init__(self) -> None:
        for name in ("num_params", "num_layers", "d_model", "num_kv_heads", "head_dim", "bytes_per_param"):
            value = getattr(self, name)
            if not (isinstance(value, int | float) and np.isfinite(value) and value > 0):
                raise InputError(f"model shape: field '{name}' must be a positive number, got {value!r}")

    @property
    def attention_heads(self) -> int:
        """Query heads (Kinetics' ``num_attn_heads``)."""
        return int(self.num_heads) if self.num_heads else self.d_model // self.head_dim

    @property
    def kv_bytes_per_token(self) -> float:
        """Bytes of keys and values one token leaves in the cache, all layers together."""
        per_value = self.bytes_per_param if self.bytes_per_kv_value is None else self.bytes_per_kv_value
        return 2.0 * self.num_layers * self.num_kv_heads * self.head_dim * per_value

    @classmethod
    def from_hf_config(cls, config: dict[str, Any], bytes_per_param: float = 2.0,
                       source: str = "config.json") -> ModelShape:
        """Shape from a Hugging Face ``config.json`` dict (Llama, Qwen2, Mistral style).

        ``num_params`` is counted from the config when it lacks one: embeddings (+ an untied
        LM head), per layer the attention projections (with q/k/v biases where
        ``attention_bias`` is set or the model is Qwen2), a gated MLP (3 matrices) and two
        RMSNorms, and the final norm.
        """
        def need(key: str) -> int:
            if key not in config:
                raise InputError(f"{source}: missing field '{key}'")
            value = config[key]
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise InputError(f"{source}: field '{key}' must be a positive integer, got {value!r}")
            return value

        hidden = need("hidden_size")
        layers = need("num_hidden_layers")
        heads = need("num_attention_heads")
        kv_heads = int(config.get("num_key_value_heads") or heads)
        head_dim = int(config.get("head_dim") or hidden // heads)
        num_params = config.get("num_params")
        if num_params is None:
            vocab = need("vocab_size")
            inter = need("intermediate_size")
            bias = bool(config.get("attention_bias", config.get("model_type") == "qwen2"))
            attn = hidden * heads * head_dim + 2 * hidden * kv_heads * head_dim + heads * head_dim * hidden
            if bias:
                attn += heads * head_dim + 2 * kv_heads * head_dim
            per_layer = attn + 3 * hidden * inter + 2 * hidden
            embed = vocab * hidden * (1 if config.get("tie_word_embeddings", False) else 2)
            num_params = layers * per_layer + embed + hidden
        return cls(float(num_params), layers, hidden, kv_heads, head_dim, bytes_per_param,
                   num_heads=heads)

    @classmethod
    def preset(cls, name: str) -> ModelShape:
        """A named preset (see :data:`PRESETS`); InputError for an unknown name."""
        if name not in PRESETS:
            raise InputError(f"model shape: unknown preset {name!r} (known: {', '.join(sorted(PRESETS))})")
        return PRESETS[name]


_LLAMA3_VOCAB = 128256
#: configs as published in each model's config.json on the Hugging Face hub
_CONFIGS: dict[str, dict[str, Any]] = {
    # meta-llama/Meta-Llama-3-8B-Instruct/config.json
    "Llama-3-8B": dict(vocab_size=_LLAMA3_VOCAB, hidden_size=4096, intermediate_size=14336,
                       num_hidden_layers=32, num_attention_heads=32, num_key_value_heads=8),
    # meta-llama/Meta-Llama-3-70B-Instruct/config.json
    "Llama-3-70B": dict(vocab_size=_LLAMA3_VOCAB, hidden_size=8192, intermediate_size=28672,
                        num_hidden_layers=80, num_attention_heads=64, num_key_value_heads=8),
    # meta-llama/Llama-3.2-1B-Instruct/config.json (tied embeddings, head_dim 64)
    "Llama-3.2-1B": dict(vocab_size=_LLAMA3_VOCAB, hidden_size=2048, intermediate_size=8192,
                         num_hidden_layers=16, num_attention_heads=32, num_key_value_heads=8,
                         head_dim=64, tie_word_embeddings=True),
    # Qwen/Qwen2.5-7B-Instruct/config.json (q/k/v biases)
    "Qwen2.5-7B": dict(model_type="qwen2", vocab_size=152064, hidden_size=3584,
                       intermediate_size=18944, num_hidden_layers=28, num_attention_heads=28,
                       num_key_value_heads=4),
}
#: preset shapes by name; the Instruct variants share them
PRESETS: dict[str, ModelShape] = {name: ModelShape.from_hf_config(cfg, source=name)
                                  for name, cfg in _CONFIGS.items()}
for _name in list(PRESETS):
    PRESETS[f"{_name}-Instruct"] = PRESETS[_name]


def _position_sum(start: Any, count: Any) -> np.ndarray:
    """Sum of positions start+1 .. start+count (closed form; works for fractional counts)."""
    s = np.asarray(start, dtype=float)
    m = np.asarray(count, dtype=float)
    return m * s + m * (m + 1) / 2.0


def _check_tokens(prompt: Any, output: Any) -> tuple[np.ndarray, np.ndarray]:
    p = np.asarray(prompt, dtype=float)
    o = np.asarray(output, dtype=float)
    if not np.all(np.isfinite(p)) or (p < 0).any():
        raise InputError(f"cost: field 'avg_prompt_tokens' must be >= 0, got {prompt!r}")
    if not np.all(np.isfinite(o)) or (o < 0).any():
        raise InputError(f"cost: field 'avg_output_tokens' must be >= 0, got {output!r}")
    return p, o


def _check_metric(metric: str, batch_size: float) -> None:
    if metric not in METRICS:
        raise InputError(f"cost: field 'metric' {metric!r} is not one of {', '.join(METRICS)}")
    if not batch_size >= 1:
        raise InputError(f"cost: field 'batch_size' must be >= 1, got {batch_size!r}")


def prompt_cost(
    avg_prompt_tokens: Any, shape: ModelShape, metric: str = "flops",
    batch_size: float = 64, hardware: Hardware = H100,
) -> np.ndarray:
    """Cost of processing a problem's prompt once (prefill), in FLOPs or eFLOPs."""
    _check_metric(metric, batch_size)
    p, _ = _check_tokens(avg_prompt_tokens, 0)
    flops = 2.0 * (shape.num_params * p + 2.0 * shape.num_layers * shape.d_model * _position_sum(0, p))
    if metric == "flops":
        return flops
    if metric == "kinetics":
        raise InputError("cost: Kinetics' eFLOPs do not count prefill; use curve_cost or kinetics_cost")
    moved = shape.num_params * shape.bytes_per_param / batch_size + shape.kv_bytes_per_token * p
    return flops + hardware.arithmetic_intensity * moved


def cost_per_sample(
    avg_prompt_tokens: Any, avg_output_tokens: Any, shape: ModelShape, metric: str = "flops",
    batch_size: float = 64, hardware: Hardware = H100,
    hardware_intensity: float = B200_INTENSITY,
) -> np.ndarray:
    """Cost of one more sample's completion tokens after a prompt of the given length.

    ``hardware`` is the eflops_weights variant's chip; ``hardware_intensity`` Kinetics' I.
    """
    _check_metric(metric, batch_size)
    p, o = _check_tokens(avg_prompt_tokens, avg_output_tokens)
    positions = _position_sum(p, o)  # sum of context lengths over the generated tokens
    flops = 2.0 * (shape.num_params * o + 2.0 * shape.num_layers * shape.d_model * positions)
    if metric == "flops":
        return flops
    if metric == "kinetics":
        compute, memory = kinetics_cost(shape, p, o, 1, hardware_intensity)
        shared = kinetics_shared_prompt_cost(shape, p, o, hardware_intensity)
        return compute + memory - shared
    moved = shape.num_params * shape.bytes_per_param / batch_size * o + shape.kv_bytes_per_token * positions
    return flops + hardware.arithmetic_intensity * moved


def curve_cost(
    ks: Any, avg_prompt_tokens: float, avg_output_tokens: float, shape: ModelShape,
    metric: str = "flops", batch_size: float = 64, hardware: Hardware = H100,
    hardware_intensity: float = B200_INTENSITY,
) -> np.ndarray:
    """Cost per problem of k samples at each k.

    ``flops`` / ``eflops_weights``: one prompt prefill plus k completions. ``kinetics``:
    Kinetics' ``dense_cost`` with ``num_trials = k`` (the shared prompt's KV reads once, plus k
    times the per-sample part), which is linear in k too.
    """
    k = np.asarray(ks, dtype=float)
    if not np.all(np.isfinite(k)) or (k < 0).any():
        raise InputError(f"cost: field 'ks' must hold numbers >= 0, got {ks!r}")
    if metric == "kinetics":
        _check_metric(metric, batch_size)
        p, o = _check_tokens(avg_prompt_tokens, avg_output_tokens)
        once = kinetics_shared_prompt_cost(shape, p, o, hardware_intensity)
        each = cost_per_sample(p, o, shape, metric, hardware_intensity=hardware_intensity)
        return once + k * each
    once = prompt_cost(avg_prompt_tokens, shape, metric, batch_size, hardware)
    each = cost_per_sample(avg_prompt_tokens, avg_output_tokens, shape, metric, batch_size, hardware)
    return once + k * each


def kinetics_cost(
    shape: ModelShape, context_length: Any, generation_length: Any, num_trials: Any = 1,
    intensity: float = B200_INTENSITY,
) -> tuple[np.ndarray, np.ndarray]:
    """Kinetics' ``dense_cost``: (compute, memory) eFLOPs of ``num_trials`` samples of a prompt.

    In FLOPs (Kinetics reports the same times 1e-12). ``context_length`` is the prompt's length,
    ``generation_length`` each sample's; arrays broadcast.
    """
    if not (np.isfinite(intensity) and intensity > 0):
        raise InputError(f"cost: field 'intensity' must be > 0, got {intensity!r}")
    c, g = _check_tokens(context_length, generation_length)
    n = np.asarray(num_trials, dtype=float)
    layers = shape.num_layers
    compute = (2.0 * shape.num_params * g
               + 2.0 * (2.0 * c + g) * g * shape.attention_heads * shape.head_dim * layers) * n
    memory = 2.0 * (2.0 * c + g * n) * g * shape.num_kv_heads * shape.head_dim * layers * intensity
    return compute, memory


def kinetics_shared_prompt_cost(
    shape: ModelShape, context_length: Any, generation_length: Any,
    intensity: float = B200_INTENSITY,
) -> np.ndarray:
    """The part of Kinetics' eFLOPs that does not grow with N: the prompt's KV read per step."""
    c, g = _check_tokens(context_length, generation_length)
    return 4.0 * c * g * shape.num_kv_heads * shape.head_dim * shape.num_layers * intensity
