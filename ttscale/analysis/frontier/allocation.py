"""Per-difficulty allocation (Snell et al.'s compute-optimal scaling), cross-fitted so the gain is
honest.

Each problem's samples (per configuration) are split into two random halves (a hypergeometric draw
of the successes: the same law as splitting the samples themselves). On the choosing half:

1. each problem's difficulty is its pooled pass rate over all configurations;
2. problems are cut into ``bins`` equal-count bins by that difficulty (fewer where rates tie);
3. for each target mean cost x, the allocation (one candidate (configuration, k) per bin)
   with the highest accuracy whose mean cost per problem is <= x is found exactly, by merging
   the bins' cost/accuracy Pareto sets (thinned to :data:`MAX_PARETO` points on a log-cost grid
   when they grow beyond it), and the best uniform candidate with cost <= x likewise.

Both are then measured on the other half (bins as chosen: each problem gets its bin's candidate),
and the halves swap roles. ``gain`` is the mean over problems of (allocation - uniform), averaged
over the two folds, with a percentile bootstrap interval over problems given the choices made
(the selection is not resampled). Since the choices never see the samples they are scored on, the
gain is not inflated by selection on noise; it estimates the gain of choosing from n/2 samples,
so it errs slightly low for choices made from all n. k is capped at half of each configuration's
samples. Selection methods (maj@k, best-of-k, weighted vote from a run's answers) are left out of
the allocation: halving them needs the per-sample answers, not counts.

:func:`saturation_by_bin` reports, per difficulty bin (all samples), the best configuration at
its largest k and the gain of its last doubling of k with an interval: ``saturated`` when that
interval's upper end is below ``threshold``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ttscale.analysis.frontier.band import frontier_points
from ttscale.analysis.frontier.configs import Configurations
from ttscale.errors import InputError, arg

#: most points a merged Pareto set keeps (thinned on a log-cost grid beyond it)
MAX_PARETO = 20_000


def _bins(difficulty: np.ndarray, bins: int) -> np.ndarray:
    """Equal-count bins by difficulty, 0 = hardest (lowest pass rate); ties share a bin."""
    ranks = pd.Series(difficulty).rank(method="min").to_numpy()
    cut = pd.qcut(ranks, bins, labels=False, duplicates="drop")
    return np.asarray(cut, dtype=np.int64)


def _pareto_merge(costs: list[np.ndarray], accs: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pareto set of the sums over bins: (cost, acc, choices (points, bins)), costs increasing."""
    keep = frontier_points(costs[0], accs[0])
    cost, acc, choice = costs[0][keep], accs[0][keep], keep[:, None]
    for cb, ab in zip(costs[1:], accs[1:], strict=True):
        kb = frontier_points(cb, ab)
        c2 = (cost[:, None] + cb[kb][None, :]).ravel()
        a2 = (acc[:, None] + ab[kb][None, :]).ravel()
        i, jj = np.divmod(np.arange(c2.size), kb.size)
        ch = np.hstack([choice[i], kb[jj][:, None]])
        front = frontier_points(c2, a2)
        if front.size > MAX_PARETO:
            lc = np.log(np.maximum(c2[front], 1e-300))
            cell = np.floor((lc - lc.min()) / max(lc.max() - lc.min(), 1e-12) * (MAX_PARETO - 1))
            last = np.r_[cell[1:] != cell[:-1], True]  # the most accurate point of each cell
            front = front[last]
        cost, acc, choice = c2[front], a2[front], ch[front]
    return cost, acc, choice


