"""Whether splitting a budget over temperatures beats the best single temperature: the split's
gain with an interval, and the claim the temperature view makes from it.

The exact best split (:mod:`ttscale.analysis.temperatures.best`) maximises the in-sample pooled
coverage over a set that holds every single temperature, so its in-sample gain over the best
single temperature is >= 0 by construction, and positive from noise alone. Noise wins for a
second reason as well: with finite n the unbiased estimate of k samples at one temperature,
``1 - C(n-c, k)/C(n, k)``, beats the product estimate of a split of the same counts (its log is
concave in k), so identical counts at two temperatures favour putting everything on one of them
although the true coverage of every allocation is the same.

What is reported instead:

- ``split_gain``: the gain **cross-fitted over problems**. The problems are cut into ``folds``
  random folds; for each fold the split and the best single temperature are chosen on the other
  folds (ties to the single temperature, see below), and on each held-out problem p the gain
  ``d_p = M_p(single) - M_p(split)`` is measured with p's own unbiased miss estimates
  (``C(n-c, a)/C(n, a)``, multiplied over the temperatures). Given the choice, ``d_p`` is unbiased
  for that choice's true gain on p: with the same true rate at every temperature every
  allocation has the same true coverage and ``d_p`` has mean 0 whatever was chosen, so a noise
  winner gains nothing here. It estimates the gain of choosing a split from data like these over
  choosing the best temperature, on problems the choice did not see.
- ``split_gain_ci_low/high``: the Student t interval of the mean of ``d_p`` over problems. Not
  the percentile bootstrap of the other intervals: ``d_p`` is right-skewed (mostly small losses,
  a few large gains). On 300 simulated runs per setting with the same rate at every temperature
  (2-3 temperatures, 20-200 problems, k = 4 and 10), t covered 0 in 0.93-0.99 of them and the
  bootstrap in 0.88-0.98; t claimed a split (low end above 0) in at most 3 of 300
  (``benchmarks/bench_split_gain.py`` prints both, and the power when problems truly prefer
  different temperatures: 0.65 at 50 problems and k = 4, 1.00 at k = 10). A test checks
  that it covers 0 when the rates are the same and excludes it when problems truly prefer
  different temperatures.
- ``split_better``: True only when the exact best split is not all on one temperature and the
  interval's low end is above 0. Otherwise the view recommends the best single temperature
  (``split`` = all k samples there, ``split_found`` keeps the optimiser's allocation) and
  ``split_verdict`` says "no split is better than T=t alone: the data do not choose" (or "...:
  splitting loses out of sample" when the whole interval is below 0).

Ties: where the split found is no better in sample than the best single temperature (to 1e-12),
the allocation all on that temperature is taken, in the fit and in every fold; identical counts
at every temperature therefore give ``split_gain`` 0 with the interval [0, 0] and never a
claimed split. A budget that no temperature holds alone (k above every temperature's samples,
possible when calling :func:`ttscale.analysis.temperatures.view.budget_splits` directly) has a
split but nothing to compare it with: NaN gain, never claimed, and a verdict saying so.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

#: coverages closer than this are ties (the view's ``tied`` column uses the same)
TIE = 1e-12
#: problem folds of the cross-fitted gain
FOLDS = 5


def first_best(values: np.ndarray) -> int:
    """The first index whose value is within :data:`TIE` of the largest (NaN never best; -1 when
    every value is NaN)."""
    if np.isnan(values).all():
        return -1
    vals = np.where(np.isnan(values), -np.inf, values)
    return int(np.flatnonzero(vals >= vals.max() - TIE)[0])


def single_coverages(logs: list[np.ndarray], total: int) -> np.ndarray:
    """(T,) in-sample coverage of all ``total`` samples at each temperature (NaN past its table)."""
    return np.array([1.0 - float(np.exp(lg[:, total]).mean()) if total < lg.shape[1] else np.nan
                     for lg in logs])


def concentrated(t: int, temps: int, total: int) -> tuple[int, ...]:
    """The allocation with all ``total`` samples at temperature ``t``."""
    return tuple(int(total) if u == t else 0 for u in range(temps))


def choose(logs: list[np.ndarray], caps: np.ndarray, total: int) -> tuple[tuple[int, ...], int, bool]:
    """(split, best single temperature, proven optimal) chosen on ``logs``' problems; a split no
    better in sample than the best single temperature is replaced by all on that temperature.
    The best temperature is -1 when none has ``total`` samples."""
    from ttscale.analysis.temperatures.best import coverage_from_logs, split_from_logs

    singles = single_coverages(logs, total)
    best = first_best(singles)
    alloc, exact = split_from_logs(logs, caps, total)
    alloc = tuple(int(a) for a in alloc)
    if best >= 0 and coverage_from_logs(logs, alloc) <= singles[best] + TIE:
        alloc = concentrated(best, len(logs), total)
    return alloc, best, exact


def _miss(logs: list[np.ndarray], alloc: tuple[int, ...], rows: np.ndarray) -> np.ndarray:
    return np.exp(sum(lg[rows, a] for lg, a in zip(logs, alloc, strict=True)))


def fold_gains(logs: list[np.ndarray], caps: np.ndarray, total: int, folds: int = FOLDS,
               seed: int = 0) -> np.ndarray:
    """(P,) per-problem held-out gain ``d_p`` of the split over the best single temperature, each
    chosen on the folds without p; NaN for all when there are fewer than two problems or no
    temperature has ``total`` samples."""
    num_p = logs[0].shape[0]
    out = np.full(num_p, np.nan)
    if num_p < 2 or all(total >= lg.shape[1] for lg in logs):
        return out
    order = np.random.default_rng(seed).permutation(num_p)
    for held in np.array_split(order, min(int(folds), num_p)):
        fit = np.setdiff1d(order, held)
        alloc, best, _ = choose([lg[fit] for lg in logs], caps, total)
        out[held] = (_miss(logs, concentrated(best, len(logs), total), held) - _miss(logs, alloc, held))
    return out


def gain_interval(gains: np.ndarray, ci: float) -> tuple[np.ndarray, ...]:
    """(mean, low, high) per column of ``gains`` (P, K): the Student t interval over problems
    (rows), mean +- t_{P-1} sd / sqrt(P); NaN bounds with fewer than two problems."""
    from scipy import stats

    num_p = gains.shape[0]
    mean = gains.mean(axis=0)
    if num_p < 2:
        nan = np.full(gains.shape[1], np.nan)
        return mean, nan, nan.copy()
    half = stats.t.ppf(0.5 + ci / 2, num_p - 1) * gains.std(axis=0, ddof=1) / np.sqrt(num_p)
    return mean, mean - half, mean + half


def claim(found: tuple[int, ...], temperatures: list[float], best: int, low: float, high: float
          ) -> dict[str, Any]:
    """``split`` (what the view recommends), ``split_better`` and ``split_verdict``."""
    total = int(sum(found))
    if best < 0:
        return {"split": json.dumps({str(t): a for t, a in zip(temperatures, found, strict=True)}),
                "split_better": False,
                "split_verdict": f"no temperature alone has {total} samples here: nothing to compare with"}
    mixed = sum(a > 0 for a in found) > 1
    better = bool(mixed and np.isfinite(low) and low > 0)
    name = f"T={temperatures[best]:g}"
    if better:
        verdict = f"better than {name} alone"
    elif not np.isfinite(low):
        verdict = f"no split is better than {name} alone: one problem gives no interval"
    elif high < 0:
        verdict = f"no split is better than {name} alone: splitting loses out of sample"
    else:
        verdict = f"no split is better than {name} alone: the data do not choose"
    alloc = found if better else concentrated(best, len(found), total)
    return {"split": json.dumps({str(t): a for t, a in zip(temperatures, alloc, strict=True)}),
            "split_better": better, "split_verdict": verdict}
