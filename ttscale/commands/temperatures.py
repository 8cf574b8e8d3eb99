"""``ttscale temperatures INPUT``: coverage against temperature, the best temperature per k, and
the best split of k samples over temperatures with its cross-fitted coverage.

INPUT is a counts table with a ``temperature`` column or a run directory sampled at two or more
temperatures (grouped as ``ttscale analyze`` does, temperature apart). The logic is
``ttscale.temperatures`` (see ``ttscale.analysis.temperatures.view`` for the methods); this command prints
one row per (group, k): the best temperature with its coverage, the runner-up and the gap with a
paired bootstrap CI, ``p_best`` (share of bootstrap resamples where the best stays best), the
split of k samples over temperatures the view recommends (the exact best split only when its
cross-fitted gain over the best temperature has an interval above 0, else all on that
temperature) with that gain and its interval, the best split's in-sample coverage, its
cross-fitted coverage (chosen on half the samples, measured on the other half) and the optimism
between the two; below the table one line per verdict on splitting ("no split is better than T=t
alone: the data do not choose" when the interval holds 0). ``--json`` prints
``{"by_temperature": [...], "best": [...]}`` instead. ``--out DIR`` also writes
``DIR/temperatures.parquet``, ``DIR/temperature_best.parquet`` and
``DIR/figures/coverage_vs_temperature.{png,svg}`` (``ttscale analyze`` writes the same into a
run's analysis folder when the run has two or more temperatures).
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from ttscale.commands.analyze import parse_columns, parse_ks


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("temperatures", help="coverage vs temperature, best temperature per k, best budget split",
                       description=__doc__.split("\n\n")[0].replace("``", ""))
    p.add_argument("input", help="counts table with a temperature column, or a run directory")
    p.add_argument("--ks", help="comma-separated k (default: 1, 2, 4, ... up to the smallest n)")
    p.add_argument("--n-boot", type=int, default=1000, help="bootstrap resamples over problems")
    p.add_argument("--ci", type=float, default=0.95, help="confidence level")
    p.add_argument("--seed", type=int, default=0, help="seed of the bootstrap and the halvings")
    p.add_argument("--splits", type=int, default=5, help="random halvings for the cross-fitted coverage")
    p.add_argument("--group-by", help="comma-separated grouping columns to keep (others pooled)")
    p.add_argument("--out", help="also write the tables and the figure into this directory")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.add_argument("--allow-stale", action="store_true",
                   help="run directory: warn instead of refusing when a verifier has not judged every sample")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ttscale.api import temperatures

    ks = parse_ks(args.ks) if args.ks is not None else None
    view = temperatures(args.input, ks=ks, n_boot=args.n_boot, ci=args.ci, seed=args.seed,
                        splits=args.splits, group_by=parse_columns(args.group_by),
                        out=args.out or None, allow_stale=args.allow_stale)
    if args.json:
        print(json.dumps({"by_temperature": json.loads(view.by_temperature.to_json(orient="records")),
                          "best": json.loads(view.best.to_json(orient="records"))}, indent=1))
        return 0
    cols = [*view.group_cols, "k", "best_temperature", "tied", "coverage", "runner_up", "gap", "gap_ci_low",
            "gap_ci_high", "p_best", "split", "split_gain", "split_gain_ci_low", "split_gain_ci_high",
            "coverage_in_sample", "coverage_cross_fitted", "optimism"]
    table = view.best[[c for c in cols if c in view.best.columns]]
    print(table.to_string(index=False, float_format=lambda x: f"{x:.4f}"))
    if "tied" in view.best.columns and (view.best["tied"] != "").any():
        print("tied: temperatures with the same coverage as the best at that k; the data do not choose "
              "between them (p_best is shared among them)")
    for line in verdict_lines(view.best, view.group_cols):
        print(line)
    return 0


def verdict_lines(best: Any, group_cols: list[str]) -> list[str]:
    """One line per (group, verdict on splitting), naming the k it holds for."""
    if "split_verdict" not in best.columns:
        return []
    lines = []
    for key, rows in best.groupby([*group_cols, "split_verdict"], sort=False, dropna=False):
        key = key if isinstance(key, tuple) else (key,)
        where = ", ".join(f"{c}={v}" for c, v in zip(group_cols, key[:-1], strict=True))
        ks = ",".join(str(int(k)) for k in rows["k"])
        lines.append(f"split{' (' + where + ')' if where else ''}, k={ks}: {key[-1]}")
    return lines
