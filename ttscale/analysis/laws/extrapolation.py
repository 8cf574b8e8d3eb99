"""Is the power law safe to extrapolate? A back-test inside the data, with a ceiling alternative.

"The law fits the measured range" (:func:`ttscale.analysis.laws.fit_check.judge`: inside the
curve's band at every measured k) says little about k beyond it: with 20% of the problems never
solvable and n = 100, most fits stay inside the band while the law's forecast at 10n runs
nine points above the truth (the curve bends towards its ceiling only near n). So the law gets a
second verdict, ``extrapolation``:

* **back-test**: fit ``exp(a k^b)`` to the measured curve at k <= n / :data:`BACKTEST_RATIO` and
  predict coverage at n, where it is measured; ``z = (measured - predicted) / sd``, ``sd`` the
  spread of that difference over a bootstrap over problems (the same resample refits the law and
  re-measures the curve). The law is ``"unsafe"`` when it over-predicts by more than the one-sided
  ``level`` quantile (1.64 sd at 95%: an optimistic forecast is the harmful miss, and a ceiling
  makes exactly that one) or under-predicts by more than the two-sided ``(1 + level) / 2`` one
  (2.58 sd): the law, fitted on one decade, already misses the next one inside the data.
* **ceiling alternative**: the law with a ceiling ``c_max exp(a k^b)`` fitted to the same k; its
  back-test prediction and ``c_max`` are reported beside, so that a reader sees the shape the data
  would rather follow when the plain law fails.

``"safe"`` means the back-test found no miss, not that the forecast is right: the tail beyond n
may still bend. Measured by ``benchmarks/bench_law_intervals.py`` (power against a 20% ceiling
at n = 100; false alarms on Beta difficulty distributions, whose coverage goes to 1).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.special import ndtri

from ttscale.analysis.laws.bootstrap import _refit, law_values
from ttscale.analysis.laws.power_law import (
    check_counts,
    fit_power_law,
    log_spaced_ks,
    pass_at_k_matrix,
)
from ttscale.errors import InputError

#: the back-test fits k <= n / BACKTEST_RATIO and predicts n: one decade, as a forecast of 10n
BACKTEST_RATIO = 10
#: the smallest fitted range the back-test accepts (k up to this many samples)
MIN_BACKTEST_K = 5
#: bootstrap refits of the back-test's spread
EXTRAPOLATION_BOOT = 100


def extrapolation_check(n: Any, c: Any, *, level: float = 0.95, n_boot: int = EXTRAPOLATION_BOOT,
                        ratio: int = BACKTEST_RATIO,
                        seed: int = 0, source: str = "counts",
                        per_problem: Any = None, k_top: int | None = None) -> dict[str, Any]:
    """The law's ``extrapolation`` verdict on one group's counts (see the module doc):
    ``{"status": "safe" | "unsafe" | "unchecked", "reasons": [...], "backtest": {...},
    "ceiling": {...}}``. ``per_problem(ks)`` and ``k_top`` replace the plain pass@k matrix and
    the smallest n (an adaptive run's stopping-rule estimator up to K)."""
    n_i, c_i = check_counts(n, c, source)
    top = int(n_i.min()) if k_top is None else int(k_top)
    fit_top = top // ratio
    out: dict[str, Any] = {"status": "unchecked", "reasons": [], "backtest": None, "ceiling": None}
    if n_i.size < 2:
        out["reasons"].append("one problem: no spread over problems to judge a back-test by")
        return out
    if fit_top < MIN_BACKTEST_K:
        out["reasons"].append(f"{top} samples per problem: the back-test needs the law fitted on "
                              f"k <= {MIN_BACKTEST_K} at least (n >= {MIN_BACKTEST_K * ratio})")
        return out
    ks = log_spaced_ks(fit_top)
    grid = np.append(ks, top)
    per = (pass_at_k_matrix(n_i, c_i, grid) if per_problem is None
           else np.asarray(per_problem(grid), dtype=float))
    curve = per.mean(axis=0)
    try:
        fit = fit_power_law(ks, curve[:-1], source=source)
    except InputError as e:
        out["reasons"].append(f"the law could not be fitted on k <= {fit_top}: {e}")
        return out
    predicted = float(fit.predict(np.array([top]))[0])
    measured = float(curve[-1])
    p = per.shape[0]
    rng = np.random.default_rng(seed)
    weights = rng.multinomial(p, np.full(p, 1.0 / p), size=n_boot).astype(float)
    curves = np.clip(weights @ per / p, 0.0, 1.0)
    p0 = np.array([fit.params["a"], fit.params["b"]])
    kf = ks.astype(float)
    diffs = np.full(n_boot, np.nan)
    for b in range(n_boot):
        par = _refit("exp_power", kf, curves[b, :-1], p0)
        if np.all(np.isfinite(par)):
            diffs[b] = curves[b, -1] - law_values("exp_power", par, np.array([float(top)]))[0, 0]
    ok = np.isfinite(diffs)
    sd = float(np.std(diffs[ok], ddof=1)) if ok.sum() >= 10 else float("nan")
    diff = measured - predicted
    z = diff / sd if np.isfinite(sd) and sd > 0 else float("nan")
    crit = float(ndtri(level))  # over-prediction, the harmful side: one-sided
    crit_under = float(ndtri(0.5 + (1 + level) / 4))  # under-prediction: two-sided at (1+level)/2
    out["backtest"] = {"fit_k_max": int(fit_top), "k": top, "predicted": predicted,
                       "measured": measured, "sd": _num(sd), "z": _num(z),
                       "refits_failed": int((~ok).sum())}
    try:
        ceil = fit_power_law(ks, curve[:-1], ceiling=True, source=source)
        out["ceiling"] = {"c_max": float(ceil.params["c_max"]),
                          "predicted": float(ceil.predict(np.array([top]))[0])}
    except InputError:
        out["ceiling"] = None
    if not np.isfinite(z):
        out["reasons"].append("the back-test's spread could not be estimated (refits failed)")
        return out
    where = f"fitted on k <= {fit_top}, the law predicts {predicted:.4f} at k = {top}"
    if z < -crit or z > crit_under:
        out["status"] = "unsafe"
        side = "above" if diff < 0 else "below"
        alt = ""
        if out["ceiling"] is not None:
            alt = (f"; with a ceiling (c_max = {out['ceiling']['c_max']:.3f}) it predicts "
                   f"{out['ceiling']['predicted']:.4f}")
        out["reasons"].append(f"back-test: {where}, {side} the measured {measured:.4f} by "
                              f"{abs(diff):.4f} ({abs(z):.1f} sd; limit {crit if z < 0 else crit_under:.2f} sd){alt}: "
                              "do not extrapolate this law")
    else:
        out["status"] = "safe"
        out["reasons"].append(f"back-test: {where}, measured {measured:.4f} ({abs(z):.1f} sd)")
    return out


def _num(x: float) -> float | None:
    return float(x) if np.isfinite(x) else None
