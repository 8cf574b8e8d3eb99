"""``ttscale forecast INPUT --to K``: coverage at a k beyond (or within) the samples drawn.

INPUT is a counts table or a run directory, read and grouped as ``ttscale analyze`` does. For each
group and method (``--method NAME``, or ``all`` for every method of
``ttscale.analysis.forecast.METHODS``) it forecasts the benchmark coverage at ``k = K``.

``--from-k N`` first subsamples every problem to N samples without replacement (the correct
count drawn from the hypergeometric distribution, seeded by ``--seed``): a back-test of how well
a forecast from N samples matches what more samples give.

Output: a readable table, or with ``--json`` a JSON list on stdout, one object per (group,
method): the group columns, ``"method"``, ``"k"`` (= K), ``"coverage"`` (a float in [0, 1]),
and ``"from_k"`` (N, or null without ``--from-k``). A group in which no sample is correct has
nothing to forecast from: ``"coverage"`` is null there and ``"error"`` says why.

Methods (``ttscale.analysis.forecast``): ``power_law`` (the exponentiated power law fitted to the
measured curve, extrapolated; the default: it measured best in benchmarks/bench_forecast.py), ``beta`` (a beta distribution of per-problem pass rates fitted by
maximum likelihood), ``beta_eb`` (empirical Bayes, each problem's posterior under that
beta prior), ``beta_mixture`` (the same with a two-component beta mixture).
"""

from __future__ import annotations

import argparse
import json
from typing import Any

import numpy as np
import pandas as pd

from ttscale.errors import InputError


def subsample(counts: pd.DataFrame, n: int, seed: int) -> pd.DataFrame:
    """Each problem's counts as if only ``n`` of its samples had been drawn (without replacement).

    The number correct among n samples drawn without replacement from ``num_samples`` of which
    ``num_correct`` are correct is hypergeometric; one seeded draw per row, in row order.
    """
    rng = np.random.default_rng(seed)
    out = counts.copy()
    total = out["num_samples"].to_numpy(np.int64)
    good = out["num_correct"].to_numpy(np.int64)
    out["num_correct"] = rng.hypergeometric(good, total - good, n).astype(np.int64)
    out["num_samples"] = np.int64(n)
    return out


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "forecast",
        help="forecast coverage at a larger k from the samples drawn",
        description=__doc__.split("\n\n")[0].replace("``", ""),
    )
    p.add_argument("input", help="counts table (CSV/Parquet) or run directory")
    p.add_argument("--to", type=int, required=True, metavar="K", help="k to forecast coverage at")
    p.add_argument("--allow-stale", action="store_true",
                   help="run directory: warn instead of refusing when a verifier has not judged every sample")
    p.add_argument("--method", default=None,
                   help="forecast method (power_law, beta, beta_eb, beta_mixture; default "
                        "power_law), or 'all'")
    p.add_argument("--from-k", type=int, metavar="N",
                   help="subsample each problem to N samples first (without replacement)")
    p.add_argument("--seed", type=int, default=0, help="seed of the --from-k subsampling")
    p.add_argument("--group-by", help="comma-separated grouping columns to keep (others pooled)")
    p.add_argument("--json", action="store_true", help="print a JSON list")
    p.set_defaults(func=run)


def forecast_records(
    counts: pd.DataFrame, group_cols: list[str], to_k: int, methods: list[str],
    source: str = "counts",
) -> list[dict[str, Any]]:
    """One record per (group, method): group values, method, k, coverage.

    A group with no correct sample at all has nothing to forecast from: its coverage is null
    and ``"error"`` says why (the other groups are still forecast).
    """
    from ttscale.analysis.forecast import forecast_coverage

    groups = [((), counts)] if not group_cols else counts.groupby(group_cols, sort=True)
    out = []
    for key, g in groups:
        key = key if isinstance(key, tuple) else (key,)
        n = g["num_samples"].to_numpy(np.int64)
        c = g["num_correct"].to_numpy(np.int64)
        for method in methods:
            rec = {col: (v.item() if isinstance(v, np.generic) else v)
                   for col, v in zip(group_cols, key, strict=True)}
            rec.update({"method": method, "k": int(to_k)})
            if (c > 0).any():
                rec["coverage"] = float(forecast_coverage(n, c, to_k, method, source))
            else:
                rec.update(coverage=None, error="no correct sample in this group")
            out.append(rec)
    return out


def run(args: argparse.Namespace) -> int:
    from ttscale.analysis.pipeline import load_input
    from ttscale.commands.analyze import parse_columns
    from ttscale.counts import check_k

    src = args.input
    if args.to < 1:
        raise InputError(f"{src}: --to must be at least 1, got {args.to}")
    inp = load_input(src, parse_columns(args.group_by), allow_stale=args.allow_stale)
    from ttscale.analysis.forecast import DEFAULT_METHOD, METHODS

    names = list(METHODS)
    if args.method in (None, ""):
        methods = [DEFAULT_METHOD]
    elif args.method == "all":
        methods = names
    elif args.method in METHODS:
        methods = [args.method]
    else:
        raise InputError(f"{src}: --method {args.method!r} is not a forecast method "
                         f"(known: {', '.join(names)}, all)")
    counts = inp.counts
    if args.from_k is not None:
        check_k(args.from_k, int(counts["num_samples"].min()), src, what="--from-k")
        counts = subsample(counts, args.from_k, args.seed)
    records = forecast_records(counts, inp.group_cols, args.to, methods, str(src))
    for r in records:
        r["from_k"] = args.from_k
    if args.json:
        print(json.dumps(records, indent=2))
        return 0
    cols = [*inp.group_cols, "method", "k", "coverage"]
    table = pd.DataFrame(records, columns=cols)
    table["coverage"] = table["coverage"].map(lambda x: "-" if x is None or pd.isna(x) else f"{x:.4f}")
    print(table.to_string(index=False))
    return 0
