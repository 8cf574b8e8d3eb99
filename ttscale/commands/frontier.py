"""``ttscale frontier INPUT``: at each cost, the best configuration and k, how sure that is, and
where the next unit of compute should go.

INPUT is a counts table (every combination of its grouping columns, such as model, temperature,
budget, verifier, selection, is a configuration) or a run directory. The logic is
``ttscale.frontier`` (methods: ``ttscale.analysis.frontier``). Printed: the notes (where token
counts came from, what was assumed), per cost metric the frontier points (best configuration, k,
accuracy with its simultaneous interval, the band, p_best, the configurations not significantly
worse), where FLOPs and eFLOPs disagree, the next moves with intervals, the cross-fitted
per-difficulty allocation gain and saturation per difficulty bin. ``--json`` prints all of it as
JSON; ``--out DIR`` writes the tables, frontier.json and figures/frontier.{png,svg}.
"""

from __future__ import annotations

import argparse
import json

from ttscale.commands.analyze import parse_columns, parse_ks
from ttscale.errors import InputError


def parse_price(values: list[str] | None) -> dict[str, tuple[float, float]] | None:
    """``["0.1,0.2"]`` or ``["m1=0.1,0.2", "m2=1,2"]`` -> {model or "*": (in, out)}."""
    if not values:
        return None
    out = {}
    for v in values:
        key, _, pair = v.rpartition("=")
        parts = pair.split(",")
        try:
            a, b = (float(x) for x in parts)
        except ValueError as e:
            raise InputError(f"--price {v!r}: expected IN,OUT or MODEL=IN,OUT (dollars per million "
                             "tokens)") from e
        out[key or "*"] = (a, b)
    return out


def parse_at(values: list[str] | None) -> list[tuple[str, int]] | None:
    """``["temperature=0.6,budget=512@8"]`` -> [("temperature=0.6,budget=512", 8)]."""
    if not values:
        return None
    out = []
    for v in values:
        cfg, sep, k = v.rpartition("@")
        try:
            kk = int(k)
        except ValueError:
            kk = 0
        if not sep or not cfg or kk < 1:
            raise InputError(f"--at {v!r}: expected COLUMN=VALUE[,COLUMN=VALUE...]@K with K >= 1")
        out.append((cfg, kk))
    return out


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("frontier", help="compute-optimal frontier: best configuration and k at each cost",
                       description=__doc__.split("\n\n")[0].replace("``", ""))
    p.add_argument("input", help="counts table (CSV/Parquet) or run directory")
    p.add_argument("--out", help="also write the tables and the figure into this directory")
    p.add_argument("--ks", help="comma-separated k (default: 1, 2, 3, 4, 6, 8, 12, ... up to n)")
    p.add_argument("--metric", help="comma-separated cost metrics: tokens, flops, kinetics_eflops, "
                   "dollars (default: every one available)")
    p.add_argument("--n-boot", type=int, default=1000, help="paired bootstrap resamples over problems")
    p.add_argument("--level", type=float, default=0.95, help="confidence level of the band and intervals")
    p.add_argument("--seed", type=int, default=0, help="seed of the bootstrap and the halvings")
    p.add_argument("--model-shape", help="model shape (preset, 'embedded', a config.json) for configurations "
                   "whose model column names none")
    p.add_argument("--prompt-tokens", type=float, help="prompt tokens per problem (default: 512, assumed)")
    p.add_argument("--tokens-per-sample", type=float,
                   help="output tokens per sample where the table gives none and there is no budget")
    p.add_argument("--price", action="append", metavar="[MODEL=]IN,OUT",
                   help="dollars per million input and output tokens (repeat per model)")
    p.add_argument("--at", action="append", metavar="COL=V[,COL=V]@K",
                   help="evaluate the next move from this configuration and k (repeatable; default: "
                   "every frontier point of the first metric)")
    p.add_argument("--bins", type=int, default=4, help="difficulty bins of the per-difficulty allocation")
    p.add_argument("--no-allocation", action="store_true", help="skip the per-difficulty allocation")
    p.add_argument("--what-if-k", help="comma-separated factors: forecast each configuration's coverage at "
                   "that many times its samples and show the frontier with them, marked extrapolated")
    p.add_argument("--what-if-method", help="forecast method of --what-if-k (default: beta_eb)")
    p.add_argument("--what-if-budget", help="comma-separated factors of the largest budget: forecast each "
                   "configuration family's coverage there from the sequential law (where it fits), marked "
                   "extrapolated")
    p.add_argument("--json", action="store_true", help="print JSON instead of tables")
    p.add_argument("--allow-stale", action="store_true",
                   help="run directory: warn instead of refusing when a verifier has not judged every sample")
    p.set_defaults(func=run)


