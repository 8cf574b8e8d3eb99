"""Unbiased estimators on per-problem counts: pass@k, coverage, bootstrap CIs, PassUntil.

Everything here is a pure, vectorised numpy function.

* :func:`pass_at_k` -- the unbiased estimator ``1 - C(n-c, k) / C(n, k)`` (Chen et al., 2021) for
  every problem and every requested k at once, with ``n`` allowed to differ between problems.
* :func:`coverage` -- its mean over problems.
* :func:`bootstrap_ci` -- percentile intervals over problems for a whole (P, K) curve matrix, with
  all resamples drawn as one multinomial count matrix and applied by one matrix product.
* :func:`pass_until` -- tiny pass rates from "sample until r successes, at most ``cap`` attempts"
  (PassUntil-style): the MLE, the unbiased estimator of that stopping rule, and an exact interval.

The selection estimators (maj@k, best-of-k, reward-weighted vote) live in
:mod:`ttscale.analysis.curves.selection`, which builds on this module (never the other way round).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.special import gammaln

from ttscale.errors import InputError

__all__ = [
    "pass_at_k",
    "coverage",
    "log_tail_ratio",
    "bootstrap_ci",
    "pass_until",
]

#: largest (rows x k) block the cumulative-product path materialises at once
_BLOCK = 4_000_000


def _int_array(x: object, name: str, where: str) -> np.ndarray:
    arr = np.atleast_1d(np.asarray(x))
    if arr.ndim != 1:
        raise InputError(f"{where}: field '{name}' must be one-dimensional, got shape {arr.shape}")
    if arr.dtype.kind == "b" or arr.dtype.kind not in "iuf":
        raise InputError(f"{where}: field '{name}' must hold whole numbers, got dtype {arr.dtype}")
    if arr.dtype.kind == "f":
        bad = ~np.isfinite(arr) | (arr != np.round(arr))
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise InputError(f"{where}: field '{name}' entry {i}: {arr[i]!r} is not a whole number")
    return arr.astype(np.int64)


def _check_ks(ks: object, where: str) -> np.ndarray:
    k = _int_array(ks, "ks", where)
    if k.size == 0:
        raise InputError(f"{where}: field 'ks' is empty")
    if (k < 1).any():
        raise InputError(f"{where}: field 'ks' holds k={int(k.min())}; every k must be at least 1")
    return k


def _check_counts(n: object, c: object, where: str) -> tuple[np.ndarray, np.ndarray]:
    nn = _int_array(n, "n", where)
    cc = _int_array(c, "c", where)
    if nn.size == 1 and cc.size != 1:
        nn = np.full(cc.shape, nn[0])
    if nn.shape != cc.shape:
        raise InputError(f"{where}: fields 'n' and 'c' differ in length ({nn.size} vs {cc.size})")
    if (nn < 1).any():
        i = int(np.flatnonzero(nn < 1)[0])
        raise InputError(f"{where}: field 'n' entry {i}: {int(nn[i])} samples (need at least 1)")
    bad = (cc < 0) | (cc > nn)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise InputError(f"{where}: field 'c' entry {i}: {int(cc[i])} is outside [0, n={int(nn[i])}]")
    return nn, cc


def log_tail_ratio(n: np.ndarray, s: np.ndarray, ks: np.ndarray) -> np.ndarray:
    """``log(C(n-s, k) / C(n, k))`` for every row (n_i, s_i) and every k: shape (rows, K).

    It is the probability that a uniform k-subset of n items avoids s marked ones. ``-inf`` where
    ``n - s < k`` (every subset hits a marked item), ``NaN`` where ``k > n``. Inputs are assumed
    valid (0 <= s <= n, k >= 1). For each row the log of the cumulative product
    ``prod_{i<k} (n-s-i)/(n-i)`` is a cumulative sum of ``log1p(-s/(n-i))``, exact to rounding
    and with no cancellation when the ratio is near 1; when only a few k far apart are asked for,
    log-gamma differences are used instead.
    """
    n = np.asarray(n, dtype=np.int64).ravel()
    s = np.asarray(s, dtype=np.int64).ravel()
    ks = np.asarray(ks, dtype=np.int64).ravel()
    rows = n.size
    out = np.full((rows, ks.size), np.nan)
    if rows == 0:
        return out
    kmax = int(min(ks.max(), n.max()))
    if kmax > 8 * ks.size and rows * kmax > 4 * _BLOCK:
        return _log_tail_ratio_gammaln(n, s, ks)
    i = np.arange(kmax, dtype=np.float64)
    dense = ks.size == kmax and bool((ks == np.arange(1, kmax + 1)).all())
    cols = np.minimum(ks, kmax) - 1
    step = max(1, _BLOCK // kmax)
    for lo in range(0, rows, step):
        nn = n[lo : lo + step, None].astype(np.float64)
        ss = s[lo : lo + step, None].astype(np.float64)
        # f[:, i] = log((n-s-i)/(n-i)) = log1p(-s/(n-i)) while i < n-s, else -inf; the draws
        # beyond n (i >= n) give -inf or NaN here, and their k are set to NaN below.
        f = np.subtract(nn, i)
        with np.errstate(divide="ignore", invalid="ignore"):
            np.divide(ss, f, out=f)
            np.negative(f, out=f)
            np.log1p(f, out=f)
        f[i >= nn - ss] = -np.inf
        np.cumsum(f, axis=1, out=f)
        out[lo : lo + step] = f if dense else f[:, cols]
    out[ks[None, :] > n[:, None]] = np.nan
    return out


def _log_tail_ratio_gammaln(n: np.ndarray, s: np.ndarray, ks: np.ndarray) -> np.ndarray:
    nn = n[:, None].astype(np.float64)
    ff = (n - s)[:, None].astype(np.float64)
    kk = ks[None, :].astype(np.float64)
    possible = ff >= kk
    with np.errstate(invalid="ignore"):
        lr = (
            gammaln(ff + 1)
            - gammaln(np.where(possible, ff - kk, 0.0) + 1)
            - gammaln(nn + 1)
            + gammaln(np.maximum(nn - kk, 0.0) + 1)
        )
    lr = np.where(possible, lr, -np.inf)
    lr = np.where(s[:, None] == 0, 0.0, lr)
    return np.where(kk > nn, np.nan, lr)


def pass_at_k(n: np.ndarray | int, c: np.ndarray, ks: np.ndarray | int) -> np.ndarray:
    """Unbiased pass@k per problem: ``1 - C(n-c, k) / C(n, k)``, shape (len(c), len(ks)).

    ``n`` is the number of samples of each problem (or one number for all), ``c`` the number of
    correct ones. The value is exactly 0 when c = 0 and exactly 1 when n - c < k; it is NaN where
    k > n for that problem (no unbiased estimate exists from fewer than k samples).
    """
    nn, cc = _check_counts(n, c, "pass_at_k")
    kk = _check_ks(ks, "pass_at_k")
    return -np.expm1(log_tail_ratio(nn, cc, kk))


def coverage(n: np.ndarray | int, c: np.ndarray, ks: np.ndarray | int) -> np.ndarray:
    """Coverage (the mean of pass@k over problems) for each k: shape (len(ks),).

    NaN for any k that exceeds some problem's number of samples: a mean over a subset of the
    problems would be a different quantity.
    """
    return pass_at_k(n, c, ks).mean(axis=0)


def bootstrap_ci(
    per_problem: np.ndarray,
    n_boot: int = 1000,
    ci: float = 0.95,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Percentile bootstrap interval over problems for the mean of every column.

    ``per_problem`` is (P, K) (or (P,)): one row per problem, one column per k. Each of the
    ``n_boot`` resamples draws P problems with replacement; all resamples are one (n_boot, P)
    multinomial count matrix, and all resampled means one matrix product with ``per_problem``.
    Returns ``(low, high)``, each of shape (K,) (or scalars for a 1-D input); NaN columns stay
    NaN, and ``n_boot = 0`` gives NaN intervals.
    """
    x = np.asarray(per_problem, dtype=np.float64)
    flat = x.ndim == 1
    if flat:
        x = x[:, None]
    if x.ndim != 2 or x.shape[0] == 0:
        raise InputError(f"bootstrap_ci: field 'per_problem' must be (P, K) with P >= 1, got {x.shape}")
    if not 0.0 < ci < 1.0:
        raise InputError(f"bootstrap_ci: field 'ci' must be in (0, 1), got {ci}")
    if n_boot < 0:
        raise InputError(f"bootstrap_ci: field 'n_boot' must be >= 0, got {n_boot}")
    p, k = x.shape
    low = np.full(k, np.nan)
    high = np.full(k, np.nan)
    if n_boot > 0:
        rng = np.random.default_rng(seed)
        counts = rng.multinomial(p, np.full(p, 1.0 / p), size=n_boot).astype(np.float32)
        alpha = (1.0 - ci) / 2.0
        pos = (n_boot - 1) * np.array([alpha, 1.0 - alpha])  # linear interpolation, as numpy
        below = np.floor(pos).astype(np.int64)
        above = np.minimum(below + 1, n_boot - 1)
        frac = pos - below
        finite = np.flatnonzero(np.isfinite(x).all(axis=0))
        step = max(1, _BLOCK // n_boot)
        for lo in range(0, finite.size, step):
            cols = finite[lo : lo + step]
            mean = x[:, cols].mean(axis=0)
            # resampled mean - mean = counts @ (x - mean) / p: deviations in float32 (errors
            # ~1e-7 of the spread, none at all for a constant column), the mean in float64
            dev = (x[:, cols] - mean).astype(np.float32)
            boot = dev.T @ counts.T  # (columns, n_boot), contiguous per column
            boot.sort(axis=1)
            q = boot[:, below] + frac * (boot[:, above] - boot[:, below])
            low[cols] = mean + q[:, 0] / p
            high[cols] = mean + q[:, 1] / p
    if flat:
        return low[0], high[0]
    return low, high


def pass_until(
    num_attempts: np.ndarray,
    num_successes: np.ndarray,
    r: int,
    cap: int,
    ci: float = 0.95,
) -> pd.DataFrame:
    """Estimates of tiny per-problem pass rates from sampling until ``r`` successes, at most ``cap``.

    Each problem was sampled one attempt at a time, stopping at the r-th success or after ``cap``
    attempts, whichever came first. ``num_attempts[i]`` is how many attempts were made and
    ``num_successes[i]`` how many succeeded: either ``num_successes == r`` (stopped by success,
    ``num_attempts <= cap``) or ``num_successes < r`` and ``num_attempts == cap`` (censored).

    Columns of the returned frame (one row per problem):

    * ``mle``: the maximum-likelihood estimate. Both outcomes have likelihood proportional to
      ``p**s * (1-p)**(t-s)`` (negative binomial, resp. binomial with censoring), so it is s/t.
    * ``unbiased``: the unbiased estimator of this stopping rule (Girshick, Mosteller & Savage,
      1946: paths from the first success to the stopping point over paths from the start):
      ``(r-1)/(t-1)`` when stopped by the r-th success at attempt t (r >= 2; for r = 1 it is 1 if
      t == 1 else 0) and ``s/cap`` when censored. Its expectation is exactly p.
    * ``ci_low``, ``ci_high``: an exact (conservative, Clopper-Pearson-like) interval, ordering
      outcomes by evidence for large p: ``P(T <= t) = P(Bin(t, p) >= r)`` and
      ``P(T >= t) = P(Bin(t-1, p) <= r-1)`` when stopped; binomial tails of ``cap`` attempts when
      censored.
    * ``censored``: whether the cap was hit before r successes.
    """
    from scipy.stats import beta

    where = "pass_until"
    t = _int_array(num_attempts, "num_attempts", where)
    s = _int_array(num_successes, "num_successes", where)
    if t.shape != s.shape:
        raise InputError(f"{where}: fields 'num_attempts' and 'num_successes' differ in length")
    if int(r) != r or r < 1:
        raise InputError(f"{where}: field 'r' must be a whole number >= 1, got {r!r}")
    if int(cap) != cap or cap < r:
        raise InputError(f"{where}: field 'cap' must be a whole number >= r={r}, got {cap!r}")
    if not 0.0 < ci < 1.0:
        raise InputError(f"{where}: field 'ci' must be in (0, 1), got {ci}")
    r, cap = int(r), int(cap)
    stopped = s == r
    bad = (s < 0) | (s > r) | (t < s) | (t < 1) | (t > cap) | (~stopped & (t != cap))
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise InputError(
            f"{where}: entry {i}: num_attempts={int(t[i])}, num_successes={int(s[i])} cannot come "
            f"from sampling until {r} successes with cap {cap}"
        )
    tf, sf = t.astype(np.float64), s.astype(np.float64)
    mle = sf / tf
    if r >= 2:
        unb_stop = (r - 1) / np.maximum(tf - 1, 1.0)
    else:
        unb_stop = (t == 1).astype(np.float64)
    unbiased = np.where(stopped, unb_stop, sf / cap)
    a = (1.0 - ci) / 2.0
    with np.errstate(invalid="ignore", divide="ignore"):
        low = np.where(sf > 0, beta.ppf(a, np.maximum(sf, 1), tf - sf + 1), 0.0)
        hi_stop = np.where(tf > sf, beta.ppf(1 - a, sf, np.maximum(tf - sf, 1)), 1.0)
        hi_cens = np.where(tf > sf, beta.ppf(1 - a, sf + 1, np.maximum(tf - sf, 1)), 1.0)
    high = np.where(stopped, hi_stop, hi_cens)
    return pd.DataFrame(
        {
            "num_attempts": t,
            "num_successes": s,
            "censored": ~stopped,
            "mle": mle,
            "unbiased": unbiased,
            "ci_low": low,
            "ci_high": high,
        }
    )
