"""The report's thinking-budget section (issue 21): accuracy over the budget at each k, the tokens
each budget really used, and the sequential saturation point beside the parallel one.

Coverage over k at each budget is the run's scaling-curve chart (one series per budget); this
section adds the other axis: for each k, accuracy against the thinking budget (log scale), with
the intervals of the curves, then one row per budget of what its samples cost (mean thinking,
answer and output tokens; the share whose answer was forced).
"""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ttscale.reporting.svg import Series, line_chart, table_html
from ttscale.rundir.store import RunDir

NOTE = ("A budget is a cut of one trace: the samples of all budgets of one (problem, temperature, "
        "index) share their seed and their first B thinking tokens, so the curves of two budgets "
        "are correlated, not independent. A trace that closed its thinking before B is the same "
        "sample at B and every larger budget; the others are cut at B and their answer forced. "
        "The sequential saturation point is TTSPM's: the budget from which one more round of "
        "thinking (the smallest budget's tokens) gains less than the threshold in accuracy, from "
        "F(B) = F_max (1 - exp(-rate B)) fitted to pass@1 per budget, with a bootstrap interval "
        "over problems; not to be trusted beyond the largest budget or with fewer than 3 budgets.")


def budget_section(run: Path, cfg: dict[str, Any]) -> str:
    """The section, or "" for a run without budgets."""
    path = run / "analysis" / "curves.parquet"
    if not cfg.get("budgets") or not path.is_file():
        return ""
    curves = pd.read_parquet(path)
    if "budget" not in curves.columns:
        return ""
    parts = ["<h3>Thinking budgets: accuracy over the budget at each k</h3>",
             f"<p>{html.escape(NOTE)}</p>"]
    pk = curves[curves["metric"] == "pass@k"]
    rest = [c for c in pk.columns if c not in ("budget", "metric", "k", "estimate", "ci_low", "ci_high", "task")]
    ks = sorted(pk["k"].unique())
    shown = sorted({ks[0], ks[-1], *[k for k in ks if k in (2, 4, 8, 16, 64, 256, 1024)]})
    series = []
    for key, g in pk[pk["k"].isin(shown)].groupby([*rest, "k"], sort=True, dropna=False):
        key = key if isinstance(key, tuple) else (key,)
        label = ", ".join(f"{c}={v:g}" if isinstance(v, float) else f"{c}={v}"
                          for c, v in zip(rest, key[:-1], strict=True))
        g = g.sort_values("budget")
        series.append(Series(f"pass@{key[-1]} ({label})", g["budget"].astype(float).tolist(),
                             g["estimate"].tolist(), g["ci_low"].tolist(), g["ci_high"].tolist(),
                             x_name="budget"))
    chart = line_chart(series, "thinking budget (tokens, log scale)", "accuracy")
    if chart:
        parts.append(f"<figure class='interactive'>{chart}</figure>")
    table = budget_table(run, pk)
    if table is not None:
        parts.append("<h3>Thinking budgets: tokens used and accuracy per budget</h3>")
        parts.append(table_html(table))
    seq = _sequential_rows(run)
    if seq is not None:
        parts.append("<h3>Saturation points: parallel (k) and sequential (budget)</h3>")
        parts.append(table_html(seq))
    return "\n".join(parts)


def budget_table(run: Path, pk: pd.DataFrame) -> pd.DataFrame | None:
    """Per (temperature, budget): mean tokens used, forced share, pass@1 and pass@K [CI]."""
    from ttscale.rundir.summaries import samples_summary

    rd = RunDir(run)
    if not rd.has_samples():
        return None
    s = samples_summary(rd).table.to_pandas()
    agg = s.groupby(["temperature", "budget"])[["n", "thinking_tokens", "answer_tokens",
                                                "output_tokens", "forced"]].sum().reset_index()
    out = pd.DataFrame({"temperature": agg["temperature"], "budget": agg["budget"],
                        "samples": agg["n"]})
    for c in ("thinking_tokens", "answer_tokens", "output_tokens"):
        out[f"mean {c.replace('_', ' ')}"] = (agg[c] / agg["n"]).round(1)
    out["forced"] = (agg["forced"] / agg["n"]).map(lambda v: f"{v:.0%}")
    if "temperature" in pk.columns:
        kmax = int(pk["k"].max())
        for k, name in ((1, "pass@1 [CI]"), (kmax, f"pass@{kmax} [CI]")):
            sub = pk[pk["k"] == k]
            if "verifier" in sub.columns:
                sub = sub[sub["verifier"] == sorted(sub["verifier"].unique())[0]]
            text = {(float(r.temperature), int(r.budget)): f"{r.estimate:.3f} [{r.ci_low:.3f}, {r.ci_high:.3f}]"
                    for r in sub.itertuples()}
            out[name] = [text.get((float(t), int(b)), "") for t, b in zip(out["temperature"], out["budget"], strict=True)]
    return out


def _sequential_rows(run: Path) -> pd.DataFrame | None:
    path = run / "analysis" / "fits.json"
    if not path.is_file():
        return None
    fits = pd.DataFrame(json.loads(path.read_text()))
    if "sequential_saturation_budget" not in fits.columns:
        return None
    rest = [c for c in ("task", "verifier", "temperature") if c in fits.columns]
    rows = []
    for key, g in fits.groupby(rest, sort=True, dropna=False) if rest else [((), fits)]:
        key = key if isinstance(key, tuple) else (key,)
        r = g.iloc[0]
        lo, hi = r.get("sequential_saturation_budget_ci") or [np.nan, np.nan]
        sat_k = ", ".join(f"B={int(b)}: {('never' if v is None or v != v else int(v))}"
                          for b, v in zip(g["budget"], g.get("saturation_k", [None] * len(g)), strict=True))
        status = r.get("sequential_fit_status") or "unchecked"
        rows.append({**dict(zip(rest, key, strict=True)),
                     "law's sequential saturation budget [CI]":
                         f"{r['sequential_saturation_budget']:.0f} [{lo:.0f}, {hi:.0f}]"
                         + ("" if status == "ok" else f" (law {status})"),
                     "measured saturation budget [CI]": _measured(r),
                     "F_max": round(float(r["sequential_f_max"]), 4),
                     "round (tokens)": r["sequential_round_tokens"],
                     "parallel saturation k per budget": sat_k,
                     "note": r.get("sequential_note") or ""})
    return pd.DataFrame(rows)


def _measured(r: pd.Series) -> str:
    """The law-free saturation budget with its interval ("not reached" beyond the largest budget)."""
    v = r.get("sequential_measured_saturation_budget")
    ci = r.get("sequential_measured_saturation_budget_ci") or [None, None]
    if "sequential_measured_saturation_budget" not in r.index:
        return ""

    def text(x: object) -> str:
        return "beyond" if x is None or x != x else f"{float(x):.0f}"

    if v is None or v != v:
        return "not reached: still rising at the largest budget"
    return f"{text(v)} [{text(ci[0])}, {text(ci[1])}]"
