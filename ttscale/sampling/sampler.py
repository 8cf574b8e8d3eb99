"""Plan and run repeated sampling into a run directory, resumably.

``run_sampling(settings, out)`` makes (or resumes) RUN_DIR: ``run.json`` (the resolved settings,
their hash, versions, seeds), ``problems.parquet`` and ``samples/part-*.parquet``. It reads the
samples already there, works out for each (problem, temperature) which sample indices of
``0 .. K-1`` are missing, and asks the backend for exactly those: one request per contiguous
missing range, chunked into at most ``max_n_per_request`` samples, with seed
``seed_base(seed, problem, temperature) + first_index``. Each batch the backend finishes is one
atomic shard, so a run killed at any moment restarts with what it lacks: no duplicates, no gaps.
A later call with a larger K, more temperatures or more problems adds only the new samples; any
other change of settings is refused, since the samples on disk would no longer match them.
"""

from __future__ import annotations

import dataclasses
import os
import platform
import sys
import time
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from ttscale.errors import InputError, arg
from ttscale.plugins import Problem, problems_frame
from ttscale.rundir.locks import stage_lock
from ttscale.rundir.outputs import check_run_target, undo_if_nothing_drawn
from ttscale.rundir.store import SAMPLE_SCHEMA, RunDir, config_hash
from ttscale.sampling.adaptive_settings import AdaptiveSettings, check_rule
from ttscale.sampling.backends.base import SEED_STRIDE, Backend, Thinking
from ttscale.sampling.budget_plan import check_budget_settings, check_budgets, thinking_of
from ttscale.sampling.executors import record_faults
from ttscale.sampling.planner import (  # noqa: F401 (contiguous_ranges, missing_indices re-exported)
    RequestList,
    RequestPlan,
    contiguous_ranges,
    missing_indices,
    windows,
)
from ttscale.sampling.prompt_check import check_prompt_lengths

#: backend options that change speed or memory only, never which samples are drawn
PERFORMANCE_OPTIONS = frozenset({
    "batch_size", "max_num_seqs", "gpu_memory_utilization", "device", "enforce_eager",
    "max_num_batched_tokens", "tensor_parallel_size", "swap_space", "concurrency", "max_retries",
    "backoff", "max_backoff", "rate_limit", "burst", "timeout", "api_key", "base_url", "threads",
    "enable_prefix_caching", "requests_per_call", "stream", "stream_every", "max_n_per_request",
    "max_n", "logprobs", "retry_window",
})


