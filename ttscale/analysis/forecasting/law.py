"""Is the power law a forecast extrapolates followed by the data? The verdict ``ttscale
analyze`` gives it, attached to every ``power_law`` forecast record (:func:`attach_law`), reused
from a run's fresh analysis where it holds one (:func:`analysis_verdicts`)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from ttscale.analysis.laws.power_law import fit_from_counts
from ttscale.errors import InputError

#: bootstrap sizes of the law check of a forecast (:func:`attach_law`): ``ttscale analyze``'s
#: defaults (``--n-boot 1000`` for the curve's band, which decides the status; ``--law-boot
#: 300`` refits, which decide the curvature warning), so that a verdict computed here is the one
#: a default analysis writes to fits.json (same k grid, band and seed). They cost little: one
#: ``group_law_status`` took 0.07 CPU s for 500 problems x 1,000 samples, 0.11 s for
#: 500 x 10,000 and 0.39 s for 5,000 x 1,000 (one thread; law_status's own defaults, 300 and
#: 100, take 0.03, 0.08 and 0.18 s), well under the couple of CPU seconds a group allowed.
LAW_N_BOOT = 1000
LAW_BOOT = 300


def _key(values: Any) -> tuple:
    values = values if isinstance(values, tuple) else (values,)
    return tuple(v.item() if isinstance(v, np.generic) else v for v in values)


def attach_law(records: list[dict[str, Any]], counts: pd.DataFrame, group_cols: list[str],
               source: str = "counts", verdicts: dict[tuple, dict[str, Any]] | None = None) -> None:
    """Add ``law_status``, ``law_reasons``, ``law_warnings`` ("fits the measured range"),
    ``law_extrapolation`` and ``law_extrapolation_reasons`` ("safe to extrapolate": ``safe``,
    ``unsafe`` or ``unchecked``, :func:`group_extrapolation`) to every record, in place; an
    ``unsafe`` law's forecast beyond n gets its interval stretched to the ceiling law's forecast
    (:func:`widen_to_ceiling`).

    A ``power_law`` record gets the verdict of ``ttscale analyze`` (fits.json's
    ``fit_status``/``fit_reasons``/``fit_warnings``: ``ok``, ``rejected``, ``unchecked``) on its
    group's ``counts``, the counts it was forecast from: from ``verdicts`` (group values ->
    ``{"status", "reasons", "warnings"}``) where given, else computed by
    :func:`ttscale.analysis.laws.assess.group_law_status` with :data:`LAW_N_BOOT` and
    :data:`LAW_BOOT`, once per group. Other methods, and a group with no forecast (no correct
    sample), get null.
    """
    from ttscale.analysis.laws.assess import group_law_status

    verdicts = dict(verdicts or {})
    def law_based(r: dict[str, Any]) -> bool:  # power_law, asked for or chosen by auto
        return (r.get("chosen_method") or r.get("method")) == "power_law"

    wanted = {_key(tuple(r[c] for c in group_cols)) for r in records
              if law_based(r) and r.get("coverage") is not None}
    groups = [((), counts)] if not group_cols else counts.groupby(group_cols, sort=True)
    for key, g in groups:
        key = _key(key)
        if key not in wanted or key in verdicts:
            continue
        try:
            verdicts[key] = group_law_status(g, n_boot=LAW_N_BOOT, law_boot=LAW_BOOT, source=source)
        except InputError as e:
            verdicts[key] = {"status": "unchecked", "reasons": [f"the law could not be judged: {e}"],
                             "warnings": []}
    extrapolation, rows = {}, {}
    for key, g in groups:
        key = _key(key)
        if key in wanted:
            extrapolation[key] = group_extrapolation(g, source)
            rows[key] = g
    for r in records:
        key = _key(tuple(r[c] for c in group_cols))
        v = verdicts.get(key) if law_based(r) and key in wanted else None
        r["law_status"] = None if v is None else v["status"]
        r["law_reasons"] = None if v is None else list(v["reasons"])
        r["law_warnings"] = None if v is None else list(v["warnings"])
        x = extrapolation.get(key) if v is not None else None
        r["law_extrapolation"] = None if x is None else x["status"]
        r["law_extrapolation_reasons"] = None if x is None else list(x["reasons"])
        if x is not None and x["status"] == "unsafe" and r.get("extrapolated"):
            widen_to_ceiling(r, rows[key], source)


def widen_to_ceiling(r: dict[str, Any], g: pd.DataFrame, source: str = "counts") -> None:
    """A forecast from a law that fails the extrapolation back-test: its interval is stretched to
    reach the forecast of the law with a ceiling (``c_max exp(a k^b)``, fitted to the same
    measured curve), the alternative the back-test points to; ``ceiling_forecast`` records it.
    Nothing changes where that law cannot be fitted or the record has no interval."""
    from ttscale.analysis.adaptive.run import fit_adaptive, is_adaptive
    from ttscale.analysis.laws.power_law import fit_from_counts

    try:
        fit = (fit_adaptive(g, None, True, source) if is_adaptive(g) else
               fit_from_counts(g["num_samples"].to_numpy(), g["num_correct"].to_numpy(), ceiling=True))
    except InputError:
        return
    pred = float(np.clip(fit.predict(np.array([float(r["k"])]))[0], 0.0, 1.0))
    r["ceiling_forecast"] = pred
    if r.get("ci_low") is not None:
        r["ci_low"] = min(float(r["ci_low"]), pred)
        r["ci_high"] = max(float(r["ci_high"]), pred)


def group_extrapolation(g: pd.DataFrame, source: str = "counts") -> dict[str, Any]:
    """:func:`ttscale.analysis.laws.extrapolation.extrapolation_check` on one group's counts rows
    (an adaptive run's on its stopping-rule curve up to K)."""
    from ttscale.analysis.adaptive.run import is_adaptive, max_k, per_problem_pass
    from ttscale.analysis.laws.extrapolation import extrapolation_check

    n = g["num_samples"].to_numpy(np.int64)
    c = g["num_correct"].to_numpy(np.int64)
    kw: dict[str, Any] = {}
    if is_adaptive(g):
        rows = g.reset_index(drop=True)
        kw = {"per_problem": lambda kk: per_problem_pass(rows, kk), "k_top": max_k(rows)}
    try:
        return extrapolation_check(n, c, source=source, **kw)
    except InputError as e:
        return {"status": "unchecked", "reasons": [f"the back-test could not run: {e}"]}


def analysis_verdicts(folder: Any, state: dict[str, Any] | None, counts: pd.DataFrame,
                      group_cols: list[str]) -> dict[tuple, dict[str, Any]]:
    """The law verdicts a run directory's analysis (``folder``: the run's ``analysis/``) holds
    for the groups of ``counts``, for :func:`attach_law` to reuse.

    Only a fresh analysis counts (its state.json equals ``state``, the run's now: see
    ``ttscale.rundir.staleness``), with the same grouping columns, and per group only a judged
    (``ok``/``rejected``) record of the law a forecast fits: ``exp_power`` on the same k range
    (no ``--ceiling``, no ``--max-k``). Empty when nothing qualifies: the verdicts are then
    computed.
    """
    import json
    from pathlib import Path

    from ttscale.analysis.adaptive.run import fit_adaptive, is_adaptive
    from ttscale.rundir.staleness import freshness_problems, read_state

    folder = Path(folder)
    if state is None or not (folder / "fits.json").is_file():
        return {}
    if freshness_problems(read_state(folder), state, folder, "ttscale analyze"):
        return {}
    try:
        fits = json.loads((folder / "fits.json").read_text())
    except (OSError, ValueError):
        return {}
    groups = [((), counts)] if not group_cols else counts.groupby(group_cols, sort=True)
    rows = {_key(key): g for key, g in groups}
    out: dict[tuple, dict[str, Any]] = {}
    for rec in fits if isinstance(fits, list) else []:
        names = list(rec) if isinstance(rec, dict) else []
        if "metric" not in names or names[: names.index("metric")] != list(group_cols):
            continue  # another grouping (the group columns come first in a fits.json record)
        key = _key(tuple(rec[c] for c in group_cols))
        if (key not in rows or rec.get("law") != "exp_power"
                or rec.get("fit_status") not in ("ok", "rejected")):
            continue
        g = rows[key]
        try:
            fit = (fit_adaptive(g, None, False, "counts") if is_adaptive(g) else
                   fit_from_counts(g["num_samples"].to_numpy(), g["num_correct"].to_numpy()))
        except InputError:
            continue
        if [rec.get("k_min"), rec.get("k_max")] != [int(x) for x in fit.k_range]:
            continue  # fitted on another k range (--max-k): another law
        out[key] = {"status": rec["fit_status"], "reasons": list(rec.get("fit_reasons") or []),
                    "warnings": list(rec.get("fit_warnings") or [])}
    return out
