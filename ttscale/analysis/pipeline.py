"""The analysis of one input: a counts table or a run directory -> curves, fits, marks, figures.

``load_input`` reads and validates the input (nothing is computed yet), ``analyze`` computes
curves and fits in memory, and ``write_outputs`` writes them under an output directory only at
the end, atomically (see ``ttscale.commands.analyze`` for the formats). Every check that can fail
on bad input runs before anything is written.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ttscale.counts import check_k, group_columns, read_table, validate_counts
from ttscale.errors import InputError
from ttscale.locks import stage_lock
from ttscale.store import RunDir, atomic_write_json, atomic_write_table

CURVE_COLUMNS = ["metric", "k", "estimate", "ci_low", "ci_high"]
COST_COLUMNS = ["k", "flops", "kinetics_eflops"]


@dataclass
class AnalysisInput:
    """A validated input: counts per (group, problem), and per-sample rows for a run directory."""

    source: Path
    counts: pd.DataFrame  # group columns + problem, num_samples, num_correct
    group_cols: list[str]
    #: a run directory's answer/score histograms (``ttscale.summaries``): group columns +
    #: problem_id, answer, score, count, passed
    selection: pd.DataFrame | None = None
    tokens: pd.DataFrame | None = None  # group columns + avg_prompt_tokens, avg_output_tokens
    cache_dir: Path | None = None  # where selection curves are cached (a run's summaries/cache)
    state: dict[str, Any] | None = None  # a run's samples and verdicts (ttscale.staleness)

    def groups(self) -> list[tuple[tuple, pd.DataFrame]]:
        """(key, counts rows) per group, key a tuple of the group values (sorted)."""
        if not self.group_cols:
            return [((), self.counts)]
        return [
            (k if isinstance(k, tuple) else (k,), g)
            for k, g in self.counts.groupby(self.group_cols, sort=True, dropna=False)
        ]


@dataclass
class Options:
    """The knobs of ``ttscale analyze`` (see its --help)."""

    ks: list[int] | None = None
    n_boot: int = 1000
    ci: float = 0.95
    seed: int = 0
    ceiling: bool = False
    saturation_threshold: float = 1e-4
    model_shape: str | None = None
    max_k: int | None = None
    law_boot: int = 300  # replicates of the law bootstrap (0: no law CIs or fit checks)
    tail_k_min: int | None = None  # lower end of the tail fit's k range (default sqrt(k_max))
    distributional: bool = False  # the scaled-Beta exponent (Schaeffer et al.; ~4 s a group)


@dataclass
class AnalysisResult:
    source: Path
    group_cols: list[str]
    curves: pd.DataFrame
    fits: list[dict[str, Any]]
    fit_objects: dict[tuple, Any] = field(default_factory=dict)
    flops_fn: dict[tuple, Any] = field(default_factory=dict)  # key -> (ks -> FLOPs)
    costs: pd.DataFrame | None = None  # group columns + k, flops (when the cost is known)
    temperatures: Any = None  # ttscale.analysis.temperature_view.TemperatureView (2+ temperatures)
    state: dict[str, Any] | None = None  # what a run's analysis was computed from (staleness)


# -- loading ---------------------------------------------------------------------------------
def _pool(counts: pd.DataFrame, group_by: list[str]) -> pd.DataFrame:
    """Sum counts of one problem over the grouping columns left out of ``group_by``."""
    from ttscale.analysis.adaptive_run import is_adaptive

    if is_adaptive(counts):
        raise InputError("counts table: adaptive rows cannot be pooled over groups (the rule "
                         "stopped each group apart); keep every grouping column in --group-by")
    agg = counts.groupby([*group_by, "problem"], sort=True, dropna=False)
    out = agg[["num_samples", "num_correct"]].sum().reset_index()
    return out[[*group_by, "problem", "num_samples", "num_correct"]]


def _check_group_by(group_by: list[str] | None, available: list[str], source: Path) -> list[str]:
    if group_by is None:
        return available
    unknown = [c for c in group_by if c not in available]
    if unknown:
        raise InputError(
            f"{source}: --group-by column {unknown[0]!r} is not a grouping column "
            f"(available: {', '.join(available) or 'none'})"
        )
    return list(group_by)


def load_input(
    path: str | os.PathLike,
    group_by: list[str] | None = None,
    prompt_tokens: float | None = None,
    output_tokens: float | None = None,
    allow_stale: bool = False,
) -> AnalysisInput:
    """Read a counts table (CSV/Parquet) or a run directory; raise InputError on bad input.

    A run directory whose verifiers do not all cover every sample is refused (StaleError,
    ``ttscale.staleness``) unless ``allow_stale``, which warns instead."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: no such file or directory")
    if path.is_dir():
        if prompt_tokens is not None or output_tokens is not None:
            raise InputError(f"{path}: --prompt-tokens/--output-tokens apply to counts tables; "
                             "a run directory records its own token counts")
        return _load_run(path, group_by, allow_stale)
    return input_from_counts(read_table(path), group_by, prompt_tokens, output_tokens, path)


