"""The distributional estimate of the power-law exponent (Schaeffer et al., 2025).

"How Do Large Language Monkeys Get Their Power (Laws)?": a benchmark's coverage follows
``-log C(k) ~ A k^b`` because the per-problem pass rates p have a density ~ p^(alpha - 1) near
0, and then ``b = -alpha``. Rather than reading b off the curve, fit the pass-rate distribution to
the per-problem counts: a scaled Beta, ``p = s * U`` with ``U ~ Beta(alpha, beta)`` and
``0 < s <= 1``, by maximum likelihood of the counts (a beta-binomial when s = 1)::

    L_i = integral C(n_i, c_i) p^c_i (1 - p)^(n_i - c_i) f(p) dp

computed on a fixed grid of cells of p: the binomial factor integrated exactly over each cell
(a difference of Beta(c + 1, n - c + 1) CDFs, computed once), the density ``f`` by its exact mass
per cell (Beta CDFs) over the cell width. Log-spaced cells near 0 and 1 resolve the tails a
10,000-sample problem can distinguish. Then ``b = -alpha`` and ``A = Gamma(alpha) /
(B(alpha, beta) s^alpha)`` (so ``a = -A`` in ``exp(a k^b)``), and the implied coverage curve is
``1 - E[(1 - p)^k]`` under the fitted distribution. Intervals come from refitting on the same
bootstrap resamples of the problems as the law (weights on the per-problem log-likelihoods).
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np
from scipy.optimize import minimize
from scipy.special import betainc, betaln, expit, gammaln, logit

from ttscale.analysis.laws.bootstrap import percentile_ci

#: replicates refitted for the distributional intervals (each a small 3-parameter optimisation)
DIST_BOOT = 100


def _edges() -> np.ndarray:
    tail = np.geomspace(1e-9, 0.5, 130)
    return np.unique(np.concatenate([[0.0, 1.0], tail, 1.0 - tail, np.linspace(0.0, 1.0, 101)]))


class ScaledBetaLikelihood:
    """Per-problem log-likelihoods of (alpha, beta, s) for fixed counts, on a grid of p."""

    def __init__(self, n: np.ndarray, c: np.ndarray) -> None:
        self.n = np.asarray(n, dtype=float)
        self.c = np.asarray(c, dtype=float)
        self.edges = _edges()
        self.width = np.diff(self.edges)
        self.mid = (self.edges[1:] + self.edges[:-1]) / 2.0
        cdf = betainc(self.c[:, None] + 1.0, self.n[:, None] - self.c[:, None] + 1.0,
                      np.clip(self.edges[None, :], 0.0, 1.0))  # the beta CDF
        self.bin_mass = np.clip(np.diff(cdf, axis=1), 0.0, None)  # (P, G)
        self.log_norm = -np.log(self.n + 1.0)  # integral of the binomial pmf over p is 1/(n+1)

    def cell_mass(self, alpha: float, beta: float, s: float) -> np.ndarray:
        """Probability of each cell of p under s * Beta(alpha, beta)."""
        u = np.clip(self.edges / s, 0.0, 1.0)
        return np.clip(np.diff(betainc(alpha, beta, u)), 0.0, None)

    def loglik(self, alpha: float, beta: float, s: float) -> np.ndarray:
        """log L_i for every problem."""
        dens = self.cell_mass(alpha, beta, s) / self.width
        with np.errstate(divide="ignore"):
            return np.log(self.bin_mass @ dens) + self.log_norm

    def fit(self, weights: np.ndarray | None = None, start: np.ndarray | None = None,
            tol: float = 1e-5) -> np.ndarray:
        """Maximum-likelihood (alpha, beta, s) with per-problem weights (None: all 1)."""
        w = np.ones_like(self.n) if weights is None else np.asarray(weights, dtype=float)
        x0 = _to_free(self._start() if start is None else start)

        def nll(x: np.ndarray) -> float:
            a, b, s = _from_free(x)
            ll = self.loglik(a, b, s)
            if not np.all(np.isfinite(ll[w > 0])):
                return 1e300
            return -float(w @ ll)

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            res = minimize(nll, x0, method="Nelder-Mead",
                           options={"xatol": tol, "fatol": tol, "maxiter": 2000})
        return _from_free(res.x) if np.isfinite(res.fun) and res.fun < 1e299 else np.full(3, np.nan)

    def _start(self) -> np.ndarray:
        p = (self.c + 0.5) / (self.n + 1.0)
        m, v = float(p.mean()), float(p.var())
        common = m * (1 - m) / max(v, 1e-6) - 1.0
        a, b = max(m * common, 0.05), max((1 - m) * common, 0.05)
        return np.array([min(a, 50.0), min(b, 50.0), 0.999])

    def coverage(self, params: np.ndarray, ks: np.ndarray) -> np.ndarray:
        """``1 - E[(1 - p)^k]`` under the fitted distribution, at every k."""
        mass = self.cell_mass(*params)
        ks = np.asarray(ks, dtype=float)
        with np.errstate(divide="ignore"):
            log_fail = np.log1p(-self.mid)[None, :] * ks[:, None]
        return 1.0 - np.exp(log_fail) @ mass


def _to_free(p: np.ndarray) -> np.ndarray:
    a, b, s = p
    return np.array([math.log(a), math.log(b), float(logit(min(max(s, 1e-6), 1 - 1e-9)))])


def _from_free(x: np.ndarray) -> np.ndarray:
    return np.array([math.exp(min(x[0], 9.0)), math.exp(min(x[1], 9.0)), float(expit(x[2]))])


def power_law_of(params: np.ndarray) -> tuple[float, float]:
    """(a, b) of the power law ``-log C ~ -a k^b`` the scaled Beta implies at large k."""
    alpha, beta, s = params
    log_a = gammaln(alpha) - betaln(alpha, beta) - alpha * math.log(s)
    return (-math.exp(log_a) if log_a < 700 else -math.inf), -float(alpha)


def distributional_fit(
    n: np.ndarray, c: np.ndarray, weights: np.ndarray | None = None, ci: float = 0.95,
    n_boot: int = DIST_BOOT,
) -> tuple[dict[str, Any], ScaledBetaLikelihood, np.ndarray]:
    """Fit the scaled Beta to the counts; refit on the first ``n_boot`` rows of ``weights``.

    Returns (fits.json record, the likelihood object, the point parameters).
    """
    lik = ScaledBetaLikelihood(n, c)
    point = lik.fit()
    rec: dict[str, Any] = {"method": "scaled_beta_binomial_mle (Schaeffer et al. 2025)"}
    if not np.all(np.isfinite(point)):
        rec.update({"alpha": None, "b": None, "note": "the scaled Beta fit did not converge"})
        return rec, lik, point
    a_pl, b_pl = power_law_of(point)
    rec.update({"alpha": float(point[0]), "beta": float(point[1]), "scale": float(point[2]),
                "b": b_pl, "a": a_pl if math.isfinite(a_pl) else None})
    if weights is not None and n_boot > 0:
        reps = np.array([lik.fit(w, start=point, tol=1e-3) for w in weights[:n_boot]])
        ok = np.isfinite(reps).all(axis=1)
        pl = np.array([power_law_of(r) for r in reps[ok]]) if ok.any() else np.empty((0, 2))
        for j, name in enumerate(("alpha", "beta", "scale")):
            rec[f"{name}_ci"] = _pair(percentile_ci(reps[ok, j], ci))
        rec["b_ci"] = _pair(percentile_ci(pl[:, 1], ci)) if pl.size else None
        rec["a_ci"] = _pair(percentile_ci(pl[:, 0], ci)) if pl.size else None
        rec["n_boot"] = int(ok.sum())
    return rec, lik, point


def _pair(x: tuple[float, float]) -> list[float | None]:
    return [float(v) if math.isfinite(v) else None for v in x]
