"""Sections of the HTML report beyond the tables (see :mod:`ttscale.reporting`): the interactive
scaling curves, forecasts, what-if simulations, and the per-problem view (pass-rate histogram
and example completions). Each is a function ``(run_dir, run_json) -> html`` returning "" when
there is nothing to show; :data:`ttscale.reporting.RUN_SECTIONS` lists them in page order.
"""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

import pandas as pd

from ttscale.report_svg import Series, histogram, line_chart, table_html


def _esc(x: Any) -> str:
    return html.escape(str(x))


def _h3(text: str) -> str:
    return f"<h3>{_esc(text)}</h3>"


def curves_chart(run: Path, cfg: dict[str, Any]) -> str:
    """pass@k (and maj@k, best-of-k) against k, one series per (verifier, metric, temperature);
    hover a point for its value and CI, click a legend entry to hide or show it."""
    path = run / "analysis" / "curves.parquet"
    if not path.is_file():
        return ""
    curves = pd.read_parquet(path)
    keys = [c for c in curves.columns if c not in ("k", "estimate", "ci_low", "ci_high")]
    series = []
    for key, g in curves.groupby(keys, sort=True, dropna=False):
        key = key if isinstance(key, tuple) else (key,)
        rec = dict(zip(keys, key, strict=True))
        g = g.sort_values("k")
        metric = rec.pop("metric", "pass@k")
        rec.pop("task", None)
        verifier = rec.pop("verifier", None)
        name = metric if metric != "pass@k" or verifier is None else f"pass@k ({verifier})"
        if metric != "pass@k" and verifier is not None:
            name = f"{metric} (answers: {verifier})"
        name += "".join(f", {k}={v:g}" if isinstance(v, float) else f", {k}={v}" for k, v in rec.items())
        series.append(Series(name, g["k"].astype(float).tolist(), g["estimate"].tolist(),
                             g["ci_low"].tolist(), g["ci_high"].tolist(), dashed=metric != "pass@k"))
    chart = line_chart(series, "k (samples per problem, log scale)", "accuracy")
    return (_h3("Scaling curves, interactive (hover a point; click a legend entry to hide it)")
            + f"<figure class='interactive'>{chart}</figure>") if chart else ""


def forecast_section(run: Path, cfg: dict[str, Any]) -> str:
    """analysis/forecast.json (a sweep's analysis.forecast_to, or ttscale forecast --json saved)."""
    path = run / "analysis" / "forecast.json"
    if not path.is_file():
        return ""
    try:
        data = json.loads(path.read_text())
    except ValueError:
        return ""
    rows = data if isinstance(data, list) else data.get("forecasts", []) if isinstance(data, dict) else []
    if not rows:
        return ""
    df = pd.json_normalize(rows)
    keep = [c for c in df.columns if not isinstance(df[c].iloc[0], list | dict)]
    return (_h3("Forecasts (coverage at larger k from the samples drawn)")
            + '<p class="muted">Extrapolations: trust them less the further k lies beyond the '
              "samples drawn; the interval is the forecast's own.</p>" + table_html(df[keep]))


def simulate_section(run: Path, cfg: dict[str, Any]) -> str:
    """Every ``ttscale simulate --out`` folder inside the run (simulation.parquet + summary.json)."""
    parts = []
    for sim in sorted(run.glob("**/simulation.parquet")):
        folder = sim.parent
        if len(folder.relative_to(run).parts) > 3:
            continue
        summary = folder / "summary.json"
        parts.append(f"<h4>{_esc(folder.relative_to(run))}</h4>")
        if summary.is_file():
            try:
                rows = json.loads(summary.read_text())
            except ValueError:
                rows = []
            if rows:
                df = pd.json_normalize(rows)
                keep = [c for c in df.columns if not c.startswith("plan") and
                        not isinstance(df[c].iloc[0], list | dict)]
                parts.append(table_html(df[keep]))
        table = pd.read_parquet(sim)
        if {"k", "accuracy"} <= set(table.columns):
            group = [c for c in table.columns if c not in ("k", "coverage", "accuracy", "false_positive_rate",
                                                            "samples_drawn", "utility")]
            series = []
            for key, g in (table.groupby(group, sort=True) if group else [((), table)]):
                key = key if isinstance(key, tuple) else (key,)
                label = ", ".join(f"{c}={v}" for c, v in zip(group, key, strict=True)) or "simulated"
                g = g.sort_values("k")
                series.append(Series(f"accuracy {label}", g["k"].astype(float).tolist(), g["accuracy"].tolist()))
                if "coverage" in g:
                    series.append(Series(f"coverage {label}", g["k"].astype(float).tolist(),
                                         g["coverage"].tolist(), dashed=True))
            parts.append(f"<figure class='interactive'>{line_chart(series, 'k (log scale)', 'simulated')}</figure>")
    if not parts:
        return ""
    return _h3("What-if simulations (ttscale simulate)") + "".join(parts)