class SampleSettings(BaseModel):
    """What to sample: the keys of ``ttscale sample --config FILE`` (flags have the same names)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)  # NaN/inf: never a setting

    backend: Literal["transformers", "vllm", "openai", "import"] = Field(
        "transformers", description="Sampling backend (import: samples you already have, --from FILE).")
    model: str = Field("embedded", description="'embedded' (the shipped model), a Hugging Face id or path, or a served model name.")
    task: str | None = Field(None, description="Registered task (see `ttscale list tasks`); optional for import.")
    task_options: dict[str, Any] = Field(default_factory=dict, description="Task options (key=value).")
    num_problems: int | None = Field(None, gt=0, description="How many problems (default: the task's default).")
    num_samples: int | None = Field(None, gt=0, lt=SEED_STRIDE, description="K: samples per problem and temperature.")
    temperatures: list[float] = Field(default_factory=lambda: [1.0], min_length=1, description="Sampling temperatures (>= 0; 0 is greedy).")
    max_tokens: int = Field(256, gt=0, description="Maximum new tokens per sample.")
    top_p: float = Field(1.0, gt=0, le=1, description="Nucleus sampling threshold.")
    seed: int = Field(0, ge=0, lt=1 << 31, description="Run seed: fixes the seed range of every (problem, temperature).")
    prompt_format: Literal["plain", "chat"] = Field("plain", description="Plain completion prompt, or the task's chat messages.")
    backend_options: dict[str, Any] = Field(default_factory=dict, description="Backend options: batch_size, device, dtype, max_num_seqs, gpu_memory_utilization, ...")
    max_n_per_request: int = Field(256, gt=0, description="Largest n of one request; a larger K is chunked, seeds continuing.")
    from_file: str | None = Field(None, description="import backend: a JSONL of samples or Large Language Monkeys YAML/JSON files.")
    executor: Literal["local", "ray"] = Field("local", description="Where the backend runs: local (this process) or ray (replicas on a Ray cluster; see ttscale.sampling.executors).")
    executor_options: dict[str, Any] = Field(default_factory=dict, description="executor: ray: address, replicas, num_cpus, num_gpus, batch_samples, in_flight, max_restarts.")
    adaptive: AdaptiveSettings | None = Field(None, description="Sample until solved: {successes, min_samples, first_round, growth} (see ttscale.orchestration.adaptive).")
    budgets: list[int] | None = Field(None, description="Thinking budgets in tokens, e.g. [256, 512, 1024]: each trace is drawn once, cut at each budget and its answer forced (see ttscale.sampling.backends.budget_forcing); max_tokens then caps the answer. Unset: no budget axis.")
    think_end: str | None = Field(None, description="With budgets: the string that closes the model's thinking (default: the task's, else '</think>').")
    answer_cue: str | None = Field(None, description="With budgets: appended after think_end to force an answer (default: the task's, else a newline).")

    _budgets = field_validator("budgets")(classmethod(lambda cls, v: check_budgets(v)))

    @field_validator("temperatures")
    @classmethod
    def _temps(cls, v: list[float]) -> list[float]:
        if any(t < 0 for t in v):
            raise ValueError(f"temperature {min(v)} is negative")
        if len(set(v)) != len(v):
            raise ValueError("temperatures repeat")
        return [float(t) for t in v]


def parse_settings(raw: dict[str, Any], source: str) -> SampleSettings:
    """Validate settings; any problem is one InputError naming ``source`` and the field."""
    from ttscale.sampling.executors import parse_executor

    try:
        s = SampleSettings.model_validate(raw)
    except ValidationError as e:
        err = e.errors()[0]
        field = ".".join(str(p) for p in err["loc"]) or "(top level)"
        msg = {"extra_forbidden": "unknown key", "missing": "missing required field"}.get(
            err["type"], err["msg"].removeprefix("Value error, "))
        raise InputError(f"{source}: {field}: {msg}") from e
    parse_executor(s.executor, s.executor_options, source)
    check_budget_settings(s, source)
    return s


def identity(s: SampleSettings) -> dict[str, Any]:
    """The settings that fix which samples are drawn: a resumed run must match them exactly."""
    opts = {k: v for k, v in sorted(s.backend_options.items()) if k not in PERFORMANCE_OPTIONS}
    out = {"backend": s.backend, "model": s.model, "task": s.task, "task_options": s.task_options,
           "max_tokens": s.max_tokens, "top_p": s.top_p, "seed": s.seed,
           "prompt_format": s.prompt_format, "backend_options": opts, "from_file": s.from_file}
    if s.budgets:  # budgets can grow; how an answer is forced cannot (absent: no budget axis)
        out["thinking"] = {"think_end": s.think_end, "answer_cue": s.answer_cue}
    return out


@dataclass
class SamplingResult:
    run_dir: Path
    num_problems: int
    requested: int  # samples asked of the backend in this call
    written: int  # samples written in this call
    total: int  # samples in the run directory now
    seconds: float  # the whole call, model loading included
    output_tokens: int
    sampling_seconds: float = 0.0  # generating and writing shards only
    #: damaged shards this call set aside (``repair=True``): where each went under damaged/
    set_aside: list[Path] = dataclasses.field(default_factory=list)

    @property
    def samples_per_second(self) -> float:
        secs = self.sampling_seconds or self.seconds
        return self.written / secs if secs > 0 else 0.0


# -- planning -------------------------------------------------------------------------------
def plan_requests(problems: list[Problem], s: SampleSettings, existing: pd.DataFrame,
                  stop: tuple[str, ...] = (), thinking: Thinking | None = None
                  ) -> RequestPlan | RequestList:
    """Requests for exactly the missing samples, problem by problem, chunked, seeds continuing:
    a lazily generated :class:`ttscale.sampling.planner.RequestPlan` (memory independent of K).

    With budgets, a list of requests (:class:`RequestList`), each covering a contiguous range of
    indices that lack the same budgets; ``existing`` then needs a ``budget`` column."""
    from ttscale.sampling.planner import plan

    if s.num_samples is None:
        raise InputError("num_samples: missing required field (-k)")
    if s.budgets:
        from ttscale.sampling.budget_plan import plan_budget_requests

        return RequestList(plan_budget_requests(problems, s, existing, stop,
                                                   thinking or thinking_of(s) or Thinking()))
    if "budget" in existing.columns:
        existing = existing[existing["budget"] == 0]
    prompts: dict[str, str | list[dict[str, str]]] = {}
    for p in problems:
        if s.prompt_format == "chat" and not p.messages:
            raise InputError(f"{arg('prompt_format', 'chat')}: task {p.task!r} has no chat form of its prompts")
        prompts[p.problem_id] = p.messages if s.prompt_format == "chat" else p.prompt
    return plan(problems, prompts, existing, s.temperatures, s.num_samples, s.seed,
                s.max_n_per_request, s.max_tokens, tuple(stop), s.top_p)


# -- the run directory ----------------------------------------------------------------------
def locked(run: RunDir) -> AbstractContextManager[Path]:
    """Hold the run directory's ``sampling`` lock (see :func:`ttscale.rundir.locks.stage_lock`)."""
    return stage_lock(run.path, "sampling")


