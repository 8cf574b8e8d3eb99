"""Plan an adaptive run before paying for it: samples drawn and CI widths under a stopping rule.

:func:`plan_adaptive` simulates, for each replicate, every problem's adaptive run
(:func:`ttscale.analysis.adaptive.estimators.simulate_rule`: round by round, binomial draws, exact in
distribution) and, from the same draws, full sampling to K. For each k it reports the mean
coverage@k estimate of both (each unbiased), the 95% bootstrap CI width over problems of both
and their ratio (what the sampling noise the rule adds costs, against the between-problem
spread), and the standard deviation of each over replicates; plus the expected fraction of the
K samples drawn. ``ttscale simulate INPUT --adaptive 1,2,4,8`` prints it; the rates come from a
counts table or run (each problem's Jeffreys posterior, drawn afresh per replicate) or from a
difficulty prior (``--difficulty``).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

from ttscale.analysis.adaptive.estimators import adaptive_pass_at_k, simulate_rule
from ttscale.analysis.curves.estimators import bootstrap_ci, pass_at_k
from ttscale.errors import InputError
from ttscale.sampling.stopping import StoppingRule

PLAN_COLUMNS = ["successes", "min_samples", "first_round", "growth", "k", "fraction_drawn",
                "samples_per_problem", "coverage_adaptive", "coverage_full", "ci_width_adaptive",
                "ci_width_full", "width_ratio", "sd_adaptive", "sd_full"]


def rates_from_counts(n: np.ndarray, c: np.ndarray) -> Callable[[np.random.Generator], np.ndarray]:
    """Each problem's rate drawn from its Jeffreys posterior Beta(c + 1/2, n - c + 1/2)."""
    n = np.asarray(n, dtype=float)
    c = np.asarray(c, dtype=float)
    return lambda rng: rng.beta(c + 0.5, n - c + 0.5)


def fixed_rates(p: np.ndarray) -> Callable[[np.random.Generator], np.ndarray]:
    """The same rates every replicate (e.g. each problem's empirical c/n)."""
    p = np.asarray(p, dtype=float)
    return lambda rng: p


def plan_adaptive(draw_rates: Callable[[np.random.Generator], np.ndarray], rule: StoppingRule,
                  k_max: int, ks: np.ndarray | list[int], replicates: int = 20, n_boot: int = 500,
                  seed: int = 0) -> pd.DataFrame:
    """One row per k (PLAN_COLUMNS) for ``rule`` at K = ``k_max``; see the module doc."""
    rule.check(k_max, where="plan_adaptive")
    kk = np.unique(np.asarray(ks, dtype=np.int64))
    kk = kk[(kk >= 1) & (kk <= k_max)]
    if kk.size == 0:
        raise InputError(f"plan_adaptive: field 'ks': none within 1..{k_max}")
    if replicates < 2:
        raise InputError(f"plan_adaptive: field 'replicates' must be at least 2, got {replicates}")
    rng = np.random.default_rng(seed)
    frac, w_ad, w_full, est_ad, est_full = [], [], [], [], []
    for rep in range(replicates):
        p = draw_rates(rng)
        sim = simulate_rule(p, rule, k_max, rng)
        pa = adaptive_pass_at_k(sim["n"], sim["c"], sim["prev"], kk, rule.successes, rule.min_samples)
        pf = pass_at_k(k_max, sim["c_full"], kk)
        for per, widths, ests in ((pa, w_ad, est_ad), (pf, w_full, est_full)):
            lo, hi = bootstrap_ci(per, n_boot=n_boot, seed=seed + rep)
            widths.append(hi - lo)
            ests.append(per.mean(axis=0))
        frac.append(sim["n"].sum() / (p.size * k_max))
    wa, wf = np.mean(w_ad, axis=0), np.mean(w_full, axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where((wf < 1e-4) & (wa < 1e-4), np.nan, wa / wf)  # NaN: both (nearly) empty
    f = float(np.mean(frac))
    return pd.DataFrame({
        "successes": rule.successes, "min_samples": rule.min_samples, "first_round": rule.first_round,
        "growth": rule.growth, "k": kk, "fraction_drawn": f, "samples_per_problem": f * k_max,
        "coverage_adaptive": np.mean(est_ad, axis=0), "coverage_full": np.mean(est_full, axis=0),
        "ci_width_adaptive": wa, "ci_width_full": wf, "width_ratio": ratio,
        "sd_adaptive": np.std(est_ad, axis=0, ddof=1), "sd_full": np.std(est_full, axis=0, ddof=1),
    })[PLAN_COLUMNS]
