"""The next move: from a chosen (configuration, k), what one more step of compute buys.

Moves from (configuration j, k): ``double k`` (2k samples, when the run has them); ``double
budget`` (the configuration with twice the budget, all else equal, same k); and for every other
configuration column (``temperature``, ``model``, ``verifier``, ...) each other value it takes,
all else equal, same k. For each: the accuracy change with its paired bootstrap percentile
interval over problems, the cost change per metric, and the accuracy gained per unit of cost
(``gain_per_cost``: per 1e12 for FLOPs and eFLOPs, per 1e3 tokens, per dollar) with its interval
(the accuracy interval divided by the cost change: costs are treated as known). A move that costs
nothing more or less is marked ``cheaper`` rather than given a rate.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ttscale.analysis.frontier.configs import Configurations

#: the unit ``gain_per_cost`` is per, for each metric
PER_UNIT = {"tokens": 1e3, "flops": 1e12, "kinetics_eflops": 1e12, "dollars": 1.0}


def _moves(cs: Configurations, j: int, k: int) -> list[tuple[str, int, int]]:
    """(move, target configuration, target k) for every move possible from (j, k)."""
    out = []
    if cs.has_k(j, 2 * k):
        out.append(("double k", j, 2 * k))
    keys = cs.configs[cs.axes]
    here = keys.iloc[j]
    for col in cs.axes:
        rest = [a for a in cs.axes if a != col]
        same = (keys[rest] == here[rest]).all(axis=1) if rest else pd.Series(True, index=keys.index)
        for t in np.flatnonzero(same.to_numpy() & (keys[col] != here[col]).to_numpy()):
            if not cs.has_k(int(t), k):
                continue
            if col == "budget":
                if int(keys[col].iloc[t]) == 2 * int(here[col]) and int(here[col]) > 0:
                    out.append(("double budget", int(t), k))
                continue
            out.append((f"{col}={keys[col].iloc[t]}", int(t), k))
    return out


def next_moves(cs: Configurations, at: list[tuple[int, int]], n_boot: int = 1000,
               level: float = 0.95, seed: int = 0) -> pd.DataFrame:
    """One row per (starting point in ``at``, move): ``from``, ``k``, ``move``, ``to``, ``to_k``,
    ``delta_accuracy`` with ``ci_low``/``ci_high``, and per metric ``delta_cost_<m>`` and
    ``gain_per_cost_<m>`` with ``gain_ci_low_<m>``/``gain_ci_high_<m>``."""
    p = cs.n.shape[0]
    rng = np.random.default_rng(seed)
    w = rng.multinomial(p, np.full(p, 1.0 / p), size=n_boot).astype(np.float64) / p
    alpha = 1.0 - level
    rows = []
    for j, k in at:
        base = cs.per_problem(j, [k])[:, 0]
        for move, t, tk in _moves(cs, j, k):
            d = cs.per_problem(t, [tk])[:, 0] - base
            d[np.abs(d) < 1e-12] = 0.0  # equal estimates computed two ways differ by rounding only
            est = float(d.mean())
            boot = w @ (d - est) + est
            lo, hi = (float(v) for v in np.quantile(boot, [alpha / 2, 1 - alpha / 2]))
            row = {"from": cs.configs["label"].iloc[j], "k": int(k), "move": move,
                   "to": cs.configs["label"].iloc[t], "to_k": int(tk), "delta_accuracy": est,
                   "ci_low": lo, "ci_high": hi, "significant": bool(lo > 0 or hi < 0)}
            for m in cs.metrics:
                dc = float(cs.mean_cost(m, t, tk) - cs.mean_cost(m, j, k))
                row[f"delta_cost_{m}"] = dc
                if dc > 0:
                    scale = PER_UNIT[m] / dc
                    row[f"gain_per_cost_{m}"] = est * scale
                    row[f"gain_ci_low_{m}"], row[f"gain_ci_high_{m}"] = lo * scale, hi * scale
                else:
                    row[f"gain_per_cost_{m}"] = np.nan
                    row[f"gain_ci_low_{m}"] = row[f"gain_ci_high_{m}"] = np.nan
                row[f"cheaper_{m}"] = dc <= 0
            rows.append(row)
    return pd.DataFrame(rows)