def _fold(x_choose: np.ndarray, x_measure: np.ndarray, cost: np.ndarray, level_bins: np.ndarray,
          targets: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per target: per-problem (allocation, uniform) values on the measuring half and their costs."""
    p, _ = x_choose.shape
    ub = np.unique(level_bins)
    wts = [np.mean(level_bins == b) for b in ub]
    costs = [w * cost[level_bins == b].mean(axis=0) for w, b in zip(wts, ub, strict=True)]
    accs = [w * x_choose[level_bins == b].mean(axis=0) for w, b in zip(wts, ub, strict=True)]
    a_cost, a_acc, a_choice = _pareto_merge(costs, accs)
    u_cost, u_acc = cost.mean(axis=0), x_choose.mean(axis=0)
    pos_of_bin = np.searchsorted(ub, level_bins)
    alloc = np.full((targets.size, p), np.nan)
    unif = np.full((targets.size, p), np.nan)
    ac = np.full(targets.size, np.nan)
    uc = np.full(targets.size, np.nan)
    for t, x in enumerate(targets):
        ok_u = np.flatnonzero(u_cost <= x * (1 + 1e-9))
        ok_a = np.flatnonzero(a_cost <= x * (1 + 1e-9))
        if ok_u.size == 0:
            continue
        mu = ok_u[np.argmax(u_acc[ok_u])]
        unif[t] = x_measure[:, mu]
        uc[t] = u_cost[mu]
        if ok_a.size and a_acc[ok_a].max() > u_acc[mu]:
            pick = a_choice[ok_a[np.argmax(a_acc[ok_a])]]
            cand = pick[pos_of_bin]
            alloc[t] = x_measure[np.arange(p), cand]
            ac[t] = float(cost[np.arange(p), cand].mean())
        else:
            alloc[t], ac[t] = unif[t], uc[t]
    return alloc, unif, ac, uc


def allocate(cs: Configurations, metric: str, bins: int = 4, targets: np.ndarray | None = None,
             n_boot: int = 1000, level: float = 0.95, seed: int = 0) -> pd.DataFrame:
    """Cross-fitted per-difficulty allocation against the best uniform candidate, per target cost.

    Rows: ``metric``, ``target_cost``, ``allocation_cost`` and ``uniform_cost`` (mean over the two
    folds), ``allocation_accuracy``, ``uniform_accuracy`` (measured out of the choosing half),
    ``gain`` with ``ci_low``/``ci_high``, ``bins`` (the number used).
    """
    if bins < 1:
        raise InputError(f"{cs.source}: {arg('bins')} must be at least 1, got {bins}")
    n, c = cs.n, cs.c
    if (n < 2).any():
        raise InputError(f"{cs.source}: per-difficulty allocation splits each problem's samples in two "
                         "halves; some problem has fewer than 2 samples")
    rng = np.random.default_rng(seed)
    na = n // 2
    ca = rng.hypergeometric(c, n - c, na)
    halves = [(na, ca), (n - na, c - ca)]
    nmin = na.min(axis=0)
    # selection methods (cs.fixed) cannot be re-estimated on half of the samples from counts alone
    ks_of = [cs.ks[cs.ks <= nmin[j]] if j not in cs.fixed else cs.ks[:0] for j in range(n.shape[1])]
    cols = [(j, int(k)) for j in range(n.shape[1]) for k in ks_of[j]]
    if not cols:
        raise InputError(f"{cs.source}: no k fits in half of the samples")
    from ttscale.analysis.curves.estimators import pass_at_k

    def matrix(nn: np.ndarray, cc: np.ndarray) -> np.ndarray:
        return np.hstack([np.asarray(pass_at_k(nn[:, j], cc[:, j], ks_of[j]), float)
                          for j in range(n.shape[1]) if ks_of[j].size])

    xs = [matrix(*h) for h in halves]
    jj = np.array([j for j, _ in cols])
    kk = np.array([k for _, k in cols], float)
    cost = cs.once[metric][:, jj] + kk[None, :] * cs.each[metric][:, jj]
    if targets is None:
        full = np.hstack([np.asarray(pass_at_k(n[:, j], c[:, j], ks_of[j]), float)
                          for j in range(n.shape[1]) if ks_of[j].size]).mean(axis=0)
        front = cost.mean(axis=0)[frontier_points(cost.mean(axis=0), full)]
        pick = np.unique(np.round(np.linspace(0, front.size - 1, min(10, front.size))).astype(int))
        targets = front[pick]
    targets = np.asarray(targets, float)
    per_fold = []
    for a, b in ((0, 1), (1, 0)):
        diff_bins = _bins(halves[a][1].sum(axis=1) / halves[a][0].sum(axis=1), bins)
        per_fold.append(_fold(xs[a], xs[b], cost, diff_bins, targets))
    alloc = (per_fold[0][0] + per_fold[1][0]) / 2
    unif = (per_fold[0][1] + per_fold[1][1]) / 2
    d = alloc - unif
    p = n.shape[0]
    w = rng.multinomial(p, np.full(p, 1.0 / p), size=n_boot).astype(float) / p
    alpha = 1.0 - level
    rows = []
    used = len(np.unique(_bins(c.sum(axis=1) / n.sum(axis=1), bins)))
    for t, x in enumerate(targets):
        if np.isnan(d[t]).any():
            continue
        est = float(d[t].mean())
        boot = w @ (d[t] - est) + est
        lo, hi = np.quantile(boot, [alpha / 2, 1 - alpha / 2])
        rows.append({"metric": metric, "target_cost": float(x),
                     "allocation_cost": float((per_fold[0][2][t] + per_fold[1][2][t]) / 2),
                     "uniform_cost": float((per_fold[0][3][t] + per_fold[1][3][t]) / 2),
                     "allocation_accuracy": float(alloc[t].mean()), "uniform_accuracy": float(unif[t].mean()),
                     "gain": est, "ci_low": float(lo), "ci_high": float(hi), "bins": used})
    return pd.DataFrame(rows)


def saturation_by_bin(cs: Configurations, bins: int = 4, n_boot: int = 1000, level: float = 0.95,
                      seed: int = 0, threshold: float = 0.01) -> pd.DataFrame:
    """Per difficulty bin: problems, pass rate, the best configuration at its largest k, the gain
    of its last doubling of k with an interval, and whether it has saturated."""
    n, c = cs.n, cs.c
    level_bins = _bins(c.sum(axis=1) / n.sum(axis=1), bins)
    nmin = n.min(axis=0)
    rng = np.random.default_rng(seed)
    alpha = 1.0 - level
    rows = []
    for b in np.unique(level_bins):
        idx = np.flatnonzero(level_bins == b)
        best = None
        for j in range(n.shape[1]):
            ks = cs.ks[cs.ks <= nmin[j]]
            if ks.size < 2 or ks[-1] // 2 not in ks:
                continue
            x = np.asarray(cs.per_problem(j, [ks[-1] // 2, ks[-1]]), float)[idx]
            if best is None or x[:, 1].mean() > best[1][:, 1].mean():
                best = (j, x, int(ks[-1]))
        if best is None:
            continue
        j, x, k = best
        d = x[:, 1] - x[:, 0]
        w = rng.multinomial(idx.size, np.full(idx.size, 1.0 / idx.size), size=n_boot).astype(float) / idx.size
        boot = w @ (d - d.mean()) + d.mean()
        lo, hi = np.quantile(boot, [alpha / 2, 1 - alpha / 2])
        rows.append({"bin": int(b), "problems": int(idx.size),
                     "pass_rate": float(c[idx].sum() / n[idx].sum()), "best": cs.configs["label"].iloc[j],
                     "k": k, "accuracy": float(x[:, 1].mean()), "last_doubling_gain": float(d.mean()),
                     "ci_low": float(lo), "ci_high": float(hi), "saturated": bool(hi < threshold)})
    return pd.DataFrame(rows)
