"""Figures of scaling curves: coverage against k (or FLOPs) with CI bands, fitted laws, marks.

The module knows nothing of counts or run directories: it draws :class:`Line` objects (x, an
estimate, a confidence band, optionally a fitted law, a saturation point and a ceiling) into one
figure and saves it as PNG and SVG. ``ttscale.analysis.pipeline`` builds the lines.

Output is deterministic: the Agg backend, a fixed ``svg.hashsalt``, no creation date in the SVG
metadata, so that one input gives byte-identical files on one machine and matplotlib version.
matplotlib is imported inside functions, so importing this module is cheap.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

#: grouping columns that name a benchmark: one figure per value of the first one present
PANEL_COLUMNS = ("benchmark", "task", "dataset")

#: rcParams applied to every figure (deterministic SVG ids, text kept as paths for portability)
RC_PARAMS: dict[str, Any] = {
    "svg.hashsalt": "ttscale",
    "svg.fonttype": "path",
    "figure.dpi": 100,
    "savefig.dpi": 120,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "font.size": 9,
}


@dataclass
class Line:
    """One curve of a figure.

    ``x`` must be positive where the axis is logarithmic. ``low``/``high`` give the CI band
    (omit both for no band). ``fit_x``/``fit_y`` draw the fitted law as a dashed line of the same
    colour. ``saturation_x`` marks the saturation point on the curve (interpolated in log x);
    ``ceiling`` draws a dotted horizontal line at that coverage.
    """

    label: str
    x: np.ndarray
    y: np.ndarray
    low: np.ndarray | None = None
    high: np.ndarray | None = None
    fit_x: np.ndarray | None = None
    fit_y: np.ndarray | None = None
    fit_label: str | None = None
    saturation_x: float | None = None
    saturation_text: str | None = None
    ceiling: float | None = None
    fit_rejected: bool = False  #: the law left the CI band: drawn grey, dash-dotted, so labelled

    def __post_init__(self) -> None:
        self.x = np.asarray(self.x, dtype=float)
        self.y = np.asarray(self.y, dtype=float)
        if self.x.shape != self.y.shape or self.x.ndim != 1:
            raise ValueError(f"line {self.label!r}: x and y must be 1-d arrays of one length")
        for name in ("low", "high", "fit_x", "fit_y"):
            v = getattr(self, name)
            if v is not None:
                setattr(self, name, np.asarray(v, dtype=float))
        if (self.low is None) != (self.high is None):
            raise ValueError(f"line {self.label!r}: give both low and high, or neither")
        if (self.fit_x is None) != (self.fit_y is None):
            raise ValueError(f"line {self.label!r}: give both fit_x and fit_y, or neither")


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import warnings

    import matplotlib.pyplot as plt

    # group names in scripts the default font lacks (CJK, ...) draw as boxes: not worth a warning
    # per glyph and figure (the names are whole in the tables and file names)
    warnings.filterwarnings("ignore", message=r"Glyph \d+ .*missing from font", category=UserWarning)
    warnings.filterwarnings("ignore", message=r"Matplotlib currently does not support", category=UserWarning)
    return plt


def interpolate_log_x(x: np.ndarray, y: np.ndarray, at: float) -> float:
    """y at ``at``, linearly interpolated in log(x) (x sorted ascending, positive)."""
    order = np.argsort(x)
    return float(np.interp(np.log(at), np.log(x[order]), y[order]))


def plot_lines(
    lines: Sequence[Line],
    *,
    title: str = "",
    xlabel: str = "k (samples per problem)",
    ylabel: str = "coverage (pass@k)",
    logx: bool = True,
    ylim: tuple[float, float] | None = (0.0, 1.0),
):
    """Draw ``lines`` into a new figure and return it (matplotlib ``Figure``)."""
    plt = _pyplot()
    with plt.rc_context(RC_PARAMS):
        fig, ax = plt.subplots(figsize=(8.4, 4.4))  # room for the legend on the right
        colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
        for i, line in enumerate(lines):
            color = colors[i % len(colors)]
            marker = "o" if line.x.size <= 60 else None  # dense curves: no dots
            ax.plot(line.x, line.y, color=color, lw=1.6, marker=marker, ms=2.5, label=line.label)
            if line.low is not None:
                ax.fill_between(line.x, line.low, line.high, color=color, alpha=0.18, lw=0)
            if line.fit_x is not None:
                label = line.fit_label or f"{line.label} (fit)"
                ax.plot(
                    line.fit_x,
                    line.fit_y,
                    color="0.55" if line.fit_rejected else color,
                    lw=1.1,
                    ls="-." if line.fit_rejected else "--",
                    label=f"{label}: REJECTED" if line.fit_rejected else label,
                )
            if line.saturation_x is not None and len(line.x) and np.isfinite(line.saturation_x):
                sx = float(line.saturation_x)
                if logx:
                    sy = interpolate_log_x(line.x, line.y, sx)
                else:
                    sy = float(np.interp(sx, line.x, line.y))
                ax.plot([sx], [sy], marker="*", ms=11, color=color, mec="black", mew=0.6, ls="")
                ax.annotate(
                    line.saturation_text or f"saturation {sx:.3g}",
                    (sx, sy),
                    textcoords="offset points",
                    xytext=(4, -12),
                    fontsize=7,
                    color=color,
                )
            if line.ceiling is not None and np.isfinite(line.ceiling):
                ax.axhline(line.ceiling, color=color, lw=0.9, ls=":",
                           label=f"{line.label} (ceiling {line.ceiling:.3f})")
        if logx:
            ax.set_xscale("log")
        if ylim is not None:
            ax.set_ylim(*ylim)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        if title:
            ax.set_title(title)
        if lines:
            # beside the axes, never over the curves (several oracles' lines would be hidden)
            ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0, fontsize=7)
        fig.tight_layout()
    return fig


def save_figure(fig: Any, stem: str | Path) -> list[Path]:
    """Save ``fig`` as ``stem.png`` and ``stem.svg`` (deterministic), close it, return the paths."""
    plt = _pyplot()
    stem = Path(stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    png, svg = stem.with_name(stem.name + ".png"), stem.with_name(stem.name + ".svg")
    with plt.rc_context(RC_PARAMS):
        fig.savefig(png, format="png", metadata={"Software": None})
        fig.savefig(svg, format="svg", metadata={"Date": None, "Creator": None})
    plt.close(fig)
    return [png, svg]


def slug(text: str) -> str:
    """A file-name-safe form of ``text``: letters, digits, dots, dashes and underscores."""
    s = re.sub(r"[^A-Za-z0-9._-]+", "_", str(text)).strip("_.")
    return s or "all"


# -- figures of an analysis ------------------------------------------------------------------
def _label(cols: Sequence[str], values: Sequence[Any]) -> str:
    parts = []
    for c, v in zip(cols, values, strict=True):
        parts.append(f"{c}={v:g}" if isinstance(v, (int, float, np.number)) else str(v))
    return ", ".join(parts) or "all"


def build_figures(result: Any) -> list[tuple[str, Any]]:
    """(file stem, Figure) pairs for an analysis result (``ttscale.analysis.pipeline``).

    One figure per value of the panel column (the first of benchmark/task/dataset among the
    group columns; one figure if none), lines per the other group columns:
    ``coverage_k``: pass@k against k, CI band, fitted law dashed (its b with the bootstrap
    interval in the legend; grey dash-dotted and labelled REJECTED where it left the band), saturation point (star) and the
    fitted ceiling (dotted) marked; ``coverage_flops``: the same against FLOPs, where the cost is
    known; ``selection_k``: pass@k beside maj@k / best-of-k / weighted-vote@k, where present.
    """
    gcols = list(result.group_cols)
    panel = next((c for c in PANEL_COLUMNS if c in gcols), None)
    line_cols = [c for c in gcols if c != panel]
    curves = result.curves
    fits = {tuple(r.get(c) for c in gcols): r for r in result.fits}
    panels = [(None, curves)] if panel is None else list(curves.groupby(panel, sort=True))
    out: list[tuple[str, Any]] = []
    for pval, pc in panels:
        suffix = "" if panel is None else f"-{slug(pval)}"
        title = "" if panel is None else str(pval)
        by_k, by_flops, sel = [], [], []
        groups = [((), pc)] if not gcols else pc.groupby(gcols, sort=True, dropna=False)
        for key, g in groups:
            key = key if isinstance(key, tuple) else (key,)
            lkey = tuple(v for c, v in zip(gcols, key, strict=True) if c != panel)
            label = _label(line_cols, lkey) if line_cols else (title or "all")
            rec = fits.get(tuple(_plain(v) for v in key), {})
            fit = result.fit_objects.get(key)
            flops = result.flops_fn.get(key)
            for metric, m in g.groupby("metric", sort=True):
                m = m.sort_values("k")
                k = m["k"].to_numpy(float)
                if metric != "pass@k":
                    sel.append(Line(f"{label}: {metric}", k, m["estimate"], m["ci_low"], m["ci_high"]))
                    continue
                fk = np.unique(np.geomspace(1, k.max(), 200)) if fit is not None else None
                fy = fit.predict(fk) if fit is not None else None
                sat = rec.get("saturation_k")
                ceil = rec.get("c_max")
                rejected = rec.get("fit_status") == "rejected"
                line = Line(label, k, m["estimate"], m["ci_low"], m["ci_high"], fk, fy,
                            fit_label=fit_label(label, rec), saturation_x=sat, ceiling=ceil,
                            fit_rejected=rejected)
                by_k.append(line)
                sel.append(Line(f"{label}: pass@k", k, m["estimate"], m["ci_low"], m["ci_high"]))
                if flops is not None:
                    fx = flops(k)
                    by_flops.append(Line(
                        label, fx, m["estimate"], m["ci_low"], m["ci_high"],
                        flops(fk) if fk is not None else None, fy,
                        saturation_x=float(flops(np.array([sat]))[0]) if sat else None,
                        saturation_text=f"saturation k={sat}" if sat else None, ceiling=ceil,
                        fit_label=fit_label(label, rec), fit_rejected=rejected,
                    ))
        out.append((f"coverage_k{suffix}", plot_lines(by_k, title=title)))
        if by_flops:
            out.append((f"coverage_flops{suffix}", plot_lines(
                by_flops, title=title, xlabel="inference FLOPs per problem")))
        if len(sel) > len(by_k):
            out.append((f"selection_k{suffix}", plot_lines(sel, title=title, ylabel="accuracy")))
    return out


def fit_label(label: str, rec: dict[str, Any]) -> str:
    """Legend text of a fitted law: its exponent with the bootstrap interval where known."""
    b, ci = rec.get("b"), rec.get("b_ci")
    if b is None:
        return f"{label} (fit)"
    if ci and None not in ci:
        return f"{label} fit: b={b:.2f} [{ci[0]:.2f}, {ci[1]:.2f}]"
    return f"{label} fit: b={b:.2f}"


def _plain(v: Any) -> Any:
    return v.item() if isinstance(v, np.generic) else v


def compare_figure(table: Any, title: str) -> Any:
    """``ttscale compare``'s figure: accuracy against k per verifier, CI bands.

    ``table`` has the columns of ``ttscale.analysis.compare.TABLE_COLUMNS``; the first verifier
    (the reference oracle) is drawn in black, one dash per temperature.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams["svg.hashsalt"] = "ttscale"
    fig, ax = plt.subplots(figsize=(9, 4.5))  # room for the legend on the right
    from matplotlib.ticker import FuncFormatter, NullFormatter

    temps = sorted(table["temperature"].unique())
    dashes = ["-", "--", ":", "-."]
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    groups = table.groupby(["verifier", "metric"], sort=False)
    for i, ((verifier, metric), g) in enumerate(groups):
        color = "black" if i == 0 else colors[(i - 1) % len(colors)]  # black: the reference oracle
        for temp, gt in g.groupby("temperature", sort=True):
            ls = dashes[temps.index(temp) % len(dashes)]
            label = f"{verifier} ({metric})" + (f", T={temp:g}" if len(temps) > 1 else "")
            ax.plot(gt["k"], gt["accuracy"], ls=ls, color=color, lw=2.2 if i == 0 else 1.6,
                    label=label)
            ax.fill_between(gt["k"], gt["ci_low"], gt["ci_high"], color=color,
                            alpha=0.10 if i == 0 else 0.15, lw=0)
    ax.set_xscale("log")
    ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _: f"{x:g}"))
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel("k (samples per problem)")
    ax.set_ylabel("accuracy")
    ax.set_ylim(-0.02, 1.02)
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0)  # off the curves
    fig.tight_layout()
    return fig


