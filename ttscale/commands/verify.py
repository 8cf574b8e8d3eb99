"""``ttscale verify RUN_DIR --verifier NAME``: judge a run directory's samples with one verifier.

Writes ``RUN_DIR/verdicts/<name>/part-*.parquet`` (VERDICT_SCHEMA) and ``verifier.json``; see
:mod:`ttscale.verification.verify`. The folder name encodes the options
(``imperfect-exact-fpr0.1-fnr0.05``) unless ``--name`` gives one. Resumable: samples already
verified under that name are skipped. One verify per folder at a time: a second one exits with
code 2 at once (or waits, with --wait); a folder holding duplicate verdicts (two concurrent
verifies of an older version) is repaired first. Everything is validated before the first verdict is
written (unknown verifier or option, no samples, a verifier that does not fit the task).
"""

from __future__ import annotations

import argparse
import sys

from ttscale.commands.argtypes import finite_float, non_negative_int


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("verify", help="verify a run directory's samples with one verifier",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run_dir", metavar="RUN_DIR", help="the run directory (made by ttscale sample)")
    p.add_argument("--verifier", required=True, metavar="NAME",
                   help="a registered verifier (ttscale list verifiers)")
    p.add_argument("--verifier-option", action="append", default=[], metavar="KEY=VALUE",
                   help="an option of the verifier; repeat for several")
    p.add_argument("--name", default=None, help="folder under verdicts/ (default: from the options)")
    p.add_argument("--workers", type=non_negative_int, default=None,
                   help="worker processes (default: CPU count; 0 = in this process)")
    p.add_argument("--time-limit", type=finite_float, default=60.0, metavar="S",
                   help="wall-clock seconds per problem, plus --time-limit-per-sample per sample")
    p.add_argument("--time-limit-per-sample", type=finite_float, default=1.0, metavar="S",
                   help="wall-clock seconds added to a problem's limit per sample verified")
    p.add_argument("--executor", choices=["local", "ray"], default="local",
                   help="ray: verifier actors on a Ray cluster ($RAY_ADDRESS, or a local one)")
    p.add_argument("--ray-address", default=None, help="ray: cluster address (default: $RAY_ADDRESS)")
    p.add_argument("--executor-option", action="append", default=[], metavar="KEY=VALUE",
                   help="ray: verify_workers, num_cpus, max_restarts (repeatable)")
    p.add_argument("--wait", action="store_true",
                   help="if another process is verifying into the same folder, wait for it "
                        "(default: exit 2 at once)")
    p.add_argument("--repair", action="store_true",
                   help="first move damaged verdict shards aside (to RUN_DIR/damaged/) and judge "
                        "their samples again")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def _n(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


def run(args: argparse.Namespace) -> int:
    from ttscale.api import verify
    from ttscale.verification.verify import parse_options

    ex_opts = parse_options(args.executor_option, "--executor-option")
    if args.ray_address:
        ex_opts["address"] = args.ray_address
    result = verify(args.run_dir, args.verifier, parse_options(args.verifier_option),
                    workers=args.workers, name=args.name, time_limit=args.time_limit,
                    time_limit_per_sample=args.time_limit_per_sample, executor=args.executor,
                    executor_options=ex_opts, wait=args.wait, progress=not args.quiet,
                    on_wait=lambda line: print(f"ttscale verify: {line}", file=sys.stderr),
                    repair=args.repair)
    for path in result.set_aside:
        print(f"ttscale verify: damaged shard set aside to {path}; its samples judged again",
              file=sys.stderr)
    if result.repaired:
        print(f"verdicts/{result.name}: removed {result.repaired} duplicate verdict(s) left by "
              "concurrent runs of an older version (kept the first of each)", file=sys.stderr)
    if not result.verified:
        print(f"verdicts/{result.name}: nothing to verify ({_n(result.skipped, 'sample')} already done)")
    else:
        print(f"verdicts/{result.name}: verified {_n(result.verified, 'sample')} ({result.skipped} "
              f"already done), passed {result.passed} (rate {result.passed / result.verified:.4f}), "
              f"errors/timeouts {result.errors}, {_n(result.shards, 'shard')}")
    if result.errors:
        print(f"ttscale verify: {result.errors} sample(s) ended in error or timeout (status column)",
              file=sys.stderr)
    return 0
