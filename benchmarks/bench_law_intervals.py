"""Do the intervals cover? Simulated benchmarks with a known difficulty distribution.

Prints, side by side for the same draws:

1. the law's exponent b and scale a: how often the 95% interval holds the truth (the C.1 law
   fitted to the population's coverage curve on the same k), for the bootstrap over problems
   that refits the law (``ttscale.analysis.laws.bootstrap``) and for curve_fit's conditional
   standard error (+-1.96 se), with their median widths;
2. the pointwise coverage CI: the percentile bootstrap over problems alone against the interval
   ttscale reports (its hull with an exact binomial bound, ``ttscale.analysis.ceilings.interval``), at
   k = 1, 10, 50, 75, 100, for 10 and for 128 problems.

Run: ``python benchmarks/bench_law_intervals.py [--draws 200]`` (about 1-2 minutes).
"""

from __future__ import annotations

import argparse

import numpy as np
from scipy.special import betaln

from ttscale.analysis.ceilings.interval import subset_trials, widen_at_ceiling
from ttscale.analysis.curves.estimators import bootstrap_ci, pass_at_k
from ttscale.analysis.laws.bootstrap import bootstrap_law
from ttscale.analysis.laws.power_law import fit_power_law, log_spaced_ks


def true_coverage(alpha: float, beta: float, ks: np.ndarray) -> np.ndarray:
    ks = np.asarray(ks, dtype=float)
    return 1.0 - np.exp(betaln(alpha, beta + ks) - betaln(alpha, beta))


def law_coverage(draws: int, alpha: float, beta: float, problems: int, n: int) -> None:
    ks = log_spaced_ks(n)
    truth = fit_power_law(ks, true_coverage(alpha, beta, ks)).params
    rng = np.random.default_rng(5)
    hit = {"boot": np.zeros(2), "se": np.zeros(2)}
    width = {"boot": [], "se": []}
    for r in range(draws):
        c = rng.binomial(n, rng.beta(alpha, beta, problems))
        boot = bootstrap_law(np.full(problems, n), c, n_boot=200, seed=r)
        ci = boot.param_ci()
        for j, name in enumerate(("a", "b")):
            hit["boot"][j] += ci[name][0] <= truth[name] <= ci[name][1]
            se = boot.fit.stderr[name]
            hit["se"][j] += abs(boot.fit.params[name] - truth[name]) <= 1.96 * se
        width["boot"].append(ci["b"][1] - ci["b"][0])
        width["se"].append(2 * 1.96 * boot.fit.stderr["b"])
    print(f"law on {problems} problems from Beta({alpha}, {beta}), n = {n}, {draws} draws; "
          f"truth a = {truth['a']:.3f}, b = {truth['b']:.3f}")
    for m, label in (("boot", "bootstrap refits (reported)"), ("se", "curve_fit +-1.96 se")):
        a, b = hit[m] / draws
        print(f"  {label:30s} covers a {a:.3f}  b {b:.3f}  median width of b {np.median(width[m]):.4f}")
    ratio = np.median(width["boot"]) / np.median(width["se"])
    print(f"  bootstrap interval / curve_fit interval (width of b): {ratio:.1f}x")


def pointwise_coverage(draws: int, problems: int, n: int = 100) -> None:
    ks = np.array([1, 10, 50, 75, 100])
    truth = true_coverage(0.5, 0.5, ks)
    rng = np.random.default_rng(1)
    boot_hits = np.zeros(ks.size)
    hits = np.zeros(ks.size)
    trials = subset_trials(np.full(problems, n), ks)
    for r in range(draws):
        c = rng.binomial(n, rng.beta(0.5, 0.5, problems))
        per = pass_at_k(np.full(problems, n), c, ks)
        lo, hi = bootstrap_ci(per, n_boot=500, seed=r)
        boot_hits += (lo <= truth) & (truth <= hi)
        lo, hi = widen_at_ceiling(per, lo, hi, 0.95, trials)
        hits += (lo <= truth) & (truth <= hi)
    print(f"pointwise 95% CI, {problems} problems from Beta(0.5, 0.5), n = {n}, {draws} draws")
    print("  k                    " + "".join(f"{k:>8d}" for k in ks))
    print("  true coverage        " + "".join(f"{t:8.3f}" for t in truth))
    print("  bootstrap alone      " + "".join(f"{h / draws:8.3f}" for h in boot_hits))
    print("  reported (hull)      " + "".join(f"{h / draws:8.3f}" for h in hits))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--draws", type=int, default=200)
    args = ap.parse_args()
    law_coverage(args.draws, 0.4, 1.5, 128, 100)
    for problems in (10, 128):
        pointwise_coverage(args.draws * 5, problems)


if __name__ == "__main__":
    main()
