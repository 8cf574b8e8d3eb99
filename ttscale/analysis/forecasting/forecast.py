"""Forecast coverage at a large K from a few samples per problem.

Coverage at K (the chance that at least one of K samples is right, averaged over problems) is
only estimable without a model up to K = n. Beyond, each method assumes something:

* ``power_law`` -- fit the exponentiated power law ``exp(a k^b)`` (:mod:`ttscale.analysis.laws.power_law`)
  on k <= n and extrapolate. The baseline.
* ``beta`` -- per-problem pass rates p ~ Beta(alpha, beta), fitted by maximum likelihood of the
  beta-binomial (each problem's own n), and ``coverage(K) = 1 - B(alpha, beta + K) / B(alpha,
  beta)`` exactly: the coverage of a new problem drawn from the fitted population.
* ``beta_eb`` -- the same fitted Beta as an empirical-Bayes prior, and each problem's own
  posterior Beta(alpha + c, beta + n - c): ``1 - mean_i B(alpha + c_i, beta + n_i - c_i + K) /
  B(alpha + c_i, beta + n_i - c_i)``. A problem already solved counts as (nearly) solved; what
  is forecast is how many of the never-solved ones a larger K reaches.
* ``beta_mixture`` -- ``beta_eb`` with a two-component beta-binomial mixture as the prior (a "hard"
  and an "easy" population), fitted by maximum likelihood, so that the left tail of the pass
  rates (which decides the forecast) is not dragged by the easy problems. Measured: it fits the
  counts better but forecasts worse on the reference data (a component fits the middle, not the
  tail); kept for comparison.

* ``beta_zi_eb`` -- ``beta_eb`` with a point mass at p = 0 added to the prior (a share pi0 of
  problems the model never solves), fitted by maximum likelihood: a never-solved problem is
  unsolvable with posterior probability ``pi0 / (pi0 + (1 - pi0) B(a, b + n) / B(a, b))``.

What decides every forecast is the share of never-solved problems whose pass rate is small but
not zero; n = 100 samples cannot see below p ~ 1e-2, so each method extrapolates a shape there.

Every method is a function ``(n, c, ks) -> coverage at each k`` in :data:`METHODS`; all fits use
analytic gradients (digamma) and L-BFGS-B on log-parameters, and take milliseconds.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pandas as pd
from scipy.special import betaln

from ttscale.analysis.forecasting.beta_fits import (  # noqa: F401 (re-exported)
    BetaMixture,
    fit_beta_mixture,
    fit_zero_inflated_beta,
    refit_zero_inflated_beta,
)
from ttscale.analysis.laws.power_law import check_counts, coverage_curve, fit_from_counts
from ttscale.errors import InputError, arg


# ----------------------------------------------------------------------------------- methods
def _power_law(n: np.ndarray, c: np.ndarray, ks: np.ndarray) -> np.ndarray:
    return np.asarray(fit_from_counts(n, c).predict(ks), dtype=float)


def _beta(n: np.ndarray, c: np.ndarray, ks: np.ndarray) -> np.ndarray:
    return fit_beta_mixture(n, c, 1).coverage(ks)


def _beta_eb(n: np.ndarray, c: np.ndarray, ks: np.ndarray) -> np.ndarray:
    return fit_beta_mixture(n, c, 1).posterior_coverage(n, c, ks)


def _beta_mixture(n: np.ndarray, c: np.ndarray, ks: np.ndarray) -> np.ndarray:
    return fit_beta_mixture(n, c, 2).posterior_coverage(n, c, ks)


def _beta_zi_eb(n: np.ndarray, c: np.ndarray, ks: np.ndarray) -> np.ndarray:
    a, b, pi0 = fit_zero_inflated_beta(n, c)
    n_f, c_f = n.astype(float), c.astype(float)
    zero_like = np.exp(betaln(a, b + n_f) - betaln(a, b))  # P(c = 0 | solvable)
    p_zero = np.where(c_f == 0, pi0 / (pi0 + (1 - pi0) * zero_like), 0.0)
    k = ks.astype(float)[:, None]
    miss = np.exp(betaln(a + c_f, b + n_f - c_f + k) - betaln(a + c_f, b + n_f - c_f))  # (K, P)
    return 1.0 - np.mean(p_zero + (1 - p_zero) * miss, axis=1)


#: forecasting methods: name -> f(n, c, ks) -> coverage at each k
METHODS: dict[str, Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]] = {
    "power_law": _power_law,
    "beta": _beta,
    "beta_eb": _beta_eb,
    "beta_mixture": _beta_mixture,
    "beta_zi_eb": _beta_zi_eb,
}
#: the lowest mean absolute error on the reference data (benchmarks/bench_forecast.py: 0.41 points
#: at K = 10,000 from n = 100, against 0.66 for beta_eb, which wins on MATH 70B but not MATH 8B)
DEFAULT_METHOD = "power_law"


#: the methods ``auto`` chooses between (:func:`choose_method`)
AUTO_CANDIDATES = ("power_law", "beta_eb", "beta_zi_eb")
#: ``auto``'s back-test forecasts n from n / AUTO_RATIO samples per problem
AUTO_RATIO = 10
#: subsample draws ``auto``'s back-test averages over
AUTO_DRAWS = 3
#: ``auto``'s method where the power law over-predicts its back-test (a ceiling): measured by
#: benchmarks/bench_forecast.py (n = 100), the lowest error of the candidates on the point-mass and
#: heavy-tail families, where the back-test between methods picked ``beta_eb`` half the time
CEILING_METHOD = "beta_zi_eb"


def choose_method(n: Any, c: Any, to_k: int, seed: int = 0,
                  candidates: tuple[str, ...] = AUTO_CANDIDATES,
                  source: str = "counts") -> dict[str, Any]:
    """``--method auto``: the power law where it passes its extrapolation back-test, else the
    method whose back-test inside the data errs least.

    First the law's "safe to extrapolate" verdict
    (:func:`ttscale.analysis.laws.extrapolation.extrapolation_check`: fitted on k <= n / 10, does
    it predict the coverage measured at n?). ``safe`` keeps ``power_law``: the lowest error on
    most families of benchmarks/bench_forecast.py, and a back-test between methods from
    n / 10 samples is too noisy to overrule it there (choosing by back-test alone erred 1.7-8.4x
    the best single method on the reference sets). ``unsafe`` (the law over- or under-predicts
    the next decade inside the data: a ceiling, a heavy tail): where it predicted too high, the
    curve bends towards a ceiling and :data:`CEILING_METHOD` (a point mass of never-solvable
    problems) is taken; where too low, a back-test between the other candidates decides: each
    problem is subsampled (without replacement,
    :data:`AUTO_DRAWS` seeded draws) to ``n / AUTO_RATIO`` samples, every candidate forecasts
    coverage at n from them, and the one closest to the coverage measured at n is chosen.
    Returns ``{"method", "reason", "errors", "law_extrapolation"}`` (``errors``: each
    candidate's mean absolute back-test error, None where it was not computed). Within the
    samples (``to_k`` <= n) every method gives the unbiased estimate, and with n < 5
    AUTO_RATIO there is no decade to back-test on: ``power_law`` then, said why.
    """
    n_i, c_i = check_counts(n, c, source)
    top = int(n_i.min())
    small = top // AUTO_RATIO
    first = "power_law" if "power_law" in candidates else candidates[0]
    if to_k <= top:
        return {"method": first, "errors": None, "law_extrapolation": None,
                "reason": f"k = {to_k} is within the {top} samples per problem: the unbiased estimate"}
    if small < 5:
        return {"method": first, "errors": None, "law_extrapolation": None,
                "reason": f"{top} samples per problem: too few to back-test a forecast from "
                          f"{max(small, 1)} (need n >= {5 * AUTO_RATIO}); {first} by default"}
    verdict = None
    if first == "power_law":
        from ttscale.analysis.laws.extrapolation import extrapolation_check

        try:
            verdict = extrapolation_check(n_i, c_i, seed=seed, source=source)
        except InputError as e:
            verdict = {"status": "unchecked", "reasons": [f"the back-test could not run: {e}"]}
        if verdict["status"] != "unsafe" or len(candidates) == 1:
            return {"method": first, "errors": None, "law_extrapolation": verdict["status"],
                    "reason": f"the power law's extrapolation check: {verdict['status']} "
                              f"({'; '.join(verdict['reasons'])}): power_law"}
    z = ((verdict or {}).get("backtest") or {}).get("z")
    ceiling = z is not None and z < 0 and CEILING_METHOD in candidates
    truth = float(coverage_curve(n_i, c_i, np.array([top]))[0])
    rng = np.random.default_rng(seed)
    errs: dict[str, list[float]] = {m: [] for m in candidates}
    for _ in range(AUTO_DRAWS):
        sub = rng.hypergeometric(c_i, n_i - c_i, small)
        if not (sub > 0).any():
            continue
        nn = np.full(sub.size, small, dtype=np.int64)
        for m in candidates:
            try:
                errs[m].append(float(np.clip(METHODS[m](nn, sub, np.array([top])), 0, 1)[0]) - truth)
            except (InputError, ValueError, FloatingPointError):
                pass
    mae = {m: (float(np.mean(np.abs(v))) if v else None) for m, v in errs.items()}
    done = {m: v for m, v in mae.items() if v is not None}
    pool = {m: v for m, v in done.items() if verdict is None or m != "power_law"}
    status = None if verdict is None else verdict["status"]
    why = "" if verdict is None else "the power law fails its extrapolation back-test; "
    if not pool and not ceiling:
        return {"method": first, "errors": mae, "law_extrapolation": status,
                "reason": f"{why}no back-test from {small} samples per problem could be made (no "
                          f"correct sample in the subsamples); {first} by default"}
    listing = ", ".join(f"{m} {100 * v:.2f}" for m, v in done.items()) or "none could be made"
    test = (f"back-test forecasting k = {top} from {small} samples per problem ({AUTO_DRAWS} "
            f"draws), mean error in points: {listing}")
    if ceiling:
        return {"method": CEILING_METHOD, "errors": mae, "law_extrapolation": status,
                "reason": f"the power law fails its extrapolation back-test, too high "
                          f"({'; '.join(verdict['reasons'])}): the curve bends towards a ceiling, "
                          f"so {CEILING_METHOD} (a share of never-solvable problems); {test}"}
    best = min(pool, key=pool.get)
    return {"method": best, "errors": mae, "law_extrapolation": status,
            "reason": f"{why}{test}; {best} errs least" + (" of the others" if verdict else "")}


def forecast_curve(
    n: Any, c: Any, ks: Any, method: str = DEFAULT_METHOD, source: str = "counts"
) -> np.ndarray:
    """Forecast coverage at each k in ``ks`` (any k >= 1, also beyond n) with ``method``.

    At k up to the smallest n no model is needed: every method returns the unbiased coverage
    estimate there (the mean of each problem's unbiased pass@k), so a forecast within the
    samples drawn equals the measured curve."""
    if method not in METHODS:
        raise InputError(f"{source}: field 'method' {method!r} is not one of {', '.join(METHODS)}")
    n_i, c_i = check_counts(n, c, source)
    k = np.asarray(ks, dtype=float).ravel()
    if k.size == 0 or not np.all(np.isfinite(k)) or (k < 1).any() or np.any(k != np.round(k)):
        raise InputError(f"{source}: field 'K' must hold whole numbers >= 1")
    if not (c_i > 0).any():
        raise InputError(f"{source}: field 'num_correct' is 0 for every problem: nothing to forecast from")
    out = np.clip(METHODS[method](n_i, c_i, k.astype(np.int64)), 0.0, 1.0)
    inside = k <= int(n_i.min())
    if inside.any():  # within the samples drawn: the unbiased estimate, whatever the method
        out[inside] = coverage_curve(n_i, c_i, k[inside].astype(np.int64))
    return out


def forecast_coverage(
    n: Any, c: Any, K: int, method: str = DEFAULT_METHOD, source: str = "counts"
) -> float:
    """Forecast coverage at one K from per-problem counts (num_samples n, num_correct c)."""
    return float(forecast_curve(n, c, [K], method, source)[0])


# -- forecasts of an input, per group ----------------------------------------------------------
def subsample(counts: pd.DataFrame, n: int, seed: int) -> pd.DataFrame:
    """Each problem's counts as if only ``n`` of its samples had been drawn (without replacement).

    The number correct among n samples drawn without replacement from ``num_samples`` of which
    ``num_correct`` are correct is hypergeometric; one seeded draw per row, in row order.
    """
    rng = np.random.default_rng(seed)
    out = counts.copy()
    total = out["num_samples"].to_numpy(np.int64)
    good = out["num_correct"].to_numpy(np.int64)
    out["num_correct"] = rng.hypergeometric(good, total - good, n).astype(np.int64)
    out["num_samples"] = np.int64(n)
    return out


def forecast_adaptive(counts: pd.DataFrame, to_k: int, method: str, source: str) -> float:
    """Coverage at ``to_k`` from adaptive rows. ``power_law`` fits the law to the stopping-rule
    curve on k <= K (the plain curve would be biased). The beta methods fit by maximum likelihood,
    and a stopping rule that depends only on the successes seen leaves the likelihood
    ``p^S (1-p)^(T-S)`` of each row unchanged (up to a factor free of p), so they take (T, S) as
    they are. At ``to_k`` up to K it is the stopping rule's unbiased estimate, for every method."""
    from ttscale.analysis.adaptive.run import fit_adaptive, max_k, per_problem_pass

    if to_k <= max_k(counts):  # within the samples drawn: the stopping rule's unbiased estimate
        return float(np.mean(per_problem_pass(counts, np.array([to_k]))[:, 0]))
    if method == "power_law":
        return float(np.clip(fit_adaptive(counts, None, False, source).predict(np.array([to_k]))[0], 0, 1))
    return float(forecast_coverage(counts["num_samples"].to_numpy(np.int64),
                                   counts["num_correct"].to_numpy(np.int64), to_k, method, source))


def forecast_records(
    counts: pd.DataFrame, group_cols: list[str], to_k: int, methods: list[str],
    source: str = "counts",
) -> list[dict[str, Any]]:
    """One record per (group, method): group values, method, k, coverage.

    A group with no correct sample at all has nothing to forecast from: its coverage is null
    and ``"error"`` says why (the other groups are still forecast).
    """
    from ttscale.analysis.adaptive.run import is_adaptive

    adaptive = is_adaptive(counts)
    out = []
    for rec, g, n, c in method_records(counts, group_cols, to_k, methods):
        method = rec["method"]
        if method == "auto" and adaptive:
            method = "power_law"
            rec.update(chosen_method=method, method_reason="an adaptive run's rows cannot be "
                       "subsampled for a back-test: power_law, fitted to the stopping-rule curve")
        elif method == "auto" and (c > 0).any():
            choice = choose_method(n, c, to_k, source=source)
            method = choice["method"]
            rec.update(chosen_method=method, method_reason=choice["reason"])
        if (c > 0).any() and adaptive:  # the stopping-rule curve (ttscale.analysis.adaptive.run)
            rec["coverage"] = forecast_adaptive(g, to_k, method, source)
        elif (c > 0).any():
            rec["coverage"] = float(forecast_coverage(n, c, to_k, method, source))
        else:
            rec.update(coverage=None, error="no correct sample in this group")
        out.append(rec)
    return out


def method_records(counts: pd.DataFrame, group_cols: list[str], to_k: int,
                   methods: list[str]) -> Iterator[tuple[dict[str, Any], pd.DataFrame, np.ndarray, np.ndarray]]:
    """Per (group, method): a record holding the group values, ``method`` and ``k``, the group's
    counts rows, and its num_samples and num_correct arrays (groups sorted, as ``groupby``)."""
    groups = [((), counts)] if not group_cols else counts.groupby(group_cols, sort=True)
    for key, g in groups:
        key = key if isinstance(key, tuple) else (key,)
        n = g["num_samples"].to_numpy(np.int64)
        c = g["num_correct"].to_numpy(np.int64)
        for method in methods:
            rec: dict[str, Any] = {col: (v.item() if isinstance(v, np.generic) else v)
                                   for col, v in zip(group_cols, key, strict=True)}
            rec.update({"method": method, "k": int(to_k)})
            yield rec, g, n, c


def resolve_methods(method: str | list[str] | None, source: str = "forecast") -> list[str]:
    """None -> [DEFAULT_METHOD]; ``"all"`` -> every method; a name or a list of names as given
    (``"auto"``: :func:`choose_method` per group)."""
    names = [*METHODS, "auto"]
    if method in (None, ""):
        return [DEFAULT_METHOD]
    if method == "all":
        return list(METHODS)
    asked = [method] if isinstance(method, str) else list(method)
    for m in asked:
        if m not in names:
            raise InputError(f"{source}: {arg('method')} {m!r} is not a forecast method "
                             f"(known: {', '.join(names)}, all)")
    return asked


def forecast_input(counts: pd.DataFrame, group_cols: list[str], to: int,
                   method: str | list[str] | None = None, from_k: int | None = None,
                   seed: int = 0, source: str = "counts",
                   records: Callable[..., list[dict[str, Any]]] | None = None,
                   verdicts: dict[tuple, dict[str, Any]] | None = None) -> list[dict[str, Any]]:
    """``ttscale forecast``'s records of a loaded input: ``records`` (default
    :func:`forecast_records`; the API passes the one with intervals of
    ``ttscale.analysis.forecasting.interval``) per method (:func:`resolve_methods`) plus
    ``"from_k"`` and the law's verdict (:func:`ttscale.analysis.forecasting.law.attach_law`); ``from_k`` first subsamples every
    problem to that many samples (:func:`subsample`, seeded by ``seed``): a back-test.
    ``verdicts`` (:func:`ttscale.analysis.forecasting.law.analysis_verdicts`) are the law's verdicts on the counts as loaded, so
    they are not used with ``from_k``."""
    from ttscale.rundir.counts import check_k

    methods = resolve_methods(method, source)
    if from_k is not None:
        from ttscale.analysis.adaptive.run import is_adaptive

        if is_adaptive(counts):
            raise InputError(f"{source}: {arg('from_k')}: an adaptive run's samples cannot be subsampled (each "
                             "(problem, temperature) stopped by a rule); forecast from them as they are")
        check_k(from_k, int(counts["num_samples"].min()), source, what=arg("from_k"))
        counts = subsample(counts, from_k, seed)
    out = (records or forecast_records)(counts, group_cols, to, methods, source)
    for r in out:
        r["from_k"] = from_k
    from ttscale.analysis.forecasting.law import attach_law

    attach_law(out, counts, group_cols, source, verdicts if from_k is None else None)
    return out