def check_identity(run: RunDir, s: SampleSettings, old: dict[str, Any] | None = None) -> None:
    """InputError when ``s`` changes a setting that fixes which samples are drawn."""
    old = run.read_config() if old is None else old
    if not old:
        return
    theirs = old.get("identity", {})
    for key, value in identity(s).items():
        if theirs.get(key) != value:
            raise InputError(f"{run.run_json}: field '{key}' is {theirs.get(key)!r} in this run, not "
                             f"{value!r}: use another {arg('out')} (only K, temperatures and problems can grow)")


def check_resume(run: RunDir, s: SampleSettings, problems: pd.DataFrame) -> dict[str, Any]:
    """The stored run.json, after checking that ``s`` only extends it (InputError otherwise)."""
    old = run.read_config()
    if not run.has_samples():
        return {}  # nothing drawn yet, so nothing is fixed: the settings may still change
    if not old:
        raise InputError(f"{run.run_json}: missing, but {run.samples_dir} holds samples")
    check_identity(run, s, old)
    where = str(run.run_json)
    check_rule(old, s, where)
    if s.num_samples is not None and old.get("num_samples") and s.num_samples < old["num_samples"]:
        raise InputError(f"{where}: field 'num_samples': this run has K={old['num_samples']}, "
                         f"asked {s.num_samples} (K can only grow)")
    dropped = [t for t in old.get("temperatures", []) if float(t) not in s.temperatures]
    if dropped:
        raise InputError(f"{where}: field 'temperatures': this run also has {dropped} (temperatures can only be added)")
    gone = [b for b in old.get("budgets") or [] if int(b) not in (s.budgets or [])]
    if gone:
        raise InputError(f"{where}: field 'budgets': this run also has {gone} (budgets can only be added)")
    if run.problems_path.is_file():
        stored = run.read_problems()
        if len(problems) < len(stored):
            raise InputError(f"{where}: field 'num_problems': this run has {len(stored)} problems, "
                             f"asked {len(problems)} (problems can only be added)")
        head = problems.iloc[: len(stored)].reset_index(drop=True)
        cols = ["problem_id", "prompt", "reference"]
        if not head[cols].astype(str).equals(stored[cols].reset_index(drop=True).astype(str)):
            raise InputError(f"{run.problems_path}: the task now gives other problems than this run holds")
    return old


