"""Prompts that cannot fit the model's context, refused before any model loads or any prompt is
tokenized (a 1 MB prompt took 872 MB and minutes to tokenize, then failed once the model loaded).

The context length comes from the model's ``config.json`` (a local folder, the embedded model,
or the Hugging Face cache), read without loading anything. No tokenizer packs more than about
:data:`MAX_CHARS_PER_TOKEN` characters into one token, so a prompt longer than that many
characters per context token cannot fit whatever the tokenizer. The backend still checks the
exact token count of every prompt that passes (before anything is written).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ttscale.errors import InputError, arg

#: characters one token can hold at most, for this bound (real tokenizers: about 3-5 on text)
MAX_CHARS_PER_TOKEN = 16
_CONTEXT_KEYS = ("max_position_embeddings", "n_positions", "max_seq_len", "seq_length", "n_ctx")


def model_context(backend: str, model: str) -> int | None:
    """The model's context length in tokens from its config.json, or None where unknown."""
    if backend not in ("transformers", "vllm"):
        return None
    cfg_path: Path | None = None
    try:
        from ttscale.sampling.backends.transformers_backend import resolve_model

        local = Path(resolve_model(model)).expanduser()
        if (local / "config.json").is_file():
            cfg_path = local / "config.json"
        else:
            from huggingface_hub import try_to_load_from_cache

            cached = try_to_load_from_cache(model, "config.json")
            cfg_path = Path(cached) if isinstance(cached, str) else None
    except Exception:  # noqa: BLE001 - unknown model: no bound here, the backend checks
        return None
    if cfg_path is None:
        return None
    try:
        cfg = json.loads(cfg_path.read_text())
    except (OSError, ValueError):
        return None
    cfg = cfg.get("text_config", cfg) if isinstance(cfg.get("text_config"), dict) else cfg
    for key in _CONTEXT_KEYS:
        if isinstance(cfg.get(key), int) and cfg[key] > 0:
            return int(cfg[key])
    return None


def prompt_chars(problem: Any, chat: bool) -> int:
    if chat and getattr(problem, "messages", None):
        return sum(len(str(m.get("content", ""))) for m in problem.messages)
    return len(problem.prompt)


def check_prompt_lengths(problems: list[Any], backend: str, model: str, chat: bool = False) -> None:
    """InputError naming the first problem whose prompt cannot fit ``model``'s context."""
    context = model_context(backend, model)
    if context is None:
        return
    limit = context * MAX_CHARS_PER_TOKEN
    for p in problems:
        n = prompt_chars(p, chat)
        if n > limit:
            raise InputError(f"problem {p.problem_id!r}: its prompt has {n:,} characters, more than "
                             f"the {context:,}-token context of {arg('model', model)} can hold (at most "
                             f"about {limit:,} characters); shorten it or use a longer-context model")
