"""The verbs that answer questions of a run or a counts table: ``analyze``, ``compare``,
``forecast`` (and ``forecast_records``), ``temperatures``, ``simulate`` and ``frontier``; see
:mod:`ttscale.api`."""

from __future__ import annotations

import dataclasses
import functools
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from ttscale.api.checks import check_source, whole
from ttscale.errors import InputError, arg

T = TypeVar("T")

if TYPE_CHECKING:
    import pandas as pd

    from ttscale.analysis.frontier.result import Frontier
    from ttscale.analysis.results import Analysis, Comparison, Simulation
    from ttscale.analysis.temperatures.view import TemperatureView


def _one_blas_thread(fn: Callable[..., T]) -> Callable[..., T]:
    """Run the verb with numpy's BLAS at one thread (:mod:`ttscale.core.threads`)."""
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> T:
        from ttscale.core.threads import analysis_threads

        with analysis_threads():
            return fn(*args, **kwargs)
    return wrapper


def _with_options(cls: type, known: dict[str, Any], extra: dict[str, Any], verb: str) -> Any:
    """``cls(**known, **extra)``; an unknown keyword is an InputError naming the known ones."""
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(extra) - names)
    if unknown:
        raise InputError(f"{verb}: unknown option {unknown[0]!r} (known: {', '.join(sorted(names))})")
    return cls(**known, **extra)


def _load(source: Any, group_by: list[str] | None = None, prompt_tokens: float | None = None,
          output_tokens: float | None = None, allow_stale: bool = False, verb: str = "analyze") -> Any:
    """An AnalysisInput from a path (counts table or run directory), a Run or a DataFrame."""
    import pandas as pd

    from ttscale.analysis.inputs import input_from_counts, load_input

    check_source(source, verb)
    if isinstance(source, pd.DataFrame):
        return input_from_counts(source, group_by, prompt_tokens, output_tokens)
    return load_input(os.fspath(source), group_by, prompt_tokens, output_tokens,
                      allow_stale=allow_stale)


@_one_blas_thread
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
    :class:`ttscale.rundir.runs.Run`) with verdicts. With ``out`` the files of ``ttscale analyze`` are
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
    from ttscale.analysis.results import Analysis
    from ttscale.core.progress import progress_bar
    from ttscale.rundir.outputs import check_out_dir

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


@_one_blas_thread
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
    from ttscale.analysis.results import Comparison
    from ttscale.rundir.outputs import check_out_dir

    check_source(run, "compare", frames=False)
    n_boot = whole(n_boot, "n_boot", "compare", minimum=0)
    if out is not None:
        check_out_dir(out, "out")
    specs = split_specs(verifiers) if isinstance(verifiers, str) else list(verifiers)
    table = compare_run(os.fspath(run), specs, oracle=oracle, ks=ks, n_boot=n_boot, seed=seed,
                        workers=workers, progress=progress, allow_stale=allow_stale)
    result = Comparison(table, title or f"verifiers on {Path(os.fspath(run)).name}")
    if out is not None:
        result.save(out)
    return result


