"""Sweeps: models x tasks, each cell sampled at every temperature, verified, analysed, plotted.

The sweep folder (``results/<name>`` by default) holds ``sweep.json`` (the resolved config and
its hash), one run directory per cell at ``<model>/<task>/``, a cross-cell figure under
``figures/`` and ``report.html``. Every stage is resumable and skips what is done: sampling
draws only missing samples (the run directory's contract), verification only unverified
samples, and analysis/compare/report are cheap and redone from the verdicts. A sweep killed at
any point and started again ends with the same results as one that was never interrupted.

Everything is validated before the first sample is drawn: the config's fields, the task and
verifier names, that each verifier fits its task, and that each model exists.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ttscale.errors import InputError
from ttscale.orchestration.config import ModelSpec, SweepConfig, TaskSpec, VerifierSpec
from ttscale.rundir.locks import stage_lock
from ttscale.rundir.store import RunDir, atomic_write_json, config_hash


@dataclass
class Cell:
    model: ModelSpec
    task: TaskSpec
    verifiers: list[VerifierSpec]
    run_dir: Path


def sweep_root(cfg: SweepConfig) -> Path:
    return Path(cfg.out) if cfg.out else Path("results") / cfg.name


def verifier_label(spec: VerifierSpec) -> str:
    """Folder of a verifier's verdicts: its label, or its name and options."""
    from ttscale.verification.verify import make_verifier, verdict_name

    return spec.label or verdict_name(make_verifier(spec.name, dict(spec.options)))


def _fits(task_cls: Any, spec: VerifierSpec) -> bool:
    fitting = tuple(getattr(task_cls, "verifiers", ()) or ())
    if spec.name == "imperfect":  # an imperfect verifier fits where its base verifier fits
        return str(spec.options.get("base", "exact")) in fitting
    return spec.name in fitting


def _check_model(m: ModelSpec, where: str, unreachable_ok: bool = False) -> str | None:
    """InputError where the model is surely missing; with ``unreachable_ok``, a note (returned)
    where only the hub could not be asked (offline), else None."""
    from ttscale.sampling.backends.transformers_backend import EMBEDDED_NAMES, resolve_model

    if m.backend in ("openai", "import"):
        return
    from ttscale.core.models import shipped_model

    if m.model in EMBEDDED_NAMES or shipped_model(m.model) is not None:
        try:
            resolve_model(m.model)
        except InputError as e:
            raise InputError(f"{where}.model: {e}") from e
        return
    if Path(m.model).expanduser().is_dir():
        if m.backend in ("transformers", "vllm") and not (Path(m.model).expanduser() / "config.json").is_file():
            raise InputError(f"{where}.model: {m.model!r} has no config.json (not a Hugging Face model folder)")
        return
    looks_local = m.model.startswith((".", "/", "~")) or m.model.count("/") != 1
    if looks_local:
        raise InputError(f"{where}.model: {m.model!r} is not a folder (and not a Hugging Face id)")
    try:  # a Hugging Face id: in the local cache, or known to the hub
        from huggingface_hub import try_to_load_from_cache

        if isinstance(try_to_load_from_cache(m.model, "config.json"), str):
            return None
        from huggingface_hub import model_info

        model_info(m.model, timeout=10)
    except Exception as e:  # noqa: BLE001 - any failure means we cannot find it
        from huggingface_hub.errors import RepositoryNotFoundError

        if unreachable_ok and not isinstance(e, RepositoryNotFoundError):
            return (f"model {m.model!r} not checked: not in the local cache and the hub does not "
                    f"answer ({type(e).__name__}); FLOPs from analysis.model_shape or a preset of "
                    "that name, if any")
        raise InputError(f"{where}.model: {m.model!r} is not a local folder, not in the Hugging Face "
                         f"cache, and the hub does not answer for it ({type(e).__name__})") from e


