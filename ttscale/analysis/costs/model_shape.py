"""Which model shape (for the cost axis) a run or a counts table has, and where it came from.

A shape is looked up, in order, from:

1. the embedded model (``embedded``, ``arith-llama``, ``ttscale/arith-llama``): its shipped
   ``config.json``;
2. a local folder holding a ``config.json`` (or the path of a ``config.json`` itself);
3. the Hugging Face cache (``$HF_HUB_CACHE``, else ``$HF_HOME/hub``, else
   ``~/.cache/huggingface/hub``): the newest cached ``config.json`` of that hub id; nothing is
   downloaded;
4. a preset of :data:`ttscale.analysis.costs.cost.PRESETS`, by name in any case, also from a hub id
   (``meta-llama/Meta-Llama-3-8B-Instruct`` -> ``Llama-3-8B-Instruct``).

``--model-shape auto`` (and a run directory analysed without ``--model-shape``) looks up the
model the run sampled from (``run.json``'s ``model``) or each group's ``model`` column of a counts
table. A counts table records no token counts; without ``--prompt-tokens`` and
``--output-tokens`` the cost assumes :data:`DEFAULT_PROMPT_TOKENS` and
:data:`DEFAULT_OUTPUT_TOKENS` and says so (``"tokens_assumed": true`` in fits.json).
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

from ttscale.analysis.costs.cost import PRESETS, ModelShape
from ttscale.errors import InputError, arg

#: assumed when a counts table gives no token counts: a MATH-style few-shot prompt, one solution
DEFAULT_PROMPT_TOKENS = 512.0
DEFAULT_OUTPUT_TOKENS = 256.0

EMBEDDED_NAMES = ("embedded", "arith-llama", "ttscale/arith-llama")
EMBEDDED_DIR = Path(__file__).resolve().parents[2] / "models" / "arith-llama"


def _from_config_file(path: Path) -> ModelShape:
    try:
        cfg = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise InputError(f"{path}: not a readable config.json ({e})") from e
    if not isinstance(cfg, dict):
        raise InputError(f"{path}: not a JSON object")
    text = cfg.get("text_config")  # multimodal configs nest the language model's
    return ModelShape.from_hf_config(text if isinstance(text, dict) else cfg, source=str(path))


def _hub_cache() -> Path:
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"])
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]) / "hub"
    return Path.home() / ".cache" / "huggingface" / "hub"


def cached_config(hub_id: str) -> Path | None:
    """The newest cached ``config.json`` of a hub id (``org/name``), or None; never downloads."""
    if hub_id.count("/") != 1:
        return None
    folder = _hub_cache() / ("models--" + hub_id.replace("/", "--")) / "snapshots"
    found = sorted(folder.glob("*/config.json"), key=lambda p: p.stat().st_mtime) if folder.is_dir() else []
    return found[-1] if found else None


def _preset_name(name: str) -> str | None:
    lower = {k.lower(): k for k in PRESETS}
    last = name.rstrip("/").split("/")[-1].lower()
    for cand in (name.lower(), last, re.sub(r"^meta-", "", last)):
        if cand in lower:
            return lower[cand]
    return None


def find_shape(name: str) -> tuple[ModelShape, str] | None:
    """(shape, its name: a preset, "embedded" or the config.json read), or None when unknown."""
    if name in EMBEDDED_NAMES:
        return _from_config_file(EMBEDDED_DIR / "config.json"), "embedded"
    from ttscale.core.models import shipped_model

    shipped = shipped_model(name)
    if shipped is not None:
        return _from_config_file(shipped / "config.json"), str(name)
    path = Path(name).expanduser()
    if path.is_dir() and (path / "config.json").is_file():
        return _from_config_file(path / "config.json"), f"{path / 'config.json'}"
    if path.is_file() and path.name.endswith(".json"):
        return _from_config_file(path), str(path)
    cached = cached_config(name)
    if cached is not None:
        return _from_config_file(cached), f"cached {name} config.json"
    preset = _preset_name(name)
    if preset is not None:
        return PRESETS[preset], preset
    return None


def resolve_shape(name: str, source: str | Path) -> tuple[ModelShape, str]:
    """Like :func:`find_shape`, but an unknown name is an InputError naming ``source``."""
    found = find_shape(name)
    if found is None:
        raise InputError(
            f"{source}: {arg('model_shape')} {name!r} is not a known model shape: give a preset "
            f"({', '.join(sorted(PRESETS))}), 'embedded', a model folder or config.json, or a hub "
            "id whose config.json is in the Hugging Face cache"
        )
    return found


def run_model(run_dir: Path) -> str | None:
    """The model a run directory sampled from (run.json's ``model``), or None."""
    try:
        cfg = json.loads((run_dir / "run.json").read_text())
    except (OSError, ValueError):
        return None
    model = cfg.get("model") if isinstance(cfg, dict) else None
    return str(model) if model else None
