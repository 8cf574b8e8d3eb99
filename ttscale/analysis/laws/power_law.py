"""Scaling laws of coverage against the number of samples k.

The exponentiated power law of Large Language Monkeys (Brown et al., 2024, appendix C.1):

    coverage(k) ~= exp(a * k**b)            (law "exp_power", a < 0, b < 0)
    coverage(k) ~= c_max * exp(a * k**b)    (law "exp_power_ceiling", 0 < c_max <= 1)

fitted exactly as the paper does: about 40 log-spaced k in [1, max k] (``np.logspace`` rounded to
integers, duplicates removed), unweighted least squares on coverage itself with
``scipy.optimize.curve_fit``. Fitting log(-log coverage) against log k by ordinary least squares
instead breaks near saturation and is deliberately not offered.

The ceiling variant is for benchmarks with problems that are never solved: ``c_max`` is the
fraction of problems the law says repeated sampling can ever reach.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy.optimize import OptimizeWarning, curve_fit

from ttscale.analysis.curves.estimators import pass_at_k
from ttscale.errors import InputError

#: how many log-spaced k the paper fits on (before duplicates are removed)
DEFAULT_NUM_POINTS = 40


def pass_at_k_matrix(n: np.ndarray, c: np.ndarray, ks: np.ndarray) -> np.ndarray:
    """Unbiased pass@k (Chen et al., 2021) per problem and k: shape (P, K), NaN where k > n.

    The shared estimator of ``ttscale.analysis.curves.estimators``, as float arrays.
    """
    n = np.asarray(n, dtype=np.int64).ravel()
    c = np.asarray(c, dtype=np.int64).ravel()
    ks = np.asarray(ks, dtype=np.int64).ravel()
    return np.asarray(pass_at_k(n, c, ks), dtype=float)


def coverage_curve(n: np.ndarray, c: np.ndarray, ks: np.ndarray) -> np.ndarray:
    """Benchmark coverage (mean unbiased pass@k over problems) at each k: shape (K,)."""
    return np.mean(pass_at_k_matrix(n, c, ks), axis=0)


def log_spaced_ks(max_k: int, num: int = DEFAULT_NUM_POINTS) -> np.ndarray:
    """About ``num`` log-spaced integers in [1, max_k], rounded, duplicates removed (sorted)."""
    if max_k < 1:
        raise InputError(f"max_k: must be at least 1, got {max_k}")
    return np.unique(np.round(np.logspace(0.0, math.log10(max_k), num)).astype(np.int64))


def exp_power(k: np.ndarray, a: float, b: float) -> np.ndarray:
    """``exp(a * k**b)``."""
    return np.exp(a * np.power(np.asarray(k, dtype=float), b))


def exp_power_ceiling(k: np.ndarray, a: float, b: float, c_max: float) -> np.ndarray:
    """``c_max * exp(a * k**b)``."""
    return c_max * exp_power(k, a, b)


@dataclass(frozen=True)
class FitResult:
    """A fitted coverage law: parameters, their standard errors, and how well it fits."""

    law: str
    params: dict[str, float]
    stderr: dict[str, float]
    rmse: float
    max_abs_error: float
    n_points: int
    k_range: tuple[int, int]
    extra: dict[str, Any] = field(default_factory=dict)

    def predict(self, k: float | np.ndarray) -> np.ndarray:
        """Coverage the law gives at k (any positive k, also beyond the fitted range)."""
        p = self.params
        if self.law == "exp_power":
            return exp_power(np.asarray(k, dtype=float), p["a"], p["b"])
        if self.law == "exp_power_ceiling":
            return exp_power_ceiling(np.asarray(k, dtype=float), p["a"], p["b"], p["c_max"])
        raise ValueError(f"unknown law {self.law!r}")

    def to_record(self) -> dict[str, Any]:
        """A JSON-ready dict for ``analysis/fits.json`` (non-finite numbers become None)."""

        def clean(x: float) -> float | None:
            return float(x) if np.isfinite(x) else None

        return {
            "law": self.law,
            "params": {k: clean(v) for k, v in self.params.items()},
            "stderr": {k: clean(v) for k, v in self.stderr.items()},
            "rmse": clean(self.rmse),
            "max_abs_error": clean(self.max_abs_error),
            "n_points": int(self.n_points),
            "k_range": [int(self.k_range[0]), int(self.k_range[1])],
            **self.extra,
        }


def _check_curve(ks: Any, coverage: Any, source: str) -> tuple[np.ndarray, np.ndarray]:
    k = np.asarray(ks, dtype=float).ravel()
    y = np.asarray(coverage, dtype=float).ravel()
    if k.shape != y.shape:
        raise InputError(f"{source}: field 'coverage' has {y.size} values but 'ks' has {k.size}")
    if not np.all(np.isfinite(k)) or (k <= 0).any():
        raise InputError(f"{source}: field 'ks' must hold finite positive numbers")
    if not np.all(np.isfinite(y)) or (y < 0).any() or (y > 1).any():
        raise InputError(f"{source}: field 'coverage' must hold numbers in [0, 1]")
    return k, y


def fit_power_law(
    ks: Any, coverage: Any, ceiling: bool = False, source: str = "coverage curve"
) -> FitResult:
    """Fit ``exp(a k^b)`` (or ``c_max exp(a k^b)`` with ``ceiling=True``) to a coverage curve.

    Unweighted least squares on coverage itself (scipy ``curve_fit``), as Large Language
    Monkeys appendix C.1. Standard errors are ``sqrt(diag(pcov))``; the fit error (RMSE, max
    absolute error) is measured on the fitted points.
    """
    k, y = _check_curve(ks, coverage, source)
    n_par = 3 if ceiling else 2
    if k.size <= n_par:
        raise InputError(f"{source}: field 'ks' needs more than {n_par} points to fit, got {k.size}")
    if (y <= 0).all():
        raise InputError(f"{source}: field 'coverage' is 0 everywhere: no law to fit")
    # starting point from the two ends: -log y = -a k^b
    y_lo = float(np.clip(y[np.argmin(k)], 1e-6, 1 - 1e-6))
    y_hi = float(np.clip(y[np.argmax(k)], 1e-6, 1 - 1e-6))
    a0 = math.log(y_lo)
    b0 = -0.5
    if k.max() > k.min() and y_hi > y_lo:
        b0 = float(np.clip(math.log(math.log(y_hi) / a0) / math.log(k.max() / k.min()), -5, -0.01))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", OptimizeWarning)
            if ceiling:
                popt, pcov = curve_fit(
                    exp_power_ceiling, k, y, p0=(a0, b0, max(y_hi, 1e-3)),
                    bounds=([-np.inf, -np.inf, 1e-12], [np.inf, np.inf, 1.0]), maxfev=20000,
                )
                names = ("a", "b", "c_max")
            else:
                popt, pcov = curve_fit(exp_power, k, y, p0=(a0, b0), maxfev=20000)
                names = ("a", "b")
    except (RuntimeError, ValueError) as e:
        raise InputError(f"{source}: field 'coverage': the power law does not fit ({e})") from e
    fitted = exp_power_ceiling(k, *popt) if ceiling else exp_power(k, *popt)
    resid = fitted - y
    se = np.sqrt(np.abs(np.diag(pcov))) if np.all(np.isfinite(pcov)) else np.full(n_par, np.inf)
    return FitResult(
        law="exp_power_ceiling" if ceiling else "exp_power",
        params={nm: float(v) for nm, v in zip(names, popt, strict=True)},
        stderr={nm: float(v) for nm, v in zip(names, se, strict=True)},
        rmse=float(np.sqrt(np.mean(resid**2))),
        max_abs_error=float(np.max(np.abs(resid))),
        n_points=int(k.size),
        k_range=(int(round(k.min())), int(round(k.max()))),
    )


def check_counts(n: Any, c: Any, source: str = "counts") -> tuple[np.ndarray, np.ndarray]:
    """Validate per-problem (num_samples, num_correct) arrays; return them as int64."""
    n_arr = np.asarray(n).ravel()
    c_arr = np.asarray(c).ravel()
    if n_arr.size == 0:
        raise InputError(f"{source}: field 'num_samples' is empty")
    if n_arr.shape != c_arr.shape:
        raise InputError(
            f"{source}: field 'num_correct' has {c_arr.size} values but 'num_samples' has {n_arr.size}"
        )
    for name, arr in (("num_samples", n_arr), ("num_correct", c_arr)):
        a = arr.astype(float)
        if not np.all(np.isfinite(a)) or np.any(a != np.round(a)) or (a < 0).any():
            raise InputError(f"{source}: field '{name}' must hold whole numbers >= 0")
    n_i = n_arr.astype(np.int64)
    c_i = c_arr.astype(np.int64)
    if (n_i == 0).any():
        raise InputError(f"{source}: field 'num_samples' has a problem with zero samples")
    if (c_i > n_i).any():
        raise InputError(f"{source}: field 'num_correct' exceeds 'num_samples' for some problem")
    return n_i, c_i


def fit_from_counts(
    n: Any,
    c: Any,
    max_k: int | None = None,
    ceiling: bool = False,
    num_points: int = DEFAULT_NUM_POINTS,
    source: str = "counts",
) -> FitResult:
    """Fit the law to the unbiased coverage curve of per-problem counts on k in [1, max_k].

    ``max_k`` defaults to the smallest ``num_samples`` (the largest k every problem supports).
    """
    n_i, c_i = check_counts(n, c, source)
    n_min = int(n_i.min())
    max_k = n_min if max_k is None else int(max_k)
    if max_k < 1 or max_k > n_min:
        raise InputError(f"{source}: field 'max_k'={max_k} must be in [1, {n_min}] (smallest num_samples)")
    ks = log_spaced_ks(max_k, num_points)
    return fit_power_law(ks, coverage_curve(n_i, c_i, ks), ceiling=ceiling, source=source)
