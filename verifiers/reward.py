"""``reward``: reward-model scores for best-of-N and reward-weighted voting.

A selector: each verdict row carries the sample's reward in ``score``, its normalised answer in
``answer`` and, in ``passed``, its correctness by an oracle (option ``oracle``, default ``math``;
``oracle.KEY=VALUE`` passes options to it). best-of-k and weighted-vote@k are then estimated from
all n samples by :func:`ttscale.analysis.curves.coverage.selection_curves`.

The reward model is a plugin of its own; give exactly one of:

- ``model=PATH``: a transformers ``AutoModelForSequenceClassification`` saved at PATH (with its
  tokenizer), scoring ``prompt + completion``. The score is the logit of label ``label``
  (default: 1, the positive class, when the model has two labels; 0 when it has one output).
  Options ``batch_size`` (16), ``device`` (``cuda`` when available, else ``cpu``),
  ``max_length`` (truncate longer inputs from the left). Loaded once per worker process.
- ``scores=PATH`` (Parquet, CSV or JSONL) keyed by (problem_id, temperature, sample_index), the
  score in column ``column`` (default ``score``): scores computed elsewhere, or a column of an
  imported samples file. Every sample must have a score.
- ``callable=module:function``: ``function(prompts: list[str], completions: list[str])``
  returning one float per completion.
- ``command=CMD``: an external scorer; it reads JSON lines ``{"problem_id", "prompt",
  "completion"}`` on stdin and writes one number per line on stdout.

Identical completions of a problem are scored once.
"""

from __future__ import annotations

import importlib
import json
import shlex
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from ttscale.core.registry import verifiers
from ttscale.errors import InputError
from ttscale.plugins import Problem, Verifier
from ttscale.rundir.store import SAMPLE_KEY
from ttscale.verification.verify import make_verifier, option_float, verdict_frame

SOURCES = ("model", "scores", "callable", "command")
_MODELS: dict[tuple[str, str], Any] = {}  # per process: (path, device) -> (tokenizer, model)
_SCORE_FILES: dict[tuple[str, str], pd.Series] = {}  # per process: (path, column) -> scores


def _fail(option: str, message: str) -> InputError:
    return InputError(f"verifier 'reward': option '{option}': {message}")


def _budgets(samples: pd.DataFrame) -> np.ndarray:
    return (samples["budget"].astype(np.int64).to_numpy() if "budget" in samples
            else np.zeros(len(samples), np.int64))


def read_score_file(path: str, column: str) -> pd.Series:
    """A score file as a Series indexed by (problem_id, temperature, sample_index, budget)
    (budget 0 where the file has no budget column)."""
    key = (path, column)
    if key not in _SCORE_FILES:
        p = Path(path)
        if not p.is_file():
            raise _fail("scores", f"{p}: no such file")
        try:
            if p.suffix.lower() in (".parquet", ".pq"):
                df = pd.read_parquet(p)
            elif p.suffix.lower() in (".jsonl", ".json"):
                df = pd.read_json(p, lines=True)
            else:
                df = pd.read_csv(p)
        except Exception as e:  # noqa: BLE001 - any parse failure is bad input
            raise _fail("scores", f"{p}: cannot be read ({type(e).__name__}: {e})") from e
        if "budget" not in df.columns:  # a file without the budget axis: budget 0
            df = df.assign(budget=0)
        for col in [*SAMPLE_KEY, column]:
            if col not in df.columns:
                raise InputError(f"{p}: field '{col}' missing (reward scores need "
                                 f"{', '.join(SAMPLE_KEY)} and '{column}')")
        values = pd.to_numeric(df[column], errors="coerce")
        if values.isna().any():
            row = int(np.flatnonzero(values.isna().to_numpy())[0])
            raise InputError(f"{p}: field '{column}' row {row + 1}: {df[column].iloc[row]!r} "
                             "is not a number")
        index = pd.MultiIndex.from_arrays([df["problem_id"].astype(str),
                                           df["temperature"].astype(float),
                                           df["sample_index"].astype(np.int64),
                                           df["budget"].astype(np.int64)])
        _SCORE_FILES[key] = pd.Series(values.to_numpy(float), index=index)
    return _SCORE_FILES[key]


