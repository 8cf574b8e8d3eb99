"""``ttscale sweep SWEEP.yaml``: models x tasks x temperatures x K, end to end, resumable.

Samples every cell of the grid, verifies it with each verifier that fits its task, analyses and
compares the verifiers, then writes a cross-cell figure and ``report.html``. Killed at any point
and started again, it skips what is done. ``--dry-run`` prints the grid with the samples wanted,
those already drawn, and estimates of tokens and FLOPs left; ``--help-config`` lists every field.
"""

from __future__ import annotations

import argparse
import json


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("sweep", help="run a whole sweep (sample -> verify -> analyze -> report)",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("config", nargs="?", help="the sweep YAML file")
    p.add_argument("--dry-run", action="store_true", help="print the grid and estimates; run nothing")
    p.add_argument("--json", action="store_true", help="with --dry-run: print the grid as JSON")
    p.add_argument("--help-config", action="store_true", help="list every config field and exit")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument("--verbose", action="store_true",
                   help="also print the backends' own logs (vLLM, transformers) on stderr; they always "
                        "go to OUT/logs/backend.log")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ttscale.errors import InputError
    from ttscale.orchestration.config import describe_fields

    if args.help_config:
        print("\n".join(describe_fields()))
        return 0
    if not args.config:
        raise InputError("sweep: give the sweep YAML file (or --help-config)")
    from ttscale.api import sweep, sweep_plan

    if args.dry_run:
        rows = sweep_plan(args.config)
        notes = {r["model"]: r["note"] for r in rows if r.get("note")}
        if args.json:
            print(json.dumps(rows, indent=2))
        else:
            _print_grid(rows)
            for label, note in notes.items():
                print(f"note: {label}: {note}")
        return 0
    root = sweep(args.config, progress=not args.no_progress, verbose=args.verbose)
    print(f"sweep done: {root}")
    return 0


def _print_grid(rows: list[dict]) -> None:
    cols = ["model", "task", "problems", "temperatures", "k", "samples", "done", "to_sample",
            "est_output_tokens", "est_flops", "verifiers"]
    table = [[_fmt(r.get(c)) for c in cols] for r in rows]
    widths = [max(len(c), *(len(t[i]) for t in table)) for i, c in enumerate(cols)]
    print("  ".join(c.ljust(w) for c, w in zip(cols, widths, strict=True)))
    for t in table:
        print("  ".join(v.ljust(w) for v, w in zip(t, widths, strict=True)))
    total = sum(r["samples"] for r in rows)
    left = sum(r["to_sample"] for r in rows)
    print(f"{len(rows)} cells, {total} samples, {total - left} done, {left} to draw")


def _fmt(v: object) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.3g}"
    return str(v)
