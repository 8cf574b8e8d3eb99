"""``ttscale compare RUN_DIR --verifiers a,b,c``: several verifiers on the same samples.

Each entry of ``--verifiers`` is a registered name (``majority``), a name with options
(``'imperfect(base=exact,fpr=0.1,fnr=0.05)'``, ``'reward(scores=rm.parquet,oracle=exact)'``)
or the folder of verdicts already under ``verdicts/`` (``imperfect-exact-fpr0.1-fnr0.05``).
Verdicts that are missing are computed first (``ttscale verify``, resumable); every entry is
validated before any is run.

The reference oracle (``--oracle``; default: the first oracle in the list, else the first
imperfect verifier's base, else the task's own oracle) gives each sample's true correctness.
One curve per verifier, against k, estimated from all n samples of each problem:

- oracle: coverage ``pass@k`` as that verifier judges (the reference oracle's is the top line);
- majority (a selector with answers): ``maj@k``; reward (a selector with scores): ``best-of-k``;
- imperfect: ``accept@k``, the accuracy of resampling until the verifier accepts (Inference
  Scaling fLaws): draw up to k of a problem's n samples without replacement and return the
  first accepted one; none accepted counts as wrong (the answer is withheld). With A accepted
  samples of which A_right truly right, its exact expectation is
  ``A_right / A * (1 - C(n - A, k) / C(n, k))``: it tends to ``A_right / A`` (the false-positive
  ceiling), not to coverage.

Outputs (``--out``, default ``RUN_DIR/analysis/compare``; written atomically):
``compare.parquet`` and ``compare.csv`` -- one row per (verifier, temperature, k): ``verifier``
(its verdict folder), ``kind``, ``temperature`` (curves are per temperature, never pooled),
``metric``, ``k``, ``accuracy``, ``ci_low``, ``ci_high`` (percentile bootstrap
over problems, ``--n-boot``, ``--seed``), ``fpr`` and ``fnr`` (the share of truly wrong samples
the verifier passed, and of truly right samples it failed, against the reference oracle; NaN
where there are none, and for selectors, which pick rather than judge; over all of the
verifier's samples); ``compare.png`` and ``compare.svg``
-- accuracy against k (log axis) with CI bands, one colour per verifier, one dash per
temperature.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ttscale.commands.argtypes import non_negative_int
from ttscale.errors import InputError


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("compare", help="compare verifiers on the same samples",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run_dir", metavar="RUN_DIR", help="the run directory (made by ttscale sample)")
    p.add_argument("--verifiers", required=True, help="comma-separated: name, name(k=v,...), "
                   "or a folder under verdicts/")
    p.add_argument("--oracle", default=None, help="reference oracle (name or name(k=v,...))")
    p.add_argument("--out", default=None, help="output folder (default RUN_DIR/analysis/compare)")
    p.add_argument("--ks", default=None, help="comma-separated k (default: every k up to 256, "
                   "then 64 log-spaced a decade up to n)")
    p.add_argument("--n-boot", type=int, default=1000, help="bootstrap resamples over problems for the CIs (0: none)")
    p.add_argument("--seed", type=int, default=0, help="seed of the bootstrap")
    p.add_argument("--workers", type=non_negative_int, default=None, help="for verdicts still to compute")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument("--allow-stale", action="store_true",
                   help="warn instead of refusing when a verifier has not judged every sample")
    p.set_defaults(func=run)


def parse_ks(text: str | None) -> list[int] | None:
    if text is None:
        return None
    try:
        ks = sorted({int(x) for x in text.split(",") if x.strip()})
    except ValueError:
        raise InputError(f"--ks {text!r}: not a comma-separated list of whole numbers") from None
    if not ks:
        raise InputError("--ks: empty list")
    return ks


def _rate(x: float) -> str:
    return "-" if x != x else f"{x:.4f}"


def run(args: argparse.Namespace) -> int:
    from ttscale.api import compare
    from ttscale.rundir.outputs import check_out_dir

    if args.n_boot < 0:
        raise InputError(f"--n-boot {args.n_boot}: must be 0 or more")
    target = args.out or Path(args.run_dir) / "analysis" / "compare"
    check_out_dir(target, "--out" if args.out else str(target))
    out = Path(args.out) if args.out else Path(args.run_dir) / "analysis" / "compare"
    result = compare(args.run_dir, args.verifiers, oracle=args.oracle, ks=parse_ks(args.ks),
                     n_boot=args.n_boot, seed=args.seed, workers=args.workers, out=out,
                     progress=not args.quiet, allow_stale=args.allow_stale)
    table = result.table
    last = table.loc[table.groupby(["verifier", "temperature"], sort=False)["k"].idxmax()]
    for r in last.itertuples():
        print(f"{r.verifier:<36} {r.kind:<9} T={r.temperature:<5g} {r.metric:<10} k={r.k:<6} accuracy {r.accuracy:.4f} "
              f"[{r.ci_low:.4f}, {r.ci_high:.4f}]  fpr {_rate(r.fpr)}  fnr {_rate(r.fnr)}")
    print(f"wrote {out}/compare.{{parquet,csv,png,svg}}")
    return 0
