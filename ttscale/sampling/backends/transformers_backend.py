"""Sampling with Hugging Face transformers: a batched loop over the model with a KV cache.

Any causal LM that ``AutoModelForCausalLM`` loads works, on CPU or a CUDA GPU; the names
``embedded``, ``arith-llama`` and ``ttscale/arith-llama`` resolve to the model shipped in
``ttscale/models/arith-llama``.

The seed contract (see :mod:`ttscale.sampling.backends.base`): sample ``j`` of a (problem, temperature)
depends only on the model, the prompt, the temperature and its seed ``seed_base + j``, never on
how requests are batched or chunked. Each sample row owns a ``torch.Generator`` seeded with its
seed, which draws one uniform number per generated token up front; a token is picked by inverting
the (tempered, optionally nucleus-truncated) cumulative distribution at that number. Batching
changes nothing but the floating-point rounding of the logits, which moves a pick only when a
uniform falls within rounding distance (~1e-7) of a boundary of the distribution.

Each batch prefills every distinct prompt once and then copies its KV cache to the prompt's
sample rows (prefix sharing), then decodes all rows together until every row has stopped; rows
that stopped are dropped from the batch once they are half of it.
"""

from __future__ import annotations

import hashlib
import inspect
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ttscale.errors import InputError, arg
from ttscale.sampling.backends.base import Backend, BackendInfo, Request, Sample
from ttscale.sampling.backends.batching import decode, left_padded

#: names that resolve to the shipped embedded model
EMBEDDED_NAMES = ("embedded", "arith-llama", "ttscale/arith-llama")
EMBEDDED_DIR = Path(__file__).resolve().parents[2] / "models" / "arith-llama"


class OutOfMemory(InputError):
    """The accelerator ran out of memory; the message says which settings to lower."""


def resolve_model(name: str) -> str:
    """The path or hub name to load for ``name`` (the shipped folder for the embedded names)."""
    if str(name) in EMBEDDED_NAMES:
        if not (EMBEDDED_DIR / "config.json").is_file():
            raise InputError(f"{arg('model', name)}: the embedded model is missing from {EMBEDDED_DIR}")
        return str(EMBEDDED_DIR)
    from ttscale.core.models import shipped_model

    folder = shipped_model(name)  # think-llama, think-llama-small
    return str(folder) if folder is not None else str(name)


def weights_digest(path: str, limit_bytes: int = 256 << 20) -> str | None:
    """sha256 (first 16 hex digits) over a local model folder's weight files, if small enough."""
    folder = Path(path)
    if not folder.is_dir():
        return None
    files = sorted(p for p in folder.iterdir() if p.suffix in (".safetensors", ".bin"))
    if not files or sum(p.stat().st_size for p in files) > limit_bytes:
        return None
    h = hashlib.sha256()
    for p in files:
        h.update(p.name.encode())
        h.update(p.read_bytes())
    return h.hexdigest()[:16]