def input_from_counts(
    counts: pd.DataFrame,
    group_by: list[str] | None = None,
    prompt_tokens: float | None = None,
    output_tokens: float | None = None,
    source: str | os.PathLike = "<counts>",
) -> AnalysisInput:
    """An input from a counts table already in memory (validated like a file's)."""
    path = Path(source)
    counts = validate_counts(counts, source)
    cols = _check_group_by(group_by, group_columns(counts), path)
    if cols != group_columns(counts):
        counts = _pool(counts, cols)
    tokens = None
    if (prompt_tokens is None) != (output_tokens is None):
        raise InputError(f"{path}: give both --prompt-tokens and --output-tokens, or neither")
    if prompt_tokens is not None:
        if prompt_tokens < 0 or output_tokens < 0:
            raise InputError(f"{path}: --prompt-tokens/--output-tokens must be >= 0")
        tokens = counts[cols].drop_duplicates().reset_index(drop=True)
        tokens["avg_prompt_tokens"] = float(prompt_tokens)
        tokens["avg_output_tokens"] = float(output_tokens)
    return AnalysisInput(path, counts.reset_index(drop=True), cols, tokens=tokens)


def _load_run(path: Path, group_by: list[str] | None, allow_stale: bool = False) -> AnalysisInput:
    """A run directory's counts and answer/score histograms, read from its summaries only
    (``ttscale.summaries``: brought up to date first, folding only new shards)."""
    from ttscale.summaries import samples_summary, verdict_summary

    run = RunDir(path)
    if not run.problems_path.is_file() and not run.has_samples():
        from ttscale.outputs import not_a_run

        raise not_a_run(path)
    if not run.has_samples():
        raise InputError(f"{run.samples_dir}: no samples in this run directory")
    verifiers = run.verifiers()
    if not verifiers:
        raise InputError(f"{path / 'verdicts'}: no verdicts in this run directory (run verify first)")
    task_of = None
    if run.problems_path.is_file():
        import pyarrow.parquet as pq

        names = pq.read_schema(run.problems_path).names
        problems = pd.read_parquet(run.problems_path, columns=[c for c in ("problem_id", "task")
                                                               if c in names])
        if "task" in problems.columns and "problem_id" in problems.columns:
            task_of = problems.drop_duplicates("problem_id").set_index("problem_id")["task"]
    from ttscale.staleness import check_run_for_analysis

    state = check_run_for_analysis(run, allow_stale)  # every verifier covers every sample
    per_pt = samples_summary(run).table.to_pandas()
    hists = []
    for name in verifiers:
        h = verdict_summary(run, name).table.to_pandas()
        h.insert(0, "verifier", name)
        hists.append(h)
    hist = pd.concat(hists, ignore_index=True)
    available = ["verifier", "temperature"]
    if task_of is not None:
        hist.insert(0, "task", hist["problem_id"].map(task_of).fillna("?").astype(str))
        available = ["task", *available]
    cols = _check_group_by(group_by, available, path)
    # pass@k is coverage under an oracle; an imperfect verifier's or a selector's "passed" is
    # an acceptance or a duplicate of the oracle's, so their curves come from `compare` instead.
    oracles = [n for n in verifiers if _verifier_kind(run, n) == "oracle"] or verifiers
    ora = hist[hist["verifier"].isin(oracles)]
    counts = ora.groupby([*cols, "problem_id"], sort=True, dropna=False)[["count", "passed"]].sum()
    counts = counts.reset_index().rename(columns={"problem_id": "problem", "count": "num_samples",
                                                  "passed": "num_correct"})
    counts = counts.astype({"num_samples": np.int64, "num_correct": np.int64})
    # mean tokens per verified sample: each (problem, temperature)'s mean, weighted by verdicts
    verdicts_pt = hist.groupby([*cols, "problem_id", "temperature"] if "temperature" not in cols
                               else [*cols, "problem_id"], dropna=False)["count"].sum().reset_index()
    verdicts_pt = verdicts_pt.merge(per_pt, on=["problem_id", "temperature"], how="left")
    verdicts_pt["p_tok"] = verdicts_pt["count"] * verdicts_pt["prompt_tokens"] / verdicts_pt["n"]
    verdicts_pt["o_tok"] = verdicts_pt["count"] * verdicts_pt["output_tokens"] / verdicts_pt["n"]
    if cols:
        tok = verdicts_pt.groupby(cols, sort=True, dropna=False)[["p_tok", "o_tok", "count"]].sum()
        tok = tok.reset_index()
    else:
        tok = verdicts_pt[["p_tok", "o_tok", "count"]].sum().to_frame().T
    tok["avg_prompt_tokens"] = tok["p_tok"] / tok["count"]
    tok["avg_output_tokens"] = tok["o_tok"] / tok["count"]
    tokens = tok[[*cols, "avg_prompt_tokens", "avg_output_tokens"]]
    keep = [*cols, "problem_id", "answer", "score", "count", "passed"]
    selection = hist.groupby(keep[:-2], sort=True, dropna=False)[["count", "passed"]].sum().reset_index()
    from ttscale.analysis.adaptive_run import attach, first_m_selection

    counts = attach(run, counts[[*cols, "problem", "num_samples", "num_correct"]], cols, oracles)
    return AnalysisInput(path, counts, cols,
                         selection=first_m_selection(run, selection[keep], cols), tokens=tokens,
                         cache_dir=run.path / "summaries" / "cache", state=state)


