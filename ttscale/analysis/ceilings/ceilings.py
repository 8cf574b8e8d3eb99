"""Where more samples stop paying: saturation points and the false-positive ceiling.

Saturation point: the smallest k at which one more sample (or one more unit of cost) buys less
than a given gain in coverage, read from a measured curve or from a fitted law.

False-positive ceiling (Stroebl, Kapoor and Narayanan 2024, "Inference Scaling fLaws"): resample
until an imperfect verifier accepts, at most k attempts. Per problem with pass rate r, a verifier
of soundness s (rejects a wrong answer with probability s, false-positive rate 1 - s) and
completeness c (accepts a right answer with probability c), each attempt is

    accepted and right   with probability  r c
    accepted and wrong   with probability  (1 - r)(1 - s)
    rejected             with probability  q = 1 - r c - (1 - r)(1 - s)

so accuracy(k) = r c (1 - q^k) / (1 - q), and the limit k -> inf is r c / (r c + (1 - r)(1 - s)):
with any false positives, no amount of resampling reaches accuracy 1 on a problem the model
seldom solves. When no attempt in k is accepted the problem counts as wrong (the answer is
withheld); the expected number of attempts drawn is (1 - q^k) / (1 - q).

With reward 1 for an accepted right answer, -V for an accepted wrong one and 0 for abstaining,
minus a cost per attempt drawn, a problem's expected utility is

    U(k) = (1 - q^k) / (1 - q) * (r c - V (1 - r)(1 - s) - cost)

monotone in k for one problem; over a benchmark of problems with different r it rises then
falls (easy problems saturate, hard ones keep accepting wrong answers), so the best k is finite
when V > 0 and the false-positive rate is > 0.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ttscale.analysis.laws.power_law import FitResult
from ttscale.errors import InputError


def _unit(x: Any, name: str, source: str) -> np.ndarray:
    arr = np.asarray(x, dtype=float)
    if not np.all(np.isfinite(arr)) or (arr < 0).any() or (arr > 1).any():
        raise InputError(f"{source}: field '{name}' must be in [0, 1]")
    return arr


def _ks(ks: Any, source: str, allow_zero: bool = False) -> np.ndarray:
    arr = np.asarray(ks, dtype=float).ravel()
    lo = 0 if allow_zero else 1
    if arr.size == 0 or not np.all(np.isfinite(arr)) or (arr < lo).any() or np.any(arr != np.round(arr)):
        raise InputError(f"{source}: field 'ks' must hold whole numbers >= {lo}")
    return arr.astype(np.int64)


# --------------------------------------------------------------------------- saturation points
def saturation_point(
    ks: Any,
    coverage: Any,
    threshold: float,
    cost_per_sample: float = 1.0,
    source: str = "coverage curve",
) -> int | None:
    """Smallest k at which the marginal gain per extra sample (per unit cost) is below threshold.

    Between consecutive points of the curve the gain per sample is the slope
    ``(coverage[i+1] - coverage[i]) / (k[i+1] - k[i])``; divided by ``cost_per_sample`` it is
    the gain per unit cost. Returns ``ks[i]`` for the first interval below the threshold, or
    None when the curve never gets there.
    """
    k = _ks(ks, source)
    y = np.asarray(coverage, dtype=float).ravel()
    if y.shape != k.shape:
        raise InputError(f"{source}: field 'coverage' has {y.size} values but 'ks' has {k.size}")
    if k.size < 2 or np.any(np.diff(k) <= 0):
        raise InputError(f"{source}: field 'ks' must hold at least 2 strictly increasing values")
    if not np.all(np.isfinite(y)):
        raise InputError(f"{source}: field 'coverage' must hold finite numbers")
    if not (cost_per_sample > 0) or not (threshold >= 0):
        raise InputError(f"{source}: field 'cost_per_sample' must be > 0 and 'threshold' >= 0")
    gain = np.diff(y) / np.diff(k) / cost_per_sample
    below = np.flatnonzero(gain < threshold)
    return int(k[below[0]]) if below.size else None


def saturation_point_from_fit(
    fit: FitResult,
    threshold: float,
    cost_per_sample: float = 1.0,
    k_max: int = 10**9,
) -> int | None:
    """Smallest integer k with ``fit.predict(k+1) - fit.predict(k) < threshold * cost_per_sample``.

    Exact on every integer up to 2**20; beyond, the gain of the (concave in the tail)
    exponentiated power law decreases, so the first k below is found by bisection.
    """
    if not (cost_per_sample > 0) or not (threshold >= 0):
        raise InputError("fit: field 'cost_per_sample' must be > 0 and 'threshold' >= 0")
    limit = threshold * cost_per_sample

    def gain(k: np.ndarray) -> np.ndarray:
        k = np.asarray(k, dtype=float)
        return fit.predict(k + 1) - fit.predict(k)

    dense = np.arange(1, min(k_max, 2**20) + 1)
    below = np.flatnonzero(gain(dense) < limit)
    if below.size:
        return int(dense[below[0]])
    if k_max <= dense[-1] or gain(np.array([k_max]))[0] >= limit:
        return None
    lo, hi = int(dense[-1]), int(k_max)  # gain(lo) >= limit > gain(hi)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if gain(np.array([mid]))[0] < limit:
            hi = mid
        else:
            lo = mid
    return hi


# --------------------------------------------------------------------- false-positive ceiling
def _verifier(
    r: Any, soundness: float, completeness: float, source: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    r = _unit(r, "r", source).ravel()
    s = float(_unit(soundness, "soundness", source))
    c = float(_unit(completeness, "completeness", source))
    good = r * c  # accepted and right
    bad = (1 - r) * (1 - s)  # accepted and wrong
    return good, bad, 1.0 - good - bad


def _geometric(q: np.ndarray, ks: np.ndarray) -> np.ndarray:
    """(1 - q^k) / (1 - q) per problem and k, shape (P, K); equals k where q == 1."""
    q = q[:, None]
    kk = ks[None, :].astype(float)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = -np.expm1(kk * np.log(q)) / (1.0 - q)
    out = np.where(q <= 0.0, (kk > 0).astype(float), out)  # every first attempt accepted
    return np.where(q >= 1.0, kk, out)


def resample_accuracy(
    r: Any, soundness: float, completeness: float, ks: Any, source: str = "verifier"
) -> np.ndarray:
    """Per-problem accuracy of resampling up to k times until the verifier accepts: (P, K).

    ``r c (1 - q^k) / (1 - q)``; no accepted attempt counts as wrong.
    """
    good, _, q = _verifier(r, soundness, completeness, source)
    return good[:, None] * _geometric(q, _ks(ks, source, allow_zero=True))


def false_positive_rate_at_k(
    r: Any, soundness: float, completeness: float, ks: Any, source: str = "verifier"
) -> np.ndarray:
    """Per-problem probability that a wrong answer is accepted within k attempts: (P, K)."""
    _, bad, q = _verifier(r, soundness, completeness, source)
    return bad[:, None] * _geometric(q, _ks(ks, source, allow_zero=True))


def benchmark_accuracy(
    r: Any,
    soundness: float,
    completeness: float,
    ks: Any,
    weights: Any | None = None,
    source: str = "verifier",
) -> np.ndarray:
    """Benchmark accuracy at each k: the (weighted) mean over problems of resample_accuracy.

    ``r`` holds per-problem pass rates (e.g. num_correct / num_samples) or the support points of
    an estimated distribution of pass rates with their ``weights``.
    """
    acc = resample_accuracy(r, soundness, completeness, ks, source)
    return np.average(acc, axis=0, weights=_weights(weights, acc.shape[0], source))


def accuracy_limit(r: Any, soundness: float, completeness: float, source: str = "verifier") -> np.ndarray:
    """Per-problem accuracy as k -> inf: ``r c / (r c + (1 - r)(1 - s))`` (0 if nothing is accepted)."""
    good, bad, _ = _verifier(r, soundness, completeness, source)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(good + bad > 0, good / (good + bad), 0.0)


def _weights(weights: Any | None, size: int, source: str) -> np.ndarray | None:
    if weights is None:
        return None
    w = np.asarray(weights, dtype=float).ravel()
    if w.size != size or not np.all(np.isfinite(w)) or (w < 0).any() or w.sum() <= 0:
        raise InputError(f"{source}: field 'weights' must be {size} non-negative numbers, not all 0")
    return w


@dataclass(frozen=True)
class OptimalK:
    """The k with the highest expected utility (0 means: always abstain) and that utility."""

    k: int
    expected_utility: float


def expected_utility(
    r: Any,
    soundness: float,
    completeness: float,
    false_positive_cost: float,
    ks: Any,
    cost_per_sample: float = 0.0,
    weights: Any | None = None,
    source: str = "verifier",
) -> np.ndarray:
    """Mean expected utility over problems at each k (k = 0 allowed: abstain, utility 0).

    Per problem ``(1 - q^k)/(1 - q) * (r c - V (1 - r)(1 - s) - cost_per_sample)``: +1 for an
    accepted right answer, ``-false_positive_cost`` for an accepted wrong one, minus the cost of
    each attempt actually drawn (sampling stops at the first accepted attempt).
    """
    if not (false_positive_cost >= 0) or not (cost_per_sample >= 0):
        raise InputError(f"{source}: fields 'false_positive_cost' and 'cost_per_sample' must be >= 0")
    good, bad, q = _verifier(r, soundness, completeness, source)
    per_attempt = good - false_positive_cost * bad - cost_per_sample
    util = per_attempt[:, None] * _geometric(q, _ks(ks, source, allow_zero=True))
    return np.average(util, axis=0, weights=_weights(weights, util.shape[0], source))


def optimal_k(
    r: Any,
    soundness: float,
    completeness: float,
    false_positive_cost: float,
    cost_per_sample: float = 0.0,
    k_max: int = 10_000,
    weights: Any | None = None,
    source: str = "verifier",
) -> OptimalK:
    """The k in [0, k_max] maximising expected_utility (the smallest such k on ties)."""
    if k_max < 0:
        raise InputError(f"{source}: field 'k_max' must be >= 0")
    ks = np.arange(0, int(k_max) + 1)
    util = expected_utility(
        r, soundness, completeness, false_positive_cost, ks, cost_per_sample, weights, source
    )
    best = int(np.argmax(util))
    return OptimalK(k=int(ks[best]), expected_utility=float(util[best]))


def optimal_k_interval(
    r: Any,
    soundness: float,
    completeness: float,
    false_positive_cost: float,
    cost_per_sample: float = 0.0,
    k_max: int = 10_000,
    n_boot: int = 300,
    ci: float = 0.95,
    seed: int = 0,
    source: str = "verifier",
) -> dict[str, Any]:
    """:func:`optimal_k` over per-problem pass rates ``r`` with a percentile interval from a
    bootstrap over problems (each replicate's utility curve is its problems' mean; the argmax is
    taken per replicate). Returns ``{"k", "expected_utility", "k_ci": [low, high], "n_boot"}``."""
    if not (false_positive_cost >= 0) or not (cost_per_sample >= 0):
        raise InputError(f"{source}: fields 'false_positive_cost' and 'cost_per_sample' must be >= 0")
    if k_max < 0 or n_boot < 1 or not 0.0 < ci < 1.0:
        raise InputError(f"{source}: need k_max >= 0, n_boot >= 1 and ci in (0, 1)")
    good, bad, q = _verifier(r, soundness, completeness, source)
    ks = np.arange(0, int(k_max) + 1)
    per = (good - false_positive_cost * bad - cost_per_sample)[:, None] * _geometric(q, ks)  # (P, K)
    mean = per.mean(axis=0)
    best = int(np.argmax(mean))
    p = per.shape[0]
    rng = np.random.default_rng(seed)
    w = rng.multinomial(p, np.full(p, 1.0 / p), size=n_boot).astype(float)
    reps = ks[np.argmax(w @ per, axis=1)]
    a = (1.0 - ci) / 2.0
    lo, hi = np.quantile(reps, [a, 1.0 - a], method="nearest")
    return {"k": int(ks[best]), "expected_utility": float(mean[best]),
            "k_ci": [int(lo), int(hi)], "n_boot": int(n_boot)}