def default_threads(torch_default: int) -> int:
    """CPU threads when none are asked for: half the cores (at least 1, at most torch's default).

    torch takes every core; on a shared or busy machine that oversubscribes them, and a 2-core
    machine ran the embedded model 6-15x slower with 2 threads than with 1 (NOTES.md). Half the
    cores is never that slow case and loses little on an idle machine.
    """
    import os

    return max(1, min(torch_default, (os.cpu_count() or 1) // 2))


class TransformersBackend(Backend):
    """Batched, seeded sampling from a transformers causal LM (CPU or CUDA)."""

    name = "transformers"

    def __init__(
        self,
        model: str = "embedded",
        device: str = "auto",
        dtype: str = "auto",
        batch_size: int = 256,
        max_num_seqs: int | None = None,
        trust_remote_code: bool = False,
        threads: int | None = None,
        **unknown: Any,
    ):
        if unknown:
            raise InputError(
                f"transformers backend: unknown option(s) {', '.join(sorted(unknown))} "
                "(known: device, dtype, batch_size, max_num_seqs, trust_remote_code, threads)"
            )
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.model = str(model)
        if threads is not None:  # CPU threads; 1 is far faster on an oversubscribed machine
            if int(threads) < 1:
                raise InputError(f"transformers backend: threads must be at least 1, got {threads}")
            torch.set_num_threads(int(threads))
        self.batch_size = int(max_num_seqs if max_num_seqs is not None else batch_size)
        if self.batch_size < 1:
            raise InputError(f"transformers backend: batch_size must be at least 1, got {self.batch_size}")
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        self.device = torch.device(device)
        if threads is None and self.device.type == "cpu":
            torch.set_num_threads(default_threads(torch.get_num_threads()))
        if self.device.type == "cuda" and not torch.cuda.is_available():
            raise InputError(f"{arg('device', device)}: CUDA is not available on this machine")
        if dtype != "auto" and not isinstance(getattr(torch, str(dtype), None), torch.dtype):
            raise InputError(f"{arg('dtype', dtype)}: not a torch dtype (float32, bfloat16, float16, auto)")
        self.path = resolve_model(self.model)
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(self.path, trust_remote_code=trust_remote_code)
            self.lm = AutoModelForCausalLM.from_pretrained(
                self.path,
                dtype="auto" if dtype == "auto" else getattr(torch, dtype),
                trust_remote_code=trust_remote_code,
            )
        except (OSError, ValueError, KeyError) as e:
            msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise InputError(f"{arg('model', self.model)}: cannot load it ({msg})") from e
        try:
            self.lm.to(self.device).eval()
        except torch.cuda.OutOfMemoryError as e:
            raise OutOfMemory(f"--model {self.model}: does not fit in {self.device} memory "
                              "(try --dtype bfloat16, or a smaller model)") from e
        # the KV cache's keyword: `cache` since transformers 5.x deprecated `past_key_values`
        # (removed in 5.40); older releases only know `past_key_values`
        self.cache_kw = "cache" if "cache" in inspect.signature(self.lm.forward).parameters else "past_key_values"
        cfg = self.lm.config
        self.context = int(getattr(cfg, "max_position_embeddings", 0) or 0) or None
        self.eos_ids = _eos_ids(self.lm, self.tokenizer)
        pad = self.tokenizer.pad_token_id
        self.pad_id = int(pad if pad is not None else (self.eos_ids[0] if self.eos_ids else 0))
        self.decoded_tokens = 0  # tokens generated so far (traces and forced answers)
        self._force_ids: dict[str, list[int]] = {}

    def force_ids(self, thinking: Any) -> list[int]:
        """The token ids appended to a cut trace to force its answer (marker, then cue)."""
        text = thinking.force_text
        if text not in self._force_ids:
            self._force_ids[text] = [int(t) for t in
                                     self.tokenizer(text, add_special_tokens=False).input_ids]
        return self._force_ids[text]

    # -- the contract -----------------------------------------------------------------------
    def info(self) -> BackendInfo:
        import torch
        import transformers

        return BackendInfo(
            name=self.name,
            model=self.model,
            versions={"torch": torch.__version__, "transformers": transformers.__version__},
            extra={
                "model_path": self.path,
                "weights_sha256": weights_digest(self.path),
                "commit": getattr(self.lm.config, "_commit_hash", None),
                "device": str(self.device),
                "dtype": str(self.lm.dtype).replace("torch.", ""),
                "batch_size": self.batch_size,
                "threads": torch.get_num_threads(),
                "context": self.context,
            },
        )

    def generate(self, requests: list[Request]) -> Iterator[list[Sample]]:
        """Yield the samples of whole requests as their batches finish (rows in request order)."""
        prompts = [self._encode(r) for r in requests]  # every prompt checked before sampling
        rows = [(ri, i) for ri, r in enumerate(requests) for i in range(r.n)]
        done: dict[int, list[Any]] = {}
        emitted = 0
        for start in range(0, len(rows), self.batch_size):
            chunk = rows[start : start + self.batch_size]
            if any(requests[ri].budgets for ri, _ in chunk):
                from ttscale.sampling.backends.budget_forcing import sample_with_budgets

                outs: list[Any] = sample_with_budgets(self, chunk, requests, prompts, OutOfMemory)
            else:
                outs = self._run_oom_safe(chunk, requests, prompts)
                self.decoded_tokens += sum(len(o[0]) for o in outs)
            for (ri, _), out in zip(chunk, outs, strict=True):
                done.setdefault(ri, []).append(out)
            batch: list[Sample] = []
            while emitted < len(requests) and len(done.get(emitted, ())) == requests[emitted].n:
                r = requests[emitted]
                for i, out in enumerate(done.pop(emitted)):
                    if r.budgets:  # one sample per budget of the trace
                        batch.extend(out)
                        continue
                    ids, text, finish = out
                    batch.append(Sample(r.problem_id, r.temperature, r.first_index + i, r.seed + i,
                                        text, len(prompts[emitted]), len(ids), finish))
                emitted += 1
            if batch:
                yield batch

    def validate(self, requests: list[Request]) -> None:
        """Raise InputError for a request this model cannot take (no chat template, too long)."""
        for r in requests:
            self._encode(r)

    def close(self) -> None:
        import torch

        self.lm = None  # type: ignore[assignment]
        if torch.cuda.is_available():
            torch.cuda.empty_cache()

    # -- internals --------------------------------------------------------------------------
    def _encode(self, r: Request) -> list[int]:
        if isinstance(r.prompt, str):
            ids = self.tokenizer(r.prompt).input_ids
        else:
            if not getattr(self.tokenizer, "chat_template", None):
                raise InputError(
                    f"--prompt-format chat: model {self.model} has no chat template "
                    "(use --prompt-format plain)"
                )
            ids = self.tokenizer.apply_chat_template(r.prompt, add_generation_prompt=True, tokenize=True)
            if isinstance(ids, dict) or hasattr(ids, "input_ids"):
                ids = ids["input_ids"]
        ids = [int(t) for t in ids]
        if self.context is not None and len(ids) >= self.context:
            raise InputError(
                f"problem {r.problem_id}: prompt of {len(ids)} tokens does not fit the context of "
                f"model {self.model} ({self.context} tokens)"
            )
        return ids

    def _run_oom_safe(self, chunk, requests, prompts):
        import torch

        try:
            return self._sample_rows(chunk, requests, prompts)
        except torch.cuda.OutOfMemoryError as e:
            raise OutOfMemory(
                f"{self.device}: out of memory sampling {len(chunk)} sequences at once; lower "
                f"{arg('batch_size')} (for vllm: max_num_seqs or gpu_memory_utilization)"
            ) from e

    def _sample_rows(self, chunk, requests, prompts) -> list[tuple[list[int], str, str]]:
        import torch
        from transformers import DynamicCache

        dev = self.device
        ids, mask, pos, row_slot = left_padded(self, chunk, prompts)
        reqs = [requests[ri] for ri, _ in chunk]
        limits = [self._max_new(r, len(prompts[ri])) for (ri, _), r in zip(chunk, reqs, strict=True)]
        steps = max(limits)
        temps = torch.tensor([float(r.temperature) for r in reqs], device=dev)
        top_ps = torch.tensor([float(r.top_p) for r in reqs], device=dev)
        uniforms = torch.zeros((len(chunk), steps), dtype=torch.float64)
        for row, (r, (_, i)) in enumerate(zip(reqs, chunk, strict=True)):
            gen = torch.Generator().manual_seed(int(r.seed) + i)
            uniforms[row, : limits[row]] = torch.rand(limits[row], generator=gen, dtype=torch.float64)
        uniforms = uniforms.to(dev)

        with torch.inference_mode():
            cache = DynamicCache(config=self.lm.config)
            out = self.lm(input_ids=ids, attention_mask=mask, position_ids=pos,
                          **{self.cache_kw: cache}, use_cache=True)
            cache.reorder_cache(row_slot)
            return decode(self, cache, out.logits[:, -1, :][row_slot], mask[row_slot],
                          pos[:, -1][row_slot] + 1, temps, top_ps, uniforms, limits,
                          [tuple(r.stop or ()) for r in reqs])

    def _max_new(self, r: Request, prompt_len: int) -> int:
        if r.max_tokens < 1:
            raise InputError(f"problem {r.problem_id}: max_tokens must be at least 1, got {r.max_tokens}")
        if self.context is None:
            return int(r.max_tokens)
        return max(1, min(int(r.max_tokens), self.context - prompt_len))



def _eos_ids(lm: Any, tokenizer: Any) -> list[int]:
    ids: list[int] = []
    for source in (getattr(lm, "generation_config", None), lm.config):
        e = getattr(source, "eos_token_id", None) if source is not None else None
        if e is not None:
            ids.extend([e] if isinstance(e, int) else list(e))
    if tokenizer.eos_token_id is not None:
        ids.append(int(tokenizer.eos_token_id))
    return sorted(set(int(i) for i in ids))
