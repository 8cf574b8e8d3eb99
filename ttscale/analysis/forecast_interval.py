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

The interval is ``forecast +- z sqrt(floor variance + bootstrap variance)``, z for the level
(1.645 at 90%), clipped to [the share solved in n when K >= n, 1]. It does not cover a method's
own bias (a wrong tail shape); the benchmark reports how often it covers the truth per dataset.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.stats import norm

from ttscale.analysis.forecast import DEFAULT_METHOD, METHODS, forecast_curve
from ttscale.analysis.laws import check_counts, coverage_curve, fit_power_law, log_spaced_ks
from ttscale.errors import InputError


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
    method: str
    beyond_samples: np.ndarray  # k > the smallest n: extrapolated, not estimated


def _boot_gains_power_law(n: np.ndarray, c: np.ndarray, ks: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """Power-law gains over the solved share for each bootstrap index row (B, K)."""
    from ttscale.analysis.laws import pass_at_k_matrix

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
) -> Forecast:
    """Forecast coverage at each k in ``ks`` with a ``level`` interval (see the module doc)."""
    if not 0 < level < 1:
        raise InputError(f"{source}: field 'level' must be in (0, 1), got {level}")
    if n_boot < 2:
        raise InputError(f"{source}: field 'n_boot' must be at least 2, got {n_boot}")
    point = forecast_curve(n, c, ks, method, source)
    n_i, c_i = check_counts(n, c, source)
    k = np.asarray(ks, dtype=np.int64).ravel()
    num_p = n_i.size
    solved = float(np.mean(c_i > 0))
    m = int(np.sum(c_i == 0))
    rng = np.random.default_rng(seed)
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
    sd = np.sqrt(floor_sd**2 + np.nan_to_num(extra_sd) ** 2)
    z = float(norm.ppf(0.5 + level / 2))
    at_least = np.where(k >= int(n_i.min()), solved, 0.0)
    low = np.clip(point - z * sd, at_least, 1.0)
    high = np.clip(point + z * sd, low, 1.0)
    return Forecast(k, point, low, high, level, floor_sd, extra_sd, method, k > int(n_i.min()))


def observed_coverage(n: Any, c: Any, ks: Any) -> np.ndarray:
    """Unbiased coverage at each k <= the smallest n (for comparison with a forecast)."""
    n_i, c_i = check_counts(n, c)
    return coverage_curve(n_i, c_i, np.asarray(ks, dtype=np.int64))