def _verifier_kind(run: RunDir, name: str) -> str:
    """The kind recorded in verdicts/<name>/verifier.json (oracle where none is recorded)."""
    meta = run.verdicts_dir(name) / "verifier.json"
    try:
        return str(json.loads(meta.read_text()).get("kind", "oracle"))
    except (OSError, ValueError):
        return "oracle"


# -- computing -------------------------------------------------------------------------------
def _shapes(inp: AnalysisInput, name: str | None) -> tuple[dict[tuple, Any], dict[tuple, str]]:
    """Model shape (and where it came from) per group, see ``ttscale.analysis.model_shape``.

    ``auto`` reads each group's model column or the run's model; no ``--model-shape`` on a run
    directory looks the run's model up and leaves the cost unknown when it is not found.
    """
    from ttscale.analysis.model_shape import find_shape, resolve_shape, run_model

    keys = [key for key, _ in inp.groups()]
    model = run_model(inp.source) if inp.source.is_dir() else None
    if name is None:
        found = find_shape(model) if model else None
        return ({k: found[0] for k in keys}, {k: found[1] for k in keys}) if found else ({}, {})
    if name.lower() != "auto":
        shape, where = resolve_shape(name, inp.source)
        return {k: shape for k in keys}, {k: where for k in keys}
    if model is not None:
        shape, where = resolve_shape(model, inp.source)
        return {k: shape for k in keys}, {k: where for k in keys}
    if "model" not in inp.group_cols:
        raise InputError(f"{inp.source}: --model-shape auto needs a 'model' grouping column")
    at = inp.group_cols.index("model")
    found = {k: resolve_shape(str(k[at]), inp.source) for k in keys}
    return {k: v[0] for k, v in found.items()}, {k: v[1] for k, v in found.items()}


