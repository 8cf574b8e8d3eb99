"""Problem difficulty as a distribution of per-problem pass rates, and what it implies.

Support points with weights, from a parametric family (:func:`parse_difficulty`:
``beta:ALPHA,BETA[,zero=Z][,one=O]``) or from measured counts by empirical Bayes over problems
(:func:`difficulty_from_counts`: a Beta prior with a point mass at p = 0 fitted to all problems
at once, then each problem's posterior under it); coverage, majority-vote and best-of-n accuracy
under it. :mod:`ttscale.analysis.forecasting.simulation` builds the what-if curves on this model.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats

from ttscale.errors import InputError, arg


@dataclass(frozen=True)
class Difficulty:
    """A distribution of per-problem pass rates: support points and weights (summing to 1)."""

    p: np.ndarray
    w: np.ndarray
    source: str
    #: the samples per problem the distribution was fitted from (None for a given law): coverage
    #: at larger k is extrapolated
    observed_k: int | None = None
    #: from counts: the fitted empirical-Bayes prior (alpha, beta, pi0) and the counts' distinct
    #: (n, c) pairs with how many problems had each, shape (U, 3): what a bootstrap resamples
    prior: tuple[float, float, float] | None = None
    pairs: np.ndarray | None = None

    def sample(self, size: int, rng: np.random.Generator) -> np.ndarray:
        return rng.choice(self.p, size=size, p=self.w)


def parse_difficulty(spec: str, grid: int = 2000) -> Difficulty:
    """``beta:ALPHA,BETA[,zero=Z][,one=O]`` -> a quantile grid of the beta plus point masses."""
    kind, _, rest = spec.partition(":")
    if kind != "beta" or not rest:
        raise InputError(f"{arg('difficulty')} {spec!r}: expected beta:ALPHA,BETA[,zero=Z][,one=O]")
    parts = rest.split(",")
    try:
        alpha, beta = float(parts[0]), float(parts[1])
        extra = dict(x.split("=", 1) for x in parts[2:])
        zero, one = float(extra.pop("zero", 0)), float(extra.pop("one", 0))
    except (ValueError, IndexError) as e:
        raise InputError(f"{arg('difficulty')} {spec!r}: expected beta:ALPHA,BETA[,zero=Z][,one=O]") from e
    if extra:
        raise InputError(f"{arg('difficulty')} {spec!r}: unknown field {sorted(extra)[0]!r}")
    if not (alpha > 0 and beta > 0) or not (0 <= zero and 0 <= one and zero + one < 1):
        raise InputError(f"{arg('difficulty')} {spec!r}: need ALPHA, BETA > 0 and zero + one < 1")
    q = (np.arange(grid) + 0.5) / grid
    p = stats.beta.ppf(q, alpha, beta)
    w = np.full(grid, (1 - zero - one) / grid)
    p = np.concatenate([p, [0.0, 1.0]])
    w = np.concatenate([w, [zero, one]])
    keep = w > 0
    return Difficulty(p[keep], w[keep], spec)


def difficulty_from_counts(n: np.ndarray, c: np.ndarray, points: int = 64) -> Difficulty:
    """Empirical Bayes: each problem's posterior under a prior fitted to all the counts.

    The prior is Beta(a, b) with a point mass pi0 at p = 0 (maximum likelihood over problems);
    problem i's posterior is Beta(a + c_i, b + n_i - c_i), and for a never-solved problem a mass
    ``pi0 / (pi0 + (1 - pi0) B(a, b + n_i) / B(a, b))`` at 0 beside it. Each posterior enters as
    a quantile grid of ``points`` points (once per distinct (n, c), weighted by how many problems
    share it). ``Difficulty.source`` names the fitted prior.
    """
    from ttscale.analysis.forecasting.forecast import fit_zero_inflated_beta

    n = np.asarray(n, dtype=float)
    c = np.asarray(c, dtype=float)
    if not (c > 0).any():
        raise InputError("simulate: field 'num_correct' is 0 for every problem: no prior to fit")
    a, b, pi0 = fit_zero_inflated_beta(n.astype(np.int64), c.astype(np.int64), "simulate")
    pairs, counts = np.unique(np.stack([n, c], axis=1), axis=0, return_counts=True)
    table = np.column_stack([pairs, counts]).astype(float)
    p, w = posterior_support(table, (a, b, pi0), points)
    return Difficulty(p, w, f"{len(n)} problems' counts, empirical-Bayes prior Beta({a:.3g}, {b:.3g}) "
                            f"+ {pi0:.3g} at p=0", int(n.min()), (a, b, pi0), table)


def posterior_support(table: np.ndarray, prior: tuple[float, float, float],
                       points: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """(support points, weights) of the problems' posteriors: ``table`` rows (n, c, problems)."""
    from scipy.special import betaincinv, betaln

    a, b, pi0 = prior
    un, uc, uw = table[:, 0], table[:, 1], table[:, 2]
    zero_like = np.exp(betaln(a, b + un) - betaln(a, b))
    p_zero = np.where(uc == 0, pi0 / (pi0 + (1 - pi0) * zero_like), 0.0)
    q = (np.arange(points) + 0.5) / points
    p = betaincinv(a + uc[:, None], b + (un - uc)[:, None], q[None, :])
    w = (uw * (1 - p_zero))[:, None] * np.full(p.shape, 1.0 / points)
    p = np.concatenate([p.ravel(), [0.0]])
    w = np.concatenate([w.ravel(), [float(np.dot(uw, p_zero))]]) / uw.sum()
    keep = w > 0
    return p[keep], w[keep] / w[keep].sum()


