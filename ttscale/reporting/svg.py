"""Interactive figures and tables for the HTML report: inline SVG plus a little inline JavaScript.

A chart is self-contained and works offline: every point carries a ``<title>`` (its value and
confidence interval, shown on hover), and each legend entry toggles its series (click). The
legend sits beside the plot, never over the curves. Used by :mod:`ttscale.reporting.sections`.
"""

from __future__ import annotations

import html
import math
from dataclasses import dataclass, field

import pandas as pd

PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b", "#e377c2",
           "#7f7f7f", "#bcbd22")

#: the script every chart relies on: toggling series from the legend (included once per page)
SCRIPT = """
document.addEventListener('click',function(e){var t=e.target.closest('[data-series]');
if(!t||!t.closest('svg.ttchart'))return;var svg=t.closest('svg.ttchart'),s=t.getAttribute('data-series');
var on=t.getAttribute('data-off')!=='1';t.setAttribute('data-off',on?'1':'0');t.style.opacity=on?0.35:1;
svg.querySelectorAll('g.series[data-name="'+s+'"]').forEach(function(g){g.style.display=on?'none':''});});
"""


@dataclass
class Series:
    name: str
    xs: list[float]
    ys: list[float]
    lo: list[float] = field(default_factory=list)  # CI band (optional)
    hi: list[float] = field(default_factory=list)
    dashed: bool = False
    x_name: str = "k"  # what a point's hover text calls its x value


def _esc(x: object) -> str:
    return html.escape(str(x), quote=True)


