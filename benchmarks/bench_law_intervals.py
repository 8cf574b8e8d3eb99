"""Do the intervals cover? Simulated benchmarks with a known difficulty distribution.

Prints, side by side for the same draws:

1. the law's exponent b and scale a: how often the 95% interval holds the truth (the C.1 law
   fitted to the population's coverage curve on the same k), for the bootstrap over problems
   that refits the law (``ttscale.analysis.laws.bootstrap``) and for curve_fit's conditional
   standard error (+-1.96 se), with their median widths;
2. the pointwise coverage CI: the percentile bootstrap over problems alone, the previous hull
   (before issue 20) and the interval ttscale reports (the bootstrap hulled with the
   effective-trials Clopper-Pearson bound, ``ttscale.analysis.ceilings.interval``), at k = 1 ... 100,
   for 10, 30 and 128 problems, across nine Beta families;
3. the law's extrapolation back-test (``ttscale.analysis.laws.extrapolation``): its power against a
   20% ceiling at n = 100 and its false alarms on Beta families.

Run: ``python benchmarks/bench_law_intervals.py [--draws 200]`` (20-40 minutes on a busy 2-core
machine) or ``--quick`` (a few minutes; the pointwise coverage always takes at least 1,000 draws, whose
Monte Carlo standard error, 0.007 at 0.95, it prints).
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


FAMILIES = ((0.3, 2.0), (0.5, 0.5), (0.5, 2.0), (0.15, 1.5), (2.0, 2.0), (1.0, 3.0), (0.2, 0.2),
            (5.0, 1.0), (0.1, 3.0))
POINTWISE_KS = np.array([1, 2, 5, 10, 20, 50, 100])


def _previous_trials(x: np.ndarray, max_trials: np.ndarray) -> np.ndarray:
    """The effective trials before issue 20 (population variance, at least P, no df adjustment)."""
    p = x.shape[0]
    mean, var = x.mean(axis=0), x.var(axis=0)
    spread = mean * (1 - mean)
    with np.errstate(divide="ignore", invalid="ignore"):
        neff = np.where((var > 0) & (spread > 0), spread * p / var, float(p))
    return np.minimum(np.maximum(neff, p), np.maximum(max_trials, p))


def pointwise_coverage(draws: int, problems: int, n: int = 100) -> None:
    """95% curve intervals at each k: bootstrap alone, the previous hull, the reported hull."""
    from ttscale.analysis.ceilings.interval import clopper_pearson

    ks = POINTWISE_KS
    trials = subset_trials(np.full(problems, n), ks)
    print(f"pointwise 95% CI, {problems} problems, n = {n}, {draws} draws; coverage at k = "
          + " ".join(str(k) for k in ks) + "  | min | mean width")
    worst = {"bootstrap": 1.0, "previous": 1.0, "reported": 1.0}
    for a, b in FAMILIES:
        truth = true_coverage(a, b, ks)
        rng = np.random.default_rng(1)
        hits = {name: np.zeros(ks.size) for name in worst}
        width = {name: 0.0 for name in worst}
        for r in range(draws):
            c = rng.binomial(n, rng.beta(a, b, problems))
            per = pass_at_k(np.full(problems, n), c, ks)
            lo, hi = bootstrap_ci(per, n_boot=500, seed=r)
            neff = _previous_trials(per, trials)
            plo, phi = clopper_pearson(per.mean(axis=0) * neff, neff, 0.95)
            out = {"bootstrap": (lo, hi), "previous": (np.minimum(lo, plo), np.maximum(hi, phi)),
                   "reported": widen_at_ceiling(per, lo, hi, 0.95, trials)}
            for name, (lw, h) in out.items():
                hits[name] += (lw <= truth + 1e-12) & (truth <= h + 1e-12)
                width[name] += float(np.mean(h - lw))
        for name in worst:
            h = hits[name] / draws
            worst[name] = min(worst[name], float(h.min()))
            print(f"  Beta({a:g},{b:g}) {name:10s}" + "".join(f"{v:6.3f}" for v in h)
                  + f" | {h.min():.3f} | {width[name] / draws:.3f}")
    se = np.sqrt(0.95 * 0.05 / draws)
    print("  worst over families and k: " + ", ".join(f"{k} {v:.3f}" for k, v in worst.items())
          + f" (goal for reported: >= 0.93; Monte Carlo standard error {se:.3f} per cell, and the"
          f" minimum of {len(FAMILIES) * ks.size} cells sits about {2.4 * se:.3f} below their typical value)")


def extrapolation_power(draws: int, problems: int = 128, n: int = 100) -> None:
    """How often the law's extrapolation back-test says ``unsafe``: power against a 20% ceiling
    (20% of problems at p = 0) and false alarms where the law extrapolates (Beta tails)."""
    from ttscale.analysis.laws.extrapolation import extrapolation_check

    cases = [("20% p=0 + Beta(0.5,2) [ceiling]", 0.2, 0.5, 2.0),
             ("20% p=0 + Beta(0.3,1) [ceiling]", 0.2, 0.3, 1.0),
             ("Beta(0.5,2)", 0.0, 0.5, 2.0), ("Beta(0.4,1.5)", 0.0, 0.4, 1.5),
             ("Beta(0.3,0.3)", 0.0, 0.3, 0.3), ("Beta(0.15,1.5)", 0.0, 0.15, 1.5),
             ("Beta(1,3)", 0.0, 1.0, 3.0)]
    print(f"law extrapolation back-test, {problems} problems, n = {n}, {draws} draws: share 'unsafe'"
          " (goal: >= 0.8 with a ceiling, <= 0.05 where the law holds), and the law's own error at"
          " 10n (points)")
    rng = np.random.default_rng(0)
    for name, zero, a, b in cases:
        unsafe = err = 0.0
        for d in range(draws):
            p = np.where(rng.random(problems) < zero, 0.0, rng.beta(a, b, problems))
            c = rng.binomial(n, p)
            unsafe += extrapolation_check(np.full(problems, n), c, seed=d)["status"] == "unsafe"
            try:
                fit = fit_power_law(log_spaced_ks(n), pass_at_k(np.full(problems, n), c,
                                                                 log_spaced_ks(n)).mean(axis=0))
                truth = float(np.mean(1 - (1 - p) ** (10 * n)))
                err += abs(float(fit.predict(np.array([10 * n]))[0]) - truth)
            except Exception:  # noqa: BLE001 (a failed fit counts as no error)
                pass
        print(f"  {name:34s} unsafe {unsafe / draws:.3f}   law error at 10n {100 * err / draws:5.2f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--draws", type=int, default=200)
    ap.add_argument("--quick", action="store_true", help="fewer draws (40 / 1000 / 40)")
    args = ap.parse_args()
    draws = 40 if args.quick else args.draws
    law_coverage(draws, 0.4, 1.5, 128, 100)
    for problems in (10, 30, 128):  # 1,000 draws even when quick: with 200 the minimum over 63
        # cells is Monte Carlo noise (30 problems: 0.920 with 200 draws, 0.948 with 1,000)
        pointwise_coverage(max(draws * 5, 1000), problems)
    extrapolation_power(draws if not args.quick else 40)


if __name__ == "__main__":
    main()
