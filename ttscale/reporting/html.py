"""One self-contained HTML page for a run or a whole sweep.

The page embeds every figure (SVG inline, PNG as data URIs), so it can be mailed or attached as
one file. It shows the grid of runs, the scaling curves with fits and confidence bands, the fitted
laws, the verifier comparison, ceilings and saturation points, and the config and versions that
produced them. It reads what the analysis stages wrote and the run's summaries, never a whole
per-sample table (its memory depends on problems x distinct answers, not on samples):

- ``<run>/run.json``, ``<run>/analysis/{curves.parquet, fits.json, figures/*}``
- ``<run>/analysis/compare/{compare.parquet, compare.svg|png}`` where ``ttscale compare`` ran
- ``<run>/summaries/`` (:mod:`ttscale.rundir.summaries`) for the staleness check and per-problem pass
  rates, and of the samples and the oracle's verdicts only the rows of the two or three problems
  whose example completions it shows (:func:`ttscale.reporting.sections.first_examples`)
- ``<sweep>/sweep.json`` (the resolved sweep config) where the folder is a sweep
"""

from __future__ import annotations

import base64
import html
import json
import platform
from pathlib import Path
from typing import Any

import pandas as pd

from ttscale import __version__
from ttscale.errors import InputError
from ttscale.reporting import frontier as report_frontier
from ttscale.reporting import sections as report_sections
from ttscale.reporting.budgets import budget_section
from ttscale.reporting.svg import SCRIPT as CHART_SCRIPT
from ttscale.reporting.svg import table_html
from ttscale.rundir.store import atomic_write_bytes

#: sections added after a run's tables and comparison, in page order: ``(run_dir, run_json) -> html``
#: ("" when there is nothing to show); add a section by appending a function here
RUN_SECTIONS = [budget_section, report_sections.forecast_section, report_sections.simulate_section,
                report_sections.problems_section, report_frontier.run_frontier_section]

#: k values shown in the tables of the report (those present in a curve)
TABLE_KS = (1, 2, 4, 8, 10, 16, 32, 64, 100, 128, 256, 512, 1000, 10000)

