"""``ttscale simulate``: what-if curves at larger k, other verifiers, other costs.

Difficulty comes from INPUT (a counts table or a run directory; one curve per group) or from
``--difficulty beta:ALPHA,BETA[,zero=Z]``. Writes ``OUT/simulation.parquet`` (group columns, k,
coverage, accuracy, false_positive_rate, samples_drawn, utility), ``OUT/summary.json`` (per
group: saturation_k, optimal_k with optimal_k_ci, a bootstrap interval over problems at --ci,
optimal_utility, accuracy_ceiling, ...; optimal_k_extrapolated, law_extrapolation and
optimal_k_warning, which marks an optimal k beyond the samples drawn when the power law fails its
extrapolation back-test, also a line on stderr; plus the plan table when asked) and
``OUT/figures/simulate.{png,svg}``; ``--json`` prints the summary.
"""

from __future__ import annotations

import argparse
import json
import sys

from ttscale.commands.argtypes import finite_float


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
    g = p.add_argument_group("adaptive sampling plan (sample until solved; see ttscale.orchestration.adaptive)")
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
    p.add_argument("--ci", type=finite_float, default=0.95,
                   help="confidence level of the optimal k's interval (optimal_k_ci)")
    p.add_argument("--optimal-k-boot", type=int, default=200,
                   help="bootstrap replicates over problems for optimal_k_ci (counts input, resample; 0: none)")
    p.add_argument("--seed", type=int, default=0, help="seed of the simulated draws and the bootstrap")
    p.add_argument("--out", help="output folder (default: print only)")
    p.add_argument("--allow-stale", action="store_true",
                   help="run directory: warn instead of refusing when a verifier has not judged every sample")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import pandas as pd

    from ttscale.api import simulate
    from ttscale.rundir.outputs import check_out_dir

    if args.out:
        check_out_dir(args.out)
    result = simulate(args.input, difficulty=args.difficulty, verifier=args.verifier, out=args.out,
                      k_max=args.k_max, selection=args.selection, fpr=args.fpr, fnr=args.fnr,
                      fp_cost=args.fp_cost, cost_per_sample=args.cost_per_sample,
                      wrong_answers=args.wrong_answers, reward_separation=args.reward_separation,
                      saturation_threshold=args.saturation_threshold,
                      plan_b_precision=args.plan_b_precision, plan_problems=args.plan_problems,
                      plan_samples=args.plan_samples, replicates=args.replicates, seed=args.seed,
                      adaptive=args.adaptive, min_samples=args.min_samples,
                      first_round=args.first_round, growth=args.growth,
                      adaptive_ks=args.adaptive_ks, adaptive_problems=args.adaptive_problems,
                      ci=args.ci, optimal_k_boot=args.optimal_k_boot, allow_stale=args.allow_stale)
    if args.json:
        json.dump(result.summaries, sys.stdout, indent=2,
                  default=lambda o: o.item() if hasattr(o, "item") else str(o))
        print()
    else:
        for s in result.summaries:
            print(summary_text(s))
            if "adaptive_plan" in s:
                _print_plan(pd.DataFrame(s["adaptive_plan"]), args.k_max)
    for s in result.summaries:  # also with --json: one line per group on stderr
        if s.get("optimal_k_warning"):
            print(f"warning: {_group_label(s)}{s['optimal_k_warning']}", file=sys.stderr)
    return 0


def _group_label(s: dict) -> str:
    """``col=value, ...: `` of a summary's group columns (those before ``difficulty``)."""
    names = list(s)[: list(s).index("difficulty")] if "difficulty" in s else []
    return "".join(f"{k}={s[k]}, " for k in names)[:-2] + ": " if names else ""


def _value(v: object) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, list | tuple):
        return "[" + ", ".join(_value(x) for x in v) + "]"
    return str(v)


def summary_text(s: dict, width: int = 100) -> str:
    """A group's summary as ``key=value`` pairs, floats to 4 significant digits, unset ones
    left out, wrapped at ``width`` (continuation lines indented)."""
    items = [f"{k}={_value(v)}" for k, v in s.items()
             if k not in ("plan", "adaptive_plan") and v is not None]
    lines, cur = [], ""
    for item in items:
        if cur and len(cur) + 2 + len(item) > width:
            lines.append(cur)
            cur = "  " + item
        else:
            cur = f"{cur}  {item}" if cur else item
    return "\n".join([*lines, cur])


def _print_plan(plan, k_max: int) -> None:
    print(f"  adaptive plan (K = {k_max}): r, fraction of samples drawn, and per k the CI width of "
          "coverage@k adaptive/full (ratio)")
    for r, g in plan.groupby("successes", sort=True):
        cells = "  ".join(f"k={int(k)}: {wa:.4f}/{wf:.4f} " + ("(-)" if ratio != ratio else f"({ratio:.2f}x)")
                          for k, wa, wf, ratio in
                          g[["k", "ci_width_adaptive", "ci_width_full", "width_ratio"]].itertuples(index=False))
        print(f"    r={r}: drawn {g['fraction_drawn'].iloc[0]:.3f}  {cells}")