def line_chart(series: list[Series], x_label: str, y_label: str, log_x: bool = True,
               width: int = 760, height: int = 340, y_range: tuple[float, float] | None = (0.0, 1.0)) -> str:
    """An SVG line chart with CI bands, hover values and a clickable legend on the right."""
    pts = [(x, y) for s in series for x, y in zip(s.xs, s.ys, strict=True) if _ok(x, log_x) and y == y]
    if not pts:
        return ""
    left, top, plot_w, plot_h = 56, 12, width - 56 - 220, height - 12 - 44
    fx = (lambda v: math.log10(v)) if log_x else (lambda v: v)
    x0, x1 = min(fx(x) for x, _ in pts), max(fx(x) for x, _ in pts)
    if y_range is None:
        ys = [y for _, y in pts] + [v for s in series for v in (*s.lo, *s.hi) if v == v]
        y_range = (min(ys), max(ys))
    y0, y1 = y_range
    x1, y1 = (x1 if x1 > x0 else x0 + 1), (y1 if y1 > y0 else y0 + 1)

    def px(x: float) -> float:
        return left + (fx(x) - x0) / (x1 - x0) * plot_w

    def py(y: float) -> float:
        return top + (1 - (y - y0) / (y1 - y0)) * plot_h

    out = [f'<svg class="ttchart" viewBox="0 0 {width} {height}" width="{width}" height="{height}" '
           f'xmlns="http://www.w3.org/2000/svg" font-size="11" font-family="sans-serif">']
    out.append(f'<rect x="{left}" y="{top}" width="{plot_w}" height="{plot_h}" fill="none" stroke="#999"/>')
    for tick in _ticks(x0, x1, log_x):
        x = left + (fx(tick) - x0) / (x1 - x0) * plot_w
        out.append(f'<line x1="{x:.1f}" y1="{top}" x2="{x:.1f}" y2="{top + plot_h}" stroke="#eee"/>'
                   f'<text x="{x:.1f}" y="{top + plot_h + 14}" text-anchor="middle">{tick:g}</text>')
    for i in range(6):
        y = y0 + (y1 - y0) * i / 5
        out.append(f'<line x1="{left}" y1="{py(y):.1f}" x2="{left + plot_w}" y2="{py(y):.1f}" stroke="#eee"/>'
                   f'<text x="{left - 4}" y="{py(y) + 4:.1f}" text-anchor="end">{y:.2g}</text>')
    out.append(f'<text x="{left + plot_w / 2}" y="{height - 6}" text-anchor="middle">{_esc(x_label)}</text>'
               f'<text transform="translate(12 {top + plot_h / 2}) rotate(-90)" text-anchor="middle">'
               f'{_esc(y_label)}</text>')
    labels = legend_labels([s.name for s in series])
    for i, s in enumerate(series):
        color = PALETTE[i % len(PALETTE)]
        keep = [j for j, x in enumerate(s.xs) if _ok(x, log_x) and s.ys[j] == s.ys[j]]
        if not keep:
            continue
        g = [f'<g class="series" data-name="{_esc(s.name)}">']
        if s.lo and s.hi:
            band = [(s.xs[j], s.lo[j], s.hi[j]) for j in keep if s.lo[j] == s.lo[j] and s.hi[j] == s.hi[j]]
            if band:
                up = " ".join(f"{px(x):.1f},{py(h):.1f}" for x, _, h in band)
                down = " ".join(f"{px(x):.1f},{py(lo):.1f}" for x, lo, _ in reversed(band))
                g.append(f'<polygon points="{up} {down}" fill="{color}" opacity="0.15"/>')
        line = " ".join(f"{px(s.xs[j]):.1f},{py(s.ys[j]):.1f}" for j in keep)
        dash = ' stroke-dasharray="5,3"' if s.dashed else ""
        g.append(f'<polyline points="{line}" fill="none" stroke="{color}" stroke-width="1.6"{dash}/>')
        step = max(1, len(keep) // 40)  # hover points: at most about 40 per series
        for j in keep[::step] + ([keep[-1]] if (len(keep) - 1) % step else []):
            ci = (f" [{s.lo[j]:.3f}, {s.hi[j]:.3f}]" if s.lo and s.hi and s.lo[j] == s.lo[j] else "")
            g.append(f'<circle cx="{px(s.xs[j]):.1f}" cy="{py(s.ys[j]):.1f}" r="3" fill="{color}">'
                     f'<title>{_esc(s.name)}: {_esc(s.x_name)} = {s.xs[j]:g}, {s.ys[j]:.3f}{ci}</title></circle>')
        g.append("</g>")
        out.extend(g)
        ly = top + 14 + 16 * i
        out.append(f'<g data-series="{_esc(s.name)}" style="cursor:pointer">'
                   f'<title>{_esc(s.name)} (click to hide or show)</title>'
                   f'<rect x="{left + plot_w + 12}" y="{ly - 9}" width="14" height="10" fill="{color}"/>'
                   f'<text x="{left + plot_w + 30}" y="{ly}">{_esc(labels[i])}</text></g>')
    out.append("</svg>")
    return "".join(out)


def histogram(values: list[float], bins: int, label: str, width: int = 520, height: int = 200) -> str:
    """An SVG histogram of values in [0, 1]; each bar's hover says its range and count."""
    counts = [0] * bins
    for v in values:
        counts[min(bins - 1, max(0, int(v * bins)))] += 1
    top, left, plot_w, plot_h = 10, 40, width - 50, height - 44
    peak = max(counts) or 1
    out = [f'<svg viewBox="0 0 {width} {height}" width="{width}" height="{height}" '
           f'xmlns="http://www.w3.org/2000/svg" font-size="11" font-family="sans-serif">']
    bw = plot_w / bins
    for i, c in enumerate(counts):
        h = c / peak * plot_h
        out.append(f'<rect x="{left + i * bw + 1:.1f}" y="{top + plot_h - h:.1f}" width="{bw - 2:.1f}" '
                   f'height="{h:.1f}" fill="#1f77b4"><title>{i / bins:.2f}-{(i + 1) / bins:.2f}: '
                   f'{c} problem(s)</title></rect>')
    for i in range(0, bins + 1, max(1, bins // 5)):
        out.append(f'<text x="{left + i * bw:.1f}" y="{top + plot_h + 14}" text-anchor="middle">{i / bins:g}</text>')
    out.append(f'<text x="{left - 4}" y="{top + 10}" text-anchor="end">{peak}</text>'
               f'<text x="{left + plot_w / 2}" y="{height - 6}" text-anchor="middle">{_esc(label)}</text></svg>')
    return "".join(out)


def table_html(df: pd.DataFrame, float_fmt: str = "{:.4f}") -> str:
    """A DataFrame as the report's table (scrolls sideways where it is wider than the page)."""
    head = "".join(f'<th class="l">{_esc(c)}</th>' if df[c].dtype == object else f"<th>{_esc(c)}</th>"
                   for c in df.columns)
    rows = []
    for rec in df.itertuples(index=False):
        cells = []
        for v in rec:
            if isinstance(v, float):
                cells.append(f"<td>{'' if pd.isna(v) else float_fmt.format(v)}</td>")
            elif isinstance(v, int):
                cells.append(f"<td>{v}</td>")
            else:
                cells.append(f'<td class="l">{_esc(v)}</td>')
        rows.append("<tr>" + "".join(cells) + "</tr>")
    return (f'<div class="scroll"><table><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}'
            "</tbody></table></div>")


def _ok(x: float, log_x: bool) -> bool:
    return x == x and (x > 0 if log_x else True)


def _ticks(x0: float, x1: float, log_x: bool) -> list[float]:
    if log_x:
        return [10.0 ** e for e in range(math.floor(x0), math.ceil(x1) + 1) if x0 - 1e-9 <= e <= x1 + 1e-9]
    return [x0 + (x1 - x0) * i / 5 for i in range(6)]


def legend_labels(names: list[str], n: int = 30) -> list[str]:
    """Each name in at most ``n`` characters, distinct where the names are: cut at the end,
    else in the middle (keeping both ends), else numbered."""
    short = [_short(x, n) for x in names]
    if len(set(short)) < len(set(names)):
        head = (n - 1) // 3
        short = [x if len(x) <= n else x[:head] + "…" + x[-(n - 1 - head):] for x in names]
    seen: dict[str, int] = {}
    out = []
    for name, label in zip(names, short, strict=True):
        clash = [m for m in set(names) if m != name and short[names.index(m)] == label]
        if clash:
            seen[label] = seen.get(label, 0) + 1
            label = f"{label[: n - 4]}… #{seen[label]}"
        out.append(label)
    return out


def _short(text: str, n: int) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"