#: fits.json keys left out of the report's table (still in fits.json)
FIT_DETAIL_COLUMNS = ("saturation_threshold", "k_min", "n_points", "avg_prompt_tokens",
                      "avg_output_tokens", "model_shape", "metric", "tokens_assumed",
                      "kinetics_eflops_shared_prompt", "selection_methods",
                      "adaptive")  # adaptive: its own section

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2em auto;max-width:1100px;
color:#222;line-height:1.45;padding:0 1em}
h1{font-size:1.6em}h2{border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:2em}
table{border-collapse:collapse;margin:.6em 0;font-size:.88em}
td,th{border:1px solid #ddd;padding:3px 8px;text-align:right;white-space:nowrap}th{background:#f4f4f4}
.scroll{overflow-x:auto;max-width:100%}table.examples td{white-space:normal;vertical-align:top;max-width:22em}
table.examples pre{margin:0;white-space:pre-wrap;word-break:break-word}
td.l,th.l{text-align:left}figure{margin:1em 0}figure svg,figure img{max-width:100%;height:auto}
figcaption{font-size:.85em;color:#555}pre{background:#f7f7f7;padding:.8em;overflow-x:auto;font-size:.8em}
.muted{color:#777}.stale{background:#fff0f0;border:1px solid #d33;padding:.4em .8em;color:#900}
"""

# Marks the page once every figure has decoded: data-figures="<loaded>/<total>" on <body>.
_SCRIPT = """
window.addEventListener('load',function(){var imgs=[].slice.call(document.images);
var ok=imgs.filter(function(i){return i.complete&&i.naturalWidth>0}).length;
var svgs=[].slice.call(document.querySelectorAll('figure svg')).filter(function(s){
var b=s.getBBox();return b.width>0&&b.height>0}).length;
document.body.setAttribute('data-figures',(ok+svgs)+'/'+(imgs.length+document.querySelectorAll('figure svg').length));});
"""


def find_runs(root: Path) -> list[Path]:
    """Run directories under ``root`` (itself included): folders holding a run.json."""
    if (root / "run.json").is_file():
        return [root]
    return sorted(p.parent for p in root.rglob("run.json") if p.parent != root)


def _esc(x: Any) -> str:
    return html.escape(str(x))


def _figure(path: Path, caption: str) -> str:
    if path.suffix == ".svg":
        svg = path.read_text()
        svg = svg[svg.find("<svg"):] if "<svg" in svg else svg
        body = svg
    else:
        data = base64.b64encode(path.read_bytes()).decode()
        body = f'<img alt="{_esc(caption)}" src="data:image/png;base64,{data}">'
    return f"<figure>{body}<figcaption>{_esc(caption)}</figcaption></figure>"


def _figures(folder: Path) -> list[str]:
    """Prefer SVG (crisp, smaller); fall back to PNG where no SVG of the same name exists."""
    if not folder.is_dir():
        return []
    out = []
    stems = sorted({p.stem for p in folder.iterdir() if p.suffix in (".svg", ".png")})
    for stem in stems:
        svg, png = folder / f"{stem}.svg", folder / f"{stem}.png"
        path = svg if svg.is_file() else png
        out.append(_figure(path, stem.replace("_", " ")))
    return out


_table = table_html  # the report's table (ttscale.reporting.svg.table_html)


def _curve_table(curves: pd.DataFrame) -> str:
    ks = [k for k in TABLE_KS if k in set(curves["k"])]
    kmax = int(curves["k"].max())
    if kmax not in ks:
        ks.append(kmax)
    sub = _label_selections(curves[curves["k"].isin(ks)].copy())
    group = [c for c in sub.columns if c not in ("k", "estimate", "ci_low", "ci_high")]
    for c in group:  # a blank (NaN) in a grouping column must not drop the row from the pivot
        if sub[c].isna().any() or c in ("fpr", "fnr"):
            sub[c] = [("" if pd.isna(v) else f"{v:.4f}" if isinstance(v, float) else str(v)) for v in sub[c]]
    sub["value"] = [
        f"{e:.3f}" if pd.isna(lo) else f"{e:.3f} [{lo:.3f}, {hi:.3f}]"
        for e, lo, hi in zip(sub["estimate"], sub["ci_low"], sub["ci_high"], strict=True)
    ]
    wide = sub.pivot_table(index=group, columns="k", values="value", aggfunc="first").reset_index()
    wide.columns = [f"k={c}" if isinstance(c, int | float) and not isinstance(c, bool) else str(c)
                    for c in wide.columns]
    return _table(wide.astype({c: str for c in wide.columns if c.startswith("k=")}))


def _label_selections(curves: pd.DataFrame) -> pd.DataFrame:
    """maj@k / best-of-k rows are the vote's, not an oracle's: say whose answers voted, and show
    rows that several oracles' answers gave identically once."""
    if not {"metric", "verifier"} <= set(curves.columns) or "kind" in curves.columns:
        return curves  # a comparison table: there the verifier column names the selector itself
    sel = curves["metric"] != "pass@k"
    if not sel.any():
        return curves
    rest = [c for c in curves.columns if c != "verifier"]
    voted = curves[sel].groupby(rest, dropna=False, sort=False)["verifier"].agg(
        lambda v: "answers: " + ", ".join(sorted(set(map(str, v))))).reset_index()
    return pd.concat([curves[~sel], voted[curves.columns]], ignore_index=True)


def _saturation_text(fits: pd.DataFrame) -> pd.DataFrame:
    """saturation_k where the measured curve never saturated: "not reached by k = N"."""
    if "saturation_k" not in fits.columns:
        return fits
    fits = fits.copy()
    kmax = fits["k_max"] if "k_max" in fits.columns else pd.Series([None] * len(fits))
    fits["saturation_k"] = [
        (f"not reached by k = {int(m)}" if m is not None and m == m else "not reached")
        if v is None or v != v else str(int(v))
        for v, m in zip(fits["saturation_k"], kmax, strict=True)]
    return fits


def _run_section(run: Path, root: Path) -> str:
    parts = [f"<h2>Run {_esc(run.relative_to(root) if run != root else run.name)}</h2>"]
    cfg = json.loads((run / "run.json").read_text())
    summary = {k: cfg.get(k) for k in ("task", "model", "backend", "num_samples", "temperatures", "seed")
               if k in cfg}
    if summary:
        parts.append(_table(pd.DataFrame([{k: json.dumps(v) if isinstance(v, list | dict) else v
                                           for k, v in summary.items()}])))
    from ttscale.analysis.adaptive.run import REPORT_NOTE, report_table

    adaptive = report_table(cfg)  # the stopping rule and the samples it saved
    if adaptive is not None:
        parts += ["<h3>Adaptive sampling</h3>", f"<p>{_esc(REPORT_NOTE)}</p>", _table(adaptive)]
    analysis = run / "analysis"
    curves_path = analysis / "curves.parquet"
    if curves_path.is_file():
        parts.append("<h3>Scaling curves (estimate [CI])</h3>")
        parts.append(_curve_table(pd.read_parquet(curves_path)))
    fits_path = analysis / "fits.json"
    if fits_path.is_file():
        fits = json.loads(fits_path.read_text())
        if fits:
            parts.append("<h3>Fitted laws, saturation points and ceilings</h3>")
            from ttscale.reporting.fits import DETAIL_KEYS, fit_section

            fits_df = _saturation_text(pd.DataFrame(fits))
            keep = [c for c in fits_df.columns
                    if c not in FIT_DETAIL_COLUMNS and c not in DETAIL_KEYS and not c.endswith("_ci")]
            parts.append(_table(fits_df[keep].dropna(axis=1, how="all")))
            parts.append(fit_section(fits))
    parts.extend(_figures(analysis / "figures"))
    parts.append(report_sections.curves_chart(run, cfg))
    if (analysis / "temperature_best.parquet").is_file():
        from ttscale.analysis.temperatures.view import REPORT_NOTE

        parts.append("<h3>Temperature: best temperature and best split per k</h3>")
        parts.append(f"<p>{_esc(REPORT_NOTE)}</p>")
        parts.append(_table(pd.read_parquet(analysis / "temperature_best.parquet")))
    compare = run / "analysis" / "compare"
    if (compare / "compare.parquet").is_file():
        parts.append("<h3>Verifier comparison (same samples)</h3>")
        table = pd.read_parquet(compare / "compare.parquet")
        parts.append(_curve_table(table.rename(columns={"accuracy": "estimate"}))
                     if "accuracy" in table.columns and "k" in table.columns else _table(table))
        parts.extend(_figures(compare))
    parts.extend(section(run, cfg) for section in RUN_SECTIONS)
    parts.append(f"<details><summary>run.json</summary><pre>{_esc(json.dumps(cfg, indent=2))}</pre></details>")
    return "\n".join(parts)


def build_report(root: str | Path, out: str | Path | None = None, allow_stale: bool = False) -> Path:
    """Write ``report.html`` for a run directory or a sweep folder; return its path.

    A run whose verdicts do not cover every sample, or whose analysis or comparison is older than
    its samples and verdicts, is refused (StaleError, ``ttscale.rundir.staleness``) unless
    ``allow_stale``: then the page says what is stale above that run's section."""
    root = Path(root)
    if not root.is_dir():
        raise InputError(f"{root}: no such directory")
    runs = find_runs(root)
    if not runs:
        raise InputError(f"{root}: no run directories (no run.json found below it)")
    if not any((r / "analysis" / "curves.parquet").is_file() for r in runs):
        raise InputError(f"{root}: no analysis found; run `ttscale analyze` (or the sweep) first")
    from ttscale.rundir.staleness import check_run_outputs
    from ttscale.rundir.store import RunDir

    stale = {r: check_run_outputs(RunDir(r), allow_stale) for r in runs}  # before writing
    title = f"ttscale report: {root.resolve().name}"
    sections = [f"<h1>{_esc(title)}</h1>",
                f'<p class="muted">ttscale {__version__}, Python {platform.python_version()}</p>']
    sweep_json = root / "sweep.json"
    if sweep_json.is_file():
        sweep = json.loads(sweep_json.read_text())
        sections.append("<h2>Grid</h2>")
        grid = [{"run": str(r.relative_to(root)),
                 "analysed": (r / "analysis" / "curves.parquet").is_file(),
                 "compared": (r / "analysis" / "compare" / "compare.parquet").is_file()}
                for r in runs]
        sections.append(_table(pd.DataFrame(grid)))
        sections.extend(_figures(root / "figures"))
        sections.extend(report_frontier.sweep_frontier_sections(root))
        sections.append(f"<details><summary>sweep config</summary><pre>{_esc(json.dumps(sweep, indent=2))}</pre></details>")
    for run in runs:
        section = _run_section(run, root)
        if stale[run]:  # --allow-stale: say so above the run's tables
            warn = "".join(f"<li>{_esc(p)}</li>" for p in stale[run])
            head, _, rest = section.partition("</h2>")
            section = (f'{head}</h2><div class="stale"><b>Stale results:</b><ul>{warn}</ul></div>'
                       f"{rest}")
        sections.append(section)
    page = (f"<!doctype html><html><head><meta charset='utf-8'><title>{_esc(title)}</title>"
            f"<style>{_CSS}</style><script>{_SCRIPT}{CHART_SCRIPT}</script></head><body>"
            + "\n".join(sections) + "</body></html>")
    out_path = Path(out) if out else root / "report.html"
    atomic_write_bytes(out_path, page.encode())
    return out_path
