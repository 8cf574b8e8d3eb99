"""The report's frontier section: the files of ``ttscale frontier --out`` (or a sweep's
``analysis.frontier``) as HTML: the figure, the notes, the frontier table of each metric, where
FLOPs and eFLOPs disagree, and the cross-fitted per-difficulty gain.

Read from a run's ``analysis/frontier/`` (:func:`run_frontier_section`, one of
:data:`ttscale.reporting.html.RUN_SECTIONS`) and a sweep's ``frontier/<task>/``
(:func:`sweep_frontier_sections`).
"""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

import pandas as pd

from ttscale.reporting.svg import table_html

#: columns of the frontier table shown in the report
SHOWN = ("cost", "label", "k", "accuracy", "ci_low", "ci_high", "p_best", "n_not_worse", "not_worse")


def frontier_html(folder: Path, title: str) -> str:
    """One frontier folder as HTML ("" when it holds no frontier)."""
    table_path = folder / "frontier.parquet"
    if not table_path.is_file():
        return ""
    try:
        doc = json.loads((folder / "frontier.json").read_text())
    except (OSError, ValueError):
        doc = {}
    parts = [f"<h3>{html.escape(title)}</h3>",
             '<p class="muted">At each mean cost per problem, the best configuration and k. Intervals '
             "are simultaneous over every configuration and k (paired bootstrap over problems), so the "
             "shaded band covers the whole frontier at once; not_worse lists the configurations whose "
             "paired difference to the best is not significant at that cost.</p>"]
    svg = folder / "figures" / "frontier.svg"
    if svg.is_file():
        text = svg.read_text()
        parts.append(f"<figure>{text[text.find('<svg'):]}<figcaption>frontier</figcaption></figure>")
    notes = doc.get("notes") or []
    if notes:
        parts.append("<ul>" + "".join(f"<li>{html.escape(str(n))}</li>" for n in notes) + "</ul>")
    table = pd.read_parquet(table_path)
    for metric, g in table.groupby("metric", sort=False):
        parts.append(f"<h4>by {html.escape(str(metric))}</h4>")
        parts.append(table_html(g[[c for c in SHOWN if c in g.columns]]))
    dis = doc.get("disagreements") or []
    if dis:
        parts.append("<h4>Where FLOPs and Kinetics eFLOPs pick different configurations</h4>")
        parts.append(table_html(pd.DataFrame(dis)))
    alloc = folder / "frontier_allocation.parquet"
    if alloc.is_file():
        a = pd.read_parquet(alloc)
        if len(a):
            parts.append("<h4>Per-difficulty allocation against the best uniform configuration "
                         "(cross-fitted: chosen on half of each problem's samples, measured on the other)</h4>")
            parts.append(table_html(a))
    return "\n".join(parts)


def run_frontier_section(run: Path, cfg: dict[str, Any]) -> str:
    """A run's ``analysis/frontier`` (written by ``ttscale frontier RUN --out RUN/analysis/frontier``)."""
    return frontier_html(run / "analysis" / "frontier", "Compute-optimal frontier")


def sweep_frontier_sections(root: Path) -> list[str]:
    """A sweep's ``frontier/<task>/`` folders (``analysis.frontier: true``), one section each."""
    base = root / "frontier"
    if not base.is_dir():
        return []
    out = [frontier_html(d, f"Compute-optimal frontier: {d.name}") for d in sorted(base.iterdir()) if d.is_dir()]
    return [s for s in out if s]
