"""Everything fits.json says about how sure a fitted law is, for one group of counts.

Joins the law bootstrap (:mod:`ttscale.analysis.laws.bootstrap`), the goodness-of-fit checks and
the tail fit (:mod:`ttscale.analysis.laws.fit_check`) and the distributional exponent
(:mod:`ttscale.analysis.laws.distributional`) into the flat and nested fields of one fits.json record.
``ttscale.analysis.pipeline`` calls :func:`assess_law` once per group.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ttscale.analysis.laws.bootstrap import bootstrap_law, saturation_summary
from ttscale.analysis.laws.distributional import DIST_BOOT, distributional_fit
from ttscale.analysis.laws.extrapolation import extrapolation_check
from ttscale.analysis.laws.fit_check import band_check, judge, tail_fit, tail_predict

CI_METHOD = "percentile bootstrap over problems, law refitted on every replicate"


def _pair(x: tuple[float, float]) -> list[float | None]:
    return [float(v) if math.isfinite(v) else None for v in x]


def _fits_data(band: dict[str, Any], ci: float) -> tuple[bool | None, str]:
    if band["points"] == 0:
        return None, "no confidence band to check against"
    if band["outside"]:
        return False, (f"leaves the {ci:.0%} band at {band['outside']} of {band['points']} k "
                       f"(worst k = {band['max_excess_k']})")
    return True, f"inside the {ci:.0%} band at all {band['points']} k checked"


def assess_law(
    n: np.ndarray,
    c: np.ndarray,
    curve: dict[str, np.ndarray],
    *,
    max_k: int | None,
    ceiling: bool,
    n_boot: int,
    ci: float,
    seed: int,
    saturation_threshold: float,
    tail_k_min: int | None = None,
    distributional: bool = True,
    source: str = "counts",
    per_problem: Any = None,
    k_top: int | None = None,
) -> dict[str, Any]:
    """fits.json fields: CIs of the law and its saturation point, status ("fits the measured
    range"), ``extrapolation`` ("safe to extrapolate":
    :func:`ttscale.analysis.laws.extrapolation.extrapolation_check`; not for ``ceiling``), tail and
    distributional fits. ``curve`` holds the measured pass@k curve: ``k, estimate, low, high``.

    One problem gives no interval and no verdict: a bootstrap over problems has nothing to
    resample (every replicate is that problem), so the CIs are null and the status
    ``unchecked``, said why."""
    if np.asarray(n).size < 2:
        return single_problem_record(ci, ceiling)
    boot = bootstrap_law(n, c, max_k=max_k, ceiling=ceiling, n_boot=n_boot, ci=ci, seed=seed,
                         source=source, per_problem=per_problem, k_top=k_top)
    ks, est, low, high = (np.asarray(curve[x], dtype=float) for x in ("k", "estimate", "low", "high"))
    rec: dict[str, Any] = {"ci_level": ci, "ci_method": CI_METHOD, "law_boot": int(n_boot),
                           "law_boot_failed": boot.n_failed}
    for name, pair in boot.param_ci().items():
        rec[f"{name}_ci"] = _pair(pair)
    verdict = judge(boot, ks, est, low, high)
    rec["fit_status"] = verdict["status"]
    rec["fit_reasons"] = verdict["reasons"]
    rec["fit_warnings"] = verdict["warnings"]
    rec["fit_check"] = {"band": verdict["band"], "local_exponent": verdict["local_exponent"],
                        "curvature": verdict["curvature"]}
    rec.update(saturation_summary(boot, saturation_threshold))
    rec["saturation_k_fit_status"] = verdict["status"]
    if verdict["status"] == "rejected":
        rec["saturation_k_fit_note"] = "derived from a rejected law: do not rely on it"
    if not ceiling:
        kw = {"per_problem": per_problem, "k_top": k_top} if per_problem is not None else {}
        extra = extrapolation_check(n, c, level=ci, seed=seed, source=source, **kw)
        rec["extrapolation"] = extra
        if extra["status"] == "unsafe" and verdict["status"] != "rejected":
            rec["saturation_k_fit_note"] = ("the law fits the measured range but fails the "
                                            "extrapolation back-test: do not rely on it")
    fits_data: dict[str, Any] = {}
    ok, why = _fits_data(verdict["band"], ci)
    fits_data["monkeys_c1"] = {"fits": ok, "why": why}

    tail = tail_fit(boot, tail_k_min)
    if tail.get("a") is not None:
        sel = (ks >= tail["k_min"]) & (ks <= tail["k_max"])
        band = band_check(tail_predict(tail, ks[sel]), ks[sel], est[sel], low[sel], high[sel])
        tail["fits"], tail["why"] = _fits_data(band, ci)
    else:
        tail["fits"], tail["why"] = None, tail.get("note", "no tail fit")
    rec["tail_fit"] = tail
    fits_data["tail"] = {"fits": tail["fits"], "why": tail["why"]}

    if distributional:
        n_i, c_i = np.asarray(n, dtype=np.int64), np.asarray(c, dtype=np.int64)
        dist, lik, point = distributional_fit(n_i, c_i, boot.weights, ci, min(DIST_BOOT, n_boot))
        if dist.get("alpha") is not None:
            kk = ks[ks <= int(n_i.min())]
            pred = lik.coverage(point, kk)
            sel = np.isin(ks, kk)
            band = band_check(pred, kk, est[sel], low[sel], high[sel])
            dist["fits"], dist["why"] = _fits_data(band, ci)
        else:
            dist["fits"], dist["why"] = None, dist.get("note", "no fit")
        rec["distributional"] = dist
        fits_data["distributional"] = {"fits": dist["fits"], "why": dist["why"]}
    rec["fits_data"] = fits_data
    return rec


ONE_PROBLEM = ("one problem: a bootstrap over problems has nothing to resample, so there is no "
               "interval and no judgement of the law (sample more problems)")


def single_problem_record(ci: float, ceiling: bool) -> dict[str, Any]:
    """:func:`assess_law`'s fields for a group of one problem: null CIs, ``unchecked``."""
    names = ("a", "b", "c_max") if ceiling else ("a", "b")
    rec: dict[str, Any] = {"ci_level": ci, "ci_method": None, "law_boot": 0, "law_boot_failed": 0}
    rec.update({f"{nm}_ci": [None, None] for nm in names})
    rec.update({"fit_status": "unchecked", "fit_reasons": [ONE_PROBLEM], "fit_warnings": [],
                "saturation_k_fit_ci": None, "saturation_k_fit_never": None,
                "saturation_k_fit_status": "unchecked",
                "saturation_k_fit_note": ONE_PROBLEM,
                "extrapolation": {"status": "unchecked", "reasons": [ONE_PROBLEM],
                                  "backtest": None, "ceiling": None}})
    return rec


