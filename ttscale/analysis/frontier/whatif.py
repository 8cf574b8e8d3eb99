"""What-if beyond the run on the k axis: each configuration's coverage forecast at k larger than its
samples per problem, placed on the cost axes and marked ``extrapolated``.

For each coverage configuration (selection methods are not forecast) and each factor f, the
coverage at ``k = f * n`` (n: the configuration's smallest samples per problem) is forecast by
:func:`ttscale.analysis.forecasting.interval.forecast_records` (``method``, default the
empirical-Bayes Beta ``beta_eb``; its own ``level`` interval from bootstrap refits) and costed like
any candidate (cost is linear in k). :func:`whatif_frontier` then gives the frontier of the
observed candidates and these together, each point marked ``extrapolated`` where it rests on a
forecast: a model's extrapolation, not an estimate, and outside the band of the observed frontier.
The budget axis beyond the budgets sampled: :mod:`ttscale.analysis.frontier.whatif_budget`.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ttscale.analysis.frontier.band import frontier_points
from ttscale.analysis.frontier.configs import Configurations
from ttscale.errors import InputError, arg

#: the forecast method used by default
DEFAULT_WHATIF_METHOD = "beta_eb"


def extrapolate_k(cs: Configurations, factors: list[int], method: str = DEFAULT_WHATIF_METHOD,
                  level: float = 0.9, n_boot: int = 100, seed: int = 0) -> pd.DataFrame:
    """One row per (coverage configuration, factor): ``config``, ``label``, ``k``, ``accuracy`` (the
    forecast), ``ci_low``/``ci_high``, ``cost_<metric>``, ``extrapolated`` (True), ``method``."""
    from ttscale.analysis.forecasting.interval import forecast_records

    if not factors or any(int(f) != f or f < 2 for f in factors):
        raise InputError(f"{cs.source}: {arg('whatif_k', flag='--what-if-k')} factors must be whole numbers >= 2, got {factors}")
    rows = []
    nmin = cs.n.min(axis=0)
    for j in range(cs.n.shape[1]):
        if j in cs.fixed or not (cs.c[:, j] > 0).any():
            continue
        counts = pd.DataFrame({"problem": np.arange(cs.n.shape[0]), "num_samples": cs.n[:, j],
                               "num_correct": cs.c[:, j]})
        for f in sorted(set(int(x) for x in factors)):
            k = int(f * nmin[j])
            rec = forecast_records(counts, [], k, [method], cs.source, level, n_boot, seed)[0]
            if rec.get("coverage") is None:
                continue
            row = {"config": j, "label": cs.configs["label"].iloc[j], "k": k, "accuracy": rec["coverage"],
                   "ci_low": rec.get("ci_low"), "ci_high": rec.get("ci_high"), "extrapolated": True,
                   "method": method}
            for m in cs.metrics:
                row[f"cost_{m}"] = float(cs.mean_cost(m, j, k))
            rows.append(row)
    return pd.DataFrame(rows)


def whatif_frontier(candidates: pd.DataFrame, extra: pd.DataFrame, metrics: list[str]) -> pd.DataFrame:
    """Frontier points of observed and extrapolated candidates together, per metric, with
    ``extrapolated`` marking the points that rest on a forecast."""
    if not len(extra):
        return pd.DataFrame()
    both = pd.concat([candidates.assign(extrapolated=False), extra], ignore_index=True)
    out = []
    for m in metrics:
        pts = both.iloc[frontier_points(both[f"cost_{m}"].to_numpy(), both["accuracy"].to_numpy())]
        out.append(pts[["label", "config", "k", "accuracy", "ci_low", "ci_high", f"cost_{m}", "extrapolated"]]
                   .rename(columns={f"cost_{m}": "cost"}).assign(metric=m))
    return pd.concat(out, ignore_index=True)[["metric", "cost", "label", "config", "k", "accuracy", "ci_low",
                                              "ci_high", "extrapolated"]]
