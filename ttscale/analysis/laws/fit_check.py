"""Does the law fit? Band check, local exponent, curvature test, and the tail fit.

Judged against the measured curve and its pointwise confidence band (the bootstrap over problems,
widened at the ceiling; see :mod:`ttscale.analysis.curves.coverage`):

* band check: at every measured k in the fitted range, is the law inside the band? Each point
  outside is a reason, in units of the band's half-width on that side (the "residual relative to
  the pointwise CI"). A law outside the band anywhere is ``rejected``.
* local exponent: ``d log(-log C) / d log k`` between k and 2k (1, 2, 4, ...), with percentile
  intervals from the law bootstrap's replicate curves. Under ``exp(a k^b)`` it is constant (= b).
* curvature: the quadratic term of a weighted least-squares fit of ``log(-log C)`` on ``log k``
  (``log(-log(C / c_max))`` for the ceiling law) over the fitted k, weights from the replicate
  variance of each point, with a bootstrap interval; an interval excluding 0 says the exponent
  drifts with k (a warning: the law's extrapolation is then unreliable).
* tail fit: ``log(-log C) = log(-a) + b log k`` by that weighted least squares over a stated upper
  range of k (default the upper half of the log range, [sqrt(k_max), k_max]), refitted on every
  replicate for its interval. The Monkeys App. C.1 fit stays the default law.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ttscale.analysis.laws.bootstrap import LawBootstrap, law_values, percentile_ci
from ttscale.errors import arg

#: a law this many half-widths outside the band at some k is rejected (0: outside at all)
BAND_TOLERANCE = 0.0


def _loglog(c: np.ndarray) -> np.ndarray:
    """log(-log c), NaN where c is 0 or 1 (or outside (0, 1))."""
    c = np.asarray(c, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        y = np.log(-np.log(c))
    return np.where(np.isfinite(y), y, np.nan)


def band_check(
    pred: np.ndarray, ks: np.ndarray, est: np.ndarray, low: np.ndarray, high: np.ndarray
) -> dict[str, Any]:
    """Where the predicted curve leaves the band [low, high] of the measured curve.

    Returns ``points`` checked, ``outside`` (how many), ``outside_k`` (up to 10 of them),
    ``max_excess``: the largest ``(pred - est) / (high - est)`` (or ``(est - pred) / (est - low)``)
    over the points, 1 meaning on the band's edge, and ``max_excess_k``.
    """
    pred, ks, est, low, high = (np.asarray(x, dtype=float) for x in (pred, ks, est, low, high))
    ok = np.isfinite(pred) & np.isfinite(est) & np.isfinite(low) & np.isfinite(high)
    pred, ks, est, low, high = pred[ok], ks[ok], est[ok], low[ok], high[ok]
    if ks.size == 0:
        return {"points": 0, "outside": 0, "outside_k": [], "max_excess": None, "max_excess_k": None}
    half = np.where(pred >= est, high - est, est - low)
    with np.errstate(divide="ignore", invalid="ignore"):
        excess = np.abs(pred - est) / half
    excess = np.where(half > 0, excess, np.where(np.abs(pred - est) > 1e-12, np.inf, 0.0))
    out = excess > 1.0 + BAND_TOLERANCE + 1e-9
    j = int(np.argmax(excess))
    return {
        "points": int(ks.size),
        "outside": int(out.sum()),
        "outside_k": [int(k) for k in ks[out][:10]],
        "max_excess": float(excess[j]) if np.isfinite(excess[j]) else None,
        "max_excess_k": int(ks[j]),
    }


def local_exponents(boot: LawBootstrap) -> list[dict[str, Any]]:
    """``d log(-log C) / d log k`` between k and 2k (k = 1, 2, 4, ...), with intervals."""
    ks = boot.ks
    dbl = [i for i, k in enumerate(ks) if k >= 1 and (k & (k - 1)) == 0]
    point = _loglog(boot.per_problem.mean(axis=0))
    reps = _loglog(boot.curves)
    out = []
    for i, j in zip(dbl[:-1], dbl[1:], strict=False):
        slope = (point[j] - point[i]) / math.log(ks[j] / ks[i])
        rs = (reps[:, j] - reps[:, i]) / math.log(ks[j] / ks[i])
        lo, hi = percentile_ci(rs, boot.ci)
        out.append({"k": int(ks[i]), "k_next": int(ks[j]),
                    "exponent": _num(slope), "ci": [_num(lo), _num(hi)]})
    return out


def _linearised(boot: LawBootstrap) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """x = log k, point y and replicate y of the law's own linearisation, on the fitted k."""
    k = boot.ks[boot.fit_mask].astype(float)
    point = boot.per_problem[:, boot.fit_mask].mean(axis=0)
    reps = boot.curves[:, boot.fit_mask]
    if boot.fit.law == "exp_power_ceiling":
        point = point / boot.fit.params["c_max"]
        reps = reps / boot.params[:, [2]]
    return np.log(k), _loglog(point), _loglog(reps)


def _wls(x: np.ndarray, y: np.ndarray, w: np.ndarray, deg: int) -> np.ndarray | None:
    ok = np.isfinite(y) & np.isfinite(w) & (w > 0)
    if ok.sum() <= deg + 1:
        return None
    return np.polyfit(x[ok], y[ok], deg, w=np.sqrt(w[ok]))


