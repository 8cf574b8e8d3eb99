"""The ``ttscale`` command: one sub-command per module under ``ttscale.commands``.

Each command module defines ``add_parser(subparsers)`` which registers its parser and sets
``func`` (called with the parsed arguments, returning an exit code). Command modules keep heavy
imports (torch, vLLM, matplotlib) inside their functions so that ``ttscale --help`` is instant.
Bad input raises :class:`ttscale.errors.InputError`: one line on stderr, exit code 2.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from ttscale import __version__
from ttscale.errors import InputError

#: sub-command name -> module under ttscale.commands (one module each)
COMMANDS = {
    "sweep": "sweep",
    "sample": "sample",
    "verify": "verify",
    "compare": "compare",
    "analyze": "analyze",
    "forecast": "forecast",
    "temperatures": "temperatures",
    "simulate": "simulate",
    "report": "report",
    "list": "listing",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ttscale",
        description="Test-time compute scaling: sample, verify, analyze, forecast, simulate.",
    )
    parser.add_argument("--version", action="version", version=f"ttscale {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in COMMANDS.values():
        try:
            mod = importlib.import_module(f"ttscale.commands.{module}")
        except ModuleNotFoundError as e:
            if e.name == f"ttscale.commands.{module}":
                continue  # command not built yet
            raise
        mod.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        code = args.func(args)
    except InputError as e:
        print(f"ttscale {args.command}: error: {e}", file=sys.stderr)
        return InputError.exit_code
    except KeyboardInterrupt:
        print(f"ttscale {args.command}: interrupted", file=sys.stderr)
        return 130
    return int(code or 0)


if __name__ == "__main__":
    sys.exit(main())
