"""``ttscale forecast INPUT --to K``: coverage at a k beyond (or within) the samples drawn.

INPUT is a counts table or a run directory, read and grouped as ``ttscale analyze`` does. For each
group and method (``--method NAME``, or ``all`` for every method of
``ttscale.analysis.forecasting.forecast.METHODS``) it forecasts the benchmark coverage at ``k = K``.

``--from-k N`` first subsamples every problem to N samples without replacement (the correct
count drawn from the hypergeometric distribution, seeded by ``--seed``): a back-test of how well
a forecast from N samples matches what more samples give.

Output: a readable table, or with ``--json`` a JSON list on stdout, one object per (group,
method): the group columns, ``"method"``, ``"k"`` (= K), ``"coverage"`` (a float in [0, 1]),
``"ci_low"``/``"ci_high"`` (its ``--level`` interval, default 90%; null with ``--n-boot 0``),
``"ci_level"``, ``"floor_sd"``, ``"extrapolation_sd"`` and ``"model_sd"`` (the interval's parts:
which unsolved problems are solvable, the spread of forecast minus truth in a parametric bootstrap
from the fitted difficulty, and the other methods' spread, spanned only where the power law fails
its extrapolation back-test; see ``ttscale.analysis.forecasting.interval``), ``"extrapolated"`` (K beyond
the samples per problem: a model's extrapolation, not an estimate), ``"from_n"`` (the smallest
samples per problem used), ``"from_k"`` (N, or null without ``--from-k``), and ``"law_status"``,
``"law_reasons"`` and ``"law_warnings"`` (below). A group in which no sample is correct has
nothing to forecast from: ``"coverage"`` is null there and ``"error"`` says why. Library:
``ttscale.forecast_records`` / ``ttscale.forecast``.

Is the law followed? A ``power_law`` forecast extrapolates the law fitted to the measured curve,
so each ``power_law`` record carries the verdict ``ttscale analyze`` gives that law on the
group's counts as forecast from (after ``--from-k``): ``"law_status"`` is ``"ok"``,
``"rejected"`` (the law leaves the curve's 95% bootstrap band at some measured k) or
``"unchecked"``, with its ``"law_reasons"`` and ``"law_warnings"`` (e.g. log(-log coverage)
curved in log k: extrapolation unreliable), as fits.json's ``fit_status``, ``fit_reasons``,
``fit_warnings``. On a run directory whose analysis is fresh (``analysis/state.json`` matches
the run), grouped the same way and fitted to the same k range (no ``--ceiling``/``--max-k``),
its fits.json verdict is reused; otherwise it is computed as a default analysis would
(``--n-boot 1000 --law-boot 300``: about 0.1 CPU s a group at 500 problems x 1,000 samples).
Other methods carry null there. The table shows it as the ``law`` column, and for each rejected
law one line follows on stderr (also with ``--json``): ``warning: <group>: the power law is
rejected (<first reason>); its forecast extrapolates a law the data do not follow: compare
--method all``.

Safe to extrapolate? Each ``power_law`` record (asked for, or chosen by ``auto``) also carries
``"law_extrapolation"`` (``"safe"``, ``"unsafe"``, ``"unchecked"``) and
``"law_extrapolation_reasons"``: the law fitted on k <= n/10 back-tested against the coverage
measured at n (``ttscale.analysis.laws.extrapolation``); an ``unsafe`` law gets a warning line on
stderr. At K <= n every method returns the unbiased estimate with the measured curve's interval.

``--method auto`` chooses per group: ``power_law`` where the law passes its extrapolation
back-test, ``beta_zi_eb`` where the law predicted the measured coverage at n too high (a ceiling),
else the method whose back-test inside the data (n/10 -> n) errs least
(``ttscale.analysis.forecasting.forecast.choose_method``); the record keeps ``"method": "auto"``
and adds ``"chosen_method"``, ``"method_reason"`` and ``"backtest_errors"``.

Methods (``ttscale.analysis.forecasting.forecast``): ``power_law`` (the exponentiated power law fitted to the
measured curve, extrapolated; the default, see benchmarks/bench_forecast.py: no method beats it
on every dataset), ``beta`` (a beta distribution of per-problem pass rates fitted by maximum
likelihood), ``beta_eb`` (empirical Bayes, each problem's posterior under that beta prior),
``beta_mixture`` (the same with a two-component beta mixture), ``beta_zi_eb`` (``beta_eb`` with a
point mass at p = 0 in the prior).
"""

