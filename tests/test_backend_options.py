"""Options are documented where users look (issue 14, item 4): every backend's options in
``ttscale list backends`` match its constructor, every verifier's documented options are ones
it accepts, and every ``ttscale ...`` command in README.md parses with the real CLI."""

from __future__ import annotations

import inspect
import re
import shlex
from pathlib import Path

import pytest

from ttscale.cli import build_parser, main
from ttscale.errors import InputError
from ttscale.sampling.backends.options import BACKENDS, REQUIRED

README = Path(__file__).resolve().parents[1] / "README.md"


@pytest.mark.parametrize("name", sorted(BACKENDS))
def test_documented_backend_options_are_the_constructor_s(name):
    from ttscale.sampling.backends import BACKENDS as CLASSES

    module, _, attr = CLASSES[name].partition(":")
    cls = getattr(__import__(module, fromlist=[attr]), attr)
    params = {p.name: p for p in inspect.signature(cls.__init__).parameters.values()
              if p.name not in ("self", "model") and p.kind is not p.VAR_KEYWORD}
    documented = {o.name: o for o in BACKENDS[name][1] if not o.name.startswith("(")}
    assert set(documented) == set(params), name
    for key, opt in documented.items():
        default = params[key].default
        assert (opt.default is REQUIRED) == (default is inspect.Parameter.empty), key
        if opt.default is not REQUIRED:
            assert opt.default == default, (name, key, opt.default, default)


def test_list_backends_shows_every_option(capsys):
    assert main(["list", "backends"]) == 0
    out = capsys.readouterr().out
    for name, (_, options) in BACKENDS.items():
        assert f"{name}: " in out
        for o in options:
            assert f"  {o.name} (" in out
    assert "retry_window (default: 60.0)" in out and "base_url (required)" in out


@pytest.mark.parametrize("name", ["exact", "imperfect", "majority", "math", "reward", "unit_tests"])
def test_documented_verifier_options_are_accepted(name):
    from ttscale.core.registry import verifiers
    from ttscale.verification.verify import make_verifier

    cls = verifiers.get(name)
    with pytest.raises(InputError, match="unknown option"):
        make_verifier(name, {"zz_not_an_option": 1, **({"scores": "x.parquet"} if name == "reward" else {})})
    for opt in cls.option_help:
        try:
            make_verifier(name, {opt: 1, **({"scores": "x.parquet"} if name == "reward" and opt != "scores" else {})})
        except InputError as e:  # a bad value, or a missing file, is fine: an unknown name is not
            assert "unknown option" not in str(e), (name, opt, e)


def test_list_verifiers_shows_options(capsys):
    assert main(["list", "verifiers"]) == 0
    out = capsys.readouterr().out
    assert "fpr: chance of accepting a wrong sample" in out


def _readme_commands() -> tuple[list[str], list[str]]:
    """(commands in bash blocks, command fragments quoted in prose)."""
    text = README.read_text()
    cmds = []
    for block in re.findall(r"```bash\n(.*?)```", text, re.S):
        joined = re.sub(r"\\\n\s*", " ", block)
        for line in joined.splitlines():
            line = line.split("#", 1)[0].strip()
            if line.startswith(("ttscale ", ".venv-vllm/bin/ttscale ")):
                cmds.append(line)
    prose = []
    for line in text.splitlines():  # inline commands in prose (not the placeholder table)
        if line.lstrip().startswith("|"):
            continue
        prose.extend(m for m in re.findall(r"`(ttscale [^`]*)`", line) if "--" in m and "[" not in m)
    # "..." stands for flags shown elsewhere
    clean = [" ".join(t for t in c.split() if t != "...") for c in cmds + prose]
    return clean[: len(cmds)], clean[len(cmds):]


def _subparser(parser, name):
    import argparse

    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return action.choices[name]


def test_every_readme_command_parses():
    cmds, prose = _readme_commands()
    assert len(cmds) >= 10 and len(prose) >= 5
    parser = build_parser()
    for cmd in cmds:  # whole commands: parsed as they are
        argv = shlex.split(cmd)[1:]  # drop `ttscale`
        try:
            parser.parse_args(argv)
        except SystemExit as e:
            pytest.fail(f"README command does not parse ({e.code}): {cmd}")
    for frag in prose:  # fragments in sentences: every flag is one the command has
        argv = shlex.split(frag)[1:]
        sub = _subparser(parser, argv[0])
        known = {s for a in sub._actions for s in a.option_strings}
        for tok in argv[1:]:
            if tok.startswith("--"):
                assert tok.split("=")[0] in known, f"README: `{frag}`: no flag {tok} in `ttscale {argv[0]}`"
