"""What the analysis reads: a counts table or a run directory, validated, as an AnalysisInput.

A counts table is checked (``ttscale.rundir.counts``) and pooled to the grouping asked for; a run
directory is read through its per-verifier summaries (``ttscale.rundir.summaries``), never its
per-sample table, after the staleness checks (``ttscale.rundir.staleness``). ``ttscale.analysis.pipeline``
turns an AnalysisInput into curves, fits and figures.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ttscale.errors import InputError, arg
from ttscale.rundir.counts import group_columns, read_table, validate_counts
from ttscale.rundir.store import RunDir


@dataclass
class AnalysisInput:
    """A validated input: counts per (group, problem), and per-sample rows for a run directory."""

    source: Path
    counts: pd.DataFrame  # group columns + problem, num_samples, num_correct
    group_cols: list[str]
    #: a run directory's answer/score histograms (``ttscale.rundir.summaries``): group columns +
    #: problem_id, answer, score, count, passed
    selection: pd.DataFrame | None = None
    tokens: pd.DataFrame | None = None  # group columns + avg_prompt_tokens, avg_output_tokens
    cache_dir: Path | None = None  # where selection curves are cached (a run's summaries/cache)
    state: dict[str, Any] | None = None  # a run's samples and verdicts (ttscale.rundir.staleness)

    def groups(self) -> list[tuple[tuple, pd.DataFrame]]:
        """(key, counts rows) per group, key a tuple of the group values (sorted)."""
        if not self.group_cols:
            return [((), self.counts)]
        return [
            (k if isinstance(k, tuple) else (k,), g)
            for k, g in self.counts.groupby(self.group_cols, sort=True, dropna=False)
        ]


def _pool(counts: pd.DataFrame, group_by: list[str]) -> pd.DataFrame:
    """Sum counts of one problem over the grouping columns left out of ``group_by``."""
    from ttscale.analysis.adaptive.run import is_adaptive

    if is_adaptive(counts):
        raise InputError("counts table: adaptive rows cannot be pooled over groups (the rule "
                         f"stopped each group apart); keep every grouping column in {arg('group_by')}")
    agg = counts.groupby([*group_by, "problem"], sort=True, dropna=False)
    out = agg[["num_samples", "num_correct"]].sum().reset_index()
    return out[[*group_by, "problem", "num_samples", "num_correct"]]


def _check_group_by(group_by: list[str] | None, available: list[str], source: Path) -> list[str]:
    if group_by is None:
        return available
    unknown = [c for c in group_by if c not in available]
    if unknown:
        raise InputError(
            f"{source}: {arg('group_by')} column {unknown[0]!r} is not a grouping column "
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
    ``ttscale.rundir.staleness``) unless ``allow_stale``, which warns instead."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: no such file or directory")
    if path.is_dir():
        if prompt_tokens is not None or output_tokens is not None:
            raise InputError(f"{path}: {arg('prompt_tokens')}/{arg('output_tokens')} apply to counts tables; "
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
    raw = counts
    counts = validate_counts(counts, source)
    cols = _check_group_by(group_by, group_columns(counts), path)
    if cols != group_columns(counts):
        counts = _pool(counts, cols)
    tokens = None
    if (prompt_tokens is None) != (output_tokens is None):
        raise InputError(f"{path}: give both {arg('prompt_tokens')} and {arg('output_tokens')}, or neither")
    if prompt_tokens is not None:
        if prompt_tokens < 0 or output_tokens < 0:
            raise InputError(f"{path}: {arg('prompt_tokens')}/{arg('output_tokens')} must be >= 0")
        tokens = counts[cols].drop_duplicates().reset_index(drop=True)
        tokens["avg_prompt_tokens"] = float(prompt_tokens)
        tokens["avg_output_tokens"] = float(output_tokens)
    elif {"mean_prompt_tokens", "mean_output_tokens"} <= set(raw.columns):
        tokens = tokens_from_counts(raw, cols, path)
    return AnalysisInput(path, counts.reset_index(drop=True), cols, tokens=tokens)


def tokens_from_counts(counts: pd.DataFrame, cols: list[str], source: Path) -> pd.DataFrame:
    """Per group: the tokens its samples used (``mean_*_tokens`` of a counts table derived from a
    run), weighted by samples; so cost per budget comes from the tokens actually used."""
    df = counts.copy()
    for c in ("mean_prompt_tokens", "mean_output_tokens"):
        v = pd.to_numeric(df[c], errors="coerce")
        if v.isna().any() or (v < 0).any():
            row = int(np.flatnonzero((v.isna() | (v < 0)).to_numpy())[0])
            raise InputError(f"{source}: column '{c}' row {row + 1}: {df[c].iloc[row]!r} is not a token count")
        df[c] = v * df["num_samples"]
    agg = (df.groupby(cols, sort=True, dropna=False) if cols else df.assign(_g=0).groupby("_g"))
    tok = agg[["mean_prompt_tokens", "mean_output_tokens", "num_samples"]].sum().reset_index()
    tok["avg_prompt_tokens"] = tok["mean_prompt_tokens"] / tok["num_samples"]
    tok["avg_output_tokens"] = tok["mean_output_tokens"] / tok["num_samples"]
    return tok[[*cols, "avg_prompt_tokens", "avg_output_tokens"]]


def _load_run(path: Path, group_by: list[str] | None, allow_stale: bool = False) -> AnalysisInput:
    """A run directory's counts and answer/score histograms, read from its summaries only
    (``ttscale.rundir.summaries``: brought up to date first, folding only new shards)."""
    from ttscale.rundir.summaries import samples_summary, verdict_summary

    run = RunDir(path)
    if not run.problems_path.is_file() and not run.has_samples():
        from ttscale.rundir.outputs import not_a_run

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
    from ttscale.rundir.staleness import check_run_for_analysis

    state = check_run_for_analysis(run, allow_stale)  # every verifier covers every sample
    per_pt = samples_summary(run).table.to_pandas()
    hists = []
    for name in verifiers:
        h = verdict_summary(run, name).table.to_pandas()
        h.insert(0, "verifier", name)
        hists.append(h)
    hist = pd.concat(hists, ignore_index=True)
    available = ["verifier", "temperature"]
    if (per_pt["budget"] > 0).any():  # thinking budgets: a grouping column like temperature
        available.append("budget")
    else:
        hist = hist.drop(columns="budget")
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
    pt = ["problem_id", "temperature", *(["budget"] if "budget" in hist.columns else [])]
    verdicts_pt = hist.groupby(list(dict.fromkeys([*cols, *pt])), dropna=False)["count"].sum().reset_index()
    if "budget" not in hist.columns:
        per_pt = per_pt.groupby(pt, as_index=False)[["n", "prompt_tokens", "output_tokens"]].sum()
    verdicts_pt = verdicts_pt.merge(per_pt, on=pt, how="left")
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
    from ttscale.analysis.adaptive.run import attach, first_m_selection

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
