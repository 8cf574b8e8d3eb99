"""The frontier at each cost, its paired bootstrap band, and the configurations not significantly
worse than the best.

The frontier of a cost metric is ``F(x) = max { accuracy(m) : cost(m) <= x }`` over the candidates
m = (configuration, k); :func:`frontier_points` lists the candidates where it steps up.

Intervals come from one paired bootstrap over problems (every candidate is measured on the same
problems, so one multinomial weight matrix resamples them all together):

* **Band.** Simultaneous intervals for every candidate at once (max-t: the ``level`` quantile of
  ``max_m |A*_m - A_m| / se_m`` over resamples); if each true accuracy lies in its interval, the
  true frontier lies between the running maxima of the lower and of the upper ends, so the band
  ``[max_{cost<=x} low_m, max_{cost<=x} high_m]`` covers the whole true frontier with the
  simultaneous probability (tests/test_frontier.py checks >= 90% at 95% on synthetic runs). Costs
  are treated as known (their sampling error is not in the band).
* **Not significantly worse.** At a frontier point (best candidate b at cost x), each other
  configuration's best affordable candidate j (cost <= x) is compared with b by the percentile
  interval of the paired difference ``A_b - A_j``; j is not significantly worse when that interval
  reaches 0. ``p_best``: the share of resamples in which b's configuration stays the best
  affordable one.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ttscale.errors import InputError, arg


def frontier_points(cost: np.ndarray, acc: np.ndarray) -> np.ndarray:
    """Indices of the candidates where ``F`` steps up, in increasing cost (ties: the more accurate)."""
    cost = np.asarray(cost, float)
    acc = np.asarray(acc, float)
    order = np.lexsort((-np.round(acc, 12), cost))  # equal to rounding: the first listed wins
    out, best = [], -np.inf
    for i in order:
        if np.isfinite(acc[i]) and acc[i] > best + 1e-12:
            out.append(i)
            best = acc[i]
    return np.array(out, dtype=np.int64)


def frontier_at(cost: np.ndarray, value: np.ndarray, x: np.ndarray) -> np.ndarray:
    """``max { value[m] : cost[m] <= x }`` at each x (NaN where nothing is affordable)."""
    order = np.argsort(cost, kind="stable")
    run = np.maximum.accumulate(np.asarray(value, float)[order])
    pos = np.searchsorted(np.asarray(cost, float)[order], np.asarray(x, float), side="right") - 1
    return np.where(pos >= 0, run[np.maximum(pos, 0)], np.nan)


def boot_deviations(x: np.ndarray, n_boot: int, seed: int) -> np.ndarray:
    """(B, M) resampled mean minus mean of each column of the (P, M) per-problem matrix ``x``."""
    p = x.shape[0]
    rng = np.random.default_rng(seed)
    w = rng.multinomial(p, np.full(p, 1.0 / p), size=n_boot).astype(np.float32) / np.float32(p)
    dev = (x - x.mean(axis=0)).astype(np.float32)
    return w @ dev


def simultaneous_intervals(acc: np.ndarray, dev: np.ndarray, level: float) -> tuple[np.ndarray, np.ndarray, float]:
    """Max-t simultaneous intervals ``acc -/+ q * se`` (clipped to [0, 1]) and q."""
    se = dev.std(axis=0).astype(float)
    live = se > 1e-12
    if not live.any():
        return acc.copy(), acc.copy(), 0.0
    t = np.abs(dev[:, live]) / se[live]
    q = float(np.quantile(t.max(axis=1), level))
    return np.clip(acc - q * se, 0.0, 1.0), np.clip(acc + q * se, 0.0, 1.0), q


def _affordable_best(cand: pd.DataFrame, cost: np.ndarray, acc: np.ndarray, x: float) -> pd.Series:
    """Per configuration, the index of its most accurate candidate with cost <= x."""
    ok = cost <= x * (1 + 1e-12)
    sub = pd.DataFrame({"config": cand["config"].to_numpy()[ok], "acc": acc[ok], "i": np.flatnonzero(ok)})
    return sub.loc[sub.groupby("config")["acc"].idxmax(), ["config", "i"]].set_index("config")["i"]


def frontier_table(cand: pd.DataFrame, dev: np.ndarray, low: np.ndarray,
                   high: np.ndarray, metric: str, level: float) -> pd.DataFrame:
    """One row per frontier point of ``metric``: the best candidate, its accuracy with its
    simultaneous interval, the band there, ``p_best`` and the configurations not significantly worse."""
    cost = cand[f"cost_{metric}"].to_numpy()
    acc = cand["accuracy"].to_numpy()
    alpha = 1.0 - level
    rows = []
    for b in frontier_points(cost, acc):
        xc = cost[b]
        best = _affordable_best(cand, cost, acc, xc)
        others = best.drop(cand["config"].iloc[b], errors="ignore")
        diff = acc[b] - acc[others.to_numpy()]
        dd = dev[:, [b]] - dev[:, others.to_numpy()]
        lo = diff + np.quantile(dd, alpha / 2, axis=0) if len(others) else np.array([])
        close = [cand["label"].iloc[i] for i, v in zip(others.to_numpy(), lo, strict=True) if v <= 0]
        boot = acc[best.to_numpy()][None, :] + dev[:, best.to_numpy()]
        p_best = float(np.mean(best.index.to_numpy()[boot.argmax(axis=1)] == cand["config"].iloc[b]))
        rows.append({
            "metric": metric, "cost": float(xc), "label": cand["label"].iloc[b],
            "config": int(cand["config"].iloc[b]), "k": int(cand["k"].iloc[b]), "accuracy": float(acc[b]),
            "ci_low": float(low[b]), "ci_high": float(high[b]),
            "band_low": float(frontier_at(cost, low, [xc])[0]),
            "band_high": float(frontier_at(cost, high, [xc])[0]),
            "p_best": p_best, "n_not_worse": len(close), "not_worse": "; ".join(close),
        })
    return pd.DataFrame(rows)


def disagreements(cand: pd.DataFrame, a: str = "flops", b: str = "kinetics_eflops") -> pd.DataFrame:
    """Accuracy targets at which metrics ``a`` and ``b`` pick different configurations.

    For each frontier point of either metric (its accuracy as the target), the cheapest candidate
    reaching that accuracy under each metric; a row where the configurations differ, with
    ``cost_ratio_<b>``: what ``a``'s choice costs in ``b`` over what ``b``'s choice costs.
    """
    if f"cost_{a}" not in cand.columns or f"cost_{b}" not in cand.columns:
        return pd.DataFrame()
    acc = cand["accuracy"].to_numpy()
    ca, cb = cand[f"cost_{a}"].to_numpy(), cand[f"cost_{b}"].to_numpy()
    targets = np.unique(np.concatenate([acc[frontier_points(ca, acc)], acc[frontier_points(cb, acc)]]))
    rows = []
    for t in targets:
        ok = np.flatnonzero(acc >= t - 1e-12)
        ia, ib = ok[np.argmin(ca[ok])], ok[np.argmin(cb[ok])]
        if cand["config"].iloc[ia] != cand["config"].iloc[ib]:
            rows.append({"accuracy": float(t), f"{a}_choice": cand["label"].iloc[ia], f"{a}_k": int(cand["k"].iloc[ia]),
                         f"{b}_choice": cand["label"].iloc[ib], f"{b}_k": int(cand["k"].iloc[ib]),
                         f"cost_ratio_{b}": float(cb[ia] / cb[ib]) if cb[ib] > 0 else np.nan})
    return pd.DataFrame(rows)


def check_level(level: float, n_boot: int, source: str) -> None:
    if not 0 < level < 1:
        raise InputError(f"{source}: {arg('level')} must be in (0, 1), got {level}")
    if n_boot < 20:
        raise InputError(f"{source}: {arg('n_boot')} must be at least 20 for a band, got {n_boot}")