def compare_figure_bytes(table: Any, title: str) -> tuple[bytes, bytes]:
    """(PNG, SVG) bytes of :func:`compare_figure` (deterministic: no date in the SVG)."""
    import io

    import matplotlib.pyplot as plt

    fig = compare_figure(table, title)
    out = []
    for fmt in ("png", "svg"):
        buf = io.BytesIO()
        fig.savefig(buf, format=fmt, dpi=120, metadata={"Date": None} if fmt == "svg" else None)
        out.append(buf.getvalue())
    plt.close(fig)
    return out[0], out[1]


def simulation_figure(table: Any, summaries: list[dict], group_cols: list[str]) -> Any:
    """``ttscale simulate``'s figure: coverage (solid) and accuracy (dashed) against k per group.

    The accuracy ceiling (dotted) and the optimal k (dash-dot) of each group's summary are marked,
    the optimal k's bootstrap interval (``optimal_k_ci``) lightly shaded in the group's colour;
    k beyond the samples per problem the difficulty was fitted from is shaded (extrapolated).
    """
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.5))
    groups = table.groupby(group_cols, sort=True) if group_cols else [((), table)]
    for (key, g), s in zip(groups, summaries, strict=True):
        label = " ".join(str(x) for x in (key if isinstance(key, tuple) else (key,)))
        line, = ax.plot(g["k"], g["coverage"], label=f"coverage {label}".strip())
        ax.plot(g["k"], g["accuracy"], "--", color=line.get_color(), label=f"{s['selection']} accuracy {label}".strip())
        if s.get("accuracy_ceiling") is not None:
            ax.axhline(s["accuracy_ceiling"], color=line.get_color(), lw=0.8, ls=":")
        if s.get("optimal_k"):
            ax.axvline(s["optimal_k"], color=line.get_color(), lw=0.8, ls="-.")
        if s.get("optimal_k_ci"):  # its bootstrap interval, light; from k = 1 when it holds 0
            low, high = max(s["optimal_k_ci"][0], g["k"].min()), s["optimal_k_ci"][1]
            censored = " (upper end censored)" if s.get("optimal_k_ci_censored") else ""
            ax.axvspan(low, max(high, low), color=line.get_color(), alpha=0.12, lw=0,
                       label=f"optimal k {label} {s['optimal_k_ci_level'] * 100:g}% CI{censored}".replace("  ", " "))
        if s.get("extrapolated_from_k") and s["extrapolated_from_k"] < g["k"].max():
            ax.axvspan(s["extrapolated_from_k"], g["k"].max(), color="0.5", alpha=0.08, lw=0)
            ax.axvline(s["extrapolated_from_k"], color="0.4", lw=0.8, ls=":")
            ax.text(s["extrapolated_from_k"], 0.03, " extrapolated beyond the samples drawn",
                    fontsize=7, color="0.3")
    ax.set_xscale("log")
    ax.set_xlabel("k (samples per problem)")
    ax.set_ylabel("fraction of problems")
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    return fig