def _records(df: object) -> list:
    import pandas as pd

    assert isinstance(df, pd.DataFrame)
    return json.loads(df.to_json(orient="records")) if len(df) else []


def run(args: argparse.Namespace) -> int:
    from ttscale.api import frontier

    result = frontier(args.input, out=args.out or None,
                      ks=parse_ks(args.ks) if args.ks is not None else None,
                      metrics=parse_columns(args.metric), n_boot=args.n_boot, level=args.level,
                      seed=args.seed, model_shape=args.model_shape, prompt_tokens=args.prompt_tokens,
                      tokens_per_sample=args.tokens_per_sample, prices=parse_price(args.price),
                      at=parse_at(args.at), bins=args.bins, allocation=not args.no_allocation,
                      whatif_k=parse_ks(args.what_if_k) if args.what_if_k else None,
                      whatif_method=args.what_if_method,
                      whatif_budget=parse_ks(args.what_if_budget) if args.what_if_budget else None,
                      allow_stale=args.allow_stale)
    if args.json:
        print(json.dumps({"settings": result.settings, "notes": result.notes,
                          "frontier": _records(result.table), "disagreements": _records(result.disagreements),
                          "moves": _records(result.moves), "allocation": _records(result.allocation),
                          "saturation": _records(result.saturation), "whatif": _records(result.whatif)},
                         indent=1))
        return 0

    def fmt(x: float) -> str:
        return f"{x:.4g}"

    for note in result.notes:
        print(f"note: {note}")
    for m in result.metrics:
        t = result.table[result.table["metric"] == m]
        print(f"\nfrontier by {m} ({result.settings['level']:.0%} simultaneous intervals):")
        print(t[["cost", "label", "k", "accuracy", "ci_low", "ci_high", "p_best", "n_not_worse"]]
              .to_string(index=False, float_format=fmt))
    if len(result.disagreements):
        print("\nwhere FLOPs and Kinetics eFLOPs pick different configurations:")
        print(result.disagreements.to_string(index=False, float_format=fmt))
    if len(result.moves):
        m = result.metrics[0]
        cols = ["from", "k", "move", "delta_accuracy", "ci_low", "ci_high", f"delta_cost_{m}",
                f"gain_per_cost_{m}"]
        print(f"\nnext moves (gain per cost: per {'1e3 tokens' if m == 'tokens' else '1e12' if 'flops' in m else 'dollar'}):")
        print(result.moves[cols].to_string(index=False, float_format=fmt))
    if len(result.allocation):
        print(f"\nper-difficulty allocation ({result.settings['bins']} bins, cross-fitted) vs best uniform:")
        print(result.allocation.drop(columns=["metric"]).to_string(index=False, float_format=fmt))
    if len(result.saturation):
        print("\nsaturation per difficulty bin (0 = hardest):")
        print(result.saturation.to_string(index=False, float_format=fmt))
    if len(result.whatif):
        m = result.metrics[0]
        print(f"\nwhat-if frontier by {m} (k or budget beyond the run: extrapolated, a forecast's interval):")
        w = result.whatif[result.whatif["metric"] == m]
        print(w.drop(columns=["metric", "config"]).to_string(index=False, float_format=fmt))
    if result.written:
        print(f"\nwrote {len(result.written)} files under {args.out}")
    return 0