def _weights(reps: np.ndarray) -> np.ndarray:
    finite = np.isfinite(reps).sum(axis=0) > 1
    var = np.full(reps.shape[1], np.nan)
    if finite.any():
        var[finite] = np.nanvar(reps[:, finite], axis=0)
    var = np.where(np.isfinite(var) & (var > 0), var, np.nan)
    return 1.0 / var


def curvature(boot: LawBootstrap) -> dict[str, Any]:
    """Quadratic term of log(-log C) on log k (weighted), with its bootstrap interval."""
    x, y, reps = _linearised(boot)
    w = _weights(reps)
    coef = _wls(x, y, w, 2)
    if coef is None:
        return {"quadratic": None, "ci": None, "significant": None}
    gam = [c[0] for c in (_wls(x, r, w, 2) for r in reps) if c is not None]
    lo, hi = percentile_ci(np.asarray(gam), boot.ci)
    sig = bool(np.isfinite(lo) and np.isfinite(hi) and (lo > 0 or hi < 0))
    return {"quadratic": _num(coef[0]), "ci": [_num(lo), _num(hi)], "significant": sig}


def default_tail_k_min(k_max: int) -> int:
    """The lower end of the default tail range: sqrt(k_max), rounded (the upper half in log k)."""
    return max(1, int(round(math.sqrt(k_max))))


def tail_fit(boot: LawBootstrap, k_min: int | None = None) -> dict[str, Any]:
    """``log(-log C) = log(-a) + b log k`` by weighted least squares on k in [k_min, k_max]."""
    k_max = int(boot.ks.max())
    k_min = default_tail_k_min(k_max) if k_min is None else int(k_min)
    sel = (boot.ks >= k_min) & (boot.ks <= k_max)
    rec: dict[str, Any] = {"method": "tail_loglog_wls", "k_min": k_min, "k_max": k_max}
    x = np.log(boot.ks[sel].astype(float))
    y = _loglog(boot.per_problem[:, sel].mean(axis=0))
    reps = _loglog(boot.curves[:, sel])
    w = _weights(reps)
    coef = _wls(x, y, w, 1)
    if coef is None:
        rec.update({"a": None, "b": None, "a_ci": None, "b_ci": None,
                    "note": "fewer than 3 points with 0 < coverage < 1 in the range"})
        return rec
    fits = np.array([c for c in (_wls(x, r, w, 1) for r in reps) if c is not None])
    b_lo, b_hi = percentile_ci(fits[:, 0], boot.ci) if fits.size else (math.nan, math.nan)
    a_reps = -np.exp(fits[:, 1]) if fits.size else np.array([])
    a_lo, a_hi = percentile_ci(a_reps, boot.ci)
    rec.update({"a": _num(-math.exp(coef[1])), "b": _num(coef[0]),
                "a_ci": [_num(a_lo), _num(a_hi)], "b_ci": [_num(b_lo), _num(b_hi)],
                "points": int(np.isfinite(y).sum())})
    return rec


def tail_predict(rec: dict[str, Any], k: np.ndarray) -> np.ndarray:
    """Coverage the tail fit gives at k (NaN where it has no parameters)."""
    if rec.get("a") is None:
        return np.full(np.shape(k), np.nan)
    return law_values("exp_power", np.array([[rec["a"], rec["b"]]]), np.asarray(k, float))[0]


def judge(
    boot: LawBootstrap, ks: np.ndarray, est: np.ndarray, low: np.ndarray, high: np.ndarray
) -> dict[str, Any]:
    """``status`` (ok / rejected / unchecked), its ``reasons`` and ``warnings`` for the C.1 law.

    ``ks, est, low, high`` are the measured curve and its pointwise band (any k; only those in
    the fitted range are checked).
    """
    ks = np.asarray(ks, dtype=float)
    k_lo, k_hi = boot.fit.k_range
    sel = (ks >= k_lo) & (ks <= k_hi)
    band = band_check(boot.fit.predict(ks[sel]), ks[sel], np.asarray(est)[sel],
                      np.asarray(low)[sel], np.asarray(high)[sel])
    reasons, warnings = [], []
    if band["points"] == 0:
        status = "unchecked"
        reasons.append(f"no confidence band to judge the fit against (run with {arg('n_boot')} > 0)")
    elif band["outside"]:
        status = "rejected"
        at = ", ".join(str(k) for k in band["outside_k"])
        more = "" if band["outside"] <= len(band["outside_k"]) else ", ..."
        reasons.append(
            f"the law leaves the {boot.ci:.0%} band at {band['outside']} of {band['points']} "
            f"measured k (k = {at}{more}); worst at k = {band['max_excess_k']}, "
            f"{band['max_excess']:.1f} half-widths from the estimate"
        )
    else:
        status = "ok"
    loc = local_exponents(boot)
    vals = [e["exponent"] for e in loc if e["exponent"] is not None]
    curv = curvature(boot)
    if curv["significant"]:
        drift = f"; the local exponent runs from {vals[0]:.2f} to {vals[-1]:.2f}" if len(vals) > 1 else ""
        warnings.append(f"log(-log coverage) is curved in log k (quadratic term "
                        f"{curv['quadratic']:.3g}, {boot.ci:.0%} CI excludes 0){drift}: "
                        "extrapolation beyond the fitted k is unreliable")
    if boot.n_failed:
        warnings.append(f"{boot.n_failed} of {len(boot.params)} bootstrap refits did not converge")
    return {"status": status, "reasons": reasons, "warnings": warnings, "band": band,
            "local_exponent": loc, "curvature": curv}


def _num(x: float) -> float | None:
    x = float(x)
    return x if math.isfinite(x) else None