from __future__ import annotations

import argparse
import json
import sys


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
                   help="forecast method (power_law, beta, beta_eb, beta_mixture, beta_zi_eb; default "
                        "power_law), 'auto' (chosen per group by a back-test inside the data), or 'all'")
    p.add_argument("--from-k", type=int, metavar="N",
                   help="subsample each problem to N samples first (without replacement)")
    p.add_argument("--seed", type=int, default=0, help="seed of the --from-k subsampling")
    p.add_argument("--group-by", help="comma-separated grouping columns to keep (others pooled)")
    p.add_argument("--level", type=float, default=0.9, help="interval level (default 0.9)")
    p.add_argument("--n-boot", type=int, default=100,
                   help="bootstrap refits for the interval (0: no interval; default 100; the Beta "
                        "methods refit slowly: use fewer)")
    p.add_argument("--json", action="store_true", help="print a JSON list")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import pandas as pd

    from ttscale.api import forecast_records
    from ttscale.commands.analyze import parse_columns

    records = forecast_records(args.input, args.to, method=args.method, from_k=args.from_k,
                               seed=args.seed, group_by=parse_columns(args.group_by),
                               allow_stale=args.allow_stale, level=args.level,
                               n_boot=args.n_boot)
    group_cols = [c for c in (records[0] if records else {})
                  if c not in ("method", "k", "coverage", "error", "from_k", "from_n", "extrapolated",
                               "ci_low", "ci_high", "ci_level", "floor_sd", "extrapolation_sd",
                               "model_sd", "law_status", "law_reasons", "law_warnings",
                               "law_extrapolation", "law_extrapolation_reasons", "method_reason",
                               "backtest_errors", "chosen_method", "interval_note",
                               "ceiling_forecast")]
    if args.json:
        print(json.dumps(records, indent=2))
    else:
        cols = [*group_cols, "method", "k", "coverage", "ci_low", "ci_high", "law_status"]
        table = pd.DataFrame(records, columns=cols)
        chosen = [r.get("chosen_method") for r in records]
        table["method"] = [m if c is None else f"auto: {c}" for m, c in zip(table["method"], chosen,
                                                                            strict=True)]
        for col in ("coverage", "ci_low", "ci_high"):
            table[col] = table[col].map(lambda x: "-" if x is None or pd.isna(x) else f"{x:.4f}")
        table["law_status"] = table["law_status"].map(lambda x: "-" if x is None or pd.isna(x) else x)
        table = table.rename(columns={"ci_low": f"{args.level:.0%} low",
                                      "ci_high": f"{args.level:.0%} high", "law_status": "law"})
        print(table.to_string(index=False))
    for line in rejected_law_lines(records, group_cols):
        print(line, file=sys.stderr)
    return 0


def rejected_law_lines(records: list[dict], group_cols: list[str]) -> list[str]:
    """One line per group whose power law is rejected (printed on stderr after the output)."""
    out = []
    for r in records:
        law = (r.get("chosen_method") or r.get("method")) == "power_law"
        if law and r.get("law_status") == "rejected":
            group = ", ".join(f"{c}={r[c]}" for c in group_cols) or "all problems"
            why = (r.get("law_reasons") or ["it leaves the measured curve's band"])[0]
            out.append(f"warning: {group}: the power law is rejected ({why}); its forecast "
                       "extrapolates a law the data do not follow: compare --method all")
        elif law and r.get("law_extrapolation") == "unsafe":
            group = ", ".join(f"{c}={r[c]}" for c in group_cols) or "all problems"
            why = (r.get("law_extrapolation_reasons") or ["its back-test failed"])[0]
            out.append(f"warning: {group}: the power law fits the measured range but is not safe "
                       f"to extrapolate ({why}); compare --method auto")
    return out