def load_callable(ref: str) -> Any:
    module, _, attr = ref.partition(":")
    if not module or not attr:
        raise _fail("callable", f"{ref!r} is not of the form module:function")
    try:
        obj: Any = importlib.import_module(module)
        for part in attr.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError) as e:
        raise _fail("callable", f"{ref!r} cannot be imported ({e})") from e
    if not callable(obj):
        raise _fail("callable", f"{ref!r} is not callable")
    return obj


def load_model(path: str, device: str) -> tuple[Any, Any]:
    """(tokenizer, model) for a saved sequence-classification model, cached per process."""
    key = (path, device)
    if key not in _MODELS:
        import torch
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        tok = AutoTokenizer.from_pretrained(path)
        model = AutoModelForSequenceClassification.from_pretrained(path).to(device).eval()
        if tok.pad_token is None:
            tok.pad_token = tok.eos_token or tok.unk_token
        if model.config.pad_token_id is None:
            model.config.pad_token_id = tok.pad_token_id
        tok.padding_side = "right"
        torch.set_grad_enabled(False)
        _MODELS[key] = (tok, model)
    return _MODELS[key]


def model_scores(path: str, texts: list[str], *, device: str = "cpu", label: int | None = None,
                 batch_size: int = 16, max_length: int | None = None) -> np.ndarray:
    """Scores of ``texts`` by the model at ``path``: the logit of ``label`` (see module doc)."""
    import torch

    tok, model = load_model(path, device)
    num_labels = int(model.config.num_labels)
    col = label if label is not None else (1 if num_labels == 2 else 0)
    if not 0 <= col < num_labels:
        raise _fail("label", f"{col} is outside the model's {num_labels} outputs")
    if max_length is not None:
        tok.truncation_side = "left"
    out = np.empty(len(texts))
    for start in range(0, len(texts), batch_size):
        batch = texts[start:start + batch_size]
        enc = tok(batch, return_tensors="pt", padding=True, truncation=max_length is not None,
                  max_length=max_length)
        with torch.no_grad():
            logits = model(**{k: v.to(device) for k, v in enc.items()}).logits
        out[start:start + len(batch)] = logits[:, col].float().cpu().numpy()
    return out


