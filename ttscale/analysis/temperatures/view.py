"""The temperature view: coverage against temperature at fixed k, the best temperature per k, and
the best split of a budget over temperatures with its coverage estimated out of sample.

From per-problem counts at T temperatures (``n``, ``c``: (problems, T)):

- :func:`coverage_by_temperature`: unbiased pass@k at each (k, temperature) with a percentile
  bootstrap CI over problems;
- :func:`best_temperatures`: per k the temperature with the highest pass@k, the runner-up, the
  gap between them with a paired bootstrap CI, and ``p_best``: the share of bootstrap resamples
  in which the chosen temperature stays best (low values: the choice is not settled by the data);
- :func:`budget_splits`: per k the exact best split of k samples over the temperatures
  (:func:`ttscale.analysis.temperatures.best.best_split`) and its coverage **cross-fitted**: each
  problem's samples at each temperature are split into random halves (a hypergeometric draw of
  the successes, the same law as splitting the samples themselves), the split is chosen on one
  half and its pooled coverage measured on the other, both ways, over ``n_splits`` random
  halvings. ``coverage_in_sample`` (chosen and measured on all samples) is optimistic;
  ``optimism`` is the mean in-half minus out-of-half coverage. A half holds n/2 samples per
  temperature, which caps the split chosen on it; k above the sum of those caps gets NaN. It
  estimates the coverage of a split chosen from n/2 samples, so it errs slightly low for one
  chosen from all n. Whether splitting beats the best single temperature at all is
  :mod:`ttscale.analysis.temperatures.gain`'s question: the split's gain cross-fitted over problem
  folds with a t interval; ``split`` is the exact best split only when that interval lies above
  0, else all k samples at the best temperature with the verdict "no split is better than T=t
  alone: the data do not choose" (``split_found`` keeps the optimiser's allocation).

:func:`temperature_view` runs the three on every group of a counts frame that has a temperature
column; :func:`write_view` writes ``temperatures.parquet`` (coverage per temperature),
``temperature_best.parquet`` (best temperature and split per k) and the
``coverage_vs_temperature`` figure.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ttscale.analysis.laws.power_law import pass_at_k_matrix
from ttscale.analysis.temperatures.best import counts_by_temperature
from ttscale.analysis.temperatures.gain import (
    FOLDS,
    TIE,
    choose,
    claim,
    first_best,
    fold_gains,
    gain_interval,
)
from ttscale.errors import InputError

#: what the report says above the table
REPORT_NOTE = (
    "best_temperature: the temperature with the highest pass@k at that k; gap: its lead over the "
    "runner-up with a paired bootstrap CI over problems; p_best: the share of bootstrap resamples in "
    "which it stays best. split_found: the exact best split of k samples over the temperatures; "
    "split_gain: its gain over the best temperature alone, chosen on other problems and measured on "
    "each (cross-fitted over problem folds), with a t interval; split: split_found when that interval "
    "is above 0 (split_better), else all k samples at the best temperature (split_verdict says why); "
    "coverage_in_sample is split_found's, chosen and measured on the same samples (optimistic); "
    "coverage_cross_fitted chooses on half of each problem's samples and measures on the other half."
)


def _per_problem(n: np.ndarray, c: np.ndarray, ks: np.ndarray) -> np.ndarray:
    """(P, T, K) unbiased pass@k per problem, temperature and k."""
    return np.stack([pass_at_k_matrix(n[:, t], c[:, t], ks) for t in range(n.shape[1])], axis=1)


def _boot_means(est: np.ndarray, n_boot: int, seed: int) -> np.ndarray:
    """(B, T, K) means over problems under multinomial bootstrap weights."""
    rng = np.random.default_rng(seed)
    num_p = est.shape[0]
    w = rng.multinomial(num_p, np.full(num_p, 1.0 / num_p), size=n_boot) / num_p
    return np.einsum("bp,ptk->btk", w, est)


def coverage_by_temperature(n: Any, c: Any, temperatures: list[float], ks: Any, n_boot: int = 1000,
                            ci: float = 0.95, seed: int = 0) -> pd.DataFrame:
    """Rows (k, temperature, coverage, ci_low, ci_high)."""
    n, c, ks = np.asarray(n), np.asarray(c), np.asarray(ks, dtype=np.int64)
    est = _per_problem(n, c, ks)
    mean = est.mean(axis=0)
    rows = {"k": np.repeat(ks, len(temperatures)), "temperature": np.tile(temperatures, len(ks)),
            "coverage": mean.T.ravel()}
    if n_boot > 0:
        boot = _boot_means(est, n_boot, seed)
        alpha = (1 - ci) / 2
        rows["ci_low"] = np.quantile(boot, alpha, axis=0).T.ravel()
        rows["ci_high"] = np.quantile(boot, 1 - alpha, axis=0).T.ravel()
    else:
        rows["ci_low"] = rows["ci_high"] = np.full(len(rows["k"]), np.nan)
    return pd.DataFrame(rows)


def best_temperatures(n: Any, c: Any, temperatures: list[float], ks: Any, n_boot: int = 1000,
                      ci: float = 0.95, seed: int = 0) -> pd.DataFrame:
    """Per k: best_temperature, coverage, runner_up, gap (+ paired CI), p_best."""
    n, c, ks = np.asarray(n), np.asarray(c), np.asarray(ks, dtype=np.int64)
    est = _per_problem(n, c, ks)
    mean = est.mean(axis=0)  # (T, K)
    boot = _boot_means(est, n_boot, seed) if n_boot > 0 else None
    alpha = (1 - ci) / 2
    rows = []
    for j, k in enumerate(ks):
        best = first_best(mean[:, j])  # the first of those within TIE of the top, as the split's
        order = [best, *(int(t) for t in np.argsort(-mean[:, j], kind="stable") if t != best)]
        top = mean[best, j]
        tied = [float(temperatures[t]) for t in order if abs(mean[t, j] - top) <= TIE]
        rec: dict[str, Any] = {"k": int(k), "best_temperature": float(temperatures[best]),
                               "coverage": float(mean[best, j]),
                               # the temperatures as good as the best: >1 means the data do not choose
                               "tied": ",".join(f"{t:g}" for t in tied) if len(tied) > 1 else ""}
        if len(order) > 1:
            second = int(order[1])
            rec.update(runner_up=float(temperatures[second]),
                       gap=float(mean[best, j] - mean[second, j]))
            if boot is not None:
                diff = boot[:, best, j] - boot[:, second, j]
                rec.update(gap_ci_low=float(np.quantile(diff, alpha)),
                           gap_ci_high=float(np.quantile(diff, 1 - alpha)),
                           p_best=_p_best(boot[:, :, j], best))
        rows.append(rec)
    return pd.DataFrame(rows)


def _p_best(boot: np.ndarray, best: int) -> float:
    """The share of resamples (rows of ``boot``, one column a temperature) in which ``best``
    has the highest coverage, a tie shared equally among the tied: identical counts give 1/T."""
    top = boot.max(axis=1, keepdims=True)
    winners = np.abs(boot - top) <= 1e-12
    return float(np.mean(winners[:, best] / winners.sum(axis=1)))


def _halves(n: np.ndarray, c: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, ...]:
    n_a = n // 2
    c_a = rng.hypergeometric(c, n - c, n_a)
    return n_a, c_a, n - n_a, c - c_a


def _logs(n: np.ndarray, c: np.ndarray) -> list[np.ndarray]:
    from ttscale.analysis.temperatures.best import _log_miss_table

    caps = n.min(axis=0)
    return [_log_miss_table(n[:, t], c[:, t], int(caps[t])) for t in range(n.shape[1])]


class _Halves:
    """The ``n_splits`` random halvings of (n, c) (seeded as before: one generator, in order),
    each half's log miss tables computed once and shared by every budget."""

    def __init__(self, n: np.ndarray, c: np.ndarray, n_splits: int, seed: int) -> None:
        rng = np.random.default_rng(seed)
        self.pairs = []
        self.cap = int((n // 2).min(axis=0).sum())
        for _ in range(n_splits):
            n_a, c_a, n_b, c_b = _halves(n, c, rng)
            self.pairs.append(((n_a, _logs(n_a, c_a)), (n_b, _logs(n_b, c_b))))

    def score(self, total: int) -> tuple[float, float]:
        from ttscale.analysis.temperatures.best import coverage_from_logs, split_from_logs

        if total > self.cap:
            return float("nan"), float("nan")
        out, gap = [], []
        for a, b in self.pairs:
            for (nf, lf), (_, le) in ((a, b), (b, a)):
                alloc, _ = split_from_logs(lf, nf.min(axis=0), total)
                fit, held = coverage_from_logs(lf, alloc), coverage_from_logs(le, alloc)
                out.append(held)
                gap.append(fit - held)
        return float(np.mean(out)), float(np.mean(gap))


def cross_fitted_split(n: Any, c: Any, total: int, n_splits: int = 5, seed: int = 0
                       ) -> tuple[float, float]:
    """(out-of-half coverage, optimism) of the best split of ``total`` chosen on half the samples."""
    n, c = np.asarray(n, dtype=np.int64), np.asarray(c, dtype=np.int64)
    if total > int((n // 2).min(axis=0).sum()):
        return float("nan"), float("nan")
    return _Halves(n, c, n_splits, seed).score(int(total))


def budget_splits(n: Any, c: Any, temperatures: list[float], ks: Any, n_splits: int = 5,
                  seed: int = 0, ci: float = 0.95, folds: int = FOLDS) -> pd.DataFrame:
    """Per k: what the view recommends (``split``: the exact best split when its gain over the best
    single temperature is established, else all k samples at that temperature), ``split_better``,
    ``split_verdict``, the split's cross-fitted gain with its CI (see
    :mod:`ttscale.analysis.temperatures.gain`), the optimiser's own allocation (``split_found``),
    its in-sample and cross-fitted coverage, the optimism.

    The log miss tables of the samples and of each random half are computed once for all k."""
    from ttscale.analysis.temperatures.best import coverage_from_logs

    n, c = np.asarray(n, dtype=np.int64), np.asarray(c, dtype=np.int64)
    logs, caps = _logs(n, c), n.min(axis=0)
    halves = _Halves(n, c, n_splits, seed)
    use = [int(k) for k in np.asarray(ks, dtype=np.int64) if k <= int(caps.sum())]
    found = [choose(logs, caps, k) for k in use]
    gains = np.stack([fold_gains(logs, caps, k, folds, seed) for k in use], axis=1) if use else None
    mean, low, high = gain_interval(gains, ci) if use else ((), (), ())
    rows = []
    for j, k in enumerate(use):
        alloc, best, exact = found[j]
        held, optimism = halves.score(k)
        rows.append({"k": k, **claim(alloc, temperatures, best, float(low[j]), float(high[j])),
                     "split_gain": float(mean[j]), "split_gain_ci_low": float(low[j]),
                     "split_gain_ci_high": float(high[j]),
                     "split_found": json.dumps({str(t): a for t, a in zip(temperatures, alloc, strict=True)}),
                     "split_exact": exact, "coverage_in_sample": coverage_from_logs(logs, alloc),
                     "coverage_cross_fitted": held, "optimism": optimism})
    return pd.DataFrame(rows)


@dataclass
class TemperatureView:
    """Coverage per (group, k, temperature) and the best temperature and split per (group, k)."""

    by_temperature: pd.DataFrame
    best: pd.DataFrame
    group_cols: list[str]


def view_ks(n_min: int) -> list[int]:
    """1, 2, 4, ... up to the smallest n, and n itself."""
    ks = [2 ** i for i in range(int(np.log2(max(n_min, 1))) + 1)]
    return ks + ([n_min] if ks[-1] != n_min else [])


def temperature_view(counts: pd.DataFrame, group_cols: list[str], ks: list[int] | None = None,
                     n_boot: int = 1000, ci: float = 0.95, seed: int = 0, n_splits: int = 5,
                     temperature_col: str = "temperature", source: str = "counts") -> TemperatureView:
    """The view for every group (``group_cols`` less the temperature column) of a counts frame."""
    if temperature_col not in counts.columns:
        raise InputError(f"{source}: no '{temperature_col}' column: the temperature view needs counts "
                         "at two or more temperatures")
    gcols = [g for g in group_cols if g != temperature_col]
    groups = counts.groupby(gcols, sort=True, dropna=False) if gcols else [((), counts)]
    tables, bests = [], []
    for key, g in groups:
        key = key if isinstance(key, tuple) else (key,)
        n, c, temps = counts_by_temperature(g, temperature_col, source)
        if len(temps) < 2:
            continue
        n_min = int(n.min())
        use = sorted({int(k) for k in ks if 1 <= k <= n_min}) if ks else view_ks(n_min)
        if not use:
            raise InputError(f"{source}: field 'ks': none within 1..{n_min} (the smallest num_samples)")
        table = coverage_by_temperature(n, c, temps, use, n_boot, ci, seed)
        best = best_temperatures(n, c, temps, use, n_boot, ci, seed)
        best = best.merge(budget_splits(n, c, temps, use, n_splits, seed, ci), on="k", how="left")
        for frame in (table, best):
            for col, val in zip(gcols, key, strict=True):
                frame.insert(list(gcols).index(col), col, val)
        tables.append(table)
        bests.append(best)
    if not tables:
        raise InputError(f"{source}: the temperature view needs counts at two or more temperatures")
    return TemperatureView(pd.concat(tables, ignore_index=True), pd.concat(bests, ignore_index=True), gcols)


def view_figure(view: TemperatureView, max_lines: int = 6) -> Any:
    """Coverage against temperature, one line per k (CI bars), the best temperature starred."""
    from ttscale.analysis.figures import _pyplot

    plt = _pyplot()
    groups = (list(view.by_temperature.groupby(view.group_cols, sort=True, dropna=False))
              if view.group_cols else [((), view.by_temperature)])
    fig, axes = plt.subplots(1, len(groups), figsize=(5.5 * len(groups), 4.2), squeeze=False)
    for ax, (key, g) in zip(axes[0], groups, strict=True):
        ks = sorted(g["k"].unique())
        if len(ks) > max_lines:
            ks = [ks[int(round(i))] for i in np.linspace(0, len(ks) - 1, max_lines)]
        for k in ks:
            row = g[g["k"] == k].sort_values("temperature")
            err = np.vstack([row["coverage"] - row["ci_low"], row["ci_high"] - row["coverage"]])
            line = ax.errorbar(row["temperature"], row["coverage"],
                               yerr=None if np.isnan(err).all() else err, marker="o", ms=3,
                               capsize=2, label=f"k={k}")
            top = row.loc[row["coverage"].idxmax()]
            ax.plot([top["temperature"]], [top["coverage"]], marker="*", ms=12,
                    color=line[0].get_color())
        key = key if isinstance(key, tuple) else (key,)
        ax.set_title(", ".join(f"{c}={v}" for c, v in zip(view.group_cols, key, strict=True)) or "coverage")
        ax.set_xlabel("temperature")
        ax.set_ylabel("coverage (pass@k), best starred")
        ax.grid(alpha=0.3)
    # one legend beside the last panel, never over the lines
    axes[0][-1].legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0)
    fig.tight_layout()
    return fig


def write_view(view: TemperatureView, out_dir: str | Path) -> list[Path]:
    """temperatures.parquet, temperature_best.parquet and figures/coverage_vs_temperature.*"""
    from ttscale.analysis.figures import save_figure
    from ttscale.rundir.store import atomic_write_table

    out = Path(out_dir)
    fig = view_figure(view)
    written = [atomic_write_table(out / "temperatures.parquet", view.by_temperature),
               atomic_write_table(out / "temperature_best.parquet", view.best)]
    written += save_figure(fig, out / "figures" / "coverage_vs_temperature")
    return written
