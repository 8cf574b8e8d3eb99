"""Frame-level curves: pass@k / maj@k / best-of-k / weighted-vote@k per group, with bootstrap CIs.

The ``analyze`` command calls these. Every function returns one long frame with the columns
``[*group_columns, "metric", "k", "estimate", "ci_low", "ci_high"]``: one curve per group and
metric, the estimate being the mean over problems of the per-problem unbiased estimate and the
interval a percentile bootstrap over problems (:func:`ttscale.analysis.curves.estimators.bootstrap_ci`)
widened to an exact binomial bound where that is wider, so that it never collapses to [1, 1] at
the ceiling (:mod:`ttscale.analysis.ceilings.interval`).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ttscale.analysis.ceilings.interval import subset_trials, widen_at_ceiling
from ttscale.analysis.curves.estimators import bootstrap_ci
from ttscale.errors import InputError
from ttscale.rundir.counts import check_k, group_columns, validate_counts

CURVE_COLUMNS = ["metric", "k", "estimate", "ci_low", "ci_high"]
SELECTION_METRICS = ("maj@k", "best-of-k", "weighted-vote@k")
#: every k up to this many samples; above it log-spaced k, LOG_PER_DECADE to a decade
DENSE_LIMIT = 256
LOG_PER_DECADE = 64


def default_ks(n_min: int) -> np.ndarray:
    """The k at which curves are evaluated for a group whose smallest num_samples is ``n_min``.

    Every k from 1 to ``min(n_min, 256)``; above 256, integers log-spaced at 64 to a decade
    (successive ratios below 1.04) up to n_min, n_min included: 294 k at n_min = 1,000, 358 at
    10,000, 422 at 100,000. pass@k, maj@k and best-of-k all use it, so their cost grows with
    log n, not n.
    """
    n_min = int(n_min)
    if n_min < 1:
        raise InputError(f"default_ks: field 'n_min' must be at least 1, got {n_min}")
    if n_min <= DENSE_LIMIT:
        return np.arange(1, n_min + 1, dtype=np.int64)
    points = int(np.ceil(LOG_PER_DECADE * np.log10(n_min / DENSE_LIMIT))) + 1
    log = np.round(np.logspace(np.log10(DENSE_LIMIT), np.log10(n_min), points)).astype(np.int64)
    ks = np.unique(np.concatenate([np.arange(1, DENSE_LIMIT + 1), log, [n_min]]))
    return ks[(ks >= 1) & (ks <= n_min)]


def _ks_or_default(ks: np.ndarray | list[int] | None, n_min: int, source: str) -> np.ndarray:
    if ks is None:
        return default_ks(n_min)
    kk = np.unique(np.asarray(ks, dtype=np.int64).ravel())
    if kk.size == 0:
        raise InputError(f"{source}: field 'ks' is empty")
    check_k(kk, n_min, source, what="k")
    return kk


def _curve_frame(
    key: tuple, cols: list[str], metric: str, ks: np.ndarray, per_problem: np.ndarray,
    n_boot: int, ci: float, seed: int, max_trials: np.ndarray | None = None,
) -> pd.DataFrame:
    if per_problem.shape[0] < 2:  # one problem: nothing to resample, no interval (not a zero-width one)
        low = high = np.full(per_problem.shape[1], np.nan)
    else:
        low, high = bootstrap_ci(per_problem, n_boot=n_boot, ci=ci, seed=seed)
        # never [1, 1] at the ceiling: hull with an exact binomial bound (ceilings.interval)
        low, high = widen_at_ceiling(per_problem, low, high, ci, max_trials)
    frame = pd.DataFrame(
        {
            "metric": metric,
            "k": ks.astype(np.int64),
            "estimate": per_problem.mean(axis=0),
            "ci_low": low,
            "ci_high": high,
        }
    )
    for col, val in zip(cols, key, strict=True):
        frame.insert(cols.index(col), col, val)
    return frame


def _groups(df: pd.DataFrame, cols: list[str]):
    if not cols:
        yield (), df
        return
    for key, g in df.groupby(cols, sort=True, dropna=False):
        yield (key if isinstance(key, tuple) else (key,)), g


def coverage_curves(
    counts: pd.DataFrame,
    ks: np.ndarray | list[int] | None = None,
    n_boot: int = 1000,
    ci: float = 0.95,
    seed: int = 0,
    source: str = "counts",
) -> pd.DataFrame:
    """pass@k curves (coverage) of a counts table, one per group, with bootstrap CIs.

    Groups are every column but problem/num_samples/num_correct. ``ks`` defaults per group to
    :func:`default_ks` of the group's smallest num_samples; given ks must not exceed it (an
    InputError otherwise). Problems with different n are fine: each uses its own n.
    """
    counts = validate_counts(counts, source)
    cols = group_columns(counts)
    frames = []
    for key, g in _groups(counts, cols):
        from ttscale.analysis.adaptive.run import max_k, per_problem_pass, subset_trials_for

        kk = _ks_or_default(ks, max_k(g), source)  # K for an adaptive run's rows
        per = per_problem_pass(g, kk)  # the stopping-rule estimator for those
        frames.append(_curve_frame(key, cols, "pass@k", kk, per, n_boot, ci, seed,
                                   subset_trials_for(g, kk)))
    return pd.concat(frames, ignore_index=True)[[*cols, *CURVE_COLUMNS]]


def selection_curves(
    samples: pd.DataFrame,
    group_by: list[str],
    metric: str,
    ks: np.ndarray | list[int] | None = None,
    n_boot: int = 1000,
    ci: float = 0.95,
    seed: int = 0,
    n_mc: int = 2000,
    source: str = "samples",
) -> pd.DataFrame:
    """maj@k, best-of-k or weighted-vote@k curves from per-sample rows, one per group.

    ``samples`` has columns problem_id, answer (null = no answer), passed, score and the
    ``group_by`` columns. maj@k and best-of-k are exact (maj@k falls back to an unbiased,
    seeded Monte Carlo for very large n, see :func:`ttscale.analysis.curves.selection.maj_at_k`);
    weighted-vote@k is Monte Carlo with ``n_mc`` subsets per k. ``ks`` defaults per group to
    :func:`default_ks` of the smallest number of samples per problem.
    """
    from ttscale.analysis.curves import selection

    if metric not in SELECTION_METRICS:
        raise InputError(f"{source}: metric {metric!r} is not one of {', '.join(SELECTION_METRICS)}")
    need = {"maj@k": ["answer", "passed"], "best-of-k": ["score", "passed"],
            "weighted-vote@k": ["answer", "passed", "score"]}[metric]
    cols = list(group_by)
    missing = [c for c in ["problem_id", *need, *cols] if c not in samples.columns]
    if missing:
        raise InputError(f"{source}: missing column '{missing[0]}' needed for {metric}")
    if len(samples) == 0:
        raise InputError(f"{source}: no sample rows for {metric}")
    frames = []
    for key, g in _groups(samples, cols):
        sizes = g.groupby("problem_id").size().to_numpy()
        n_min = int(sizes.min())
        kk = _ks_or_default(ks, n_min, source)
        if metric == "maj@k":
            _, per = selection.maj_at_k_from_samples(g, kk, n_mc=n_mc, seed=seed)
        elif metric == "best-of-k":
            _, per = selection.best_of_k_from_samples(g, kk)
        else:
            _, per = selection.weighted_vote_at_k_from_samples(g, kk, n_mc=n_mc, seed=seed)
        frames.append(_curve_frame(key, cols, metric, kk, per, n_boot, ci, seed,
                                   subset_trials(sizes, kk)))
    return pd.concat(frames, ignore_index=True)[[*cols, *CURVE_COLUMNS]]


def selection_curve_from_summary(
    hist: pd.DataFrame, key: tuple, cols: list[str], metric: str, ks: np.ndarray,
    n_boot: int = 1000, ci: float = 0.95, seed: int = 0, cache_dir=None,
) -> tuple[pd.DataFrame, dict]:
    """One group's maj@k, best-of-k or weighted-vote@k curve from summary histogram rows
    (problem_id, answer, score, count, passed), with a bootstrap CI over problems.

    The per-problem values come from :func:`ttscale.analysis.curves.vote_curves.selection_matrix`
    (cached under ``cache_dir``): exact or Monte Carlo as documented there. Returns the curve
    and a record of the method: ``{"exact": problems without Monte Carlo, "monte_carlo": {problem:
    largest exact k (above it Monte Carlo)}, "bounded_from_k": {problem: k from which the value
    is the top answer's correctness within "bound"}}``."""
    from ttscale.analysis.curves.vote_curves import selection_matrix

    kk = np.unique(np.asarray(ks, dtype=np.int64))
    res = selection_matrix(hist, metric, kk, cache_dir=cache_dir, seed=seed)
    sizes = hist.groupby("problem_id")["count"].sum().to_numpy()
    frame = _curve_frame(key, cols, metric, kk, res.values, n_boot, ci, seed,
                         subset_trials(sizes, kk))[[*cols, *CURVE_COLUMNS]]
    bound = res.k_bound if res.k_bound is not None else np.zeros_like(res.k_exact)
    # a problem needs Monte Carlo for some k when a grid k lies above k_exact and below k_bound
    top = np.where(bound > 0, bound, kk.max() + 1)
    mc = np.array([bool(((kk > e) & (kk < b)).any()) for e, b in zip(res.k_exact, top, strict=True)],
                  dtype=bool)
    if metric == "weighted-vote@k":
        method = {"exact": 0, "monte_carlo": "all problems, every k"}
    else:
        method = {"exact": int((~mc).sum()),
                  "monte_carlo": {str(p): int(k) for p, k in
                                  zip(res.problems[mc], res.k_exact[mc], strict=True)},
                  "bounded_from_k": {str(p): int(b) for p, b in
                                     zip(res.problems, bound, strict=True) if b > 0},
                  "bound": 1e-6}
    return frame, method
