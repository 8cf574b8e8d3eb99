"""Forecast intervals: how far a coverage forecast at K may be from the truth, and why.

A forecast of coverage at K from n samples per problem is, up to the problems already solved,
a guess of how many of the m problems unsolved in n samples are solved within K. Two things make
it err (see benchmarks/bench_forecast.py, which measures both):

1. **The floor**: even knowing the population's difficulty distribution exactly, one cannot tell
   which unsolved problem is solvable (from n samples p = 3e-4 and p = 0 look alike). If a share
   r of the unsolved ones is solvable within K, the number that are varies like a binomial, so
   the error has variance ``m r (1 - r) / P^2`` (P problems); its mean absolute value is about
   ``sqrt(2/pi) sqrt(m r (1 - r)) / P``. r is read off the forecast itself:
   ``r = (forecast - s / P) * P / m`` with s problems solved in n.
2. **The extrapolation**: the method's fit moves with the problems drawn. A bootstrap over
   problems refits it; the spread of ``forecast* - s*/P`` (the forecast's gain over the share
   already solved, so the share solved, which is known, adds nothing) measures it.

3. **The model**: the tail shape itself is not identified by n samples (a power-law tail, a
   point mass at 0 and a Beta tail fit the same counts and part far beyond n). The forecasts of
   ``alternatives`` (default ``beta_eb`` and ``beta_zi_eb``) stand for the shapes the data
   allow; ``model_sd = max |alternative - forecast| / z`` makes the interval reach the farthest
   of them.

The interval is ``forecast +- z sqrt(floor_sd^2 + extrapolation_sd^2 + model_sd^2)``, z for the
level (1.645 at 90%), within [0, 1] and never below the measured curve's lower bound at n
(coverage does not fall as k grows). It is not clipped at the share solved in n: that share is
an unbiased estimate of coverage at n, not a lower bound, and the clip made the interval
one-sided (90% intervals at K = n covered 0.53-0.60). At K <= n there is nothing to extrapolate:
the forecast is the unbiased estimate and its interval the measured curve's
(:func:`curve_interval`). It is conservative
where the methods disagree and the default is right, and still misses where every method is
wrong the same way; benchmarks/bench_forecast.py reports how often it covers the truth.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.stats import norm

from ttscale.analysis.forecasting.forecast import (
    DEFAULT_METHOD,
    METHODS,
    forecast_curve,
    method_records,
)
from ttscale.analysis.laws.power_law import (
    check_counts,
    coverage_curve,
    fit_power_law,
    log_spaced_ks,
)
from ttscale.errors import InputError

#: bootstrap refits at most for the maximum-likelihood Beta methods (each refit takes 0.1-1 s;
#: 20 refits estimate a standard deviation to about +-16%)
BETA_BOOT_CAP = 20

#: bootstrap resamples of the measured curve's interval (k <= n), as ``ttscale analyze``'s default
CURVE_BOOT = 1000

#: the methods whose forecasts stand for the tail shapes the data allow (see the module doc)
ALTERNATIVES = ("beta_eb", "beta_zi_eb")


@dataclass(frozen=True)
class Forecast:
    """Coverage forecast at each k with its interval and the parts it is made of."""

    ks: np.ndarray
    coverage: np.ndarray
    low: np.ndarray
    high: np.ndarray
    level: float
    floor_sd: np.ndarray  # the floor's standard deviation (coverage units)
    extrapolation_sd: np.ndarray  # the bootstrap's standard deviation of the gain
    model_sd: np.ndarray  # the alternatives' spread, max |alternative - forecast| / z
    method: str
    beyond_samples: np.ndarray  # k > the smallest n: extrapolated, not estimated


def _boot_gains_power_law(n: np.ndarray, c: np.ndarray, ks: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """Power-law gains over the solved share for each bootstrap index row (B, K)."""
    from ttscale.analysis.laws.power_law import pass_at_k_matrix

    grid = log_spaced_ks(int(n.min()))
    per = pass_at_k_matrix(n, c, grid)  # (P, G)
    solved = (c > 0).astype(float)
    out = np.full((idx.shape[0], ks.size), np.nan)
    for b, rows in enumerate(idx):
        if not (c[rows] > 0).any():
            continue
        try:
            fit = fit_power_law(grid, per[rows].mean(axis=0))
        except InputError:
            continue
        out[b] = np.clip(fit.predict(ks), 0, 1) - solved[rows].mean()
    return out


def forecast_with_interval(
    n: Any, c: Any, ks: Any, method: str = DEFAULT_METHOD, level: float = 0.9,
    n_boot: int = 100, seed: int = 0, source: str = "counts",
    alternatives: tuple[str, ...] = ALTERNATIVES, known: dict[str, np.ndarray] | None = None,
) -> Forecast:
    """Forecast coverage at each k in ``ks`` with a ``level`` interval (see the module doc).

    ``known``: forecasts already made at ``ks`` by method name (reused, not refitted). The Beta
    methods refit at most :data:`BETA_BOOT_CAP` times.
    """
    if not 0 < level < 1:
        raise InputError(f"{source}: field 'level' must be in (0, 1), got {level}")
    if n_boot < 2:
        raise InputError(f"{source}: field 'n_boot' must be at least 2, got {n_boot}")
    known = dict(known or {})
    point = known[method] if method in known else forecast_curve(n, c, ks, method, source)
    n_i, c_i = check_counts(n, c, source)
    k = np.asarray(ks, dtype=np.int64).ravel()
    num_p = n_i.size
    solved = float(np.mean(c_i > 0))
    m = int(np.sum(c_i == 0))
    rng = np.random.default_rng(seed)
    if method != "power_law":
        n_boot = min(n_boot, BETA_BOOT_CAP)
    idx = rng.integers(0, num_p, size=(n_boot, num_p))
    if method == "power_law":
        gains = _boot_gains_power_law(n_i, c_i, k, idx)
    else:
        fn = METHODS[method]
        gains = np.full((n_boot, k.size), np.nan)
        for b, rows in enumerate(idx):
            if (c_i[rows] > 0).any():
                gains[b] = np.clip(fn(n_i[rows], c_i[rows], k), 0, 1) - np.mean(c_i[rows] > 0)
    ok = np.isfinite(gains).all(axis=1)
    extra_sd = gains[ok].std(axis=0, ddof=1) if ok.sum() >= 2 else np.full(k.size, np.nan)
    if m:
        r = np.clip((point - solved) * num_p / m, 0.0, 1.0)
        floor_sd = np.sqrt(m * r * (1 - r)) / num_p
    else:
        floor_sd = np.zeros(k.size)
    z = float(norm.ppf(0.5 + level / 2))
    others = [known[a] if a in known else forecast_curve(n, c, ks, a, source)
              for a in alternatives if a != method]
    model_sd = (np.max(np.abs(np.asarray(others) - point), axis=0) / z if others
                else np.zeros(k.size))
    sd = np.sqrt(floor_sd**2 + np.nan_to_num(extra_sd) ** 2 + model_sd**2)
    n_min = int(n_i.min())
    inside = k <= n_min
    # k <= n: the measured curve's own interval; beyond: coverage never falls as k grows, so the
    # curve's lower bound at n (a lower bound of the truth at n, not a point) bounds it below
    curve_low, curve_high = curve_interval(n_i, c_i, np.append(k[inside], n_min), level, seed)
    low = np.clip(np.maximum(point - z * sd, curve_low[-1]), 0.0, 1.0)
    high = np.clip(point + z * sd, 0.0, 1.0)
    low[inside], high[inside] = curve_low[:-1], curve_high[:-1]
    zero = np.where(inside, 0.0, np.nan)
    return Forecast(k, point, np.minimum(low, point), np.maximum(high, point), level,
                    np.where(inside, 0.0, floor_sd), np.where(inside, zero, extra_sd),
                    np.where(inside, 0.0, model_sd), method, ~inside)


def curve_interval(n: np.ndarray, c: np.ndarray, ks: np.ndarray, level: float,
                   seed: int = 0, n_boot: int = CURVE_BOOT) -> tuple[np.ndarray, np.ndarray]:
    """The measured coverage curve's ``level`` interval at each k <= the smallest n, as ``ttscale
    analyze`` reports it (:func:`ttscale.analysis.curves.coverage.coverage_curves`: a percentile
    bootstrap over problems, hulled with the effective-trials Clopper-Pearson bound)."""
    from ttscale.analysis.ceilings.interval import subset_trials, widen_at_ceiling
    from ttscale.analysis.curves.estimators import bootstrap_ci
    from ttscale.analysis.laws.power_law import pass_at_k_matrix

    per = pass_at_k_matrix(n, c, ks)
    low, high = bootstrap_ci(per, n_boot=n_boot, ci=level, seed=seed)
    return widen_at_ceiling(per, low, high, level, subset_trials(n, ks))


def observed_coverage(n: Any, c: Any, ks: Any) -> np.ndarray:
    """Unbiased coverage at each k <= the smallest n (for comparison with a forecast)."""
    n_i, c_i = check_counts(n, c)
    return coverage_curve(n_i, c_i, np.asarray(ks, dtype=np.int64))


def forecast_records(
    counts: Any, group_cols: list[str], to_k: int, methods: list[str], source: str = "counts",
    level: float = 0.9, n_boot: int = 100, seed: int = 0, progress: Any = None,
) -> list[dict[str, Any]]:
    """One record per (group, method) of a counts frame: the group values, ``method``, ``k``,
    ``coverage`` and its interval ``ci_low``/``ci_high`` at ``ci_level`` (null with ``n_boot``
    0), ``floor_sd`` and ``extrapolation_sd`` (the interval's two parts), ``extrapolated``
    (k beyond the smallest n: a model's extrapolation, not an estimate) and ``from_n``.

    A group with no correct sample at all has nothing to forecast from: its coverage is null
    and ``"error"`` says why (the other groups are still forecast). Counts of an adaptive run
    (a stopping rule) get the point forecasts of ``ttscale.analysis.forecasting.forecast.forecast_records``
    and no interval (the bootstrap here assumes fixed n). ``progress(done, total)``, if given,
    is told after each (group, method).
    """
    from ttscale.analysis.adaptive.run import is_adaptive
    from ttscale.analysis.forecasting.forecast import forecast_records as point_records

    if is_adaptive(counts):
        recs = point_records(counts, group_cols, to_k, methods, source)
        for r in recs:
            r.update(ci_low=None, ci_high=None, ci_level=None)
        return recs
    from ttscale.analysis.forecasting.forecast import choose_method

    out = []
    total = (counts.groupby(group_cols, dropna=False).ngroups if group_cols else 1) * len(methods)
    for rec, _, n, c in method_records(counts, group_cols, to_k, methods):
        if progress is not None:
            progress(len(out), total)
        method = rec["method"]
        rec.update({"from_n": int(n.min()), "extrapolated": bool(to_k > int(n.min()))})
        if method == "auto" and (c > 0).any():
            choice = choose_method(n, c, to_k, seed, source=source)
            method = choice["method"]
            rec.update(chosen_method=method, method_reason=choice["reason"],
                       backtest_errors=choice["errors"])
        if not (c > 0).any():
            rec.update(coverage=None, ci_low=None, ci_high=None,
                       error="no correct sample in this group")
        elif n_boot == 0 or n.size < 2:
            rec.update(coverage=float(forecast_curve(n, c, [to_k], method, source)[0]),
                       ci_low=None, ci_high=None, ci_level=None)
            if n.size < 2:
                rec["interval_note"] = "one problem: nothing to resample, no interval"
        else:
            f = forecast_with_interval(n, c, [to_k], method, level, n_boot, seed, source)
            rec.update(coverage=float(f.coverage[0]), ci_low=float(f.low[0]),
                       ci_high=float(f.high[0]), ci_level=level,
                       floor_sd=float(f.floor_sd[0]),
                       extrapolation_sd=_num(f.extrapolation_sd[0]),
                       model_sd=float(f.model_sd[0]))
        out.append(rec)
    if progress is not None:
        progress(len(out), total)
    return out


def _num(x: float) -> float | None:
    return float(x) if np.isfinite(x) else None