def plan(cfg: SweepConfig, source: str, notes: dict[str, str] | None = None) -> list[Cell]:
    """Validate names, fits and models; return the grid's cells (nothing is written).

    Given a ``notes`` dict (a dry run), a model the hub cannot be asked about (offline) is a
    note there (model label -> text) instead of an error."""
    from ttscale.core.registry import tasks, verifiers
    from ttscale.sampling.executors import parse_executor

    parse_executor(cfg.executor, cfg.executor_options, source)

    for i, v in enumerate(cfg.verifiers):
        try:
            verifiers.get(v.name)
        except InputError as e:
            raise InputError(f"{source}: verifiers[{i}].name: {e}") from e
        try:
            verifier_label(v)  # validates the options
        except InputError as e:
            raise InputError(f"{source}: verifiers[{i}].options: {e}") from e
    by_name = {v.name: v for v in cfg.verifiers} | {verifier_label(v): v for v in cfg.verifiers}
    cells = []
    root = sweep_root(cfg)
    for j, t in enumerate(cfg.tasks):
        try:
            task_cls = tasks.get(t.name)
        except InputError as e:
            raise InputError(f"{source}: tasks[{j}].name: {e}") from e
        try:
            task_cls(**t.options)  # checks the option names; problems are loaded later
        except InputError as e:
            raise InputError(f"{source}: tasks[{j}].options: {e}") from e
        if t.verifiers is not None:
            unknown = [v for v in t.verifiers if v not in by_name]
            if unknown:
                raise InputError(f"{source}: tasks[{j}].verifiers: {unknown[0]!r} is not in the sweep's verifiers")
            chosen = [by_name[v] for v in t.verifiers]
        else:
            chosen = list(cfg.verifiers)
        for v in chosen:
            if not _fits(task_cls, v):
                idx = cfg.verifiers.index(v)
                fitting = ", ".join(getattr(task_cls, "verifiers", ()))
                raise InputError(f"{source}: verifiers[{idx}]: {v.name!r} does not fit task "
                                 f"{t.name!r} (fitting: {fitting}); list it under tasks[].verifiers")
        for m in cfg.models:
            cells.append(Cell(m, t, chosen, root / m.label / t.key))
    for i, m in enumerate(cfg.models):
        note = _check_model(m, f"{source}: models[{i}]", unreachable_ok=notes is not None)
        if note and notes is not None:
            notes[m.label] = note
    return cells


def sample_settings(cfg: SweepConfig, cell: Cell) -> Any:
    from ttscale.sampling.sampler import parse_settings

    raw = {
        "backend": cell.model.backend, "model": cell.model.model, "task": cell.task.name,
        "task_options": dict(cell.task.options), "num_problems": cell.task.num_problems,
        "num_samples": cfg.num_samples, "temperatures": list(cfg.temperatures),
        "max_tokens": cfg.max_tokens, "top_p": cfg.top_p, "seed": cfg.seed,
        "prompt_format": cell.task.prompt_format,
        "executor": cfg.executor, "executor_options": dict(cfg.executor_options),
    }
    opts = dict(cell.model.options)
    if cell.model.backend == "import":
        raw["from_file"] = opts.pop("from_file", None)
    raw["backend_options"] = opts
    budgets = cell.model.budgets if cell.model.budgets is not None else cfg.budgets
    if budgets:  # the thinking-budget axis (a model's own budgets win; [] is none)
        raw.update(budgets=list(budgets), think_end=cell.model.think_end, answer_cue=cell.model.answer_cue)
    if cfg.adaptive is not None:  # the stopping rule, checked against K before anything runs
        raw["adaptive"] = cfg.adaptive.model_dump()
        cfg.adaptive.rule().check(cfg.num_samples, where="sweep: adaptive")
    return parse_settings(raw, f"sweep cell {cell.model.label}/{cell.task.key}")


def dry_run(cfg: SweepConfig, cells: list[Cell]) -> list[dict[str, Any]]:
    """One row per cell: samples wanted, done, and estimated tokens and FLOPs of what is left."""
    from ttscale.core.registry import tasks

    rows = []
    for cell in cells:
        task = tasks.get(cell.task.name)(**cell.task.options)
        problems = task.problems(cell.task.num_problems, cfg.seed)
        budgets = cell.model.budgets if cell.model.budgets is not None else cfg.budgets
        wanted = len(problems) * len(cfg.temperatures) * cfg.num_samples * max(1, len(budgets or []))
        run = RunDir(cell.run_dir)
        done_df = None
        if run.has_samples():  # only samples this config wants: its problems, temperatures, k
            done_df = run.read_samples(["problem_id", "temperature", "budget", "sample_index",
                                        "num_output_tokens"])
            done_df = done_df[done_df["problem_id"].isin({p.problem_id for p in problems})
                              & done_df["temperature"].isin([float(t) for t in cfg.temperatures])
                              & done_df["budget"].isin(budgets or [0])
                              & (done_df["sample_index"] < cfg.num_samples)]
        done = 0 if done_df is None else len(done_df)
        out_tokens = (float(done_df["num_output_tokens"].mean()) if done else float(cfg.max_tokens))
        prompt_chars = sum(len(p.prompt) for p in problems) / max(len(problems), 1)
        left = max(wanted - done, 0)
        pairs_left = len(problems) * len(cfg.temperatures)  # (problem, T) still lacking samples
        if done_df is not None:
            full = done_df.groupby(["problem_id", "temperature"]).size()
            pairs_left -= int((full >= cfg.num_samples * max(1, len(budgets or []))).sum())
        row = {"model": cell.model.label, "task": cell.task.key, "problems": len(problems),
               "temperatures": len(cfg.temperatures), "k": cfg.num_samples, "samples": wanted,
               "done": done, "to_sample": left,
               "est_output_tokens": int(left * out_tokens),
               "est_prompt_tokens": int(prompt_chars / 4 * pairs_left),
               "verifiers": ",".join(verifier_label(v) for v in cell.verifiers)}
        flops = _flops_per_token(cell.model, cfg.analysis.model_shape)
        tokens = row["est_output_tokens"] + row["est_prompt_tokens"]
        row["est_flops"] = float(flops * tokens) if flops and tokens else (0.0 if not tokens else None)
        rows.append(row)
    return rows


