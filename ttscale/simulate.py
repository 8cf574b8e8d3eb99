"""The what-if engine: coverage and verified accuracy at larger k, other verifiers, other costs.

Problem difficulty is a distribution of per-problem pass rates p, given as support points with
weights. It comes from a parametric family (``beta:ALPHA,BETA``, optionally with a share of
never-solved problems ``beta:ALPHA,BETA,zero=0.1``), or from measured counts (each problem's
posterior Beta(c + 1/2, n - c + 1/2) under the Jeffreys prior, so a problem never solved in n
samples keeps a small, non-zero pass rate instead of exactly 0).

For each k the simulator gives:

- ``coverage``: 1 - E[(1 - p)^k], the oracle's pass@k;
- ``accuracy``: what the chosen selection method returns as its one answer:
  ``resample`` (sample until a verifier with the given false-positive and false-negative rates
  accepts, at most k attempts; Inference Scaling fLaws), ``vote`` (majority vote over k samples,
  the wrong answers of a problem spread evenly over ``wrong_answers`` distinct strings; ties
  broken uniformly at random; Monte Carlo with a fixed seed) or ``best-of-n`` (a reward model
  whose scores are N(d, 1) on right and N(0, 1) on wrong samples; exact by quadrature);
- ``utility``: +1 per right answer returned, ``-fp_cost`` per wrong one, minus ``cost_per_sample``
  per sample drawn; for ``resample`` an answer may be withheld (utility 0).

The saturation point (gain in coverage per sample below a threshold) and the optimal k (highest
expected utility) are read off these curves. ``plan_exponent_precision`` answers the planning
question: how many problems and samples per problem estimate the power law's exponent b to a
requested precision (the standard deviation of the fitted b over simulated replicates).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from ttscale.analysis import ceilings
from ttscale.analysis.laws import fit_from_counts
from ttscale.errors import InputError

SELECTIONS = ("resample", "vote", "best-of-n")


@dataclass(frozen=True)
class Difficulty:
    """A distribution of per-problem pass rates: support points and weights (summing to 1)."""

    p: np.ndarray
    w: np.ndarray
    source: str

    def sample(self, size: int, rng: np.random.Generator) -> np.ndarray:
        return rng.choice(self.p, size=size, p=self.w)


def parse_difficulty(spec: str, grid: int = 2000) -> Difficulty:
    """``beta:ALPHA,BETA[,zero=Z][,one=O]`` -> a quantile grid of the beta plus point masses."""
    kind, _, rest = spec.partition(":")
    if kind != "beta" or not rest:
        raise InputError(f"--difficulty {spec!r}: expected beta:ALPHA,BETA[,zero=Z][,one=O]")
    parts = rest.split(",")
    try:
        alpha, beta = float(parts[0]), float(parts[1])
        extra = dict(x.split("=", 1) for x in parts[2:])
        zero, one = float(extra.pop("zero", 0)), float(extra.pop("one", 0))
    except (ValueError, IndexError) as e:
        raise InputError(f"--difficulty {spec!r}: expected beta:ALPHA,BETA[,zero=Z][,one=O]") from e
    if extra:
        raise InputError(f"--difficulty {spec!r}: unknown field {sorted(extra)[0]!r}")
    if not (alpha > 0 and beta > 0) or not (0 <= zero and 0 <= one and zero + one < 1):
        raise InputError(f"--difficulty {spec!r}: need ALPHA, BETA > 0 and zero + one < 1")
    q = (np.arange(grid) + 0.5) / grid
    p = stats.beta.ppf(q, alpha, beta)
    w = np.full(grid, (1 - zero - one) / grid)
    p = np.concatenate([p, [0.0, 1.0]])
    w = np.concatenate([w, [zero, one]])
    keep = w > 0
    return Difficulty(p[keep], w[keep], spec)


def difficulty_from_counts(n: np.ndarray, c: np.ndarray, points: int = 64) -> Difficulty:
    """Each problem's Jeffreys posterior Beta(c + 1/2, n - c + 1/2), as a quantile grid."""
    n = np.asarray(n, dtype=float)
    c = np.asarray(c, dtype=float)
    q = (np.arange(points) + 0.5) / points
    p = stats.beta.ppf(q[None, :], c[:, None] + 0.5, n[:, None] - c[:, None] + 0.5)
    w = np.full(p.shape, 1.0 / p.size)
    return Difficulty(p.ravel(), w.ravel(), f"{len(n)} problems' counts")


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


