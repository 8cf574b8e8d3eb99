"""``ttscale analyze INPUT --out DIR``: scaling curves, fitted laws, saturation points, figures.

INPUT is either

- a **counts table** (CSV or Parquet): columns ``problem``, ``num_samples``, ``num_correct``; every
  other column is a grouping column (benchmark, model, temperature, seed, ...). Curves and fits are
  computed per group. ``--group-by a,b`` keeps only those grouping columns and pools the counts of
  one problem over the others (sums ``num_samples`` and ``num_correct``: e.g. five seeds of 256
  samples become 1,280 samples per problem);
- a **run directory**: the verdicts of each verifier (``verdicts/<name>/``) are joined with
  ``samples/`` on (problem_id, temperature, sample_index) and counted per group; the grouping
  columns are ``task`` (from problems.parquet), ``verifier`` and ``temperature``. Where a verifier
  recorded answers, ``maj@k`` curves are added; where it recorded scores, ``best-of-k``; where
  both, ``weighted-vote@k`` (all estimated from all n samples, not the first k). The samples'
  token counts give the cost axis. ``--out`` defaults to ``RUN_DIR/analysis``.

Outputs (written only after every input and option has been validated: rendered into
``DIR/.tmp-*`` and then each file renamed into place; on bad input nothing is created or changed):

``DIR/curves.parquet`` -- one row per (group, metric, k), sorted by group then metric then k:

====================  =========  ==================================================================
column                type       meaning
====================  =========  ==================================================================
<group columns>       as input   e.g. ``benchmark``, ``model`` (counts) or ``task``, ``verifier``,
                                 ``temperature`` (run directory); absent when there are none
``metric``            string     ``pass@k`` | ``maj@k`` | ``best-of-k`` | ``weighted-vote@k``
``k``                 int64      samples per problem
``estimate``          float64    mean over problems of the unbiased estimate at k
``ci_low``            float64    lower end of the bootstrap CI over problems (``--ci``, ``--n-boot``)
``ci_high``           float64    upper end of that CI
====================  =========  ==================================================================

The k grid is ``--ks`` if given, else ``ttscale.analysis.curves.coverage.default_ks`` of the group's
smallest ``num_samples`` (every k up to 256; beyond, 64 log-spaced k a decade up to that
number: 294 k at 1,000, 358 at 10,000), capped by ``--max-k``.

``DIR/fits.json`` -- a JSON list, one object per group (the pass@k curve), keys:

- the group columns (``"benchmark"``, ``"model"``, ...) with their values;
- ``"metric"``: ``"pass@k"``;
- ``"law"``: ``"exp_power"`` (coverage = exp(a k^b)) or ``"exp_power_ceiling"`` (``--ceiling``:
  coverage = c_max exp(a k^b)); null when no law could be fitted, then ``"fit_error"`` says why;
- ``"a"``, ``"b"`` (and ``"c_max"`` with ``--ceiling``): the fitted parameters;
- ``"a_ci"``, ``"b_ci"`` (and ``"c_max_ci"``): percentile intervals at ``"ci_level"`` from
  ``"law_boot"`` bootstrap resamples of the problems, the law refitted on each
  (``ttscale.analysis.laws.bootstrap``); ``"a_se_conditional"`` etc.: curve_fit's standard errors,
  conditional on the problems drawn (far too small as an interval; kept for reference);
- ``"fit_status"``: ``"ok"``, ``"rejected"`` (the law leaves the pointwise CI band of the
  measured curve somewhere in its k range; ``"fit_reasons"`` says where) or ``"unchecked"``;
  ``"fit_warnings"`` (e.g. significant curvature of log(-log C) in log k); ``"fit_check"``: the
  band check, the local exponent d log(-log C)/d log k between k and 2k with CIs, the curvature
  test (``ttscale.analysis.laws.fit_check``);
- ``"tail_fit"``: log(-log C) on log k by weighted least squares over [k_min, k_max] with CIs;
  ``"distributional"``: the scaled-Beta exponent b = -alpha (Schaeffer et al. 2025) with CIs;
  ``"fits_data"``: for each of the C.1 law, the tail fit and the distributional fit, whether its
  curve stays inside the band and why;
- ``"rmse"``, ``"max_abs_error"``: fit error on the fitted points (coverage units);
- ``"k_min"``, ``"k_max"``: the range of k fitted (about 40 log-spaced k in [1, max k], max k =
  ``--max-k`` or the smallest ``num_samples``; Large Language Monkeys, appendix C.1);
- ``"saturation_threshold"``: ``--saturation-threshold``; ``"saturation_k"``: the k from which one
  more sample gains less pass@k coverage than the threshold (null if not reached within the
  curve); ``"saturation_k_fit"``: the same read from the fitted law (any k up to 10^9, so it may
  lie beyond the samples drawn; null without a fit) with ``"saturation_k_fit_ci"`` (a bound is null
  where the replicates beyond it never saturate), ``"saturation_k_fit_status"`` (the law's
  status; a rejected law's saturation point also carries ``"saturation_k_fit_note"``);
  ``"saturation_flops"``: the FLOPs per
  problem at ``saturation_k`` (null when the cost is unknown);
- ``"flops_per_sample"``: inference FLOPs of one sample (null when the cost is unknown), with
  ``"kinetics_eflops_per_sample"`` and ``"kinetics_eflops_shared_prompt"`` (Kinetics' eFLOPs: one
  more sample, and the once-per-problem prompt KV reads), ``"avg_prompt_tokens"``,
  ``"avg_output_tokens"``, ``"tokens_assumed"`` (true when a counts table gave no token counts and
  the defaults stood in) and ``"model_shape"`` (where the shape came from) when it is known.

``DIR/costs.parquet`` -- only when the cost is known: group columns, ``k`` (int64), ``flops``
(float64, inference FLOPs per problem for k samples, Large Language Monkeys' count) and
``kinetics_eflops`` (float64, Kinetics' eFLOPs for k samples; both from
``ttscale.analysis.costs.cost.curve_cost``), one row per group and k of the pass@k curve.

``DIR/figures/``: PNG and SVG of each figure, one per benchmark/task (``-<name>`` suffix) with one
line per remaining group: ``coverage_k`` (coverage against k, log axis, CI band, fitted law
dashed, saturation point starred, fitted ceiling dotted), ``coverage_flops`` (the same against
FLOPs, where the cost is known) and ``selection_k`` (pass@k beside the selection metrics, run
directories with answers or scores). Output is deterministic (no dates in SVG). Analysing again
into the same DIR replaces these files and removes the figures (and ``costs.parquet``) of the
earlier analysis that this one does not produce; other files in DIR are left alone.

Cost: a run directory gets a cost axis whenever its model's shape is known (the embedded model, a
local model folder, a hub id whose config.json is cached, a preset name; see
``ttscale.analysis.costs.model_shape``). ``--model-shape NAME`` sets it: a preset of
``ttscale.analysis.costs.cost.PRESETS`` (any case, e.g. ``llama-3-8b``), ``embedded``, a model folder or
config.json, or ``auto`` (the run's model, or each group's ``model`` column of a counts table,
e.g. ``Llama-3-70B-Instruct``). Token counts come from the run directory, or from
``--prompt-tokens N --output-tokens N`` for a counts table; without them a counts table assumes
512 prompt and 256 output tokens and says so. FLOPs per problem for k samples are one prompt
prefill plus k completions; Kinetics eFLOPs follow Kinetics' ``dense_cost`` (B200, 562.5
FLOP/byte; ``ttscale.analysis.costs.cost``).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ttscale.commands.argtypes import finite_float
from ttscale.errors import InputError
from ttscale.rundir.outputs import check_out_dir


def parse_ks(text: str) -> list[int]:
    """``"1,10,100"`` -> [1, 10, 100]; InputError naming --ks otherwise."""
    try:
        ks = [int(x) for x in str(text).replace(" ", "").split(",") if x]
    except ValueError as e:
        raise InputError(f"--ks: {text!r} is not a comma-separated list of whole numbers") from e
    if not ks:
        raise InputError("--ks: empty list")
    return ks


def parse_columns(text: str | None) -> list[str] | None:
    if text is None:
        return None
    return [c for c in (x.strip() for x in text.split(",")) if c]


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "analyze",
        help="scaling curves, law fits, saturation points and figures from counts or a run",
        description=__doc__.split("\n\n")[0].replace("``", ""),
    )
    p.add_argument("input", help="counts table (CSV/Parquet) or run directory")
    p.add_argument("--out", help="output directory (default: RUN_DIR/analysis for a run)")
    p.add_argument("--ks", help="comma-separated k to estimate (default: every k to 256, then 64 log-spaced a decade)")
    p.add_argument("--n-boot", type=int, default=1000, help="bootstrap resamples for the CI")
    p.add_argument("--ci", type=finite_float, default=0.95, help="confidence level of the CI band")
    p.add_argument("--seed", type=int, default=0, help="seed of the bootstrap")
    p.add_argument("--ceiling", action="store_true", help="fit c_max * exp(a k^b)")
    p.add_argument("--saturation-threshold", type=finite_float, default=1e-4,
                   help="coverage gained per extra sample below which a curve saturates")
    p.add_argument("--model-shape",
                   help="model shape for the cost axis: a preset (e.g. llama-3-8b), 'embedded', "
                        "a model folder or config.json, or 'auto' (the run's model or each "
                        "group's model column)")
    p.add_argument("--prompt-tokens", type=finite_float, help="average prompt tokens (counts tables)")
    p.add_argument("--output-tokens", type=finite_float, help="average output tokens (counts tables)")
    p.add_argument("--group-by", help="comma-separated grouping columns to keep (others pooled)")
    p.add_argument("--max-k", type=int, help="largest k for curves and fits")
    p.add_argument("--law-boot", type=int, default=300,
                   help="bootstrap refits of the law for its CIs and fit checks (0: none)")
    p.add_argument("--tail-k-min", type=int,
                   help="lower end of the tail fit's k range (default sqrt of the largest k)")
    p.add_argument("--allow-stale", action="store_true",
                   help="warn instead of refusing when a verifier has not judged every sample")
    p.add_argument("--distributional", action="store_true",
                   help="also fit the scaled-Beta (Schaeffer et al.) exponent with CIs (a few s a group)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ttscale.api import analyze

    ks = parse_ks(args.ks) if args.ks is not None else None
    if args.out is None:
        if not Path(args.input).is_dir():
            if not Path(args.input).exists():
                raise InputError(f"{args.input}: no such file or directory")
            raise InputError(f"{args.input}: --out is required for a counts table")
        out = Path(args.input) / "analysis"
    else:
        out = Path(args.out)
    check_out_dir(out, "--out" if args.out else f"{out} (the analysis folder)")
    result = analyze(args.input, out, ks=ks, n_boot=args.n_boot, ci=args.ci, seed=args.seed,
                     ceiling=args.ceiling, saturation_threshold=args.saturation_threshold,
                     model_shape=args.model_shape, max_k=args.max_k,
                     group_by=parse_columns(args.group_by), prompt_tokens=args.prompt_tokens,
                     output_tokens=args.output_tokens, law_boot=args.law_boot,
                     tail_k_min=args.tail_k_min, distributional=args.distributional,
                     progress=not args.quiet, allow_stale=args.allow_stale)
    print(f"analyzed {len(result.result.fits)} group(s) from {result.result.source}: "
          f"wrote {len(result.written)} files to {out}")
    for rec in result.result.fits:
        name = ", ".join(f"{c}={rec[c]}" for c in result.group_cols) or "all"
        if rec.get("tokens_assumed"):
            print(f"  {name}: cost assumes {rec['avg_prompt_tokens']:.0f} prompt and "
                  f"{rec['avg_output_tokens']:.0f} output tokens (give --prompt-tokens/--output-tokens)")
        if rec.get("law"):
            print(f"  {name}: {_law_line(rec)}")
        else:
            print(f"  {name}: no fit ({rec.get('fit_error')})")
    return 0


def _law_line(rec: dict) -> str:
    """One line per group: the law with its intervals and status."""
    def ci(name: str) -> str:
        pair = rec.get(f"{name}_ci")
        if not pair or None in pair:
            return f"{name}={rec[name]:.3f}"
        return f"{name}={rec[name]:.3f} [{pair[0]:.3f}, {pair[1]:.3f}]"

    parts = [ci("a"), ci("b")] + ([ci("c_max")] if "c_max" in rec else [])
    status = rec.get("fit_status")
    tail = (f" ({status}: {'; '.join(rec.get('fit_reasons') or [])})"
            if status in ("rejected", "unchecked") and rec.get("fit_reasons") else "")
    if not tail and rec.get("fit_warnings"):
        tail = f" (warning: {rec['fit_warnings'][0]})"
    return " ".join(parts) + f" rmse={rec['rmse']:.4f}" + (f" fit {status}" if status else "") + tail
