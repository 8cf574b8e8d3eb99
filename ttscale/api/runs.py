"""The verbs that make and drive runs: ``sample``, ``verify``, ``sweep`` (and ``sweep_plan``),
``report`` and ``list_plugins``; see :mod:`ttscale.api`."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ttscale.api.checks import check_source
from ttscale.errors import InputError, arg

if TYPE_CHECKING:

    from ttscale.orchestration.config import SweepConfig
    from ttscale.sampling.sampler import SamplingResult
    from ttscale.verification.verify import VerifyResult


def sample(task: str | None = None, *, out: str | os.PathLike | None = None,
           model: str | None = None, backend: str | None = None, num_samples: int | None = None,
           temperatures: list[float] | str | None = None, num_problems: int | None = None,
           run_dir: str | os.PathLike | None = None, config: str | os.PathLike | None = None,
           task_options: dict[str, Any] | None = None,
           backend_options: dict[str, Any] | None = None, executor: str | None = None,
           executor_options: dict[str, Any] | None = None, progress: bool = True,
           verbose: bool = False, budgets: list[int] | str | None = None, repair: bool = False,
           **settings: Any) -> SamplingResult:
    """Draw ``num_samples`` samples per problem and temperature into run directory ``out``.

    Resumable: only the samples the run lacks are drawn (a larger K, more temperatures or more
    problems add to it). ``run_dir`` resumes a run with its own run.json; ``config`` is a YAML
    file with the flags' names as keys; explicit arguments win. ``settings`` takes any other
    field of :class:`ttscale.sampling.sampler.SampleSettings` (``max_tokens``, ``top_p``, ``seed``,
    ``prompt_format``, ``from_file`` for ``backend="import"``, ``max_n_per_request``, ...).
    ``budgets`` (e.g. ``[256, 512, 1024]`` or ``"256,512,1024"``) adds the thinking-budget axis:
    each trace is drawn once and cut at every budget, its answer forced there (``think_end`` and
    ``answer_cue`` say how; see ``ttscale.sampling.backends.budget_forcing``); budgets can be
    added to a run later, like temperatures.
    ``backend`` is transformers (default), vllm, openai or import; ``model="embedded"`` is the
    bundled 1M-parameter model. ``executor="ray"`` runs backend replicas on a Ray cluster
    (``executor_options``: address, replicas, num_cpus, num_gpus, ...; see
    ``ttscale.sampling.executors``). The backends' own logs (vLLM, transformers) go to
    ``out/logs/backend.log`` (also to stderr with ``verbose``). ``repair`` first sets aside
    the run's damaged sample shards (under ``damaged/``, see :mod:`ttscale.rundir.damage`), so
    that this call draws their samples again, with the same seeds. Returns a
    :class:`ttscale.sampling.sampler.SamplingResult` (``set_aside``: the shards moved).

    >>> ttscale.sample("arithmetic", model="embedded", num_samples=8, out="runs/a")  # doctest: +SKIP
    """
    from ttscale.core.logs import third_party_logs
    from ttscale.orchestration.samples import draw, resolve_settings

    overrides = {"task": task, "model": model, "backend": backend, "num_samples": num_samples,
                 "temperatures": temperatures, "num_problems": num_problems, "budgets": budgets,
                 **settings}
    s, target = resolve_settings(run_dir, config, out, overrides, task_options, backend_options,
                                 executor, executor_options)
    from ttscale.sampling.backends.outage import ServerUnavailable

    moved = _repair_samples(Path(target)) if repair else []
    try:
        with third_party_logs(Path(target) / "logs" / "backend.log", verbose=verbose):
            result = draw(s, target, progress=progress)
            result.set_aside = moved
            return result
    except ServerUnavailable as e:  # say what was kept and how to resume
        from ttscale.rundir.store import RunDir

        kept = (len(RunDir(target).read_samples(["sample_index"]))
                if (Path(target) / "run.json").is_file() else 0)
        if not kept:
            raise ServerUnavailable(f"{e}; nothing was written: run the same command again when "
                                    "the server is back") from e
        raise ServerUnavailable(f"{e}; the {kept} samples written are kept; when the server is "
                                f"back, resume with: ttscale sample {target} (add --backend-option "
                                "retry_window=600 to wait longer)") from e
    except InputError as e:
        if not getattr(e, "resumable", False):  # the cluster lost every replica (ClusterLost)
            raise
        from ttscale.rundir.store import RunDir

        kept = (len(RunDir(target).read_samples(["sample_index"]))
                if (Path(target) / "run.json").is_file() else 0)
        raise type(e)(f"{e} ({kept} in the run): resume with: ttscale sample {target}") from None


def _repair_samples(target: Path) -> list[Path]:
    """Set aside the damaged shards of ``target/samples`` under the sampling lock."""
    from ttscale.rundir.locks import stage_lock
    from ttscale.rundir.store import SAMPLE_SCHEMA, repair_folder

    if not (target / "samples").is_dir():
        return []
    with stage_lock(target, "sampling"):
        return repair_folder(target / "samples", SAMPLE_SCHEMA)


def verify(run: str | os.PathLike, verifier: str, options: dict[str, Any] | None = None, *,
           name: str | None = None, workers: int | None = None, time_limit: float = 60.0,
           time_limit_per_sample: float = 1.0, executor: str = "local",
           executor_options: dict[str, Any] | None = None, progress: bool = True,
           repair: bool = False, **kwargs: Any) -> VerifyResult:
    """Judge a run directory's samples with one verifier into ``verdicts/<name>/``.

    ``verifier`` is a registered name (``ttscale list verifiers``: ``math``, ``exact``,
    ``unit_tests``, ``majority``, ``imperfect``, ...) with ``options``, or the compact form
    ``"imperfect(base=exact,fpr=0.1)"``. Resumable: samples already verified under that name are
    skipped. ``workers`` processes judge in parallel (0: in this process); each problem gets
    ``time_limit + time_limit_per_sample * n`` seconds. ``executor="ray"`` fans the problems out
    to verifier actors on a Ray cluster (``executor_options``: address, verify_workers,
    num_cpus, max_restarts). Other keywords go to
    :func:`ttscale.verification.verify.verify_run` (``wait=True``: wait for another process verifying
    into the same folder instead of raising; ``on_wait(line)`` is told what it waits for). Returns a :class:`ttscale.verification.verify.VerifyResult`
    (verified, skipped, passed, errors). ``repair`` first sets aside the folder's damaged
    verdict shards (under ``damaged/``, :mod:`ttscale.rundir.damage`) and judges their samples
    again (``set_aside`` in the result).
    """
    import re

    from ttscale.core.progress import progress_bar
    from ttscale.sampling.executors import parse_executor
    from ttscale.verification.verify import parse_options, verify_run

    if time_limit <= 0 or time_limit_per_sample < 0:
        raise InputError(f"{arg('time_limit')} must be positive and {arg('time_limit_per_sample')} not negative")
    check_source(run, "verify", frames=False)
    spec = parse_executor(executor, dict(executor_options or {}), "verify")
    if not isinstance(verifier, str) or not verifier.strip():
        raise InputError(f"verify: verifier={verifier!r}: expected a registered name, e.g. 'exact'")
    m = re.fullmatch(r"([A-Za-z0-9_.-]+)\((.*)\)", verifier.strip())
    if m is None and ("(" in verifier or ")" in verifier):
        raise InputError(f"verifier {verifier!r}: unbalanced parentheses (the form is "
                         "NAME(KEY=VALUE,...), e.g. imperfect(base=exact,fpr=0.1))")
    if m:
        parsed = parse_options([p for p in m.group(2).split(",") if p.strip()], flag=verifier)
        verifier, options = m.group(1), {**parsed, **(options or {})}
    from contextlib import nullcontext

    from ttscale.core.logs import third_party_logs

    logs = nullcontext() if spec.is_local else third_party_logs(  # Ray's own output: to the run's log
        Path(run) / "logs" / "backend.log")
    with logs, progress_bar("verify", "sample", enabled=progress) as bar:
        return verify_run(os.fspath(run), verifier, dict(options or {}), workers=workers,
                          out_name=name, time_limit=time_limit,
                          time_limit_per_sample=time_limit_per_sample, executor=spec,
                          progress=bar, repair=repair, **kwargs)


def _sweep_config(config: str | os.PathLike | dict[str, Any] | SweepConfig) -> tuple[Any, str]:
    from ttscale.orchestration.config import (
        SweepConfig,
        load_sweep_config,
        sweep_config_from_mapping,
    )

    if isinstance(config, SweepConfig):
        return config, "sweep config"
    if isinstance(config, dict):
        return sweep_config_from_mapping(config), "sweep config"
    return load_sweep_config(os.fspath(config)), os.fspath(config)


def sweep(config: str | os.PathLike | dict[str, Any] | SweepConfig, *, progress: bool = True,
          log: Any = print, verbose: bool = False) -> Path:
    """Run a whole sweep: sample -> verify -> analyze -> compare -> report, resumably.

    ``config`` is a sweep YAML path, the same fields as a dict, or a
    :class:`ttscale.orchestration.config.SweepConfig` (``ttscale sweep --help-config`` lists the fields).
    Everything is validated before the first sample; killed and run again it skips what is
    done. ``log`` receives one line per step; the backends' own logs go to
    ``<sweep folder>/logs/backend.log`` (also to stderr with ``verbose``). Returns the sweep folder.
    """
    from ttscale.core.logs import third_party_logs
    from ttscale.orchestration.sweeps import run_sweep, sweep_root
    from ttscale.rundir.outputs import check_out_dir

    cfg, source = _sweep_config(config)
    root = check_out_dir(sweep_root(cfg), f"{source}: out")
    with third_party_logs(root / "logs" / "backend.log", verbose=verbose):
        return run_sweep(cfg, source, progress=progress, log=log)


def sweep_plan(config: str | os.PathLike | dict[str, Any] | SweepConfig) -> list[dict[str, Any]]:
    """The sweep's grid without running it (``ttscale sweep --dry-run``): one dict per cell.

    Keys: model, task, problems, temperatures, k, samples, done, to_sample,
    est_output_tokens, est_prompt_tokens, est_flops (None when the model's shape is unknown),
    verifiers, and ``note`` where a model could not be checked (e.g. the hub is offline).
    ``pandas.DataFrame(ttscale.sweep_plan(cfg))`` makes it a table.
    """
    from ttscale.orchestration.sweeps import dry_run, plan

    cfg, source = _sweep_config(config)
    notes: dict[str, str] = {}
    rows = dry_run(cfg, plan(cfg, source, notes=notes))
    for row in rows:
        if row["model"] in notes:
            row["note"] = notes[row["model"]]
    return rows


def report(folder: str | os.PathLike, out: str | os.PathLike | None = None, *,
           allow_stale: bool = False) -> Path:
    """Write one self-contained HTML page (figures embedded) for a run directory or a sweep.

    ``out`` defaults to ``folder/report.html``; the analysis must have run, and be no older than
    the samples and verdicts (``allow_stale`` marks stale sections instead). Returns its path.
    """
    from ttscale.reporting.html import build_report
    from ttscale.rundir.outputs import check_out_file

    check_source(folder, "report", frames=False)
    check_out_file(out if out is not None else Path(os.fspath(folder)) / "report.html", "out")
    return build_report(os.fspath(folder), out, allow_stale=allow_stale)


def list_plugins(what: str) -> list[tuple[str, str, str]]:
    """(name, kind, description) of every registered ``"tasks"`` or ``"verifiers"``, or of the
    sampling ``"backends"`` (kind ``backend``; their options: ``ttscale list backends``), by name.

    Built-ins and entry-point plugins alike; a verifier's kind is oracle, selector or imperfect.
    """
    if what == "backends":
        from ttscale.sampling.backends.options import BACKENDS

        rows = [(name, "backend", desc) for name, (desc, _) in BACKENDS.items()]
        return sorted([*rows, ("import", "backend", "samples you already have (from a file)")])
    if what not in ("tasks", "verifiers"):
        raise InputError(f"list_plugins: what={what!r}: expected 'tasks', 'verifiers' or 'backends'")
    from ttscale.core.registry import describe

    return describe(what)
