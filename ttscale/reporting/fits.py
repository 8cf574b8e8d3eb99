"""The report's "How sure" section: each fitted law with its intervals, status and reasons.

Reads the records of ``analysis/fits.json`` (see ``ttscale.commands.analyze``) and renders, per
group: the law's a, b (c_max) with their bootstrap intervals, whether it fits the data (and why
not), the saturation point with its interval and status, and the tail and distributional
exponents with theirs, each marked as fitting the data or not.
"""

from __future__ import annotations

import html
from typing import Any

#: fits.json keys that are not shown in the report's plain table of fits (nested or long)
DETAIL_KEYS = ("fit_check", "tail_fit", "distributional", "fits_data", "fit_reasons",
               "fit_warnings", "ci_method", "saturation_k_fit_note", "extrapolation")


def _e(x: Any) -> str:
    return html.escape(str(x))


def _num(x: Any, fmt: str = "{:.3g}") -> str:
    return "" if x is None else fmt.format(x)


def _with_ci(value: Any, ci: Any, fmt: str = "{:.3f}") -> str:
    if value is None:
        return ""
    if not ci or ci[0] is None and ci[1] is None:
        return fmt.format(value)
    lo = "" if ci[0] is None else fmt.format(ci[0])
    hi = "never" if ci[1] is None else fmt.format(ci[1])
    return f"{fmt.format(value)} [{lo}, {hi}]"


def _fits(flag: Any) -> str:
    return {True: "fits", False: "does not fit", None: "unchecked"}.get(flag, "")


def _row(rec: dict[str, Any], group_cols: list[str]) -> str:
    name = ", ".join(f"{c}={rec.get(c)}" for c in group_cols) or "all"
    status = rec.get("fit_status", "")
    cells = [name, f"{rec.get('law')} on k {rec.get('k_min')}-{rec.get('k_max')}",
             _with_ci(rec.get("a"), rec.get("a_ci")), _with_ci(rec.get("b"), rec.get("b_ci"))]
    cells.append(_with_ci(rec.get("c_max"), rec.get("c_max_ci")) if "c_max" in rec else "")
    sat = rec.get("saturation_k_fit")
    sat_txt = _with_ci(sat, rec.get("saturation_k_fit_ci"), "{:.0f}") if sat is not None else "never"
    if rec.get("saturation_k_fit_status") == "rejected":
        sat_txt += " (from a rejected law)"
    extra = rec.get("extrapolation") or {}
    cells += [status, extra.get("status") or "", sat_txt]
    tail = rec.get("tail_fit") or {}
    cells.append(f"{_with_ci(tail.get('b'), tail.get('b_ci'))} on k {tail.get('k_min')}-"
                 f"{tail.get('k_max')}: {_fits(tail.get('fits'))}" if tail.get("b") is not None else "")
    dist = rec.get("distributional") or {}
    cells.append(f"{_with_ci(dist.get('b'), dist.get('b_ci'))}: {_fits(dist.get('fits'))}"
                 if dist.get("b") is not None else "not computed (analyze --distributional)")
    return "<tr>" + "".join(f'<td class="l">{_e(c)}</td>' for c in cells) + "</tr>"


def fit_section(fits: list[dict[str, Any]], group_cols: list[str] | None = None) -> str:
    """HTML of the section (empty when no record carries law intervals)."""
    recs = [r for r in fits if r.get("law") and "fit_status" in r]
    if not recs:
        return ""
    if group_cols is None:  # a record starts with its group columns, then "metric"
        keys = list(recs[0])
        group_cols = keys[: keys.index("metric")] if "metric" in keys else []
    level = recs[0].get("ci_level", 0.95)
    head = ["group", "law", "a [CI]", "b [CI]", "c_max [CI]", "law fits the data?",
            "safe to extrapolate?", "saturation k from the law [CI]", "tail fit b [CI]", "distributional b = -alpha [CI]"]
    rows = "".join(_row(r, group_cols) for r in recs)
    notes = []
    for r in recs:
        name = ", ".join(f"{c}={r.get(c)}" for c in group_cols) or "all"
        for why in r.get("fit_reasons") or []:
            notes.append(f"<li><b>{_e(name)}</b>: rejected: {_e(why)}</li>")
        for why in r.get("fit_warnings") or []:
            notes.append(f"<li><b>{_e(name)}</b>: warning: {_e(why)}</li>")
        extra = r.get("extrapolation") or {}
        if extra.get("status") == "unsafe":
            for why in extra.get("reasons") or []:
                notes.append(f"<li><b>{_e(name)}</b>: not safe to extrapolate: {_e(why)}</li>")
    return (
        "<h3>How sure: the law's intervals and goodness of fit</h3>"
        f'<p class="muted">Intervals: {level:.0%} percentile bootstrap over problems, the law '
        "refitted on each resample. A law is rejected where it leaves the pointwise "
        "confidence band of the measured curve; its saturation point and any forecast from it "
        "should not be relied on. Safe to extrapolate: the law fitted on k up to n/10 predicts "
        "the coverage measured at n (a back-test inside the data).</p>"
        '<div class="scroll">'  # wide: scrolls within the page like the other tables
        f"<table><thead><tr>{''.join(f'<th class=l>{_e(h)}</th>' for h in head)}</tr></thead>"
        f"<tbody>{rows}</tbody></table></div>" + (f"<ul>{''.join(notes)}</ul>" if notes else "")
    )