@_one_blas_thread
def forecast_records(source: str | os.PathLike | pd.DataFrame, to: int, *,
                     method: str | list[str] | None = None, from_k: int | None = None,
                     seed: int = 0, group_by: list[str] | None = None,
                     allow_stale: bool = False, level: float = 0.9,
                     n_boot: int = 100, progress: bool = True) -> list[dict[str, Any]]:
    """:func:`forecast` as a list of dicts, one per (group, method): what ``--json`` prints.

    Keys: the group columns, ``method``, ``k``, ``coverage`` (None where a group has no correct
    sample, and then ``error`` says why), its ``level`` interval ``ci_low``/``ci_high`` with
    ``ci_level``, ``floor_sd``, ``extrapolation_sd`` and ``model_sd`` (null intervals with
    ``n_boot=0``; see :mod:`ttscale.analysis.forecasting.interval`), ``extrapolated`` (``to`` beyond
    the samples per problem), ``from_n``, ``from_k``, and ``law_status``, ``law_reasons`` and
    ``law_warnings``: for ``power_law``, the verdict of ``ttscale analyze`` on the power law of
    the group's counts as forecast from (after ``from_k``), ``"rejected"`` where it leaves the
    curve's 95% band (reused from a run directory's fresh ``analysis/fits.json`` of the same
    grouping, else computed: :func:`ttscale.analysis.forecasting.law.attach_law`); null for the other
    methods.
    """
    import pandas as pd

    from ttscale.analysis.forecasting.forecast import forecast_input
    from ttscale.analysis.forecasting.interval import forecast_records as with_intervals
    from ttscale.analysis.forecasting.law import analysis_verdicts

    check_source(source, "forecast")
    src = "<counts>" if isinstance(source, pd.DataFrame) else os.fspath(source)
    to = whole(to, "to", src)
    if from_k is not None:
        from_k = whole(from_k, "from_k", src)
    if isinstance(level, bool) or not isinstance(level, int | float) or not 0 < level < 1:
        raise InputError(f"{src}: {arg('level', level)}: must be a number in (0, 1)")
    n_boot = whole(n_boot, "n_boot", src, minimum=0)
    if n_boot == 1:
        raise InputError(f"{src}: {arg('n_boot', 1)}: must be 0 (no interval) or at least 2")
    inp = _load(source, group_by, allow_stale=allow_stale, verb="forecast")

    from ttscale.core.progress import progress_bar

    def per_group(counts: pd.DataFrame, gcols: list[str], k: int, methods: list[str],
                  where: str) -> list[dict[str, Any]]:
        with progress_bar("forecast", "fit", enabled=progress) as bar:  # (group, method) fits
            return with_intervals(counts, gcols, k, methods, where, level, n_boot, seed, progress=bar)

    verdicts = (analysis_verdicts(inp.source / "analysis", inp.state, inp.counts, inp.group_cols)
                if from_k is None else None)
    return forecast_input(inp.counts, inp.group_cols, to, method, from_k, seed, str(src), per_group,
                          verdicts)