def _flops_per_token(m: ModelSpec, model_shape: str | None = None) -> float | None:
    """2 * params (Large Language Monkeys' FLOPs per token, context term left out): from the
    analysis' ``model_shape`` (a preset, a folder, a cached hub config; "auto" or unset: the
    model's name), else from the model's own config.json where it can be found offline."""
    from ttscale.analysis.costs.model_shape import find_shape

    for name in ([model_shape] if model_shape and model_shape != "auto" else []) + [m.model]:
        try:
            found = find_shape(name)
        except Exception:  # noqa: BLE001 - an unreadable config: try the next source
            found = None
        if found is not None:
            return 2.0 * float(found[0].num_params)
    try:
        from ttscale.sampling.backends.transformers_backend import resolve_model

        path = Path(resolve_model(m.model))
        cfg = json.loads((path / "config.json").read_text())
    except Exception:  # noqa: BLE001 - unknown shape: no estimate
        return None
    h, layers = cfg.get("hidden_size"), cfg.get("num_hidden_layers")
    inter, vocab = cfg.get("intermediate_size"), cfg.get("vocab_size")
    if not all((h, layers, inter, vocab)):
        return None
    params = layers * (4 * h * h + 3 * h * inter) + vocab * h
    return 2.0 * params


def run_sweep(cfg: SweepConfig, source: str, progress: bool = True, log: Any = print) -> Path:
    """Sample, verify, analyse and compare every cell, then the sweep figure and the report.

    Holds the sweep folder's ``sweep`` lock: a second sweep on the same folder raises
    :class:`ttscale.rundir.locks.StageBusy` (one line, exit 2) before it writes anything."""
    from ttscale.rundir.outputs import check_out_dir
    from ttscale.sampling.executors import keep_connected, parse_executor

    check_out_dir(sweep_root(cfg), f"{source}: out")
    cells = plan(cfg, source)
    settings = [sample_settings(cfg, c) for c in cells]  # validates before anything is written
    executor = parse_executor(cfg.executor, cfg.executor_options, source)
    if not executor.is_local:
        from ttscale.sampling.executors.cluster import require_ray

        require_ray()  # the ray extra missing: one line, before the sweep folder is made
    root = sweep_root(cfg)
    root.mkdir(parents=True, exist_ok=True)
    with stage_lock(root, "sweep"):  # a second sweep on this folder: one line, exit 2
        keep_connected(executor)  # one cluster connection for every cell and stage
        try:
            return _run_cells(cfg, source, cells, settings, executor, root, progress, log)
        except InputError as e:
            if not getattr(e, "resumable", False):  # the cluster lost every replica (ClusterLost)
                raise
            raise type(e)(f"{e}; everything written is kept: resume the sweep with: ttscale sweep "
                          f"{source}") from None


def _run_cells(cfg: SweepConfig, source: str, cells: list[Cell], settings: list[Any], executor: Any,
               root: Path, progress: bool, log: Any) -> Path:
    from ttscale.analysis.pipeline import Options, analyze, load_input, write_outputs
    from ttscale.orchestration.samples import draw
    from ttscale.verification.verify import verify_run

    resolved = cfg.model_dump(mode="json")
    atomic_write_json(root / "sweep.json", {"config": resolved, "config_hash": config_hash(resolved),
                                            "source": str(source)})
    a = cfg.analysis
    for cell, s in zip(cells, settings, strict=True):
        name = f"{cell.model.label}/{cell.task.key}"
        log(f"[{name}] sampling -> {cell.run_dir}")
        res = draw(s, cell.run_dir, progress=progress)
        log(f"[{name}] {res.total} samples ({res.written} new)")
        labels = []
        for v in cell.verifiers:
            label = verifier_label(v)
            r = verify_run(cell.run_dir, v.name, dict(v.options), out_name=label, executor=executor)
            log(f"[{name}] verifier {label}: {r.verified} new verdicts, {r.skipped} already there")
            labels.append(label)
        opts = Options(n_boot=a.n_boot, ci=a.ci, seed=cfg.seed, ceiling=a.ceiling,
                       saturation_threshold=a.saturation_threshold, model_shape=a.model_shape)
        inp = load_input(cell.run_dir)
        result = analyze(inp, opts)
        write_outputs(result, cell.run_dir / "analysis")
        if a.forecast_to:
            _forecast(inp, a.forecast_to, cell.run_dir / "analysis" / "forecast.json")
        if len(labels) > 1:
            _compare(cell.run_dir, labels, a.n_boot, cfg.seed)
        log(f"[{name}] analysed")
    _sweep_figure(cells, root)
    if a.frontier:
        _frontier(cells, root, a.model_shape, a.n_boot, a.ci, cfg.seed, log)
    if cfg.report:
        from ttscale.reporting.html import build_report

        path = build_report(root)
        log(f"report: {path}")
    return root


