"""Beta difficulty models fitted to per-problem counts by maximum likelihood.

A problem's pass rate p ~ Beta(a, b) (or a mixture of such, or a zero-inflated Beta with a mass of
unsolvable problems); its counts are Beta-binomial. Fits use analytic gradients (digamma) and
L-BFGS-B on log-parameters and take milliseconds. The forecasting methods of
:mod:`ttscale.analysis.forecasting.forecast` are built on them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.optimize import minimize
from scipy.special import betaln, digamma, gammaln, logsumexp

from ttscale.analysis.laws.power_law import check_counts
from ttscale.errors import InputError

#: bounds on log(alpha) and log(beta) in the fits: Beta shapes in [6e-6, 1.6e5]
_LOG_BOUND = 12.0


@dataclass(frozen=True)
class BetaMixture:
    """A mixture of Beta distributions of per-problem pass rates, fitted to counts."""

    alpha: np.ndarray
    beta: np.ndarray
    weight: np.ndarray
    log_likelihood: float

    def coverage(self, ks: Any) -> np.ndarray:
        """Population coverage at each k: ``1 - sum_j w_j B(a_j, b_j + k) / B(a_j, b_j)``."""
        k = np.asarray(ks, dtype=float).ravel()[:, None]
        miss = np.exp(betaln(self.alpha, self.beta + k) - betaln(self.alpha, self.beta))
        return 1.0 - miss @ self.weight

    def responsibilities(self, n: np.ndarray, c: np.ndarray) -> np.ndarray:
        """P(component j | problem i's counts), shape (P, J)."""
        ll = _component_loglik(n, c, self.alpha, self.beta) + np.log(self.weight)
        return np.exp(ll - logsumexp(ll, axis=1, keepdims=True))

    def posterior_coverage(self, n: Any, c: Any, ks: Any) -> np.ndarray:
        """Mean over problems of the posterior chance that k fresh samples hold a right one."""
        n_f = np.asarray(n, dtype=float).ravel()
        c_f = np.asarray(c, dtype=float).ravel()
        resp = self.responsibilities(n_f, c_f)  # (P, J)
        a = self.alpha + c_f[:, None]
        b = self.beta + (n_f - c_f)[:, None]
        out = np.empty(np.asarray(ks).size)
        for idx, k in enumerate(np.asarray(ks, dtype=float).ravel()):
            miss = np.exp(betaln(a, b + k) - betaln(a, b))  # (P, J)
            out[idx] = 1.0 - float(np.mean(np.sum(resp * miss, axis=1)))
        return out


def _component_loglik(n: np.ndarray, c: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """log P(c | n, Beta(a_j, b_j)) without the binomial coefficient: shape (P, J)."""
    return betaln(c[:, None] + a, (n - c)[:, None] + b) - betaln(a, b)


def _unpack(x: np.ndarray, j: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    a = np.exp(x[:j])
    b = np.exp(x[j : 2 * j])
    eta = np.concatenate([[0.0], x[2 * j :]])
    return a, b, eta - logsumexp(eta)


def _neg_loglik(x: np.ndarray, n: np.ndarray, c: np.ndarray, w: np.ndarray, j: int):
    """Negative log-likelihood of the mixture and its gradient in (log a, log b, logits)."""
    a, b, logw = _unpack(x, j)
    comp = _component_loglik(n, c, a, b) + logw  # (U, J)
    total = logsumexp(comp, axis=1)
    resp = np.exp(comp - total[:, None])
    nn, cc = n[:, None], c[:, None]
    psi_ab = digamma(a + b)
    psi_nab = digamma(nn + a + b)
    d_a = digamma(cc + a) - psi_nab - digamma(a) + psi_ab  # d log BB / d a
    d_b = digamma(nn - cc + b) - psi_nab - digamma(b) + psi_ab
    wr = w[:, None] * resp
    grad = np.concatenate(
        [
            -(wr * d_a).sum(0) * a,
            -(wr * d_b).sum(0) * b,
            -(wr.sum(0) - w.sum() * np.exp(logw))[1:],
        ]
    )
    return -float(np.dot(w, total)), grad


def fit_beta_mixture(n: Any, c: Any, components: int = 1, source: str = "counts") -> BetaMixture:
    """Maximum-likelihood mixture of ``components`` beta-binomials fitted to per-problem counts.

    Problems may have different ``n``. Counts are grouped by distinct (n, c) pairs first, so a
    fit costs the same for 100 or 100,000 problems. Several deterministic starts; the best wins.
    """
    n_i, c_i = check_counts(n, c, source)
    if components < 1:
        raise InputError(f"{source}: field 'components' must be at least 1")
    if not (c_i > 0).any():
        raise InputError(f"{source}: field 'num_correct' is 0 for every problem: nothing to fit")
    pairs, counts = np.unique(np.stack([n_i, c_i], axis=1), axis=0, return_counts=True)
    un, uc, uw = pairs[:, 0].astype(float), pairs[:, 1].astype(float), counts.astype(float)
    j = components
    mean = float(np.sum(c_i) / np.sum(n_i))
    starts = []
    for spread in (0.0, 1.0, 2.0):
        if j == 1:
            starts.append(np.array([np.log(mean + 1e-3) - spread, np.log(1 - mean + 1e-3) - spread]))
            continue
        means = np.linspace(0.02, 0.98, j)  # hard ... easy populations
        conc = np.exp(1.0 - spread)
        starts.append(np.concatenate([np.log(means * conc), np.log((1 - means) * conc), np.zeros(j - 1)]))
    bounds = [(-_LOG_BOUND, _LOG_BOUND)] * (2 * j) + [(-30.0, 30.0)] * (j - 1)
    best = None
    for x0 in starts:
        res = minimize(_neg_loglik, x0, args=(un, uc, uw, j), jac=True, method="L-BFGS-B", bounds=bounds)
        if best is None or res.fun < best.fun:
            best = res
    assert best is not None
    a, b, logw = _unpack(best.x, j)
    order = np.argsort(a / (a + b))  # components from hardest to easiest
    const = float(np.sum(gammaln(n_i + 1) - gammaln(c_i + 1) - gammaln(n_i - c_i + 1)))
    return BetaMixture(a[order], b[order], np.exp(logw)[order], -float(best.fun) + const)

def _zi_beta_nll(x: np.ndarray, un: np.ndarray, uc: np.ndarray, uw: np.ndarray) -> float:
    """Negative log-likelihood of (log alpha, log beta, logit pi0) over distinct (n, c) pairs
    ``un``, ``uc`` seen ``uw`` times each (the binomial coefficients left out)."""
    a, b = np.exp(x[0]), np.exp(x[1])
    log_pi = -np.logaddexp(0.0, -x[2])  # log sigmoid
    log_1m = -np.logaddexp(0.0, x[2])
    bb = betaln(uc + a, un - uc + b) - betaln(a, b) + log_1m
    ll = np.where(uc == 0, np.logaddexp(log_pi, bb), bb)
    return -float(np.dot(uw, ll))


def _zi_beta_nll_grad(x: np.ndarray, un: np.ndarray, uc: np.ndarray,
                     uw: np.ndarray) -> tuple[float, np.ndarray]:
    """:func:`_zi_beta_nll` and its gradient (digamma)."""
    a, b = np.exp(x[0]), np.exp(x[1])
    sig = 1.0 / (1.0 + np.exp(-x[2]))
    log_pi = -np.logaddexp(0.0, -x[2])
    bb = betaln(uc + a, un - uc + b) - betaln(a, b) - np.logaddexp(0.0, x[2])
    zero = uc == 0
    ll = np.where(zero, np.logaddexp(log_pi, bb), bb)
    share = np.where(zero, np.exp(bb - ll), 1.0)  # of the Beta part in each pair's likelihood
    common = digamma(a + b) - digamma(un + a + b)
    da = a * (digamma(uc + a) - digamma(a) + common)
    db = b * (digamma(un - uc + b) - digamma(b) + common)
    dpi = share * -sig + (1.0 - share) * (1.0 - sig)
    grad = -np.array([np.dot(uw, share * da), np.dot(uw, share * db), np.dot(uw, dpi)])
    return -float(np.dot(uw, ll)), grad


_ZI_BOUNDS = [(-_LOG_BOUND, _LOG_BOUND)] * 2 + [(-20.0, 20.0)]


def fit_zero_inflated_beta(n: Any, c: Any, source: str = "counts") -> tuple[float, float, float]:
    """(alpha, beta, pi0): maximum-likelihood Beta prior of pass rates with a point mass pi0 at 0."""
    n_i, c_i = check_counts(n, c, source)
    pairs, counts = np.unique(np.stack([n_i, c_i], axis=1), axis=0, return_counts=True)
    un, uc, uw = pairs[:, 0].astype(float), pairs[:, 1].astype(float), counts.astype(float)

    one = fit_beta_mixture(n_i, c_i, 1, source)
    share0 = float(np.mean(c_i == 0))
    best = None
    for logit in (-6.0, np.log(max(share0, 1e-3) / max(1 - share0, 1e-3)) - 1.0):
        x0 = np.array([np.log(one.alpha[0]), np.log(one.beta[0]), logit])
        res = minimize(_zi_beta_nll, x0, args=(un, uc, uw), method="L-BFGS-B", bounds=_ZI_BOUNDS)
        if best is None or res.fun < best.fun:
            best = res
    a, b = float(np.exp(best.x[0])), float(np.exp(best.x[1]))
    return a, b, float(1.0 / (1.0 + np.exp(-best.x[2])))


def refit_zero_inflated_beta(un: np.ndarray, uc: np.ndarray, uw: np.ndarray,
                             start: tuple[float, float, float]) -> tuple[float, float, float]:
    """:func:`fit_zero_inflated_beta` on distinct (n, c) pairs seen ``uw`` times each (a bootstrap
    resample), started from ``start`` (the fit to the full data) instead of a beta-binomial fit:
    two starts, pi0's logit from ``start`` (at least -6, where its gradient is not yet flat) and
    from the share of never-solved problems, the better kept; an analytic gradient. Measured on
    bootstrap resamples of 40-500 problems: the log-likelihood within 2e-6 of the cold fit's
    (up to 1e-4 above it), at 1-2 ms a fit against 8-10 ms."""
    a, b, pi0 = start
    share0 = float(np.dot(uw, uc == 0) / uw.sum())
    best = None
    for logit in (max(np.log(max(pi0, 1e-12) / max(1 - pi0, 1e-12)), -6.0),
                  np.log(max(share0, 1e-3) / max(1 - share0, 1e-3)) - 1.0):
        x0 = np.array([np.log(a), np.log(b), logit])
        res = minimize(_zi_beta_nll_grad, x0, args=(un, uc, uw), jac=True, method="L-BFGS-B",
                       bounds=_ZI_BOUNDS)
        if best is None or res.fun < best.fun:
            best = res
    return float(np.exp(best.x[0])), float(np.exp(best.x[1])), float(1.0 / (1.0 + np.exp(-best.x[2])))
