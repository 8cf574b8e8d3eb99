"""``ttscale simulate``: what-if curves at larger k, other verifiers, other costs.

Difficulty comes from INPUT (a counts table or a run directory; one curve per group) or from
``--difficulty beta:ALPHA,BETA[,zero=Z]``. Writes ``OUT/simulation.parquet`` (group columns, k,
coverage, accuracy, false_positive_rate, samples_drawn, utility), ``OUT/summary.json`` (per
group: saturation_k, optimal_k, optimal_utility, accuracy_ceiling, ...; plus the plan table
when asked) and ``OUT/figures/simulate.{png,svg}``; ``--json`` prints the summary.
"""

from __future__ import annotations

import argparse
import json
import sys

from ttscale.argtypes import finite_float


def _int_list(text: str) -> list[int]:
    try:
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError as e:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from e


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("simulate", help="what-if: larger k, an imperfect verifier, costs, planning",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("input", nargs="?", help="counts table (CSV/Parquet) or run directory")
    p.add_argument("--difficulty", help="parametric difficulty instead of INPUT: beta:ALPHA,BETA[,zero=Z][,one=O]")
    p.add_argument("--verifier", help="run directory: which verifier's verdicts give the counts (default: the oracle found first)")
    p.add_argument("--k-max", type=int, default=10_000, help="largest k simulated")
    p.add_argument("--selection", default="resample", choices=["resample", "vote", "best-of-n"],
                   help="resample until the verifier accepts (fLaws), majority vote, or reward best-of-n")
    p.add_argument("--fpr", type=finite_float, default=0.0, help="verifier false-positive rate (resample)")
    p.add_argument("--fnr", type=finite_float, default=0.0, help="verifier false-negative rate (resample)")
    p.add_argument("--fp-cost", type=finite_float, default=0.0, help="value lost per accepted wrong answer (V)")
    p.add_argument("--cost-per-sample", type=finite_float, default=0.0, help="utility cost of each sample drawn")
    p.add_argument("--wrong-answers", type=int, default=4, help="vote: distinct wrong answers per problem")
    p.add_argument("--reward-separation", type=finite_float, default=1.0, help="best-of-n: reward d' between right and wrong")
    p.add_argument("--saturation-threshold", type=finite_float, default=1e-4,
                   help="saturation point: smallest k where coverage gains less than this per extra sample")
    p.add_argument("--plan-b-precision", type=finite_float, help="planning: target std of the exponent b")
    p.add_argument("--plan-problems", type=_int_list, default=[50, 100, 200, 500], metavar="N,N,...",
                   help="planning (with --plan-b-precision): numbers of problems to try")
    p.add_argument("--plan-samples", type=_int_list, default=[10, 32, 100, 316], metavar="K,K,...",
                   help="planning: samples per problem to try")
    p.add_argument("--replicates", type=int, default=30,
                   help="planning: simulated replicates per (problems, samples) cell")
    g = p.add_argument_group("adaptive sampling plan (sample until solved; see ttscale.adaptive)")
    g.add_argument("--adaptive", type=_int_list, metavar="R,R,...",
                   help="plan a stopping rule for each r (successes): samples drawn and CI widths of "
                        "coverage@k vs drawing K (= --k-max) for everything")
    g.add_argument("--min-samples", type=int, default=1, help="adaptive: m, the fewest samples before stopping")
    g.add_argument("--first-round", type=int, default=32, help="adaptive: the first round boundary")
    g.add_argument("--growth", type=finite_float, default=2.0, help="adaptive: each boundary is the last times this")
    g.add_argument("--adaptive-ks", type=_int_list, default=[1, 10, 100, 1000, 10000], metavar="K,K,...",
                   help="adaptive: the k whose coverage CI widths are compared (those <= --k-max)")
    g.add_argument("--adaptive-problems", type=int, default=500,
                   help="adaptive with --difficulty: problems per simulated run")
    p.add_argument("--seed", type=int, default=0, help="seed of the simulated draws")
    p.add_argument("--out", help="output folder (default: print only)")
    p.add_argument("--allow-stale", action="store_true",
                   help="run directory: warn instead of refusing when a verifier has not judged every sample")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.set_defaults(func=run)


def _check(args: argparse.Namespace) -> None:
    from ttscale.errors import InputError
    from ttscale.outputs import check_out_dir

    if args.out:
        check_out_dir(args.out)
    if (args.input is None) == (args.difficulty is None):
        raise InputError("simulate: give exactly one of INPUT or --difficulty")
    for name in ("fpr", "fnr"):
        v = getattr(args, name)
        if not 0 <= v <= 1:
            raise InputError(f"simulate: --{name} must be in [0, 1], got {v}")
    if args.fpr + args.fnr >= 1 and args.selection == "resample":
        raise InputError("simulate: --fpr + --fnr must be below 1 (else the verifier is no better than chance)")
    if args.k_max < 1:
        raise InputError(f"simulate: --k-max must be at least 1, got {args.k_max}")
    if args.fp_cost < 0 or args.cost_per_sample < 0:
        raise InputError("simulate: --fp-cost and --cost-per-sample must be >= 0")
    if args.replicates < 3:
        raise InputError("simulate: --replicates must be at least 3")
    if any(x < 1 for x in args.plan_problems + args.plan_samples):
        raise InputError("simulate: --plan-problems and --plan-samples must be positive")
    if args.adaptive is not None:
        from ttscale.analysis.adaptive import StoppingRule

        if not args.adaptive:
            raise InputError("simulate: --adaptive is empty (give r values, e.g. 1,2,4,8)")
        for r in args.adaptive:  # one line naming the field for r < 1, m > K, growth <= 1
            StoppingRule(r, args.min_samples, args.first_round, args.growth).check(args.k_max, "simulate --adaptive")
        if args.adaptive_problems < 1:
            raise InputError("simulate: --adaptive-problems must be at least 1")


def _difficulties(args: argparse.Namespace):
    """[(group dict, Difficulty)] from --difficulty or INPUT."""
    from ttscale import simulate as sim

    if args.difficulty:
        return [({}, sim.parse_difficulty(args.difficulty), None)]
    from ttscale.analysis.pipeline import load_input
    from ttscale.errors import InputError

    inp = load_input(args.input, allow_stale=args.allow_stale)
    counts = inp.counts
    if "verifier" in inp.group_cols:
        names = sorted(counts["verifier"].unique())
        chosen = args.verifier or names[0]
        if chosen not in names:
            raise InputError(f"{args.input}: --verifier {chosen!r} has no oracle verdicts, which give the counts (have: {', '.join(names)})")
        counts = counts[counts["verifier"] == chosen]
    cols = [c for c in inp.group_cols if counts[c].nunique() > 1 or c != "verifier"]
    out = []
    groups = counts.groupby(cols, sort=True, dropna=False) if cols else [((), counts)]
    for key, g in groups:
        key = key if isinstance(key, tuple) else (key,)
        diff = sim.difficulty_from_counts(g["num_samples"].to_numpy(), g["num_correct"].to_numpy())
        out.append((dict(zip(cols, key, strict=True)), diff, g))
    return out


def run(args: argparse.Namespace) -> int:
    import numpy as np
    import pandas as pd

    from ttscale import simulate as sim
    from ttscale.analysis.laws import log_spaced_ks
    from ttscale.store import atomic_write_json, atomic_write_table

    _check(args)
    ks = np.unique(np.concatenate([np.arange(1, min(args.k_max, 100) + 1), log_spaced_ks(args.k_max, 200)]))
    frames, summaries = [], []
    plans = []
    for group, diff, counts in _difficulties(args):
        curves = sim.simulate_curves(diff, ks, args.selection, args.fpr, args.fnr, args.fp_cost,
                                     args.cost_per_sample, args.wrong_answers,
                                     args.reward_separation, args.seed)
        summary = {**group, **sim.summarise(curves, diff, args.selection, args.fpr, args.fnr,
                                            args.saturation_threshold),
                   "fpr": args.fpr, "fnr": args.fnr, "fp_cost": args.fp_cost,
                   "cost_per_sample": args.cost_per_sample}
        if args.plan_b_precision:
            plan = sim.plan_exponent_precision(diff, args.plan_b_precision, args.plan_problems,
                                               args.plan_samples, args.replicates, args.seed)
            ok = plan[plan["meets"]].sort_values(["total_samples", "num_problems"])
            summary["plan"] = plan.to_dict(orient="records")
            summary["plan_recommendation"] = ok.iloc[0].to_dict() if len(ok) else None
        if args.adaptive:
            plan = _adaptive_plan(args, diff, counts)
            summary["adaptive_plan"] = plan.to_dict(orient="records")
            plans.append(plan.assign(**group))
        for col, val in group.items():
            curves.insert(0, col, val)
        frames.append(curves)
        summaries.append(summary)
    table = pd.concat(frames, ignore_index=True)
    if args.out:
        from pathlib import Path

        out = Path(args.out)
        atomic_write_table(out / "simulation.parquet", table)
        atomic_write_json(out / "summary.json", summaries)
        if plans:
            atomic_write_table(out / "adaptive_plan.parquet", pd.concat(plans, ignore_index=True))
        _plot(table, summaries, [c for c in summaries[0] if c in table.columns and c != "k"], out)
    if args.json:
        json.dump(summaries, sys.stdout, indent=2, default=lambda o: o.item() if hasattr(o, "item") else str(o))
        print()
    else:
        for s in summaries:
            print("  ".join(f"{k}={v}" for k, v in s.items() if k not in ("plan", "adaptive_plan")))
            if "adaptive_plan" in s:
                _print_plan(pd.DataFrame(s["adaptive_plan"]), args.k_max)
    return 0


def _adaptive_plan(args: argparse.Namespace, diff, counts):
    """The plan table of every r asked (ttscale.analysis.adaptive_plan)."""
    import pandas as pd

    from ttscale.analysis.adaptive import StoppingRule
    from ttscale.analysis.adaptive_plan import plan_adaptive, rates_from_counts

    if counts is not None:  # each problem's Jeffreys posterior, drawn afresh per replicate
        draw = rates_from_counts(counts["num_samples"].to_numpy(), counts["num_correct"].to_numpy())
    else:
        draw = lambda rng: diff.sample(args.adaptive_problems, rng)  # noqa: E731
    rules = [StoppingRule(r, args.min_samples, args.first_round, args.growth) for r in args.adaptive]
    return pd.concat([plan_adaptive(draw, rule, args.k_max, args.adaptive_ks, args.replicates,
                                    seed=args.seed) for rule in rules], ignore_index=True)


def _print_plan(plan, k_max: int) -> None:
    print(f"  adaptive plan (K = {k_max}): r, fraction of samples drawn, and per k the CI width of "
          "coverage@k adaptive/full (ratio)")
    for r, g in plan.groupby("successes", sort=True):
        cells = "  ".join(f"k={int(k)}: {wa:.4f}/{wf:.4f} " + ("(-)" if ratio != ratio else f"({ratio:.2f}x)")
                          for k, wa, wf, ratio in
                          g[["k", "ci_width_adaptive", "ci_width_full", "width_ratio"]].itertuples(index=False))
        print(f"    r={r}: drawn {g['fraction_drawn'].iloc[0]:.3f}  {cells}")


def _plot(table, summaries, group_cols, out) -> None:
    from ttscale.plots import _pyplot, save_figure

    plt = _pyplot()

    fig, ax = plt.subplots(figsize=(7, 4.5))
    groups = table.groupby(group_cols, sort=True) if group_cols else [((), table)]
    for (key, g), s in zip(groups, summaries, strict=True):
        label = " ".join(str(x) for x in (key if isinstance(key, tuple) else (key,)))
        line, = ax.plot(g["k"], g["coverage"], label=f"coverage {label}".strip())
        ax.plot(g["k"], g["accuracy"], "--", color=line.get_color(), label=f"{s['selection']} accuracy {label}".strip())
        if s.get("accuracy_ceiling") is not None:
            ax.axhline(s["accuracy_ceiling"], color=line.get_color(), lw=0.8, ls=":")
        if s.get("optimal_k"):
            ax.axvline(s["optimal_k"], color=line.get_color(), lw=0.8, ls="-.")
    ax.set_xscale("log")
    ax.set_xlabel("k (samples per problem)")
    ax.set_ylabel("fraction of problems")
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    save_figure(fig, out / "figures" / "simulate")
    plt.close(fig)
