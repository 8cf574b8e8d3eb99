"""``ttscale report DIR``: one self-contained HTML page for a run or a sweep."""

from __future__ import annotations

import argparse


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("report", help="write one self-contained HTML page for a run or a sweep",
                       description=__doc__)
    p.add_argument("dir", help="a run directory or a sweep folder (holding run directories)")
    p.add_argument("--out", help="output file (default DIR/report.html)")
    p.add_argument("--allow-stale", action="store_true",
                   help="warn (and mark the page) instead of refusing stale analyses or verdicts")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from ttscale.api import report
    from ttscale.rundir.outputs import check_out_file

    target = args.out or Path(args.dir) / "report.html"
    check_out_file(target, "--out" if args.out else str(target))
    path = report(args.dir, args.out, allow_stale=args.allow_stale)
    print(path)
    return 0
