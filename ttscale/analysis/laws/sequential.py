"""The sequential saturation point: where a longer thinking budget stops paying (TTSPM).

"Scaling over Scaling" (TTSPM) models sequential scaling as rounds of rethinking, each of which
reaches the correct, absorbing state with probability p: after N rounds the accuracy is
``F(N) = F_max (1 - (1 - p)^N)``, the same form as parallel scaling's ``1 - (1 - p)^N``. The
gain of one more round, ``F_max p (1 - p)^N``, falls below a threshold eps from

    N* = ceil( ln(eps / (F_max p)) / ln(1 - p) )      (0 when the first round already gains < eps)

Here a round is ``unit`` thinking tokens (default: the smallest budget of the run), so with a
per-token rate ``lam`` (``F(B) = F_max (1 - exp(-lam B))``) one round succeeds with
``p = 1 - exp(-lam unit)`` and the saturation budget is ``B* = N* unit`` tokens. The curve is fitted
to the accuracy (mean per-problem pass rate, pass@1) at each budget by least squares (for a given
``lam`` the best ``F_max`` is closed form; ``lam`` by a log grid refined by golden section), and
the interval of B* comes from a bootstrap over problems (each draw resamples problems and refits).
It should not be trusted when the budgets are too few (fewer than 3), when the curve is still
rising at the largest budget (then B* lies beyond the data: ``extrapolated``), or when the law does
not fit: a model that must write a scratchpad of some length before it can answer climbs in an S
or a straight line, not along ``1 - exp(-lam B)``. The fit check compares each budget's residual
with the standard error of its accuracy (the spread of per-problem rates over the problems):
``chi2 = sum(resid^2 / se^2)`` on ``budgets - 2`` degrees of freedom, and the law is ``rejected`` when
its p-value is below 0.01 (0.5% false alarms where the law holds on 400 synthetic runs, none where
problems' rates move together across budgets: ``benchmarks/bench_sequential_law.py``).

Beside the law, the *measured* saturation budget needs no law at all: the smallest sampled budget
from which every further measured step gains less than eps per round, with its bootstrap interval
over problems (``None``: not reached within the sampled budgets). Where the law is rejected, that is
the figure to read.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats


@dataclass
class SequentialFit:
    f_max: float
    rate: float  # lam: per thinking token
    unit: float  # tokens per round
    saturation_budget: float | None  # B* in tokens (None: no finite fit)
    rounds: int | None


def budget_curve(budgets: np.ndarray, f_max: float, rate: float) -> np.ndarray:
    """``F(B) = F_max (1 - exp(-rate B))``."""
    return f_max * -np.expm1(-rate * np.asarray(budgets, float))


def saturation_rounds(f_max: float, p: float, eps: float) -> int:
    """TTSPM's N*: the first round count whose next round gains less than ``eps``."""
    if not (0 < p < 1) or f_max <= 0:
        return 0
    x = math.log(eps / (f_max * p)) / math.log1p(-p)
    return max(0, math.ceil(x))


def _best_fmax(b: np.ndarray, y: np.ndarray, rate: float) -> tuple[float, float]:
    g = -np.expm1(-rate * b)
    f = float(np.clip((g @ y) / max(g @ g, 1e-300), 0.0, 1.0))
    return f, float(((f * g - y) ** 2).sum())


def fit_budget_curve(budgets: np.ndarray, acc: np.ndarray) -> tuple[float, float]:
    """(F_max, rate) minimising the squared error of ``F(B)`` to the accuracies."""
    b, y = np.asarray(budgets, float), np.asarray(acc, float)
    grid = np.geomspace(1e-3 / b.max(), 50.0 / b.min(), 200)
    errs = [_best_fmax(b, y, r)[1] for r in grid]
    i = int(np.argmin(errs))
    lo, hi = math.log(grid[max(0, i - 1)]), math.log(grid[min(len(grid) - 1, i + 1)])
    phi = (math.sqrt(5) - 1) / 2
    for _ in range(60):  # golden section on log rate
        c, d = hi - phi * (hi - lo), lo + phi * (hi - lo)
        if _best_fmax(b, y, math.exp(c))[1] <= _best_fmax(b, y, math.exp(d))[1]:
            hi = d
        else:
            lo = c
    rate = math.exp((lo + hi) / 2)
    return _best_fmax(b, y, rate)[0], rate


def sequential_saturation(budgets: np.ndarray, acc: np.ndarray, eps: float,
                          unit: float | None = None) -> SequentialFit:
    """Fit ``F(B)`` and return the saturation budget B* (see the module doc)."""
    b = np.asarray(budgets, float)
    unit = float(unit if unit is not None else b.min())
    f_max, rate = fit_budget_curve(b, acc)
    p = -math.expm1(-rate * unit)
    n = saturation_rounds(f_max, p, eps)
    return SequentialFit(f_max, rate, unit, n * unit, n)


