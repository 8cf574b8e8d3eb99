"""``ttscale list tasks|verifiers|backends``: the registered plugins, one line each (name, kind,
description), each verifier's options below it; the sampling backends with every option, its
default and what it does (set with ``--backend-option KEY=VALUE``). A task's kind is ``task``; a
verifier's is ``oracle``, ``selector`` or ``imperfect``. Built-ins and entry-point plugins alike
(the latter loaded to read their kind)."""

from __future__ import annotations

import argparse


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("list", help="list registered tasks, verifiers or sampling backends", description=__doc__)
    p.add_argument("what", choices=["tasks", "verifiers", "backends"],
                   help="tasks, verifiers (with their options) or backends (with their options)")
    p.set_defaults(func=run)


def verifier_options(name: str) -> dict[str, str]:
    """A registered verifier's documented options (name -> help); {} if it documents none."""
    from ttscale.core.registry import verifiers

    try:
        return dict(getattr(verifiers.get(name), "option_help", {}) or {})
    except Exception:  # noqa: BLE001 - a broken plugin is listed without options
        return {}


def run(args: argparse.Namespace) -> int:
    if args.what == "backends":
        from ttscale.sampling.backends.options import describe

        print("\n".join(describe()))
        return 0
    from ttscale.api import list_plugins

    table = list_plugins(args.what)
    width = max((len(n) for n, _, _ in table), default=4)
    kwidth = max((len(k) for _, k, _ in table), default=4)
    for name, kind, desc in table:
        print(f"{name:<{width}}  {kind:<{kwidth}}  {desc}")
        if args.what == "verifiers":
            for opt, text in verifier_options(name).items():
                print(f"{'':<{width}}    {opt}: {text}")
    return 0