def coverage(d: Difficulty, ks: np.ndarray) -> np.ndarray:
    """1 - E[(1 - p)^k] for each k."""
    with np.errstate(divide="ignore"):
        log1m = np.log1p(-np.minimum(d.p, 1.0))
    miss = np.exp(np.outer(log1m, ks.astype(float)))
    miss[d.p >= 1.0] = 0.0
    return 1.0 - d.w @ miss


def vote_accuracy(
    d: Difficulty, ks: np.ndarray, wrong_answers: int, draws: int = 2000, seed: int = 0
) -> np.ndarray:
    """maj@k under sampling with replacement, wrong mass spread over ``wrong_answers`` strings."""
    if wrong_answers < 1:
        raise InputError("simulate: field 'wrong_answers' must be at least 1")
    rng = np.random.default_rng(seed)
    # Few support points suffice: vote accuracy is smooth in p. Use weighted quantiles of d.
    order = np.argsort(d.p)
    cdf = np.cumsum(d.w[order])
    qs = (np.arange(64) + 0.5) / 64
    p_pts = d.p[order][np.minimum(np.searchsorted(cdf, qs), len(order) - 1)]
    out = np.zeros(len(ks))
    for p in p_pts:
        probs = np.concatenate([[p], np.full(wrong_answers, (1 - p) / wrong_answers)])
        for j, k in enumerate(ks):
            counts = rng.multinomial(int(k), probs, size=draws)
            top = counts.max(axis=1)
            tied = (counts == top[:, None]).sum(axis=1)
            out[j] += np.mean(np.where(counts[:, 0] == top, 1.0 / tied, 0.0))
    return out / len(p_pts)


def best_of_n_accuracy(d: Difficulty, ks: np.ndarray, separation: float) -> np.ndarray:
    """P(the top-scored of k samples is right); scores N(d, 1) if right, N(0, 1) if wrong.

    For one problem: the integral over x of k p phi(x - d) F(x)^(k-1), F the mixture's CDF.
    """
    x = np.linspace(-9.0, separation + 9.0, 6001)
    dx = x[1] - x[0]
    order = np.argsort(d.p)
    cdf_w = np.cumsum(d.w[order])
    qs = (np.arange(200) + 0.5) / 200
    p_pts = d.p[order][np.minimum(np.searchsorted(cdf_w, qs), len(order) - 1)]
    phi_r = stats.norm.pdf(x - separation)
    out = np.zeros(len(ks))
    for p in p_pts:
        log_f = np.log(np.clip(p * stats.norm.cdf(x - separation) + (1 - p) * stats.norm.cdf(x), 1e-300, 1))
        for j, k in enumerate(ks):
            dens = k * p * phi_r * np.exp((k - 1) * log_f)
            out[j] += dens.sum() * dx
    return np.clip(out / len(p_pts), 0.0, 1.0)
