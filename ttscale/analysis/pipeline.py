"""The analysis of one input: a counts table or a run directory -> curves, fits, marks, figures.

``load_input`` reads and validates the input (nothing is computed yet), ``analyze`` computes
curves and fits in memory, and ``write_outputs`` writes them under an output directory only at
the end, atomically (see ``ttscale.commands.analyze`` for the formats). Every check that can fail
on bad input runs before anything is written.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ttscale.analysis.inputs import (  # noqa: F401 (re-exported: the analysis input layer)
    AnalysisInput,
    input_from_counts,
    load_input,
)
from ttscale.errors import InputError, arg
from ttscale.rundir.counts import check_k
from ttscale.rundir.locks import stage_lock
from ttscale.rundir.store import atomic_write_json, atomic_write_table

CURVE_COLUMNS = ["metric", "k", "estimate", "ci_low", "ci_high"]
COST_COLUMNS = ["k", "flops", "kinetics_eflops"]


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
    temperatures: Any = None  # ttscale.analysis.temperatures.view.TemperatureView (2+ temperatures)
    state: dict[str, Any] | None = None  # what a run's analysis was computed from (staleness)


# -- loading ---------------------------------------------------------------------------------
def _shapes(inp: AnalysisInput, name: str | None) -> tuple[dict[tuple, Any], dict[tuple, str]]:
    """Model shape (and where it came from) per group, see ``ttscale.analysis.costs.model_shape``.

    ``auto`` reads each group's model column or the run's model; no ``--model-shape`` on a run
    directory looks the run's model up and leaves the cost unknown when it is not found.
    """
    from ttscale.analysis.costs.model_shape import find_shape, resolve_shape, run_model

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
        raise InputError(f"{inp.source}: {arg('model_shape', 'auto')} needs a 'model' grouping column")
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
    from ttscale.analysis.curves.coverage import default_ks

    if opts.ks is not None:
        ks = np.asarray(sorted(set(opts.ks)), dtype=np.int64)
    else:
        ks = np.asarray(default_ks(n_min), dtype=np.int64)
    top = min(n_min, opts.max_k) if opts.max_k is not None else n_min
    return ks[ks <= top] if opts.ks is None else ks


def _check_options(inp: AnalysisInput, opts: Options) -> None:
    from ttscale.analysis.adaptive.run import max_k

    src = inp.source
    n_min = max_k(inp.counts)
    if opts.ks is not None:
        if not opts.ks:
            raise InputError(f"{src}: {arg('ks')} is empty")
        check_k(np.asarray(opts.ks), n_min, src, what=arg("ks") + " k")
    if opts.max_k is not None:
        check_k(opts.max_k, n_min, src, what=arg("max_k"))
        if opts.ks is not None and max(opts.ks) > opts.max_k:
            raise InputError(f"{src}: {arg('ks')} k={max(opts.ks)} is above {arg('max_k')} {opts.max_k}")
    if opts.n_boot < 0:
        raise InputError(f"{src}: {arg('n_boot')} must be >= 0, got {opts.n_boot}")
    if not 0.0 < opts.ci < 1.0:
        raise InputError(f"{src}: {arg('ci')} must be in (0, 1), got {opts.ci}")
    if opts.law_boot < 0:
        raise InputError(f"{src}: {arg('law_boot')} must be >= 0, got {opts.law_boot}")
    if opts.tail_k_min is not None and opts.tail_k_min < 1:
        raise InputError(f"{src}: {arg('tail_k_min')} must be >= 1, got {opts.tail_k_min}")
    if not opts.saturation_threshold > 0:
        raise InputError(f"{src}: {arg('saturation_threshold')} must be > 0, got {opts.saturation_threshold}")


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
    from ttscale.analysis.ceilings.ceilings import saturation_point

    if len(ks) < 2:  # one point has no slope
        return None
    return saturation_point(ks, cov, opts.saturation_threshold)


def analyze(inp: AnalysisInput, opts: Options, progress: Any = None) -> AnalysisResult:
    """Curves (pass@k, and maj@k / best-of-k / weighted-vote@k from a run directory), fits, marks.

    ``progress(done, total)``, when given, is called after each group."""
    _check_options(inp, opts)
    shapes, shape_names = _shapes(inp, opts.model_shape)
    from ttscale.analysis.curves.coverage import coverage_curves
    from ttscale.analysis.laws.power_law import fit_from_counts

    gcols = inp.group_cols
    frames, cost_frames, fits, fit_objects, flops_fn = [], [], [], {}, {}
    from ttscale.analysis.adaptive.run import fit_adaptive, is_adaptive, max_k, selection_max_k

    groups = inp.groups()
    for done, (key, g) in enumerate(groups, 1):
        n_min = max_k(g)  # K for an adaptive run
        ks = _ks_for(n_min, opts)
        cur = coverage_curves(g, ks=ks, n_boot=opts.n_boot, ci=opts.ci, seed=opts.seed,
                              source=str(inp.source))
        parts = [cur]
        methods: dict[str, Any] = {}
        if inp.selection is not None:
            from ttscale.analysis.curves.coverage import selection_curve_from_summary

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
            from ttscale.analysis.costs.axis import cost_axis

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
            from ttscale.analysis.ceilings.ceilings import saturation_point_from_fit

            rec["saturation_k_fit"] = saturation_point_from_fit(fit_objects[key],
                                                                opts.saturation_threshold)
        if key in fit_objects and opts.law_boot > 0:  # CIs, fit checks, other exponent fits
            from ttscale.analysis.adaptive.run import per_problem_pass
            from ttscale.analysis.laws.assess import assess_law

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
    _sequential(inp, fits, opts)
    curves = pd.concat(frames, ignore_index=True)[[*gcols, *CURVE_COLUMNS]]
    curves["k"] = curves["k"].astype(np.int64)
    costs = pd.concat(cost_frames, ignore_index=True) if cost_frames else None
    return AnalysisResult(inp.source, gcols, curves, fits, fit_objects, flops_fn, costs,
                          _temperature_view(inp, opts), inp.state)


def _sequential(inp: AnalysisInput, fits: list[dict[str, Any]], opts: Options) -> None:
    """With two or more thinking budgets: the sequential saturation point (TTSPM) of each group
    without its budget, with a bootstrap interval, added to the fits of its budgets."""
    if "budget" not in inp.group_cols or inp.counts["budget"].nunique() < 2:
        return
    from ttscale.analysis.laws.sequential import sequential_record

    rest = [c for c in inp.group_cols if c != "budget"]
    groups = inp.counts.groupby(rest, sort=True, dropna=False) if rest else [((), inp.counts)]
    for key, g in groups:
        key = key if isinstance(key, tuple) else (key,)
        wide_n = g.pivot_table(index="problem", columns="budget", values="num_samples", aggfunc="sum")
        wide_c = g.pivot_table(index="problem", columns="budget", values="num_correct", aggfunc="sum")
        keep = wide_n.notna().all(axis=1)  # problems drawn at every budget
        if keep.sum() < 1:
            continue
        rec = sequential_record(wide_n.columns.to_numpy(), wide_c[keep].to_numpy(),
                                wide_n[keep].to_numpy(), opts.saturation_threshold,
                                n_boot=max(opts.law_boot, 50), ci=opts.ci, seed=opts.seed)
        for f in fits:
            if all(_clean(f.get(c)) == _clean(v) for c, v in zip(rest, key, strict=True)):
                f.update(rec)


def _temperature_view(inp: AnalysisInput, opts: Options) -> Any:
    """The temperature view when the input has two or more temperatures (else None)."""
    if "temperature" not in inp.group_cols or inp.counts["temperature"].nunique() < 2:
        return None
    from ttscale.analysis.adaptive.run import is_adaptive

    if is_adaptive(inp.counts):  # its splits re-sample counts as if every row had fixed n
        return None
    from ttscale.analysis.temperatures.view import temperature_view

    try:
        return temperature_view(inp.counts, inp.group_cols, opts.ks, opts.n_boot, opts.ci,
                                opts.seed, n_splits=2, source=str(inp.source))
    except InputError:  # e.g. a problem missing at some temperature: no view, the rest stands
        return None


# -- writing ---------------------------------------------------------------------------------
def write_outputs(result: AnalysisResult, out_dir: str | os.PathLike) -> list[Path]:
    """Render everything into ``out_dir/.tmp-*``, then move each file into place."""
    from ttscale.analysis.figures import build_figures, save_figure

    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise InputError(f"{out}: {arg('out')} exists and is not a directory")
    figures = build_figures(result)  # may fail; nothing written yet
    out.mkdir(parents=True, exist_ok=True)
    with stage_lock(out, "analysis"):  # one writer; removes .tmp-* of killed writers
        tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=out))
        try:
            atomic_write_table(tmp / "curves.parquet", result.curves)
            atomic_write_json(tmp / "fits.json", result.fits)
            if result.state is not None:  # what it was computed from (ttscale.rundir.staleness)
                atomic_write_json(tmp / "state.json", result.state)
            if result.costs is not None:
                atomic_write_table(tmp / "costs.parquet", result.costs)
            for stem, fig in figures:
                save_figure(fig, tmp / "figures" / stem)
            if result.temperatures is not None:
                from ttscale.analysis.temperatures.view import write_view

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
