"""Figures: lines, bands, fitted laws and marks are drawn; PNG/SVG files are deterministic."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ttscale.analysis.figures import (
    Line,
    build_figures,
    interpolate_log_x,
    plot_lines,
    save_figure,
    slug,
)
from ttscale.analysis.laws.power_law import exp_power, fit_power_law
from ttscale.analysis.pipeline import AnalysisResult

KS = np.array([1, 2, 4, 8, 16, 32, 64, 128], dtype=float)


def _line(label: str = "m", a: float = -1.3, b: float = -0.4, **kw) -> Line:
    y = exp_power(KS, a, b)
    return Line(label, KS, y, y - 0.02, y + 0.02, **kw)


def test_plot_lines_draws_curve_band_fit_saturation_and_ceiling():
    fx = np.geomspace(1, 128, 50)
    line = _line(fit_x=fx, fit_y=exp_power(fx, -1.3, -0.4), saturation_x=32.0, ceiling=0.9)
    fig = plot_lines([line, _line("other", -2.0, -0.3)], title="MATH")
    ax = fig.axes[0]
    assert ax.get_xscale() == "log"
    assert ax.get_title() == "MATH"
    styles = [(ln.get_label(), ln.get_linestyle()) for ln in ax.get_lines()]
    # curve, fit (dashed), saturation star, ceiling (dotted), second curve
    assert ("m", "-") in styles and ("m (fit)", "--") in styles and ("other", "-") in styles
    assert sum(1 for _, s in styles if s == ":") == 1
    star = [ln for ln in ax.get_lines() if ln.get_marker() == "*"]
    assert len(star) == 1
    sx, sy = star[0].get_xdata()[0], star[0].get_ydata()[0]
    assert sx == 32.0
    assert sy == pytest.approx(exp_power(32.0, -1.3, -0.4))  # 32 is on the grid: exact
    assert len(ax.collections) == 2  # one CI band per line
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert legend == ["m", "m (fit)", "m (ceiling 0.900)", "other"]


def test_interpolate_log_x_is_linear_in_log_k():
    x = np.array([1.0, 100.0])
    y = np.array([0.2, 0.6])
    assert interpolate_log_x(x, y, 10.0) == pytest.approx(0.4)
    assert interpolate_log_x(x[::-1], y[::-1], 10.0) == pytest.approx(0.4)


def test_save_figure_writes_png_and_svg_byte_identical_twice(tmp_path):
    paths_a = save_figure(plot_lines([_line()]), tmp_path / "a" / "fig")
    paths_b = save_figure(plot_lines([_line()]), tmp_path / "b" / "fig")
    assert [p.name for p in paths_a] == ["fig.png", "fig.svg"]
    png, svg = (p.read_bytes() for p in paths_a)
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 5000
    assert svg.lstrip().startswith(b"<?xml") and b"<svg" in svg
    assert b"<dc:date>" not in svg
    assert [p.read_bytes() for p in paths_a] == [p.read_bytes() for p in paths_b]


def test_line_rejects_mismatched_arrays_and_half_bands():
    with pytest.raises(ValueError, match="one length"):
        Line("x", [1, 2, 3], [0.1, 0.2])
    with pytest.raises(ValueError, match="low and high"):
        Line("x", [1, 2], [0.1, 0.2], low=[0.0, 0.1])


def test_slug_makes_file_safe_names():
    assert slug("Llama-3 8B/Instruct") == "Llama-3_8B_Instruct"
    assert slug("T=0.6") == "T_0.6"
    assert slug("///") == "all"


def _synthetic_result(flops: bool) -> AnalysisResult:
    rows, fits, objs, fns = [], [], {}, {}
    for bench, model, a in [("MATH", "small", -1.3), ("MATH", "big", -0.7), ("GSM8K", "small", -0.5)]:
        y = exp_power(KS, a, -0.45)
        for k, e in zip(KS, y, strict=True):
            rows.append((bench, model, "pass@k", int(k), e, e - 0.01, min(e + 0.01, 1), k * 1e9))
            rows.append((bench, model, "maj@k", int(k), e * 0.8, e * 0.8 - 0.01, e * 0.8 + 0.01, k * 1e9))
        fit = fit_power_law(KS, y)
        objs[(bench, model)] = fit
        fns[(bench, model)] = lambda k: np.asarray(k, float) * 1e9
        fits.append({"benchmark": bench, "model": model, "saturation_k": 64.0, "c_max": None})
    curves = pd.DataFrame(rows, columns=["benchmark", "model", "metric", "k", "estimate",
                                         "ci_low", "ci_high", "flops"])
    return AnalysisResult(None, ["benchmark", "model"], curves, fits, objs, fns if flops else {})


def test_build_figures_one_figure_per_benchmark_with_lines_per_model():
    figs = dict(build_figures(_synthetic_result(flops=True)))
    assert sorted(figs) == sorted(
        f"{kind}-{b}" for kind in ("coverage_k", "coverage_flops", "selection_k")
        for b in ("GSM8K", "MATH")
    )
    ax = figs["coverage_k-MATH"].axes[0]
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels == ["big", "big (fit)", "small", "small (fit)"]
    # the fitted law recovers the synthetic curve: its dashed line ends on exp(a * 128^b)
    fit_line = next(ln for ln in ax.get_lines() if ln.get_label() == "small (fit)")
    assert fit_line.get_ydata()[-1] == pytest.approx(exp_power(128.0, -1.3, -0.45), rel=1e-6)
    flops_ax = figs["coverage_flops-MATH"].axes[0]
    assert flops_ax.get_lines()[0].get_xdata()[-1] == pytest.approx(128e9)
    sel = [t.get_text() for t in figs["selection_k-GSM8K"].axes[0].get_legend().get_texts()]
    assert sel == ["small: maj@k", "small: pass@k"]


def test_build_figures_without_cost_or_selection_gives_coverage_only():
    res = _synthetic_result(flops=False)
    res.curves = res.curves[res.curves["metric"] == "pass@k"]
    assert sorted(name for name, _ in build_figures(res)) == ["coverage_k-GSM8K", "coverage_k-MATH"]