def fit_check(budgets: np.ndarray, rates: np.ndarray, samples: np.ndarray, f_max: float,
              rate: float) -> tuple[float, float | None, str]:
    """(chi2, p-value, status) of ``F(B)`` against the accuracy at each budget.

    ``rates``: per-problem pass rates (problems x budgets); each budget's standard error is the spread
    of its rates over the problems, floored by the binomial error of a rate of 1/(2 n) so that a
    column of identical rates (all 0 or all 1) is not measured as exact. ``status`` is ``ok``,
    ``rejected`` (p < 0.01) or ``unchecked`` (fewer than 3 budgets or fewer than 2 problems)."""
    b = np.asarray(budgets, float)
    r = np.asarray(rates, float)
    problems = r.shape[0]
    if len(b) < 3 or problems < 2:
        return float("nan"), None, "unchecked"
    total = np.asarray(samples, float).sum(axis=0)
    floor = 0.5 / total * (1 - 0.5 / np.maximum(total / problems, 1)) / problems
    se2 = np.maximum(r.var(axis=0, ddof=1) / problems, floor)
    resid = r.mean(axis=0) - budget_curve(b, f_max, rate)
    chi2 = float((resid ** 2 / se2).sum())
    p = float(stats.chi2.sf(chi2, len(b) - 2))
    return chi2, p, "ok" if p >= 0.01 else "rejected"


def measured_saturation(budgets: np.ndarray, acc: np.ndarray, eps: float, unit: float) -> float | None:
    """The smallest sampled budget from which every further measured step gains less than ``eps``
    per round of ``unit`` tokens (``None``: the curve still climbs at the largest budget)."""
    b, y = np.asarray(budgets, float), np.asarray(acc, float)
    gain = np.diff(y) / (np.diff(b) / unit)
    steep = np.flatnonzero(gain >= eps)
    if len(steep) == 0:
        return float(b[0])
    i = int(steep[-1]) + 1
    return float(b[i]) if i < len(b) - 1 else None


def sequential_record(budgets: np.ndarray, correct: np.ndarray, samples: np.ndarray, eps: float,
                      n_boot: int = 200, ci: float = 0.95, seed: int = 0) -> dict:
    """The sequential saturation point with a bootstrap interval over problems.

    ``correct`` and ``samples``: arrays (problems x budgets) of counts at each budget."""
    b = np.asarray(budgets, float)
    rates = np.asarray(correct, float) / np.asarray(samples, float)
    acc = rates.mean(axis=0)
    fit = sequential_saturation(b, acc, eps)
    measured = measured_saturation(b, acc, eps, fit.unit)
    rng = np.random.default_rng(seed)
    draws, measured_draws = [], []
    for _ in range(n_boot):
        pick = rng.integers(0, rates.shape[0], rates.shape[0])
        boot_acc = rates[pick].mean(axis=0)
        draws.append(sequential_saturation(b, boot_acc, eps, fit.unit).saturation_budget)
        m = measured_saturation(b, boot_acc, eps, fit.unit)
        measured_draws.append(np.inf if m is None else m)
    q = [(1 - ci) / 2, (1 + ci) / 2]
    lo, hi = (np.quantile(draws, q) if draws else (np.nan, np.nan))
    m_lo, m_hi = (np.quantile(measured_draws, q, method="inverted_cdf") if measured_draws
                  else (np.nan, np.nan))
    chi2, p_fit, status = fit_check(b, rates, samples, fit.f_max, fit.rate)
    notes = []
    if len(b) < 3:
        notes.append("fewer than 3 budgets: two points fix the curve, nothing checks it")
    if status == "rejected":
        notes.append(f"the law does not fit the measured budgets (chi2 {chi2:.1f} on {len(b) - 2} df, "
                     f"p {p_fit:.2g}): its saturation budget is not to be trusted; read the measured one")
    if fit.saturation_budget is not None and fit.saturation_budget > b.max():
        notes.append(f"beyond the largest budget ({int(b.max())}): extrapolated")
    if measured is None:
        notes.append(f"measured: still rising at the largest budget ({int(b.max())})")

    def finite(v: float) -> float | None:
        return float(v) if np.isfinite(v) else None

    return {"sequential_saturation_budget": fit.saturation_budget,
            "sequential_saturation_budget_ci": [float(lo), float(hi)],
            "sequential_f_max": fit.f_max, "sequential_rate_per_token": fit.rate,
            "sequential_round_tokens": fit.unit, "sequential_threshold": eps,
            "sequential_fit_status": status, "sequential_fit_chi2": chi2,
            "sequential_fit_p": p_fit,
            "sequential_measured_saturation_budget": measured,
            "sequential_measured_saturation_budget_ci": [finite(m_lo), finite(m_hi)],
            "sequential_note": "; ".join(notes) or None}
