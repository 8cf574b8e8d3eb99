"""``ttscale list tasks|verifiers``: the registered plugins, one line each (name, kind,
description). A task's kind is ``task``; a verifier's is ``oracle``, ``selector`` or
``imperfect``. Built-ins and entry-point plugins alike (the latter loaded to read their kind)."""

from __future__ import annotations

import argparse


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("list", help="list registered tasks or verifiers", description=__doc__)
    p.add_argument("what", choices=["tasks", "verifiers"])
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ttscale.api import list_plugins

    table = list_plugins(args.what)
    width = max((len(n) for n, _, _ in table), default=4)
    kwidth = max((len(k) for _, k, _ in table), default=4)
    for name, kind, desc in table:
        print(f"{name:<{width}}  {kind:<{kwidth}}  {desc}")
    return 0