@verifiers.register("reward", "reward-model scores (best-of-N, weighted vote)")
@dataclass
class RewardVerifier(Verifier):
    """Reward-model scores in ``score``, oracle correctness in ``passed``."""

    name: ClassVar[str] = "reward"
    kind: ClassVar[str] = "selector"
    option_help: ClassVar[dict[str, str]] = {
        "model": "a transformers sequence-classification model folder scoring prompt + completion",
        "scores": "a Parquet/CSV/JSONL file of scores keyed by problem_id, temperature, sample_index",
        "callable": "module:function(prompts, completions) -> one float per completion",
        "command": "an external scorer: JSON lines on stdin, one number per line on stdout",
        "column": "with scores: the column holding the score (default score)",
        "label": "with model: the logit used as the score (default 1 of two labels, else 0)",
        "batch_size": "with model: completions scored at once (default 16)",
        "device": "with model: cpu or cuda (default cuda when available)",
        "max_length": "with model: truncate longer inputs from the left (default: none)",
        "oracle": "the oracle that fills `passed` (default math); oracle.KEY=VALUE for its options",
    }

    def __post_init__(self) -> None:
        opts = self.options
        known = {*SOURCES, "column", "label", "batch_size", "device", "max_length", "oracle"}
        for key in opts:
            if key not in known and not key.startswith("oracle."):
                raise InputError(f"verifier 'reward': unknown option '{key}' (known: "
                                 f"{', '.join(sorted(known))}, oracle.KEY)")
        given = [s for s in SOURCES if opts.get(s)]
        if len(given) != 1:
            raise InputError("verifier 'reward': give exactly one of the options "
                             f"{', '.join(SOURCES)} (got {', '.join(given) or 'none'})")
        self.source, self.ref = given[0], str(opts[given[0]])
        self.column = str(opts.get("column", "score"))
        self.label = int(option_float("reward", opts, "label", -1, -1, 1e6))
        self.batch_size = int(option_float("reward", opts, "batch_size", 16, 1, 1e6))
        ml = opts.get("max_length")
        self.max_length = None if ml is None else int(option_float("reward", opts, "max_length", 0, 1, 1e9))
        self.device = str(opts.get("device", "")) or (
            _default_device() if self.source == "model" else "cpu")
        self.oracle_name = str(opts.get("oracle", "math"))
        oracle_opts = {k[7:]: v for k, v in opts.items() if k.startswith("oracle.")}
        self.oracle = make_verifier(self.oracle_name, oracle_opts)
        if self.oracle.kind != "oracle":
            raise _fail("oracle", f"{self.oracle_name!r} is a {self.oracle.kind}, not an oracle")
        self.requires = tuple(getattr(self.oracle, "requires", ()) or ())

    def dir_name(self) -> str:
        stem = Path(self.ref).stem if self.source in ("model", "scores") else self.ref
        return f"reward-{self.source}-{stem}"

    def check_run(self, problems: list[Problem], samples: pd.DataFrame) -> None:
        """Everything a worker would trip on, checked before any verdict is written."""
        check = getattr(self.oracle, "check_run", None)
        if callable(check):
            check(problems, samples)
        if self.source == "model" and not Path(self.ref).is_dir():
            raise _fail("model", f"{self.ref}: no such model directory")
        if self.source == "scores":
            scores = read_score_file(self.ref, self.column)
            keys = pd.MultiIndex.from_arrays([samples["problem_id"].astype(str),
                                              samples["temperature"].astype(float),
                                              samples["sample_index"].astype(np.int64),
                                              _budgets(samples)])
            missing = ~keys.isin(scores.index)
            if missing.any():
                k = keys[int(np.flatnonzero(missing)[0])]
                raise InputError(f"{self.ref}: no score for sample (problem_id={k[0]!r}, "
                                 f"temperature={k[1]}, sample_index={k[2]})")
        if self.source == "callable":
            load_callable(self.ref)
        if self.source == "command":
            argv = shlex.split(self.ref)
            if not argv or shutil.which(argv[0]) is None:
                raise _fail("command", f"{argv[0] if argv else self.ref!r}: command not found")

    def score(self, problem: Problem, samples: pd.DataFrame) -> np.ndarray:
        """One reward per sample (identical completions scored once)."""
        if self.source == "scores":
            scores = read_score_file(self.ref, self.column)
            keys = pd.MultiIndex.from_arrays([samples["problem_id"].astype(str),
                                              samples["temperature"].astype(float),
                                              samples["sample_index"].astype(np.int64),
                                              _budgets(samples)])
            return scores.reindex(keys).to_numpy(float)
        texts = samples["text"].fillna("").astype(str)
        distinct = list(dict.fromkeys(texts))
        if self.source == "model":
            label = None if self.label < 0 else self.label
            values = model_scores(self.ref, [problem.prompt + t for t in distinct],
                                  device=self.device, label=label, batch_size=self.batch_size,
                                  max_length=self.max_length)
        elif self.source == "callable":
            values = np.asarray(load_callable(self.ref)([problem.prompt] * len(distinct), distinct),
                                dtype=float)
        else:
            values = self._run_command(problem, distinct)
        if values.shape != (len(distinct),):
            raise RuntimeError(f"reward {self.source} {self.ref!r} returned {values.shape[0]} "
                               f"scores for {len(distinct)} completions")
        lookup = dict(zip(distinct, values, strict=True))
        return np.array([lookup[t] for t in texts], dtype=float)

    def _run_command(self, problem: Problem, texts: list[str]) -> np.ndarray:
        lines = "".join(json.dumps({"problem_id": problem.problem_id, "prompt": problem.prompt,
                                    "completion": t}) + "\n" for t in texts)
        proc = subprocess.run(shlex.split(self.ref), input=lines, capture_output=True, text=True,
                              check=False)
        if proc.returncode != 0:
            raise RuntimeError(f"reward command exited {proc.returncode}: "
                               f"{proc.stderr.strip()[-300:]}")
        return np.array([float(x) for x in proc.stdout.split()], dtype=float)

    def verify(self, problem: Problem, samples: pd.DataFrame) -> pd.DataFrame:
        truth = self.oracle.verify(problem, samples)
        return verdict_frame(samples, truth["passed"].to_numpy(bool), score=self.score(problem, samples),
                             answer=truth["answer"].tolist(), status=truth["status"].tolist(),
                             error=truth["error"].tolist())


def _default_device() -> str:
    try:
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"
    except ImportError:
        return "cpu"
