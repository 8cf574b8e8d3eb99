"""Stale results: verdicts that do not cover every sample, analyses older than their inputs.

A run grows: more samples (a larger K, another temperature), a new verifier, a verify that was
stopped half-way. Every stage that reads verdicts or an analysis checks first:

* **coverage**: every verifier of the run has a verdict for every sample (from the per-verifier
  summaries of :mod:`ttscale.rundir.summaries`: the verdicts of a verifier never exceed the samples of a
  (problem, temperature), so equal totals mean full coverage);
* **freshness**: what an analysis (``analysis/state.json``) or a comparison
  (``analysis/compare/state.json``) was computed from -- sample count and the content hash of the
  samples summary, verdict count and content hash of each verifier's summary -- still equals the
  run's current state; a verifier added since is named.

:func:`check` raises :class:`StaleError` (one line, exit code 2) naming what is stale and the
command that brings it up to date; with ``allow_stale`` it prints that line as a warning on
stderr instead and returns the list of problems (the report shows them on the page).
``analyze``, ``compare`` and ``report`` take ``--allow-stale``.
"""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path
from typing import Any

from ttscale.errors import InputError, arg, in_cli
from ttscale.rundir.store import RunDir, atomic_write_json

STATE_FILE = "state.json"


class StaleError(InputError):
    """Results that do not match the run any more (exit code 2, one line)."""


def run_state(run: RunDir, verifiers: list[str] | None = None) -> dict[str, Any]:
    """What the run holds now: sample count and hash, verdict count and hash per verifier."""
    from ttscale.rundir.summaries import samples_summary, verdict_summary

    s = samples_summary(run)
    state: dict[str, Any] = {
        "samples": {"count": int(sum(s.table.column("n").to_pylist())), "hash": s.content_hash},
        "verifiers": {},
    }
    for name in run.verifiers() if verifiers is None else verifiers:
        v = verdict_summary(run, name)
        state["verifiers"][name] = {"verdicts": int(sum(v.table.column("count").to_pylist())),
                                    "hash": v.content_hash}
    return state


def verify_command(run: RunDir, name: str) -> str:
    """The ``ttscale verify`` line (from Python: the ``ttscale.verify`` call) that completes verifier
    folder ``name`` (from verifier.json)."""
    meta: dict[str, Any] = {}
    try:
        meta = json.loads((run.verdicts_dir(name) / "verifier.json").read_text())
    except (OSError, ValueError):
        pass
    verifier = str(meta.get("name") or name)
    if not in_cli():  # the API's call
        opts = f", {meta['options']!r}" if meta.get("options") else ""
        named = f", name={name!r}" if name != verifier or meta.get("options") else ""
        return f"ttscale.verify({str(run.path)!r}, {verifier!r}{opts}{named})"
    parts = ["ttscale", "verify", str(run.path), "--verifier", verifier]
    for k, v in sorted((meta.get("options") or {}).items()):
        parts += ["--verifier-option", f"{k}={v}"]
    if name != verifier or meta.get("options"):
        parts += ["--name", name]
    return shlex.join(parts)


def coverage_problems(run: RunDir, state: dict[str, Any]) -> list[str]:
    """One line per verifier whose verdicts do not cover every sample."""
    total = state["samples"]["count"]
    out = []
    for name, v in state["verifiers"].items():
        if v["verdicts"] < total:
            out.append(f"verifier {name!r} has verdicts for {v['verdicts']} of {total} samples: "
                       f"run `{verify_command(run, name)}`")
    return out


def freshness_problems(recorded: dict[str, Any] | None, current: dict[str, Any], what: Path,
                       command: str) -> list[str]:
    """Lines saying how ``recorded`` (an output's state) differs from ``current``."""
    if recorded is None:
        return [f"{what} does not record what it was computed from (made by an older ttscale or "
                f"by hand): run `{command}`"]
    out = []
    rs, cs = recorded.get("samples", {}), current["samples"]
    if rs.get("hash") != cs["hash"]:
        out.append(f"{what} was computed from {rs.get('count')} samples, the run now has "
                   f"{cs['count']} (or they changed): run `{command}`")
    rv, cv = recorded.get("verifiers", {}), current["verifiers"]
    for name in cv:
        if name not in rv:
            out.append(f"{what} predates verifier {name!r}: run `{command}`")
        elif rv[name].get("hash") != cv[name]["hash"]:
            out.append(f"{what} was computed from {rv[name].get('verdicts')} verdicts of {name!r}, "
                       f"there are now {cv[name]['verdicts']} (or they changed): run `{command}`")
    for name in rv:
        if name not in cv:
            out.append(f"{what} used verifier {name!r}, whose verdicts are gone: run `{command}`")
    return out


def read_state(folder: Path) -> dict[str, Any] | None:
    """The state recorded in ``folder/state.json`` (None when absent or unreadable)."""
    try:
        return json.loads((Path(folder) / STATE_FILE).read_text())
    except (OSError, ValueError):
        return None


def write_state(folder: Path, state: dict[str, Any]) -> None:
    """Record ``state`` in ``folder/state.json`` (atomically)."""
    atomic_write_json(Path(folder) / STATE_FILE, state)


def check(problems: list[str], where: Path, allow_stale: bool = False) -> list[str]:
    """Raise StaleError naming the first problem (and how many more), or with ``allow_stale``
    warn on stderr; returns the problems."""
    if not problems:
        return problems
    more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
    line = f"{where}: stale: {problems[0]}{more}"
    if not allow_stale:
        raise StaleError(f"{line}; or pass {arg('allow_stale', True)}")
    print(f"warning: {line}", file=sys.stderr)
    return problems


def check_run_for_analysis(run: RunDir, allow_stale: bool = False) -> dict[str, Any]:
    """Before analysing or comparing a run: every verifier covers every sample. Returns the
    current state (to be recorded with the outputs)."""
    state = run_state(run)
    check(coverage_problems(run, state), run.path, allow_stale)
    return state


def check_run_outputs(run: RunDir, allow_stale: bool = False) -> list[str]:
    """Before reporting on a run: coverage, and the analysis and comparison (where present) are
    as new as the samples and verdicts. Returns the problems (empty when fresh)."""
    if not run.has_samples():
        return []
    state = run_state(run)
    problems = coverage_problems(run, state)
    analysis = run.path / "analysis"
    if (analysis / "curves.parquet").is_file():
        problems += freshness_problems(read_state(analysis), state, analysis,
                                       shlex.join(["ttscale", "analyze", str(run.path)]) if in_cli()
                                       else f"ttscale.analyze({str(run.path)!r})")
    compare = analysis / "compare"
    if (compare / "compare.parquet").is_file():
        recorded = read_state(compare)
        used = None if recorded is None else list(recorded.get("verifiers", {}))
        current = state if used is None else {
            "samples": state["samples"],
            "verifiers": {k: v for k, v in state["verifiers"].items() if k in used}}
        verifiers = ",".join(used) if used else "..."
        problems += freshness_problems(recorded, current, compare, shlex.join(
            ["ttscale", "compare", str(run.path), "--verifiers", verifiers]) if in_cli()
            else f"ttscale.compare({str(run.path)!r}, {verifiers!r})")
    return check(problems, run.path, allow_stale)
