"""The public verbs, one per CLI command: ``ttscale.sample``, ``verify``, ``analyze``, ``compare``,
``forecast``, ``simulate``, ``sweep``, ``report``, ``open_run`` (importable from ``ttscale``).

Each takes plain objects (paths, a counts DataFrame, a :class:`ttscale.runs.Run`) and returns
plain ones (a dataclass, a DataFrame, a path); each raises :class:`ttscale.errors.InputError`
on bad input before anything is written, and ``ttscale <command>`` is flag parsing, one call
here, and printing. Keyword arguments mirror the command's flags (``--n-boot`` -> ``n_boot``);
options a stage grows later pass through ``**options`` to it unchanged. Nothing heavy is
imported until a verb runs.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ttscale.errors import InputError

if TYPE_CHECKING:
    import pandas as pd

    from ttscale.analysis.temperature_view import TemperatureView
    from ttscale.config import SweepConfig
    from ttscale.results import Analysis, Comparison, Simulation
    from ttscale.sampling import SamplingResult
    from ttscale.verification import VerifyResult


def _with_options(cls: type, known: dict[str, Any], extra: dict[str, Any], verb: str) -> Any:
    """``cls(**known, **extra)``; an unknown keyword is an InputError naming the known ones."""
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(extra) - names)
    if unknown:
        raise InputError(f"{verb}: unknown option {unknown[0]!r} (known: {', '.join(sorted(names))})")
    return cls(**known, **extra)


def _load(source: Any, group_by: list[str] | None = None, prompt_tokens: float | None = None,
          output_tokens: float | None = None, allow_stale: bool = False) -> Any:
    """An AnalysisInput from a path (counts table or run directory), a Run or a DataFrame."""
    import pandas as pd

    from ttscale.analysis.inputs import input_from_counts, load_input

    if isinstance(source, pd.DataFrame):
        return input_from_counts(source, group_by, prompt_tokens, output_tokens)
    return load_input(os.fspath(source), group_by, prompt_tokens, output_tokens,
                      allow_stale=allow_stale)


# -- samples ---------------------------------------------------------------------------------
def sample(task: str | None = None, *, out: str | os.PathLike | None = None,
           model: str | None = None, backend: str | None = None, num_samples: int | None = None,
           temperatures: list[float] | str | None = None, num_problems: int | None = None,
           run_dir: str | os.PathLike | None = None, config: str | os.PathLike | None = None,
           task_options: dict[str, Any] | None = None,
           backend_options: dict[str, Any] | None = None, executor: str | None = None,
           executor_options: dict[str, Any] | None = None, progress: bool = True,
           verbose: bool = False, **settings: Any) -> SamplingResult:
    """Draw ``num_samples`` samples per problem and temperature into run directory ``out``.

    Resumable: only the samples the run lacks are drawn (a larger K, more temperatures or more
    problems add to it). ``run_dir`` resumes a run with its own run.json; ``config`` is a YAML
    file with the flags' names as keys; explicit arguments win. ``settings`` takes any other
    field of :class:`ttscale.sampling.SampleSettings` (``max_tokens``, ``top_p``, ``seed``,
    ``prompt_format``, ``from_file`` for ``backend="import"``, ``max_n_per_request``, ...).
    ``backend`` is transformers (default), vllm, openai or import; ``model="embedded"`` is the
    bundled 1M-parameter model. ``executor="ray"`` runs backend replicas on a Ray cluster
    (``executor_options``: address, replicas, num_cpus, num_gpus, ...; see
    ``ttscale.executors``). The backends' own logs (vLLM, transformers) go to
    ``out/logs/backend.log`` (also to stderr with ``verbose``). Returns a
    :class:`ttscale.sampling.SamplingResult`.

    >>> ttscale.sample("arithmetic", model="embedded", num_samples=8, out="runs/a")  # doctest: +SKIP
    """
    from ttscale.logs import third_party_logs
    from ttscale.samples import draw, resolve_settings

    overrides = {"task": task, "model": model, "backend": backend, "num_samples": num_samples,
                 "temperatures": temperatures, "num_problems": num_problems, **settings}
    s, target = resolve_settings(run_dir, config, out, overrides, task_options, backend_options,
                                 executor, executor_options)
    from ttscale.backends.outage import ServerUnavailable

    try:
        with third_party_logs(Path(target) / "logs" / "backend.log", verbose=verbose):
            return draw(s, target, progress=progress)
    except ServerUnavailable as e:  # say what was kept and how to resume
        from ttscale.store import RunDir

        kept = (len(RunDir(target).read_samples(["sample_index"]))
                if (Path(target) / "run.json").is_file() else 0)
        if not kept:
            raise ServerUnavailable(f"{e}; nothing was written: run the same command again when "
                                    "the server is back") from e
        raise ServerUnavailable(f"{e}; the {kept} samples written are kept; when the server is "
                                f"back, resume with: ttscale sample {target} (add --backend-option "
                                "retry_window=600 to wait longer)") from e


# -- verdicts --------------------------------------------------------------------------------
def verify(run: str | os.PathLike, verifier: str, options: dict[str, Any] | None = None, *,
           name: str | None = None, workers: int | None = None, time_limit: float = 60.0,
           time_limit_per_sample: float = 1.0, executor: str = "local",
           executor_options: dict[str, Any] | None = None, progress: bool = True,
           **kwargs: Any) -> VerifyResult:
    """Judge a run directory's samples with one verifier into ``verdicts/<name>/``.

    ``verifier`` is a registered name (``ttscale list verifiers``: ``math``, ``exact``,
    ``unit_tests``, ``majority``, ``imperfect``, ...) with ``options``, or the compact form
    ``"imperfect(base=exact,fpr=0.1)"``. Resumable: samples already verified under that name are
    skipped. ``workers`` processes judge in parallel (0: in this process); each problem gets
    ``time_limit + time_limit_per_sample * n`` seconds. ``executor="ray"`` fans the problems out
    to verifier actors on a Ray cluster (``executor_options``: address, verify_workers,
    num_cpus, max_restarts). Other keywords go to
    :func:`ttscale.verification.verify_run` (``wait=True``: wait for another process verifying
    into the same folder instead of raising; ``on_wait(line)`` is told what it waits for). Returns a :class:`ttscale.verification.VerifyResult`
    (verified, skipped, passed, errors).
    """
    import re

    from ttscale.executors import parse_executor
    from ttscale.progress import progress_bar
    from ttscale.verification import parse_options, verify_run

    if time_limit <= 0 or time_limit_per_sample < 0:
        raise InputError("--time-limit must be positive and --time-limit-per-sample not negative")
    spec = parse_executor(executor, dict(executor_options or {}), "command line")
    m = re.fullmatch(r"([A-Za-z0-9_.-]+)\((.*)\)", verifier.strip())
    if m:
        parsed = parse_options([p for p in m.group(2).split(",") if p.strip()], flag=verifier)
        verifier, options = m.group(1), {**parsed, **(options or {})}
    with progress_bar("verify", "sample", enabled=progress) as bar:
        return verify_run(os.fspath(run), verifier, dict(options or {}), workers=workers,
                          out_name=name, time_limit=time_limit,
                          time_limit_per_sample=time_limit_per_sample, executor=spec,
                          progress=bar, **kwargs)


# -- summaries, curves, fits -----------------------------------------------------------------
def analyze(source: str | os.PathLike | pd.DataFrame, out: str | os.PathLike | None = None, *,
            ks: list[int] | None = None, n_boot: int = 1000, ci: float = 0.95, seed: int = 0,
            ceiling: bool = False, saturation_threshold: float = 1e-4,
            model_shape: str | None = None, max_k: int | None = None,
            group_by: list[str] | None = None, prompt_tokens: float | None = None,
            output_tokens: float | None = None, progress: bool = True,
            allow_stale: bool = False, **options: Any) -> Analysis:
    """Scaling curves (pass@k, maj@k, best-of-k with bootstrap CIs), fitted laws and saturation.

    ``source`` is a counts table (CSV/Parquet path, or a DataFrame with ``problem``,
    ``num_samples``, ``num_correct`` and grouping columns), or a run directory (path or
    :class:`ttscale.runs.Run`) with verdicts. With ``out`` the files of ``ttscale analyze`` are
    written there (curves.parquet, fits.json, costs.parquet, figures/); without, nothing is
    written (``Analysis.save`` writes later). ``group_by`` keeps those grouping columns and
    pools counts over the others; ``model_shape`` (a preset, or ``"auto"``) with the run's
    token counts or ``prompt_tokens``/``output_tokens`` gives the FLOPs axis. A run whose
    verifiers have not judged every sample is refused (``allow_stale`` warns). Further keywords
    are fields of :class:`ttscale.analysis.pipeline.Options`. Returns an :class:`Analysis`
    (``.curves``, ``.fits``, ``.costs`` DataFrames; ``.plot()``, ``.save(dir)``).
    """
    from ttscale.analysis.pipeline import Options
    from ttscale.analysis.pipeline import analyze as run_analysis
    from ttscale.outputs import check_out_dir
    from ttscale.progress import progress_bar
    from ttscale.results import Analysis

    opts = _with_options(Options, dict(
        ks=None if ks is None else [int(k) for k in ks], n_boot=n_boot, ci=ci, seed=seed,
        ceiling=ceiling, saturation_threshold=saturation_threshold, model_shape=model_shape,
        max_k=max_k), options, "analyze")
    if out is not None:
        check_out_dir(out, "out")
    inp = _load(source, group_by, prompt_tokens, output_tokens, allow_stale)
    with progress_bar("analyze", "group", enabled=progress) as bar:
        result = Analysis(run_analysis(inp, opts, progress=bar))
    if out is not None:
        result.save(out)
    return result


def compare(run: str | os.PathLike, verifiers: list[str] | str, *, oracle: str | None = None,
            ks: list[int] | None = None, n_boot: int = 1000, seed: int = 0,
            workers: int | None = None, out: str | os.PathLike | None = None,
            title: str | None = None, progress: bool = True,
            allow_stale: bool = False) -> Comparison:
    """Several verifiers on the same samples, each against the reference oracle.

    ``verifiers``: names, ``name(k=v,...)`` forms, or folders under ``verdicts/`` (a list, or one
    comma-separated string). Missing verdicts are computed first (resumable). The reference
    ``oracle`` defaults to the first oracle listed, else the first imperfect verifier's base,
    else the task's oracle. Oracles give pass@k, majority maj@k, reward best-of-k, imperfect
    verifiers accept@k (resample until accepted; tends to the false-positive ceiling), each
    with a bootstrap CI over problems (``n_boot``, ``seed``) and its fpr/fnr. With ``out`` the
    table and figure are written there. Returns a :class:`Comparison` (``.table``, ``.plot()``).
    """
    from ttscale.analysis.compare import compare_run, split_specs
    from ttscale.outputs import check_out_dir
    from ttscale.results import Comparison

    if n_boot < 0:
        raise InputError(f"--n-boot {n_boot}: must be 0 or more")
    if out is not None:
        check_out_dir(out, "out")
    specs = split_specs(verifiers) if isinstance(verifiers, str) else list(verifiers)
    table = compare_run(os.fspath(run), specs, oracle=oracle, ks=ks, n_boot=n_boot, seed=seed,
                        workers=workers, progress=progress, allow_stale=allow_stale)
    result = Comparison(table, title or f"verifiers on {Path(os.fspath(run)).name}")
    if out is not None:
        result.save(out)
    return result


def forecast_records(source: str | os.PathLike | pd.DataFrame, to: int, *,
                     method: str | list[str] | None = None, from_k: int | None = None,
                     seed: int = 0, group_by: list[str] | None = None,
                     allow_stale: bool = False, level: float = 0.9,
                     n_boot: int = 100) -> list[dict[str, Any]]:
    """:func:`forecast` as a list of dicts, one per (group, method): what ``--json`` prints.

    Keys: the group columns, ``method``, ``k``, ``coverage`` (None where a group has no correct
    sample, and then ``error`` says why), its ``level`` interval ``ci_low``/``ci_high`` with
    ``ci_level``, ``floor_sd``, ``extrapolation_sd`` and ``model_sd`` (null intervals with
    ``n_boot=0``; see :mod:`ttscale.analysis.forecast_interval`), ``extrapolated`` (``to`` beyond
    the samples per problem), ``from_n``, ``from_k``, and ``law_status``, ``law_reasons`` and
    ``law_warnings``: for ``power_law``, the verdict of ``ttscale analyze`` on the power law of
    the group's counts as forecast from (after ``from_k``), ``"rejected"`` where it leaves the
    curve's 95% band (reused from a run directory's fresh ``analysis/fits.json`` of the same
    grouping, else computed: :func:`ttscale.analysis.forecast_law.attach_law`); null for the other
    methods.
    """
    import pandas as pd

    from ttscale.analysis.forecast import forecast_input
    from ttscale.analysis.forecast_interval import forecast_records as with_intervals
    from ttscale.analysis.forecast_law import analysis_verdicts

    src = "<counts>" if isinstance(source, pd.DataFrame) else os.fspath(source)
    if to < 1:
        raise InputError(f"{src}: --to must be at least 1, got {to}")
    inp = _load(source, group_by, allow_stale=allow_stale)
    if not 0 < level < 1:
        raise InputError(f"{src}: --level must be in (0, 1), got {level}")
    if n_boot < 0 or n_boot == 1:
        raise InputError(f"{src}: --n-boot must be 0 (no interval) or at least 2, got {n_boot}")

    def per_group(counts: pd.DataFrame, gcols: list[str], k: int, methods: list[str],
                  where: str) -> list[dict[str, Any]]:
        return with_intervals(counts, gcols, k, methods, where, level, n_boot, seed)

    verdicts = (analysis_verdicts(inp.source / "analysis", inp.state, inp.counts, inp.group_cols)
                if from_k is None else None)
    return forecast_input(inp.counts, inp.group_cols, to, method, from_k, seed, str(src), per_group,
                          verdicts)


def forecast(source: str | os.PathLike | pd.DataFrame, to: int, *,
             method: str | list[str] | None = None, from_k: int | None = None, seed: int = 0,
             group_by: list[str] | None = None, allow_stale: bool = False, level: float = 0.9,
             n_boot: int = 100) -> pd.DataFrame:
    """Forecast coverage at ``k = to`` per group (and method) from the samples drawn, with a
    ``level`` interval (``n_boot`` bootstrap refits; 0: none; see :func:`forecast_records`).

    ``method``: ``power_law`` (default), ``beta``, ``beta_eb``, ``beta_mixture``, ``beta_zi_eb``, a list of them,
    or ``"all"``. ``from_k`` first subsamples each problem to that many samples without
    replacement (a back-test; seeded by ``seed``). Returns one row per (group, method): the group
    columns, ``method``, ``k``, ``coverage`` (NaN where a group has no correct sample; ``error``
    says why), its interval, ``from_k`` and, for ``power_law``, ``law_status`` (``"rejected"``:
    the forecast extrapolates a law the data do not follow), ``law_reasons`` and
    ``law_warnings``. A run whose verifiers have not judged every sample is refused
    (``allow_stale`` warns).
    """
    import pandas as pd

    return pd.DataFrame(forecast_records(source, to, method=method, from_k=from_k, seed=seed,
                                         group_by=group_by, allow_stale=allow_stale,
                                         level=level, n_boot=n_boot))


def temperatures(source: str | os.PathLike, *, ks: list[int] | None = None, n_boot: int = 1000,
                 ci: float = 0.95, seed: int = 0, splits: int = 5,
                 group_by: list[str] | None = None, out: str | os.PathLike | None = None,
                 allow_stale: bool = False) -> TemperatureView:
    """The temperature view: coverage against temperature at fixed k, the best temperature per k.

    ``source`` is a counts table with a ``temperature`` column or a run directory. Returns a
    :class:`ttscale.analysis.temperature_view.TemperatureView` (``by_temperature``: coverage
    per (group, temperature, k) with CIs; ``best``: per (group, k) the best temperature, the gap
    to the runner-up with a paired CI, p_best, and the best split of k samples over temperatures
    with its cross-fitted coverage). ``group_by`` always keeps ``temperature``. With ``out`` the
    files of ``ttscale temperatures --out`` are written.
    """
    from ttscale.analysis.inputs import load_input
    from ttscale.analysis.temperature_view import temperature_view, write_view

    if group_by is not None and "temperature" not in group_by:
        group_by = [*group_by, "temperature"]
    inp = load_input(os.fspath(source), group_by, allow_stale=allow_stale)
    if n_boot < 0 or not 0 < ci < 1 or splits < 1:
        raise InputError(f"{inp.source}: --n-boot must be >= 0, --ci in (0, 1), --splits >= 1")
    view = temperature_view(inp.counts, inp.group_cols, ks, n_boot, ci, seed, splits,
                            source=str(inp.source))
    if out is not None:
        write_view(view, out)
    return view


def simulate(source: str | os.PathLike | pd.DataFrame | None = None, *,
             difficulty: str | None = None, verifier: str | None = None,
             out: str | os.PathLike | None = None, k_max: int = 10_000,
             selection: str = "resample", fpr: float = 0.0, fnr: float = 0.0,
             fp_cost: float = 0.0, cost_per_sample: float = 0.0, allow_stale: bool = False,
             **options: Any) -> Simulation:
    """What-if curves at larger k, with an imperfect verifier, costs; and sample-size planning.

    Difficulty comes from ``source`` (a counts table, DataFrame or run directory: one curve per
    group; ``verifier`` picks a run's oracle verdicts) or ``difficulty="beta:A,B[,zero=Z]"``
    (exactly one). ``selection``: ``resample`` (until a verifier with ``fpr``/``fnr`` accepts),
    ``vote`` or ``best-of-n``. Further keywords (``wrong_answers``, ``reward_separation``,
    ``saturation_threshold``, ``plan_b_precision``, ``plan_problems``, ``plan_samples``,
    ``replicates``, ``seed``; ``ci`` and ``optimal_k_boot``, the level and bootstrap replicates
    of the optimal k's interval ``optimal_k_ci``; ``adaptive=[r, ...]`` with ``min_samples``,
    ``first_round``, ``growth``, ``adaptive_ks``, ``adaptive_problems`` plans a stopping rule) go to
    :func:`ttscale.analysis.simulation.simulate_groups`. With
    ``out`` the files of ``ttscale simulate --out`` are written. Returns a :class:`Simulation`.
    """
    import pandas as pd

    from ttscale.analysis import simulation as sim
    from ttscale.outputs import check_out_dir
    from ttscale.results import Simulation

    if out is not None:
        check_out_dir(out, "out")
    if (source is None) == (difficulty is None):
        raise InputError("simulate: give exactly one of INPUT or --difficulty")
    sim.check_options(fpr=fpr, fnr=fnr, selection=selection, k_max=k_max, fp_cost=fp_cost,
                      cost_per_sample=cost_per_sample, **options)
    if difficulty is not None:
        groups = [({}, sim.parse_difficulty(difficulty), None)]
    else:
        inp = _load(source, allow_stale=allow_stale)
        label = "<counts>" if isinstance(source, pd.DataFrame) else os.fspath(source)
        groups = sim.difficulties_from_counts(inp.counts, inp.group_cols, verifier, str(label))
    try:
        table, summaries, adaptive_plan = sim.simulate_groups(
            groups, k_max=k_max, selection=selection, fpr=fpr, fnr=fnr, fp_cost=fp_cost,
            cost_per_sample=cost_per_sample, **options)
    except TypeError as e:  # an unknown keyword
        raise InputError(f"simulate: {e}") from e
    result = Simulation(table, summaries, adaptive_plan)
    if out is not None:
        result.save(out)
    return result


# -- sweeps and reports ----------------------------------------------------------------------
def _sweep_config(config: str | os.PathLike | dict[str, Any] | SweepConfig) -> tuple[Any, str]:
    from ttscale.config import SweepConfig, load_sweep_config, sweep_config_from_mapping

    if isinstance(config, SweepConfig):
        return config, "sweep config"
    if isinstance(config, dict):
        return sweep_config_from_mapping(config), "sweep config"
    return load_sweep_config(os.fspath(config)), os.fspath(config)


def sweep(config: str | os.PathLike | dict[str, Any] | SweepConfig, *, progress: bool = True,
          log: Any = print, verbose: bool = False) -> Path:
    """Run a whole sweep: sample -> verify -> analyze -> compare -> report, resumably.

    ``config`` is a sweep YAML path, the same fields as a dict, or a
    :class:`ttscale.config.SweepConfig` (``ttscale sweep --help-config`` lists the fields).
    Everything is validated before the first sample; killed and run again it skips what is
    done. ``log`` receives one line per step; the backends' own logs go to
    ``<sweep folder>/logs/backend.log`` (also to stderr with ``verbose``). Returns the sweep folder.
    """
    from ttscale.logs import third_party_logs
    from ttscale.outputs import check_out_dir
    from ttscale.sweeps import run_sweep, sweep_root

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
    from ttscale.sweeps import dry_run, plan

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
    from ttscale.outputs import check_out_file
    from ttscale.reporting import build_report

    check_out_file(out if out is not None else Path(os.fspath(folder)) / "report.html", "out")
    return build_report(os.fspath(folder), out, allow_stale=allow_stale)


def list_plugins(what: str) -> list[tuple[str, str, str]]:
    """(name, kind, description) of every registered ``"tasks"`` or ``"verifiers"``, by name.

    Built-ins and entry-point plugins alike; a verifier's kind is oracle, selector or imperfect.
    """
    from ttscale.registry import describe

    return describe(what)