def _forecast(inp: Any, to_ks: list[int], path: Path) -> None:
    """analysis.forecast_to: coverage forecast at each k (the default method) with its 90%
    interval, one record per group."""
    from ttscale.analysis.forecasting.forecast import DEFAULT_METHOD
    from ttscale.analysis.forecasting.interval import forecast_records

    records = []
    for k in to_ks:
        records += forecast_records(inp.counts, inp.group_cols, int(k), [DEFAULT_METHOD], str(path.parent.parent))
    atomic_write_json(path, records)


def _compare(run_dir: Path, labels: list[str], n_boot: int, seed: int) -> None:
    from ttscale.analysis.compare import compare_run, write_compare

    table = compare_run(run_dir, labels, n_boot=n_boot, seed=seed)
    write_compare(table, run_dir / "analysis" / "compare", f"verifiers on {run_dir.parent.name}/{run_dir.name}")


def _frontier(cells: list[Cell], root: Path, model_shape: str | None, n_boot: int, level: float,
              seed: int, log: Any) -> None:
    """analysis.frontier: per task, the frontier over every cell's model, temperature and verifier
    (``ttscale.analysis.frontier``; n_boot below 20 gives way to 200), in <root>/frontier/<task>/."""
    import pandas as pd

    from ttscale.analysis.figures import slug
    from ttscale.analysis.frontier.configs import build_configurations, run_counts
    from ttscale.analysis.frontier.result import compute_frontier

    tasks: dict[str, list[Cell]] = {}
    for cell in cells:
        tasks.setdefault(cell.task.key, []).append(cell)
    for task, group in tasks.items():
        runs = [run_counts(cell.run_dir, False) for cell in group]
        prompts = [r[2] for r in runs if r[2] is not None]
        hists = [r[3] for r in runs if r[3] is not None]
        out = root / "frontier" / slug(task)
        cs = build_configurations(pd.concat([r[0] for r in runs], ignore_index=True), str(out),
                                  model_shape=model_shape,
                                  prompt_tokens=sum(prompts) / len(prompts) if prompts else None,
                                  selection=pd.concat(hists, ignore_index=True) if hists else None)
        f = compute_frontier(cs, n_boot=n_boot if n_boot >= 20 else 200, level=level, seed=seed)
        f.save(out)
        log(f"[{task}] frontier: {len(f.table)} points over {len(f.metrics)} cost metrics -> {out}")


def _sweep_figure(cells: list[Cell], root: Path) -> None:
    """Coverage (pass@k of each cell's first verifier) against k, one line per cell x temperature."""
    import pandas as pd

    from ttscale.analysis.figures import Line, plot_lines, save_figure

    lines = []
    for cell in cells:
        path = cell.run_dir / "analysis" / "curves.parquet"
        if not path.is_file():
            continue
        curves = pd.read_parquet(path)
        curves = curves[curves["metric"] == "pass@k"]
        if "verifier" in curves.columns and len(cell.verifiers):
            curves = curves[curves["verifier"] == verifier_label(cell.verifiers[0])]
        group = [c for c in ("temperature",) if c in curves.columns]
        for key, g in (curves.groupby(group) if group else [((), curves)]):
            key = key if isinstance(key, tuple) else (key,)
            label = f"{cell.model.label}/{cell.task.key}" + "".join(f" T={v}" for v in key)
            lines.append(Line(label=label, x=g["k"].to_numpy(), y=g["estimate"].to_numpy(),
                              low=g["ci_low"].to_numpy(), high=g["ci_high"].to_numpy()))
    if not lines:
        return
    fig = plot_lines(lines, title="coverage across the sweep", xlabel="k (samples per problem)",
                     ylabel="coverage (pass@k)")
    save_figure(fig, root / "figures" / "sweep_coverage")