def problems_section(run: Path, cfg: dict[str, Any], examples: int = 3) -> str:
    """Per problem: the histogram of pass rates (the first oracle's verdicts) and example
    completions of the hardest, a middling and the easiest problem (one right, one wrong each)."""
    from ttscale.store import RunDir

    rd = RunDir(run)
    oracle = _first_oracle(rd)
    if oracle is None:
        return ""
    try:
        verdicts = rd.read_verdicts(oracle, columns=["problem_id", "temperature", "sample_index", "passed"])
    except Exception:  # noqa: BLE001 - a run without readable verdicts has no per-problem view
        return ""
    if not len(verdicts):
        return ""
    rates = verdicts.groupby("problem_id")["passed"].mean().sort_values()
    parts = [_h3(f"Per problem ({oracle}): pass rates and example completions"),
             f"<p>{len(rates)} problems; {int((rates == 0).sum())} never solved, "
             f"{int((rates == 1).sum())} always solved (all temperatures pooled).</p>",
             f"<figure class='interactive'>{histogram(rates.tolist(), 20, 'share of samples passed, per problem')}"
             "</figure><p class='muted'>pass rate per problem (hover a bar for its count)</p>"]
    picks = list(dict.fromkeys([rates.index[0], rates.index[len(rates) // 2], rates.index[-1]]))[:examples]
    try:
        problems = rd.read_problems().set_index("problem_id")
        samples = rd.read_samples(["problem_id", "temperature", "sample_index", "text"])
    except Exception:  # noqa: BLE001
        return "".join(parts)
    samples = samples[samples["problem_id"].isin(picks)]
    merged = samples.merge(verdicts, on=["problem_id", "temperature", "sample_index"], how="inner")
    rows = []
    for pid in picks:
        sub = merged[merged["problem_id"] == pid].sort_values(["temperature", "sample_index"])
        good = sub[sub["passed"]].head(1)["text"].tolist()
        bad = sub[~sub["passed"]].head(1)["text"].tolist()
        prompt = str(problems.loc[pid, "prompt"]) if pid in problems.index else ""
        ref = str(problems.loc[pid, "reference"]) if pid in problems.index and "reference" in problems else ""
        rows.append(f"<tr><td class='l'>{_esc(pid)}</td><td>{rates[pid]:.3f}</td>"
                    f"<td class='l'><pre>{_esc(_clip(prompt))}</pre></td><td class='l'><pre>{_esc(_clip(ref))}</pre></td>"
                    f"<td class='l'><pre>{_esc(_clip(good[0])) if good else '<i>none</i>'}</pre></td>"
                    f"<td class='l'><pre>{_esc(_clip(bad[0])) if bad else '<i>none</i>'}</pre></td></tr>")
    parts.append('<div class="scroll"><table class="examples"><thead><tr><th class="l">problem</th>'
                 '<th>pass rate</th><th class="l">prompt</th><th class="l">reference</th>'
                 '<th class="l">a passing sample</th><th class="l">a failing sample</th></tr></thead>'
                 f"<tbody>{''.join(rows)}</tbody></table></div>")
    return "".join(parts)


def _first_oracle(rd: Any) -> str | None:
    for name in rd.verifiers():
        meta = rd.verdicts_dir(name) / "verifier.json"
        try:
            kind = json.loads(meta.read_text()).get("kind", "oracle")
        except (OSError, ValueError):
            kind = "oracle"
        if kind == "oracle":
            return name
    return None


def _clip(text: str, n: int = 400) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"