def law_status(
    n: np.ndarray, c: np.ndarray, *, max_k: int | None = None, ceiling: bool = False,
    n_boot: int = 300, law_boot: int = 100, ci: float = 0.95, seed: int = 0, source: str = "counts",
) -> dict[str, Any]:
    """The C.1 law's verdict on one group of counts, for callers that derive numbers from it
    (a forecast by ``power_law``): ``{"status", "reasons", "warnings"}`` as in fits.json."""
    import pandas as pd

    n_i, c_i = np.asarray(n, dtype=np.int64), np.asarray(c, dtype=np.int64)
    counts = pd.DataFrame({"problem": np.arange(n_i.size), "num_samples": n_i, "num_correct": c_i})
    return group_law_status(counts, max_k=max_k, ceiling=ceiling, n_boot=n_boot,
                            law_boot=law_boot, ci=ci, seed=seed, source=source)


def group_law_status(
    counts: Any, *, max_k: int | None = None, ceiling: bool = False, n_boot: int = 300,
    law_boot: int = 100, ci: float = 0.95, seed: int = 0, source: str = "counts",
) -> dict[str, Any]:
    """:func:`law_status` of one group's counts rows (``problem``, ``num_samples``,
    ``num_correct``; other columns are ignored), judged as ``ttscale analyze`` judges it: the
    measured curve and its ``ci`` band at analyze's k (every k to 256, then log-spaced), the law
    fitted to k <= ``max_k``. An adaptive run's rows (the columns of
    ``ttscale.analysis.adaptive.run.ADAPTIVE_COLUMNS``) are judged on the stopping-rule curve
    up to K, as analyze does."""
    from ttscale.analysis.adaptive.run import ADAPTIVE_COLUMNS, is_adaptive, per_problem_pass
    from ttscale.analysis.adaptive.run import max_k as largest_k
    from ttscale.analysis.curves.coverage import coverage_curves, default_ks

    adaptive = is_adaptive(counts)
    rows = counts[["problem", "num_samples", "num_correct",
                   *(ADAPTIVE_COLUMNS if adaptive else ())]].reset_index(drop=True)
    n_i = rows["num_samples"].to_numpy(np.int64)
    c_i = rows["num_correct"].to_numpy(np.int64)
    n_min = largest_k(rows)  # K for an adaptive run
    top = n_min if max_k is None else int(max_k)
    ks = default_ks(n_min)
    cur = coverage_curves(rows, ks=ks[ks <= top], n_boot=n_boot, ci=ci, seed=seed, source=source)
    kw = ({"per_problem": lambda kk: per_problem_pass(rows, kk), "k_top": n_min} if adaptive else {})
    boot = bootstrap_law(n_i, c_i, max_k=max_k, ceiling=ceiling, n_boot=law_boot, ci=ci, seed=seed,
                         source=source, **kw)
    verdict = judge(boot, cur["k"].to_numpy(), cur["estimate"].to_numpy(), cur["ci_low"].to_numpy(),
                    cur["ci_high"].to_numpy())
    return {"status": verdict["status"], "reasons": verdict["reasons"], "warnings": verdict["warnings"]}