def _group_tokens(tokens: pd.DataFrame | None, gcols: list[str], key: tuple) -> tuple[float, float] | None:
    """(avg prompt tokens, avg output tokens) of one group, None when unknown."""
    if tokens is None:
        return None
    for col, val in zip(gcols, key, strict=True):
        if col in tokens.columns:
            tokens = tokens[tokens[col] == val]
    if tokens.empty:
        return None
    return float(tokens["avg_prompt_tokens"].iloc[0]), float(tokens["avg_output_tokens"].iloc[0])


def _ks_for(n_min: int, opts: Options) -> np.ndarray:
    from ttscale.analysis.curves import default_ks

    if opts.ks is not None:
        ks = np.asarray(sorted(set(opts.ks)), dtype=np.int64)
    else:
        ks = np.asarray(default_ks(n_min), dtype=np.int64)
    top = min(n_min, opts.max_k) if opts.max_k is not None else n_min
    return ks[ks <= top] if opts.ks is None else ks


def _check_options(inp: AnalysisInput, opts: Options) -> None:
    from ttscale.analysis.adaptive_run import max_k

    src = inp.source
    n_min = max_k(inp.counts)
    if opts.ks is not None:
        if not opts.ks:
            raise InputError(f"{src}: --ks is empty")
        check_k(np.asarray(opts.ks), n_min, src, what="--ks k")
    if opts.max_k is not None:
        check_k(opts.max_k, n_min, src, what="--max-k")
        if opts.ks is not None and max(opts.ks) > opts.max_k:
            raise InputError(f"{src}: --ks k={max(opts.ks)} is above --max-k {opts.max_k}")
    if opts.n_boot < 0:
        raise InputError(f"{src}: --n-boot must be >= 0, got {opts.n_boot}")
    if not 0.0 < opts.ci < 1.0:
        raise InputError(f"{src}: --ci must be in (0, 1), got {opts.ci}")
    if opts.law_boot < 0:
        raise InputError(f"{src}: --law-boot must be >= 0, got {opts.law_boot}")
    if opts.tail_k_min is not None and opts.tail_k_min < 1:
        raise InputError(f"{src}: --tail-k-min must be >= 1, got {opts.tail_k_min}")
    if not opts.saturation_threshold > 0:
        raise InputError(f"{src}: --saturation-threshold must be > 0, got {opts.saturation_threshold}")


def _clean(x: Any) -> Any:
    if isinstance(x, np.generic):
        x = x.item()
    if isinstance(x, float) and not np.isfinite(x):
        return None
    return x


def _fit_record(fit: Any) -> dict[str, Any]:
    rec: dict[str, Any] = {"law": fit.law}
    for name, value in fit.params.items():
        rec[name] = _clean(float(value))
    for name, value in fit.stderr.items():  # curve_fit's: conditional on the problems drawn
        rec[f"{name}_se_conditional"] = _clean(float(value))
    rec["rmse"] = _clean(float(fit.rmse))
    rec["max_abs_error"] = _clean(float(fit.max_abs_error))
    rec["k_min"], rec["k_max"] = int(fit.k_range[0]), int(fit.k_range[1])
    return rec


def _saturation(ks: np.ndarray, cov: np.ndarray, opts: Options) -> int | None:
    """The k from which one more sample gains less than the threshold in coverage (or None)."""
    from ttscale.analysis.ceilings import saturation_point

    if len(ks) < 2:  # one point has no slope
        return None
    return saturation_point(ks, cov, opts.saturation_threshold)


