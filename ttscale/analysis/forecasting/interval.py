"""Forecast intervals: how far a coverage forecast at K may be from the truth, and why.

The truth a forecast is judged against is the coverage at K of the problems at hand (what more
samples of this benchmark would measure). A forecast errs for two reasons, and the interval has a
part for each (benchmarks/bench_forecast.py measures how often it holds the truth, per family):

1. **Noise, under the fitted difficulty** (``extrapolation_sd``): a parametric bootstrap. The
   empirical-Bayes difficulty of :mod:`ttscale.analysis.forecasting.difficulty` (a Beta prior with
   a point mass at p = 0, fitted to all problems; each problem's posterior under it) stands for the
   truth: each replicate draws every problem's pass rate from its posterior, draws n fresh samples
   of it, forecasts K from them with the same method, and compares with that replicate's own
   truth ``mean_i 1 - (1 - p_i)^K``. The spread of forecast minus truth is the error the method
   makes on such problems: which never-solved problem is solvable, and how the fit moves with the
   counts. It is added in quadrature to **the floor** (``floor_sd``), the error of a forecaster
   who knows the population's difficulty but not which unsolved problem is solvable, taken
   without the fitted model: if a share r of the m unsolved problems is solvable within K,
   ``sqrt(m r (1 - r)) / P``, r read off the forecast (``r = (forecast - s / P) P / m`` with s
   problems solved). (The larger of the two alone covered 0.2 of MATH-500 forecasts from 300
   samples, where the fitted prior's world is too kind to the law; the sum 0.8.)
   Before issue 20's second round this part was a bootstrap over problems of the forecast's gain;
   it measures a new benchmark's spread, not this one's, and made the intervals 1.5-2x wider than
   their errors needed on every family where the law holds (cover90 1.00).
2. **The model** (``model_sd``): the tail shape is not identified by n samples (a power-law tail,
   a point mass at 0 and a Beta tail fit the same counts and part far beyond n). Noise alone
   misses whenever the method is biased, so unless the data vouch for the law -- it passes its
   extrapolation back-test (:func:`ttscale.analysis.laws.extrapolation.extrapolation_check`:
   fitted on k <= n / 10 it predicts the coverage measured at n; ``safe``) -- the interval also
   spans the forecasts of ``alternatives`` (default the other methods of :data:`ALTERNATIVES`):
   where the law fails the back-test (``unsafe``) and where it cannot be run (``unchecked``: n <
   50, one problem). ``model_sd`` is then ``max |alternative - forecast| / z``. Where the law
   passes, the alternatives are left out: they widened the interval 2x on families where they
   are the ones that err.

The interval is ``[min(forecast, alternatives) - z sd, max(forecast, alternatives) + z sd]`` with
``sd = sqrt(extrapolation_sd^2 + floor_sd^2)``, z for the level (1.645 at 90%), within [0, 1] and
never inside the measured curve's interval at n (coverage does not fall as k grows: the lower end
is at least the curve's lower bound at n, the upper end at least its upper bound; a forecast of
0.99997 where every problem was solved then reaches 1). It is not clipped
at the share solved in n: that share is an unbiased estimate of coverage at n, not a lower bound
(the clip made the interval one-sided: 90% intervals at K = n covered 0.53-0.60). At K <= n there
is nothing to extrapolate: the forecast is the unbiased estimate and its interval the measured
curve's (:func:`curve_interval`).

What it does not cover: a tail that the n samples cannot see at all and that the law's back-test
passes (benchmarks/bench_forecast.py's weak-model family: 60% of problems with p in 1e-4..1e-2;
every method under-predicts coverage at 100n by 15-25 points, and so does the interval).
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
)
from ttscale.errors import InputError

#: parametric-bootstrap replicates at most for the maximum-likelihood Beta methods (each refit
#: takes 10-100 ms; 20 replicates estimate a standard deviation to about +-16%)
BETA_BOOT_CAP = 20

#: bootstrap resamples of the measured curve's interval (k <= n), as ``ttscale analyze``'s default
CURVE_BOOT = 1000

#: the methods whose forecasts stand for the tail shapes the data allow (see the module doc); a
#: method is never its own alternative
ALTERNATIVES = ("power_law", "beta_eb", "beta_zi_eb")


@dataclass(frozen=True)
class Forecast:
    """Coverage forecast at each k with its interval and the parts it is made of."""

    ks: np.ndarray
    coverage: np.ndarray
    low: np.ndarray
    high: np.ndarray
    level: float
    floor_sd: np.ndarray  # the floor's standard deviation (coverage units)
    extrapolation_sd: np.ndarray  # the parametric bootstrap's spread of forecast minus truth
    model_sd: np.ndarray  # max |alternative - forecast| / z where the alternatives are spanned, else 0
    method: str
    beyond_samples: np.ndarray  # k > the smallest n: extrapolated, not estimated
    #: the power law's extrapolation verdict that decided whether the alternatives are spanned
    law_extrapolation: str | None = None


def simulated_errors(n: np.ndarray, c: np.ndarray, ks: np.ndarray, method: str, sims: int,
                     seed: int = 0) -> np.ndarray:
    """Forecast minus truth over ``sims`` parametric-bootstrap replicates, shape (replicates, K).

    Each replicate draws every problem's pass rate from its empirical-Bayes posterior (prior
    Beta(a, b) + pi0 at 0 fitted to all the counts, :func:`fit_zero_inflated_beta`; a never-solved
    problem is unsolvable with probability ``pi0 / (pi0 + (1 - pi0) B(a, b + n) / B(a, b))``),
    draws ``n_i`` samples of each, forecasts ``ks`` with ``method`` and subtracts the replicate's
    true coverage ``mean_i 1 - (1 - p_i)^k``. Replicates without a correct sample, or whose fit
    fails, are left out."""
    from scipy.special import betaln

    from ttscale.analysis.forecasting.forecast import fit_zero_inflated_beta

    a, b, pi0 = fit_zero_inflated_beta(n, c)
    n_f, c_f = n.astype(float), c.astype(float)
    zero_like = np.exp(betaln(a, b + n_f) - betaln(a, b))
    p_zero = np.where(c == 0, pi0 / (pi0 + (1 - pi0) * zero_like), 0.0)
    rng = np.random.default_rng(seed)
    fn = METHODS[method]
    k = ks.astype(float)
    out = []
    for _ in range(sims):
        p = np.where(rng.random(n.size) < p_zero, 0.0, rng.beta(a + c_f, b + n_f - c_f))
        cs = rng.binomial(n, p)
        if not (cs > 0).any():
            continue
        with np.errstate(divide="ignore"):
            truth = 1.0 - np.exp(np.outer(k, np.log1p(-np.minimum(p, 1.0)))).mean(axis=1)
        try:
            out.append(np.clip(fn(n, cs, ks), 0.0, 1.0) - truth)
        except (InputError, ValueError, FloatingPointError):
            continue
    return np.asarray(out, dtype=float).reshape(-1, ks.size)


def forecast_with_interval(
    n: Any, c: Any, ks: Any, method: str = DEFAULT_METHOD, level: float = 0.9,
    n_boot: int = 100, seed: int = 0, source: str = "counts",
    alternatives: tuple[str, ...] = ALTERNATIVES, known: dict[str, np.ndarray] | None = None,
    law_extrapolation: str | None = None,
) -> Forecast:
    """Forecast coverage at each k in ``ks`` with a ``level`` interval (see the module doc).

    ``n_boot``: parametric-bootstrap replicates (at most :data:`BETA_BOOT_CAP` for the Beta
    methods). ``known``: forecasts already made at ``ks`` by method name (reused, not refitted).
    ``law_extrapolation``: the power law's extrapolation verdict on these counts where already
    known (``"unsafe"`` spans the alternatives), else computed
    (:func:`ttscale.analysis.laws.extrapolation.extrapolation_check`, seed 0, as ``ttscale
    forecast`` reports it) when some k lies beyond the samples.
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
    n_min = int(n_i.min())
    inside = k <= n_min
    z = float(norm.ppf(0.5 + level / 2))
    solved = float(np.mean(c_i > 0))
    m = int(np.sum(c_i == 0))
    if m:
        r = np.clip((point - solved) * num_p / m, 0.0, 1.0)
        floor_sd = np.sqrt(m * r * (1 - r)) / num_p
    else:
        floor_sd = np.zeros(k.size)
    extra_sd = np.full(k.size, np.nan)
    lo_c, hi_c = point.copy(), point.copy()
    model_sd = np.zeros(k.size)
    if not inside.all():
        sims = n_boot if method == "power_law" else min(n_boot, BETA_BOOT_CAP)
        errs = simulated_errors(n_i, c_i, k, method, sims, seed)
        if errs.shape[0] >= 2:
            extra_sd = errs.std(axis=0, ddof=1)
        if law_extrapolation is None:
            from ttscale.analysis.laws.extrapolation import extrapolation_check

            try:
                law_extrapolation = extrapolation_check(n_i, c_i, source=source)["status"]
            except InputError:
                law_extrapolation = "unchecked"
        others = [a for a in alternatives if a != method]
        if law_extrapolation != "safe" and others:
            alts = np.asarray([known[a] if a in known else forecast_curve(n, c, ks, a, source)
                               for a in others])
            lo_c, hi_c = np.minimum(point, alts.min(axis=0)), np.maximum(point, alts.max(axis=0))
            model_sd = np.max(np.abs(alts - point), axis=0) / z
    sd = np.hypot(np.nan_to_num(extra_sd), floor_sd)
    # k <= n: the measured curve's own interval; beyond: coverage never falls as k grows, so the
    # curve's interval at n bounds it: the lower end is at least the curve's lower bound at n (a
    # lower bound of the truth at n, not a point), the upper end at least its upper bound
    curve_low, curve_high = curve_interval(n_i, c_i, np.append(k[inside], n_min), level, seed)
    low = np.clip(np.maximum(lo_c - z * sd, curve_low[-1]), 0.0, 1.0)
    high = np.clip(np.maximum(hi_c + z * sd, curve_high[-1]), 0.0, 1.0)
    low[inside], high[inside] = curve_low[:-1], curve_high[:-1]
    zero = np.where(inside, 0.0, np.nan)
    return Forecast(k, point, np.minimum(low, point), np.maximum(high, point), level,
                    np.where(inside, 0.0, floor_sd), np.where(inside, zero, extra_sd),
                    np.where(inside, 0.0, model_sd), method, ~inside,
                    None if inside.all() else law_extrapolation)


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
    0), ``floor_sd``, ``extrapolation_sd`` and ``model_sd`` (the interval's parts, see the module doc), ``extrapolated``
    (k beyond the smallest n: a model's extrapolation, not an estimate) and ``from_n``.

    A group with no correct sample at all has nothing to forecast from: its coverage is null
    and ``"error"`` says why (the other groups are still forecast). Counts of an adaptive run
    (a stopping rule) get the point forecasts of ``ttscale.analysis.forecasting.forecast.forecast_records``
    and no interval (the parametric bootstrap here draws a fixed n). ``progress(done, total)``, if given,
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
        verdict = None
        if method == "auto" and (c > 0).any():
            choice = choose_method(n, c, to_k, seed, source=source)
            method = choice["method"]
            verdict = choice.get("law_extrapolation")
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
            f = forecast_with_interval(n, c, [to_k], method, level, n_boot, seed, source,
                                       law_extrapolation=verdict)
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
