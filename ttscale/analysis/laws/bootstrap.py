"""How sure the fitted law is: a bootstrap over problems that refits it on every replicate.

``curve_fit``'s standard errors treat the ~40 points of one coverage curve as independent
measurements; they are not (every point is a mean over the same problems), and those errors come
out 2-16x too small. The honest unit of resampling is the problem: draw P problems with
replacement, recompute the whole coverage curve, refit the law, and read the derived numbers off
each refit. Percentile intervals of the replicates are what fits.json reports beside each
point estimate (``a_ci``, ``b_ci``, ``c_max_ci``, ``saturation_k_fit_ci``); ``curve_fit``'s
errors stay only as ``*_se_conditional`` (conditional on the problems drawn).

All replicates are one (B, P) multinomial count matrix applied to the per-problem pass@k matrix
by one matrix product; each replicate's refit starts from the point estimate (a few ms each).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.optimize import OptimizeWarning, curve_fit

from ttscale.analysis.laws.power_law import (
    DEFAULT_NUM_POINTS,
    FitResult,
    check_counts,
    exp_power,
    exp_power_ceiling,
    fit_power_law,
    log_spaced_ks,
    pass_at_k_matrix,
)
from ttscale.errors import InputError

#: replicates of the law bootstrap when not told otherwise (each one is a refit)
DEFAULT_LAW_BOOT = 300
#: saturation points beyond this k are reported as "never" (None)
SATURATION_K_MAX = 10**9


@dataclass
class LawBootstrap:
    """A point fit, its replicate refits and the curves they were fitted to."""

    fit: FitResult
    ks: np.ndarray  # every k the replicate curves hold (fit ks and doubling ks)
    fit_mask: np.ndarray  # which of ``ks`` the law is fitted on
    per_problem: np.ndarray  # (P, len(ks)) unbiased pass@k
    weights: np.ndarray  # (B, P) multinomial counts of each replicate
    curves: np.ndarray  # (B, len(ks)) replicate coverage curves
    params: np.ndarray  # (B, n_par) refitted parameters (NaN where a refit failed)
    names: tuple[str, ...]
    ci: float

    @property
    def n_failed(self) -> int:
        return int(np.isnan(self.params).any(axis=1).sum())

    def param_ci(self) -> dict[str, tuple[float, float]]:
        """Percentile interval of every parameter over the replicates that converged."""
        ok = ~np.isnan(self.params).any(axis=1)
        out = {}
        for j, name in enumerate(self.names):
            out[name] = percentile_ci(self.params[ok, j], self.ci)
        return out

    def predict(self, k: np.ndarray) -> np.ndarray:
        """Every replicate law at k: (B, len(k))."""
        return law_values(self.fit.law, self.params, np.asarray(k, dtype=float))


def percentile_ci(values: np.ndarray, ci: float) -> tuple[float, float]:
    """(low, high) percentile interval of the finite values; +inf allowed; NaN if none."""
    v = np.asarray(values, dtype=float)
    v = v[~np.isnan(v)]
    if v.size == 0:
        return (math.nan, math.nan)
    a = (1.0 - ci) / 2.0
    method = "linear" if np.isfinite(v).all() else "nearest"  # no inf - inf
    lo, hi = np.quantile(v, [a, 1.0 - a], method=method)
    return float(lo), float(hi)


def law_values(law: str, params: np.ndarray, k: np.ndarray) -> np.ndarray:
    """``exp(a k^b)`` (times c_max) for every row of params: (B, len(k))."""
    p = np.atleast_2d(params)
    kk = np.asarray(k, dtype=float)[None, :]
    with np.errstate(over="ignore", invalid="ignore"):
        y = np.exp(p[:, [0]] * np.power(kk, p[:, [1]]))
    if law == "exp_power_ceiling":
        y = p[:, [2]] * y
    return y


def _refit(law: str, k: np.ndarray, y: np.ndarray, p0: np.ndarray) -> np.ndarray:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if law == "exp_power_ceiling":
                popt, _ = curve_fit(exp_power_ceiling, k, y, p0=p0,
                                    bounds=([-np.inf, -np.inf, 1e-12], [np.inf, np.inf, 1.0]),
                                    maxfev=5000)
            else:
                popt, _ = curve_fit(exp_power, k, y, p0=p0, maxfev=5000)
    except (RuntimeError, ValueError, OptimizeWarning):
        return np.full(len(p0), np.nan)
    return popt if np.all(np.isfinite(popt)) else np.full(len(p0), np.nan)


def doubling_ks(max_k: int) -> np.ndarray:
    """1, 2, 4, ... up to max_k (where the local exponent is read)."""
    return 2 ** np.arange(int(math.floor(math.log2(max(max_k, 1)))) + 1)


def bootstrap_law(
    n: Any,
    c: Any,
    max_k: int | None = None,
    ceiling: bool = False,
    n_boot: int = DEFAULT_LAW_BOOT,
    ci: float = 0.95,
    seed: int = 0,
    num_points: int = DEFAULT_NUM_POINTS,
    source: str = "counts",
    per_problem: Any = None,
    k_top: int | None = None,
) -> LawBootstrap:
    """Fit the law to the counts (as :func:`ttscale.analysis.laws.power_law.fit_from_counts`) and refit it
    on ``n_boot`` resamples of the problems. Raises InputError where the point fit fails.

    ``per_problem(ks) -> (P, len(ks))`` replaces the plain pass@k matrix and ``k_top`` the
    smallest num_samples (an adaptive run: the stopping-rule estimator, up to K)."""
    n_i, c_i = check_counts(n, c, source)
    if n_boot < 1:
        raise InputError(f"{source}: field 'n_boot' must be >= 1 for the law bootstrap, got {n_boot}")
    if not 0.0 < ci < 1.0:
        raise InputError(f"{source}: field 'ci' must be in (0, 1), got {ci}")
    n_min = int(n_i.min()) if k_top is None else int(k_top)
    max_k = n_min if max_k is None else int(max_k)
    if max_k < 1 or max_k > n_min:
        raise InputError(f"{source}: field 'max_k'={max_k} must be in [1, {n_min}] (smallest num_samples)")
    fit_ks = log_spaced_ks(max_k, num_points)
    ks = np.union1d(fit_ks, doubling_ks(max_k))
    fit_mask = np.isin(ks, fit_ks)
    per = pass_at_k_matrix(n_i, c_i, ks) if per_problem is None else np.asarray(per_problem(ks))
    fit = fit_power_law(fit_ks, per[:, fit_mask].mean(axis=0), ceiling=ceiling, source=source)
    p = per.shape[0]
    rng = np.random.default_rng(seed)
    weights = rng.multinomial(p, np.full(p, 1.0 / p), size=n_boot).astype(float)
    curves = np.clip(weights @ per / p, 0.0, 1.0)
    names = tuple(fit.params)
    p0 = np.array([fit.params[nm] for nm in names])
    kf = fit_ks.astype(float)
    params = np.vstack([_refit(fit.law, kf, curves[b, fit_mask], p0) for b in range(n_boot)])
    return LawBootstrap(fit, ks, fit_mask, per, weights, curves, params, names, ci)


def saturation_k_many(params: np.ndarray, law: str, threshold: float,
                      k_max: int = SATURATION_K_MAX) -> np.ndarray:
    """Smallest integer k with law(k+1) - law(k) < threshold, for every row of params.

    NaN where the gain never falls below the threshold up to ``k_max``. The gain of
    ``c exp(a k^b)`` (a, b < 0) rises then falls in k, so the first k below the threshold after
    a grid point above it is found by bisection (vectorised over rows); equal to
    :func:`ttscale.analysis.ceilings.ceilings.saturation_point_from_fit` (tests check it).
    """
    p = np.atleast_2d(np.asarray(params, dtype=float))
    rows = p.shape[0]
    grid = np.unique(np.concatenate([np.arange(1, 101),
                                     np.round(np.geomspace(100, k_max, 600))])).astype(np.int64)

    def gain(k: np.ndarray, idx: np.ndarray) -> np.ndarray:
        kk = np.asarray(k, dtype=float)
        q = p[idx]
        with np.errstate(over="ignore", invalid="ignore"):
            g = (np.exp(q[:, [0]] * np.power(kk + 1, q[:, [1]]))
                 - np.exp(q[:, [0]] * np.power(kk, q[:, [1]])))
        if law == "exp_power_ceiling":
            g = q[:, [2]] * g
        return g

    out = np.full(rows, np.nan)
    ok = np.flatnonzero(np.isfinite(p).all(axis=1))
    if ok.size == 0:
        return out
    g = gain(grid[None, :], ok)
    below = g < threshold
    has = below.any(axis=1)
    first = np.argmax(below, axis=1)
    at_start = has & (first == 0)
    out[ok[at_start]] = grid[0]
    todo = np.flatnonzero(has & (first > 0))
    lo = grid[first[todo] - 1].astype(np.int64)  # gain(lo) >= threshold
    hi = grid[first[todo]].astype(np.int64)  # gain(hi) < threshold
    rows_todo = ok[todo]
    while np.any(hi - lo > 1):
        mid = (lo + hi) // 2
        gm = gain(mid[:, None], rows_todo)[:, 0]
        below_mid = gm < threshold
        hi = np.where(below_mid, mid, hi)
        lo = np.where(below_mid, lo, mid)
    out[rows_todo] = hi
    return out


def saturation_summary(boot: LawBootstrap, threshold: float) -> dict[str, Any]:
    """Percentile interval of the saturation point over the replicate laws.

    A bound is None when the replicates beyond it never saturate (up to 10^9);
    ``saturation_k_fit_never`` is the share of replicates that never do.
    """
    ks = saturation_k_many(boot.params[~np.isnan(boot.params).any(axis=1)], boot.fit.law, threshold)
    if ks.size == 0:
        return {"saturation_k_fit_ci": None, "saturation_k_fit_never": None}
    never = float(np.isnan(ks).mean())
    lo, hi = percentile_ci(np.where(np.isnan(ks), np.inf, ks), boot.ci)

    def val(x: float) -> int | None:
        return int(round(x)) if np.isfinite(x) else None

    return {"saturation_k_fit_ci": [val(lo), val(hi)], "saturation_k_fit_never": never}