def analyze(inp: AnalysisInput, opts: Options, progress: Any = None) -> AnalysisResult:
    """Curves (pass@k, and maj@k / best-of-k / weighted-vote@k from a run directory), fits, marks.

    ``progress(done, total)``, when given, is called after each group."""
    _check_options(inp, opts)
    shapes, shape_names = _shapes(inp, opts.model_shape)
    from ttscale.analysis.curves import coverage_curves
    from ttscale.analysis.laws import fit_from_counts

    gcols = inp.group_cols
    frames, cost_frames, fits, fit_objects, flops_fn = [], [], [], {}, {}
    from ttscale.analysis.adaptive_run import fit_adaptive, is_adaptive, max_k, selection_max_k

    groups = inp.groups()
    for done, (key, g) in enumerate(groups, 1):
        n_min = max_k(g)  # K for an adaptive run
        ks = _ks_for(n_min, opts)
        cur = coverage_curves(g, ks=ks, n_boot=opts.n_boot, ci=opts.ci, seed=opts.seed,
                              source=str(inp.source))
        parts = [cur]
        methods: dict[str, Any] = {}
        if inp.selection is not None:
            from ttscale.analysis.curves import selection_curve_from_summary

            s = inp.selection
            for col, val in zip(gcols, key, strict=True):
                s = s[s[col] == val]
            have_answers = s["answer"].notna().any()
            have_scores = bool(len(s)) and bool(s["score"].notna().all())
            metrics = (["maj@k"] if have_answers else []) + (["best-of-k"] if have_scores else [])
            if have_answers and have_scores:
                metrics.append("weighted-vote@k")
            top = selection_max_k(g)  # adaptive: the first m samples only, k <= m
            sel_ks = ks if top is None else ks[ks <= top]
            for metric in metrics if len(sel_ks) else []:
                curve, how = selection_curve_from_summary(
                    s, key, gcols, metric, sel_ks, n_boot=opts.n_boot, ci=opts.ci, seed=opts.seed,
                    cache_dir=inp.cache_dir)
                parts.append(curve)
                methods[metric] = how
        frame = pd.concat(parts, ignore_index=True)
        rec: dict[str, Any] = {c: _clean(v) for c, v in zip(gcols, key, strict=True)}
        rec["metric"] = "pass@k"
        if methods:  # which problems' selection curves are exact, which Monte Carlo above a k
            rec["selection_methods"] = methods
        if is_adaptive(g):
            rec["adaptive"] = {"successes": int(g["adaptive_successes"].iloc[0]),
                               "min_samples": int(g["adaptive_min_samples"].iloc[0]), "max_samples": n_min,
                               "samples_drawn": int(g["num_samples"].sum()),
                               "samples_full": int(n_min * len(g)),
                               "selection_max_k": int(g["adaptive_min_samples"].min()),
                               "note": "pass@k: the stopping-rule estimator (exact, every k <= K); "
                                       "maj@k, best-of-k, weighted vote: the first m samples, k <= m only"}
        try:
            fit = (fit_adaptive(g, opts.max_k, opts.ceiling, str(inp.source)) if is_adaptive(g) else
                   fit_from_counts(g["num_samples"].to_numpy(), g["num_correct"].to_numpy(),
                                   max_k=opts.max_k, ceiling=opts.ceiling, source=str(inp.source)))
            fit_objects[key] = fit
            rec.update(_fit_record(fit))
        except InputError as e:  # e.g. a group no sample ever solves: nothing to fit
            rec.update({"law": None, "fit_error": str(e)})
        shape = shapes.get(key)
        if shape is not None:
            from ttscale.analysis.cost_axis import cost_axis

            axis = cost_axis(shape, _group_tokens(inp.tokens, gcols, key), ks)
            flops_fn[key] = axis.flops
            cost_frames.append(pd.DataFrame(
                {**{c: [v] * len(ks) for c, v in zip(gcols, key, strict=True)}, **axis.columns}))
            rec.update(axis.record)
            rec["model_shape"] = shape_names[key]
        else:
            rec["flops_per_sample"] = None
        pk = frame[frame["metric"] == "pass@k"].sort_values("k")
        rec["saturation_threshold"] = opts.saturation_threshold
        sat = _saturation(pk["k"].to_numpy(), pk["estimate"].to_numpy(), opts)
        rec["saturation_k"] = sat
        rec["saturation_k_fit"] = None
        if key in fit_objects:
            from ttscale.analysis.ceilings import saturation_point_from_fit

            rec["saturation_k_fit"] = saturation_point_from_fit(fit_objects[key],
                                                                opts.saturation_threshold)
        if key in fit_objects and opts.law_boot > 0:  # CIs, fit checks, other exponent fits
            from ttscale.analysis.adaptive_run import per_problem_pass
            from ttscale.analysis.law_assess import assess_law

            # an adaptive run: resample its stopping-rule estimates, up to K
            adaptive_kw = ({"per_problem": lambda kk, g=g: per_problem_pass(g, kk), "k_top": n_min}
                           if is_adaptive(g) else {})

            rec.update(assess_law(
                g["num_samples"].to_numpy(), g["num_correct"].to_numpy(),
                {"k": pk["k"].to_numpy(), "estimate": pk["estimate"].to_numpy(),
                 "low": pk["ci_low"].to_numpy(), "high": pk["ci_high"].to_numpy()},
                max_k=opts.max_k, ceiling=opts.ceiling, n_boot=opts.law_boot, ci=opts.ci,
                seed=opts.seed, saturation_threshold=opts.saturation_threshold,
                tail_k_min=opts.tail_k_min, distributional=opts.distributional,
                source=str(inp.source), **adaptive_kw))
        rec["saturation_flops"] = (
            float(flops_fn[key](np.array([sat]))[0]) if sat is not None and key in flops_fn else None
        )
        fits.append(rec)
        frames.append(frame)
        if progress is not None:
            progress(done, len(groups))
    curves = pd.concat(frames, ignore_index=True)[[*gcols, *CURVE_COLUMNS]]
    curves["k"] = curves["k"].astype(np.int64)
    costs = pd.concat(cost_frames, ignore_index=True) if cost_frames else None
    return AnalysisResult(inp.source, gcols, curves, fits, fit_objects, flops_fn, costs,
                          _temperature_view(inp, opts), inp.state)


