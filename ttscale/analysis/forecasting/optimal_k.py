"""The optimal k of a what-if simulation and its bootstrap interval over problems."""

from __future__ import annotations

import numpy as np

from ttscale.analysis.ceilings import ceilings
from ttscale.analysis.forecasting.difficulty import Difficulty, posterior_support
from ttscale.errors import InputError


def best_k(ks: np.ndarray, util: np.ndarray) -> tuple[int, int]:
    """(optimal k, its index in ``ks``): the smallest k within 1e-9 of the highest utility, and
    k = 0 (abstain) when that utility is not positive."""
    best = int(np.flatnonzero(util >= util.max() - 1e-9)[0])  # the smallest k on (numerical) ties
    return (int(ks[best]) if util[best] > 0 else 0), best


def optimal_k_bootstrap(d: Difficulty, ks: np.ndarray, k: int, *, fpr: float = 0.0,
                        fnr: float = 0.0, fp_cost: float = 0.0, cost_per_sample: float = 0.0,
                        n_boot: int = 200, ci: float = 0.95, seed: int = 0,
                        points: int = 64) -> dict[str, object]:
    """A percentile interval of the optimal k (resample) by a bootstrap over problems.

    Each replicate draws the problems with replacement (a multinomial over the counts' distinct
    (n, c) pairs: the same draw) and :func:`refit_optimal_k` refits the empirical-Bayes prior on
    them (:func:`ttscale.analysis.forecasting.forecast.refit_zero_inflated_beta`, started from the full
    fit), takes each problem's posterior on the same ``points``-point quantile grid, and reads
    the optimal k off the expected utility on the same ``ks`` with the same rule
    (:func:`best_k`): every step of :func:`summarise`'s ``optimal_k``, refitted. The warm start
    against :func:`ttscale.analysis.forecasting.forecast.fit_zero_inflated_beta` from scratch, measured on
    800 resamples (30-300 problems, 10-50 samples each): the same optimal k in 799, one grid
    step apart in one. A replicate without one solved problem has no prior to fit and counts as
    k = 0 (nothing right is ever accepted: abstain).

    The interval is the ``(1 - ci) / 2`` and ``(1 + ci) / 2`` quantiles of the replicates'
    optimal k (nearest replicate: a k of the grid), widened to hold ``k`` where it does not (an
    argmax is discrete, so the percentile interval can miss its own point estimate). Its upper
    end is censored when it is the largest k simulated: the optimum may lie beyond.

    Cost: per replicate one refit (2 L-BFGS-B starts with an analytic gradient, 1-2 ms) and one
    utility curve over (distinct (n, c) pairs x ``points``) support points and the ``ks``; it
    grows with both. Measured on tests/test_simulate_optimal_k.py's data (median of 3, one BLAS
    thread): 0.8 CPU s with the default 200 replicates for 200 problems x 50 samples
    at ``k_max`` 10,000 (200 ks, 31 distinct pairs), 0.24 s with 100 replicates for 100
    problems x 20 samples at ``k_max`` 300 (139 ks, 13 pairs). With OpenBLAS's default threads
    the CPU time about doubles (they spin in L-BFGS-B's small LAPACK calls), the wall time does
    not. The rest of such a simulation costs about 0.05 s.

    Returns ``optimal_k_ci`` ([low, high]), ``optimal_k_ci_level``, ``optimal_k_ci_censored``
    and ``optimal_k_boot`` (the replicates drawn).
    """
    if d.pairs is None or d.prior is None:
        raise InputError("simulate: the optimal k's interval needs a difficulty fitted from counts")
    table = d.pairs
    total = int(table[:, 2].sum())
    rng = np.random.default_rng(seed)
    draws = rng.multinomial(total, table[:, 2] / total, size=n_boot)
    reps = np.empty(n_boot, dtype=np.int64)
    for i, w in enumerate(draws):
        keep = w > 0
        t = np.column_stack([table[keep, :2], w[keep]]).astype(float)
        reps[i] = refit_optimal_k(t, d.prior, ks, fpr=fpr, fnr=fnr, fp_cost=fp_cost,
                                  cost_per_sample=cost_per_sample, points=points)
    alpha = (1.0 - ci) / 2.0
    lo, hi = (int(x) for x in np.quantile(reps, [alpha, 1.0 - alpha], method="nearest"))
    lo, hi = min(lo, k), max(hi, k)
    return {"optimal_k_ci": [lo, hi], "optimal_k_ci_level": ci,
            "optimal_k_ci_censored": bool(hi >= int(ks[-1])), "optimal_k_boot": int(n_boot)}


def refit_optimal_k(table: np.ndarray, start: tuple[float, float, float], ks: np.ndarray, *,
                    fpr: float = 0.0, fnr: float = 0.0, fp_cost: float = 0.0,
                    cost_per_sample: float = 0.0, points: int = 64) -> int:
    """One bootstrap replicate's optimal k (resample): the empirical-Bayes prior refitted to
    ``table`` (rows n, c, problems) from ``start``, the posteriors' support, the expected utility
    on ``ks`` and :func:`best_k`. 0 when no problem of ``table`` was ever solved."""
    from ttscale.analysis.forecasting.beta_fits import refit_zero_inflated_beta

    if not (table[:, 1] > 0).any():
        return 0
    prior = refit_zero_inflated_beta(table[:, 0], table[:, 1], table[:, 2], start)
    p, w = posterior_support(table, prior, points)
    util = ceilings.expected_utility(p, 1.0 - fpr, 1.0 - fnr, fp_cost, ks, cost_per_sample,
                                     weights=w, source="simulate")
    return best_k(ks, util)[0]
