"""The ``ttscale`` command: one sub-command per module under ``ttscale.commands``.

Each command module defines ``add_parser(subparsers)`` which registers its parser and sets
``func`` (called with the parsed arguments, returning an exit code). Command modules keep heavy
imports (torch, vLLM, matplotlib) inside their functions so that ``ttscale --help`` is instant.
Bad input raises :class:`ttscale.errors.InputError`: one line on stderr, exit code 2.
"""

from __future__ import annotations

import argparse
import importlib
import re
import sys
from typing import Any, NoReturn

from ttscale import __version__
from ttscale.errors import InputError, cli_wording, os_error_line

#: sub-command name -> module under ttscale.commands (one module each)
COMMANDS = {
    "sweep": "sweep",
    "sample": "sample",
    "verify": "verify",
    "compare": "compare",
    "analyze": "analyze",
    "forecast": "forecast",
    "temperatures": "temperatures",
    "frontier": "frontier",
    "simulate": "simulate",
    "report": "report",
    "list": "listing",
}


def plain(text: str) -> str:
    """reStructuredText roles and literals (``x``, :func:`x`) as plain text for a terminal."""
    text = re.sub(r":[a-z]+:`~?([^`<]*?)(?:\s*<[^>]*>)?`", r"\1", text)
    return text.replace("``", "")


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Descriptions keep their paragraphs; every option shows its default; no reST markup."""

    def _format_text(self, text: str) -> str:
        return super()._format_text(plain(text))

    def _get_help_string(self, action: argparse.Action) -> str:
        text = plain(action.help or "")
        default = action.default
        if (action.option_strings and default is not None and default is not False
                and default != argparse.SUPPRESS and default != []
                and "default" not in text and "%(default)" not in text):
            shown = ",".join(map(str, default)) if isinstance(default, list | tuple) else str(default)
            text = f"{text} (default: {shown.replace('%', '%%')})".lstrip()
        return text


class Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (and the hint where help is), exit code 2."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs["formatter_class"] = HelpFormatter
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
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
        with cli_wording():  # messages name this command's flags, not the API's arguments
            code = args.func(args)
    except InputError as e:
        text = str(e)
        if text.startswith(f"{args.command}: "):  # the API names its verb; the prefix has it
            text = text[len(args.command) + 2:]
        print(f"ttscale {args.command}: error: {text}", file=sys.stderr)
        return e.exit_code
    except BrokenPipeError:  # `ttscale list verifiers | head`: the reader left; nothing to say
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except OSError as e:  # disk full, read-only, permissions: one line, what is written is whole
        print(f"ttscale {args.command}: error: {os_error_line(e)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"ttscale {args.command}: interrupted", file=sys.stderr)
        return 130
    return int(code or 0)


if __name__ == "__main__":
    sys.exit(main())