def _temperature_view(inp: AnalysisInput, opts: Options) -> Any:
    """The temperature view when the input has two or more temperatures (else None)."""
    if "temperature" not in inp.group_cols or inp.counts["temperature"].nunique() < 2:
        return None
    from ttscale.analysis.adaptive_run import is_adaptive

    if is_adaptive(inp.counts):  # its splits re-sample counts as if every row had fixed n
        return None
    from ttscale.analysis.temperature_view import temperature_view

    try:
        return temperature_view(inp.counts, inp.group_cols, opts.ks, opts.n_boot, opts.ci,
                                opts.seed, n_splits=2, source=str(inp.source))
    except InputError:  # e.g. a problem missing at some temperature: no view, the rest stands
        return None


# -- writing ---------------------------------------------------------------------------------
def write_outputs(result: AnalysisResult, out_dir: str | os.PathLike) -> list[Path]:
    """Render everything into ``out_dir/.tmp-*``, then move each file into place."""
    from ttscale.plots import build_figures, save_figure

    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise InputError(f"{out}: --out exists and is not a directory")
    figures = build_figures(result)  # may fail; nothing written yet
    out.mkdir(parents=True, exist_ok=True)
    with stage_lock(out, "analysis"):  # one writer; removes .tmp-* of killed writers
        tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=out))
        try:
            atomic_write_table(tmp / "curves.parquet", result.curves)
            atomic_write_json(tmp / "fits.json", result.fits)
            if result.state is not None:  # what it was computed from (ttscale.staleness)
                atomic_write_json(tmp / "state.json", result.state)
            if result.costs is not None:
                atomic_write_table(tmp / "costs.parquet", result.costs)
            for stem, fig in figures:
                save_figure(fig, tmp / "figures" / stem)
            if result.temperatures is not None:
                from ttscale.analysis.temperature_view import write_view

                write_view(result.temperatures, tmp)
            written = []
            for src in sorted(p for p in tmp.rglob("*") if p.is_file()):
                dst = out / src.relative_to(tmp)
                dst.parent.mkdir(parents=True, exist_ok=True)
                os.replace(src, dst)
                written.append(dst)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        _remove_stale(out, set(written))
    return written


#: files ``write_outputs`` owns in an output directory (others there are left alone)
OWNED = ("costs.parquet", "figures/coverage_k*", "figures/coverage_flops*", "figures/selection_k*",
         "temperatures.parquet", "temperature_best.parquet", "figures/coverage_vs_temperature*")


def _remove_stale(out: Path, written: set[Path]) -> None:
    """Remove outputs of an earlier analysis into ``out`` that this one did not write again."""
    for pattern in OWNED:
        for p in out.glob(pattern):
            if p not in written and p.suffix in (".png", ".svg", ".parquet"):
                p.unlink(missing_ok=True)