def simulate_curves(
    d: Difficulty,
    ks: np.ndarray,
    selection: str = "resample",
    fpr: float = 0.0,
    fnr: float = 0.0,
    fp_cost: float = 0.0,
    cost_per_sample: float = 0.0,
    wrong_answers: int = 4,
    separation: float = 1.0,
    seed: int = 0,
) -> pd.DataFrame:
    """One row per k: coverage, accuracy, false_positive_rate, samples_drawn, utility."""
    if selection not in SELECTIONS:
        raise InputError(f"simulate: field 'selection' must be one of {', '.join(SELECTIONS)}")
    ks = np.asarray(ks, dtype=np.int64)
    cov = coverage(d, ks)
    if selection == "resample":
        s, c = 1.0 - fpr, 1.0 - fnr
        acc = ceilings.benchmark_accuracy(d.p, s, c, ks, weights=d.w, source="simulate")
        fp = np.average(ceilings.false_positive_rate_at_k(d.p, s, c, ks, source="simulate"),
                        axis=0, weights=d.w)
        util = ceilings.expected_utility(d.p, s, c, fp_cost, ks, cost_per_sample, weights=d.w,
                                         source="simulate")
        drawn = np.average(ceilings._geometric(1 - d.p * c - (1 - d.p) * (1 - s), ks), axis=0,
                           weights=d.w)
    else:
        if selection == "vote":
            acc = vote_accuracy(d, ks, wrong_answers, seed=seed)
        else:
            acc = best_of_n_accuracy(d, ks, separation)
        fp = 1.0 - acc  # an answer is always returned
        drawn = ks.astype(float)
        util = acc - fp_cost * fp - cost_per_sample * drawn
    return pd.DataFrame({"k": ks, "coverage": cov, "accuracy": acc, "false_positive_rate": fp,
                         "samples_drawn": drawn, "utility": util})


def summarise(curves: pd.DataFrame, d: Difficulty, selection: str, fpr: float, fnr: float,
              saturation_threshold: float) -> dict[str, object]:
    ks = curves["k"].to_numpy()
    summary: dict[str, object] = {
        "difficulty": d.source,
        "selection": selection,
        "saturation_threshold": saturation_threshold,
        "saturation_k": ceilings.saturation_point(ks, curves["coverage"].to_numpy(), saturation_threshold,
                                                  source="simulate"),
    }
    util = curves["utility"].to_numpy()
    best = int(np.flatnonzero(util >= util.max() - 1e-9)[0])  # the smallest k on (numerical) ties
    summary["optimal_k"] = int(ks[best]) if curves["utility"].iloc[best] > 0 else 0
    summary["optimal_utility"] = float(max(curves["utility"].iloc[best], 0.0))
    summary["optimal_k_is_max_k"] = bool(best == len(ks) - 1)
    if selection == "resample":
        lim = ceilings.accuracy_limit(d.p, 1 - fpr, 1 - fnr, source="simulate")
        summary["accuracy_ceiling"] = float(np.average(lim, weights=d.w))
    summary["coverage_at_max_k"] = float(curves["coverage"].iloc[-1])
    summary["accuracy_at_max_k"] = float(curves["accuracy"].iloc[-1])
    return summary


def plan_exponent_precision(
    d: Difficulty,
    precision: float,
    problems: list[int],
    samples: list[int],
    replicates: int = 30,
    seed: int = 0,
) -> pd.DataFrame:
    """Std of the fitted exponent b over simulated replicates, per (problems, samples).

    Each replicate draws pass rates from ``d``, counts from Binomial(n, p), and fits the
    exponentiated power law on k <= n. ``meets`` marks the cells whose std is <= precision.
    """
    if not precision > 0:
        raise InputError("simulate: field 'plan_b_precision' must be > 0")
    rng = np.random.default_rng(seed)
    rows = []
    for num_problems in problems:
        for n in samples:
            bs = []
            for _ in range(replicates):
                p = d.sample(num_problems, rng)
                c = rng.binomial(n, p)
                try:
                    bs.append(fit_from_counts(np.full(num_problems, n), c).params["b"])
                except (InputError, RuntimeError, ValueError):
                    continue
            bs_arr = np.asarray(bs)
            std = float(np.std(bs_arr, ddof=1)) if len(bs_arr) > 2 else float("nan")
            rows.append({"num_problems": num_problems, "samples_per_problem": n,
                         "total_samples": num_problems * n, "b_mean": float(np.mean(bs_arr)) if len(bs_arr) else float("nan"),
                         "b_std": std, "fits": len(bs_arr), "meets": bool(std <= precision)})
    return pd.DataFrame(rows)