def forecast(source: str | os.PathLike | pd.DataFrame, to: int, *,
             method: str | list[str] | None = None, from_k: int | None = None, seed: int = 0,
             group_by: list[str] | None = None, allow_stale: bool = False, level: float = 0.9,
             n_boot: int = 100, progress: bool = True) -> pd.DataFrame:
    """Forecast coverage at ``k = to`` per group (and method) from the samples drawn, with a
    ``level`` interval (``n_boot`` parametric-bootstrap replicates; 0: none; see
    :func:`forecast_records`).

    ``method``: ``power_law`` (default), ``beta``, ``beta_eb``, ``beta_mixture``, ``beta_zi_eb``, a list of them,
    ``"all"``, or ``"auto"`` (per group: the power law where it passes its extrapolation
    back-test, else a Beta method; ``chosen_method`` and ``method_reason`` say which and why). ``from_k`` first subsamples each problem to that many samples without
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
                                         level=level, n_boot=n_boot, progress=progress))


@_one_blas_thread
def temperatures(source: str | os.PathLike | pd.DataFrame, *, ks: list[int] | None = None, n_boot: int = 1000,
                 ci: float = 0.95, seed: int = 0, splits: int = 5,
                 group_by: list[str] | None = None, out: str | os.PathLike | None = None,
                 allow_stale: bool = False) -> TemperatureView:
    """The temperature view: coverage against temperature at fixed k, the best temperature per k.

    ``source`` is a counts table (path or DataFrame) with a ``temperature`` column or a run
    directory. Returns a
    :class:`ttscale.analysis.temperatures.view.TemperatureView` (``by_temperature``: coverage
    per (group, temperature, k) with CIs; ``best``: per (group, k) the best temperature, the gap
    to the runner-up with a paired CI, p_best, and the split of k samples over temperatures:
    ``split_found`` the exact best in sample, ``split_gain`` its gain over the best temperature
    alone cross-fitted over problems with a t interval, ``split`` the recommendation (the found
    split when ``split_better``, i.e. that interval is above 0, else all k at the best
    temperature; ``split_verdict`` in words), its cross-fitted coverage). ``group_by`` always keeps ``temperature``. With ``out`` the
    files of ``ttscale temperatures --out`` are written.
    """
    from ttscale.analysis.temperatures.view import temperature_view, write_view

    if group_by is not None and "temperature" not in group_by:
        group_by = [*group_by, "temperature"]
    inp = _load(source, group_by, allow_stale=allow_stale, verb="temperatures")
    n_boot = whole(n_boot, "n_boot", str(inp.source), minimum=0)
    splits = whole(splits, "splits", str(inp.source))
    if isinstance(ci, bool) or not isinstance(ci, int | float) or not 0 < ci < 1:
        raise InputError(f"{inp.source}: {arg('ci', ci)}: must be a number in (0, 1)")
    view = temperature_view(inp.counts, inp.group_cols, ks, n_boot, ci, seed, splits,
                            source=str(inp.source))
    if out is not None:
        write_view(view, out)
    return view


@_one_blas_thread
def simulate(source: str | os.PathLike | pd.DataFrame | None = None, *,
             difficulty: str | None = None, verifier: str | None = None,
             out: str | os.PathLike | None = None, k_max: int = 10_000,
             selection: str = "resample", fpr: float = 0.0, fnr: float = 0.0,
             fp_cost: float = 0.0, cost_per_sample: float = 0.0, allow_stale: bool = False,
             progress: bool = True, **options: Any) -> Simulation:
    """What-if curves at larger k, with an imperfect verifier, costs; and sample-size planning.

    Difficulty comes from ``source`` (a counts table, DataFrame or run directory: one curve per
    group; ``verifier`` picks a run's oracle verdicts) or ``difficulty="beta:A,B[,zero=Z]"``
    (exactly one). ``selection``: ``resample`` (until a verifier with ``fpr``/``fnr`` accepts),
    ``vote`` or ``best-of-n``. Further keywords (``wrong_answers``, ``reward_separation``,
    ``saturation_threshold``, ``plan_b_precision``, ``plan_problems``, ``plan_samples``,
    ``replicates``, ``seed``; ``ci`` and ``optimal_k_boot``, the level and bootstrap replicates
    of the optimal k's interval ``optimal_k_ci``; ``adaptive=[r, ...]`` with ``min_samples``,
    ``first_round``, ``growth``, ``adaptive_ks``, ``adaptive_problems`` plans a stopping rule) go to
    :func:`ttscale.analysis.forecasting.simulation.simulate_groups`. With
    ``out`` the files of ``ttscale simulate --out`` are written. Returns a :class:`Simulation`.
    """
    import pandas as pd

    from ttscale.analysis.forecasting import simulation as sim
    from ttscale.analysis.results import Simulation
    from ttscale.rundir.outputs import check_out_dir

    if out is not None:
        check_out_dir(out, "out")
    if (source is None) == (difficulty is None):
        raise InputError(f"simulate: give exactly one of {arg('source', flag='INPUT')} or {arg('difficulty')}")
    sim.check_options(fpr=fpr, fnr=fnr, selection=selection, k_max=k_max, fp_cost=fp_cost,
                      cost_per_sample=cost_per_sample, **options)
    if difficulty is not None:
        groups = [({}, sim.parse_difficulty(difficulty), None)]
    else:
        inp = _load(source, allow_stale=allow_stale, verb="simulate")
        label = "<counts>" if isinstance(source, pd.DataFrame) else os.fspath(source)
        groups = sim.difficulties_from_counts(inp.counts, inp.group_cols, verifier, str(label))
    from ttscale.core.progress import progress_bar

    try:
        with progress_bar("simulate", "group", enabled=progress) as bar:
            table, summaries, adaptive_plan = sim.simulate_groups(
                groups, k_max=k_max, selection=selection, fpr=fpr, fnr=fnr, fp_cost=fp_cost,
                cost_per_sample=cost_per_sample, progress=bar, **options)
            bar(len(groups), len(groups))
    except TypeError as e:  # an unknown keyword
        raise InputError(f"simulate: {e}") from e
    result = Simulation(table, summaries, adaptive_plan)
    if out is not None:
        result.save(out)
    return result




def frontier(source: str | os.PathLike | pd.DataFrame, out: str | os.PathLike | None = None, *,
             ks: list[int] | None = None, metrics: list[str] | None = None, n_boot: int = 1000,
             level: float = 0.95, seed: int = 0, model_shape: str | None = None,
             prompt_tokens: float | None = None, tokens_per_sample: float | None = None,
             prices: Any = None, at: list[tuple[dict[str, Any] | str, int]] | None = None,
             bins: int = 4, allocation: bool = True, whatif_k: list[int] | None = None,
             whatif_method: str | None = None, whatif_budget: list[int] | None = None,
             allow_stale: bool = False) -> Frontier:
    """The compute-optimal frontier: at each cost, the best configuration and k, with honest intervals.

    ``source``: a counts table (path or DataFrame; every combination of its grouping columns,
    e.g. ``model``, ``temperature``, ``budget``, ``verifier``, ``selection``, is a
    configuration; optional ``mean_output_tokens`` per row) or a run directory (its oracle
    verifiers' coverage per verifier and temperature, its measured token counts and ``run.json``'s
    model). Cost metrics: ``tokens``, ``flops`` and ``kinetics_eflops`` (with a model shape:
    each configuration's ``model``, else ``model_shape``), ``dollars`` (with ``prices``: ``(IN,
    OUT)`` or ``{model: (IN, OUT)}`` dollars per million tokens); ``metrics`` picks some. Output
    tokens per sample come from the table, else the budget, else ``tokens_per_sample``, else
    256 (assumed; the notes say which); prompt tokens from ``prompt_tokens`` (else 512, assumed).
    ``n_boot`` paired bootstrap resamples over problems give the ``level`` band and the
    configurations not significantly worse at each cost; ``at`` (``(config, k)`` pairs, a config
    as a dict of column values or its label) picks where the next move is evaluated (default:
    every frontier point of the first metric); ``bins`` difficulty bins for the cross-fitted
    per-difficulty allocation (``allocation=False`` skips it). ``whatif_k`` (factors, e.g.
    ``[2, 4]``) adds each configuration's coverage forecast at that many times its samples
    (``whatif_method``, default ``beta_eb``) and a what-if frontier marking those points
    extrapolated (``.whatif``, ``.extrapolated``). ``whatif_budget`` (factors of the largest
    budget, e.g. ``[2, 4]``) adds, for each family of configurations sampled at three or more
    budgets, its coverage at that budget from the sequential law (where the law fits and passes a
    back-test; else a note says why not), also marked extrapolated. With ``out`` the files of
    ``ttscale frontier --out`` are written. Returns a :class:`ttscale.analysis.frontier.result.Frontier`.
    """
    import pandas as pd

    from ttscale.analysis.frontier.configs import build_configurations, run_counts
    from ttscale.analysis.frontier.result import compute_frontier
    from ttscale.rundir.outputs import check_out_dir

    if out is not None:
        check_out_dir(out, "out")
    hist = None
    if isinstance(source, pd.DataFrame):
        counts, label = source, "<counts>"
    elif Path(os.fspath(source)).is_dir():
        counts, label, measured, hist = run_counts(Path(os.fspath(source)), allow_stale)
        if prompt_tokens is None:
            prompt_tokens = measured
    else:
        from ttscale.rundir.counts import read_table

        counts, label = read_table(os.fspath(source)), os.fspath(source)
    cs = build_configurations(counts, label, ks=ks, model_shape=model_shape, prompt_tokens=prompt_tokens,
                              tokens_per_sample=tokens_per_sample, prices=prices, selection=hist,
                              cache_dir=Path(label) / "summaries" / "cache" if hist is not None else None)
    starts = None if at is None else [(_config_index(cs, cfg, label), int(k)) for cfg, k in at]
    result = compute_frontier(cs, metrics=metrics, n_boot=n_boot, level=level, seed=seed, at=starts,
                              bins=bins, allocation=allocation, whatif_k=whatif_k, whatif_method=whatif_method,
                              whatif_budget=whatif_budget)
    if out is not None:
        result.save(out)
    return result


def _config_index(cs: Any, cfg: dict[str, Any] | str, source: str) -> int:
    """The configuration named by a dict of column values or by its label; InputError otherwise."""
    labels = list(cs.configs["label"])
    if isinstance(cfg, str):
        if cfg in labels:
            return labels.index(cfg)
        cfg = dict(part.split("=", 1) for part in cfg.split(",") if "=" in part)
    unknown = [c for c in cfg if c not in cs.axes]
    if unknown:
        raise InputError(f"{source}: {arg('at')} column {unknown[0]!r} is not a configuration column "
                         f"(columns: {', '.join(cs.axes) or 'none'})")
    hits = [j for j in range(len(labels))
            if all(str(cs.configs[c].iloc[j]).strip() == str(v).strip() for c, v in cfg.items())]
    if len(hits) != 1:
        raise InputError(f"{source}: {arg('at')} {cfg} matches {len(hits)} configurations (need exactly one; "
                         f"configurations: {'; '.join(labels[:6])}{' ...' if len(labels) > 6 else ''})")
    return hits[0]