def versions() -> dict[str, str]:
    import numpy
    import pyarrow

    from ttscale import __version__

    return {"ttscale": __version__, "python": platform.python_version(), "numpy": numpy.__version__,
            "pandas": pd.__version__, "pyarrow": pyarrow.__version__}


def run_record(s: SampleSettings, old: dict[str, Any], backend_info: dict[str, Any] | None,
               num_problems: int, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """The run.json of a sampling run: the settings at the top level (as the report reads them)."""
    now = datetime.now(UTC).isoformat(timespec="seconds")
    ident = identity(s)
    rec = {**old, **s.model_dump(), "num_problems": num_problems}
    if "backend_options" in old:  # a resume's speed options hold for that call, not for the run
        rec["backend_options"] = old["backend_options"]
    rec["temperatures"] = sorted(set(map(float, old.get("temperatures", []))) | set(s.temperatures))
    if s.budgets:
        rec["budgets"] = sorted(set(map(int, old.get("budgets") or [])) | set(s.budgets))
    rec.update(identity=ident, config_hash=config_hash(ident), created=old.get("created", now), updated=now,
               versions=versions(),
               seeds={"run_seed": s.seed, "scheme": "seed of sample j of (problem, temperature) = "
                      "ttscale.sampling.backends.base.seed_base(run_seed, problem_id, temperature) + j"})
    if backend_info is not None:
        rec["backend_info"] = backend_info
    rec.update(extra or {})
    return rec


def samples_frame(samples: list[Any]) -> pd.DataFrame:
    cols = [f.name for f in SAMPLE_SCHEMA]
    return pd.DataFrame([dataclasses.astuple(x) for x in samples], columns=cols)


# -- running --------------------------------------------------------------------------------
def load_problems(s: SampleSettings) -> tuple[list[Problem], tuple[str, ...]]:
    """The task's problems and its stop strings (InputError for an unknown task or bad option)."""
    problems, stop, _ = load_task(s)
    return problems, stop


def load_task(s: SampleSettings) -> tuple[list[Problem], tuple[str, ...], Any]:
    """The task's problems, its stop strings and the task itself."""
    from ttscale.core.registry import tasks

    if not s.task:
        raise InputError(f"{arg('task')}: missing (see `ttscale list tasks`)")
    cls = tasks.get(s.task)
    try:
        task = cls(**s.task_options)
        problems = task.problems(s.num_problems, s.seed)
    except (TypeError, ValueError) as e:
        raise InputError(f"{arg('task_options', flag='--task-option')}: task {s.task!r} rejects options {s.task_options} "
                         f"({type(e).__name__}: {e})") from e
    if not problems:
        raise InputError(f"{arg('task', s.task)}: the task gave no problems")
    return problems, tuple(getattr(task, "stop", ()) or ()), task


def run_sampling(settings: SampleSettings, out: str | os.PathLike, backend: Backend | None = None,
                 progress: bool = True) -> SamplingResult:
    """Sample into ``out`` until every (problem, temperature) has K samples; see the module doc.

    ``backend`` may be given ready-made (tests, sweeps that keep one engine for several runs);
    otherwise it is built from the settings, and only if something is missing.
    """
    if settings.backend == "import":
        raise InputError("backend 'import' generates nothing: use ttscale.orchestration.samples.draw "
                         "(ttscale sample --backend import), which imports --from FILE")
    if settings.adaptive is not None:
        raise InputError("adaptive sampling runs in rounds: use ttscale.orchestration.samples.draw "
                         "(ttscale sample, ttscale.sample), which runs ttscale.orchestration.adaptive")
    if settings.num_samples is None:
        raise InputError("num_samples: missing required field (-k)")
    from ttscale.sampling.executors import executor_of

    executor_of(settings)  # a bad executor option: an error before anything is loaded
    from ttscale.sampling.backends.options import check_options

    try:  # a bad backend option too
        check_options(settings.backend, dict(settings.backend_options or {}))
    except ValueError as e:
        raise InputError(str(e)) from None
    t0 = time.time()
    run = RunDir(out)
    if run.path.is_dir() and run.has_samples():  # a changed task or model: said before loading it
        check_identity(run, settings)
    problems, stop, task = load_task(settings)
    thinking = thinking_of(settings, task)
    check_budget_settings(settings, "settings")
    check_prompt_lengths(problems, settings.backend, settings.model, settings.prompt_format == "chat")
    frame = problems_frame(problems)
    check_run_target(run.path)
    created = not run.path.exists()
    if run.path.is_dir():  # checked before anything is created or loaded
        check_resume(run, settings, frame)
    # the lock before the backend is built: a refused second sampler loads no model
    with undo_if_nothing_drawn(run.path, created), locked(run):
        old = check_resume(run, settings, frame)
        existing = run.read_samples(["problem_id", "temperature", "budget", "sample_index"])
        requests = plan_requests(problems, settings, existing, stop, thinking)
        owned = backend is None
        if backend is None and requests:
            from ttscale.sampling.executors import (
                make_backend,  # local: in this process; ray: replicas
            )

            if progress and sys.stderr.isatty():  # loading takes 10-40 s before the first sample
                print(f"sampling: loading {settings.model} ({settings.backend} backend)...",
                      file=sys.stderr, flush=True)
            backend = make_backend(settings)
        if backend is not None and hasattr(backend, "validate"):  # bad prompts: nothing written
            try:
                backend.validate(requests.distinct())  # the prompts: one per (problem, temperature)
            except InputError:
                if owned:
                    backend.close()
                raise
        info = dataclasses.asdict(backend.info()) if backend is not None else old.get("backend_info")
        run.write_problems(frame)
        run.write_config(run_record(settings, old, info, len(problems)))
        written, tokens = 0, 0
        t_sample = time.time()
        decoded0 = getattr(backend, "decoded_tokens", None)
        try:
            written, tokens = _drain(run, backend, requests, progress) if requests else (0, 0)
        finally:
            if owned and backend is not None:
                backend.close()
            faults = record_faults(run, backend)
        seconds, t_sample = time.time() - t0, time.time() - t_sample
        total = len(run.read_samples(["sample_index"]))
        stats = {"last_call": {"samples": written, "backend_options": settings.backend_options,
                               "seconds": round(seconds, 3),
                               "sampling_seconds": round(t_sample, 3), "output_tokens": tokens,
                               **({"executor_faults": faults} if faults else {})}}
        if settings.budgets and isinstance(decoded0, int):  # a trace shared by budgets counts once
            stats["last_call"]["generated_tokens"] = int(backend.decoded_tokens) - decoded0
        run.write_config(run_record(settings, run.read_config(), info, len(problems), stats))
    return SamplingResult(run.path, len(problems), requests.samples, written, total, seconds,
                          tokens, t_sample)


def _drain(run: RunDir, backend: Backend, requests: RequestPlan, progress: bool) -> tuple[int, int]:
    """Write each batch the backend yields as one shard; returns (samples, output tokens)."""
    from tqdm import tqdm

    if not hasattr(requests, "samples"):  # a plain list (adaptive rounds)
        requests = RequestList(requests)
    total = requests.samples
    written = tokens = 0
    start = time.time()
    with tqdm(total=total, unit="sample", file=sys.stderr, disable=not progress,
              dynamic_ncols=True, desc="sampling") as bar:
        for batch in (b for window in windows(backend, requests) for b in backend.generate(window)):
            if not batch:
                continue
            run.write_samples(samples_frame(batch))
            written += len(batch)
            tokens += sum(max(0, x.num_output_tokens) for x in batch)
            bar.update(len(batch))
            note = getattr(backend, "progress_note", None)  # per replica, on a cluster
            bar.set_postfix_str(f"{tokens / max(1e-9, time.time() - start):.0f} tok/s"
                                + (f" {note()}" if callable(note) else ""), refresh=False)
    if written != total:
        raise InputError(f"backend {backend.name}: returned {written} samples of the {total} asked; "
                         f"the {written} written are kept, run again to resume")
    return written, tokens
