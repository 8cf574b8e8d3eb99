"""The models shipped inside the package (``ttscale/models/``), found by their short names.

``embedded`` (and ``arith-llama``) is the arithmetic model of ``scripts/train_embedded_model.py``;
``think-llama`` and ``think-llama-small`` are the thinking models of
``scripts/train_thinking_model.py`` (a ``<think>`` block before the answer; ``thinking.json`` in
each folder says how an answer is forced). A ``ttscale/`` prefix is accepted too.
"""

from __future__ import annotations

from pathlib import Path

#: where the shipped model folders are
MODELS_DIR = Path(__file__).resolve().parents[1] / "models"
#: short names that are not folder names
ALIASES = {"embedded": "arith-llama"}


def shipped_model(name: str) -> Path | None:
    """The folder of the shipped model called ``name``, or None when no shipped model has it."""
    short = str(name).removeprefix("ttscale/")
    short = ALIASES.get(short, short)
    if not short or "/" in short or short.startswith("."):
        return None
    folder = MODELS_DIR / short
    return folder if (folder / "config.json").is_file() else None


def shipped_names() -> list[str]:
    """The short names of the shipped models (for messages and ``ttscale list``)."""
    return sorted([*ALIASES, *(p.name for p in MODELS_DIR.iterdir() if (p / "config.json").is_file())])
