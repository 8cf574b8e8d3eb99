"""Run a verifier over a run directory's samples: validate, fan out to worker processes, write
verdict shards.

:func:`verify_run` is what ``ttscale verify`` and ``ttscale compare`` call. It

1. checks everything before writing anything: the verifier's name and options, that the run
   directory has samples and problems, that every sample's problem is known, and that the
   verifier fits every problem's reference (a verifier's ``requires`` names the reference
   fields it needs, and its optional ``check_run(problems, samples)`` raises InputError);
2. takes the stage lock ``verify:<name>`` (a second process verifying into the same folder gets
   one line and exit code 2), repairs a folder holding duplicate verdicts (older versions; seen
   from the summaries: more verdicts than samples somewhere) and skips the (problem_id,
   temperature, sample_index) keys already in ``verdicts/<name>/``, so an
   interrupted run resumes with exactly the verdicts it lacks. What is left is found from the
   run's summaries (:mod:`ttscale.verification.pending`): a re-run with nothing to do reads no
   sample, and the samples to verify are read shard by shard, only the columns the verifier
   needs (the key and ``text``, or its ``sample_columns``), so memory does not grow with the run;
3. verifies one problem per task (per shard) in worker processes (``spawn``: safe beside torch threads),
   each task running on its worker's main thread, where Math-Verify's SIGALRM timeouts work; the
   parent also holds a wall-clock limit per task and kills and restarts a worker that exceeds
   it, recording those samples with status ``timeout``;
4. writes verdict shards atomically (``RunDir.write_verdicts``) per batch of finished problems
   (folded into ``summaries/`` at the end), plus ``verdicts/<name>/verifier.json`` (name, options, kind) so that later stages know what
   made them.

With ``workers=0`` everything runs in the calling process (no wall-clock limit). By default a
verifier that declares itself ``cheap`` (pure string matching: ``exact``) runs in-process, as
does one with a ``verify_many(items)`` method and a pool of its own (``unit_tests``: called
once per batch of problems); any other gets one worker per CPU. Workers are spawned: a script that calls :func:`verify_run`
needs the usual ``if __name__ == "__main__":`` guard (else the workers fail to start and
RuntimeError is raised before any verdict is written).
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from ttscale.errors import InputError, arg
from ttscale.plugins import Problem, Verifier
from ttscale.rundir.locks import stage_lock
from ttscale.rundir.store import VERDICT_SCHEMA, RunDir, atomic_write_json
from ttscale.verification.pool import _failed_frame, _run_pool, _verify_one, verdict_frame  # noqa: F401

VERDICT_COLUMNS = [f.name for f in VERDICT_SCHEMA]


# -- building verifiers ------------------------------------------------------------------------
def parse_options(pairs: list[str] | None, flag: str = "--verifier-option") -> dict[str, Any]:
    """``["k=v", ...]`` -> ``{"k": v}``; a pair without ``=`` is an InputError naming the flag.

    Values are typed as a config file would type them: ``10`` -> 10, ``0.1`` -> 0.1,
    ``true``/``false`` -> bool; anything else stays the text given (paths, names, ``mod:fn``).
    """
    out: dict[str, Any] = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise InputError(f"{flag} {pair!r}: expected key=value")
        out[key.strip()] = typed_value(value.strip())
    return out


def typed_value(text: str) -> Any:
    """``text`` as an int, float or bool when it reads as one (YAML rules), else unchanged."""
    import yaml

    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError:
        return text
    return value if isinstance(value, bool | int | float) else text


def _jsonable(options: dict[str, Any]) -> dict[str, Any]:
    import json

    return json.loads(json.dumps(options, default=str))


def make_verifier(name: str, options: dict[str, Any] | None = None) -> Verifier:
    """The registered verifier ``name`` built with ``options`` (validated by its constructor)."""
    from ttscale.core.registry import verifiers

    cls = verifiers.get(name)  # unknown name -> InputError listing the known ones
    return cls(options=dict(options or {}))


def verdict_name(verifier: Verifier) -> str:
    """The folder name under verdicts/ for a verifier and its options.

    A verifier may define ``dir_name()``; otherwise the name, then each option as ``key=value``
    sorted by key and reduced to safe characters (``reward-model=tiny``).
    """
    custom = getattr(verifier, "dir_name", None)
    if callable(custom):
        return safe_name(custom())
    parts = [verifier.name] + [f"{k}={v}" for k, v in sorted(verifier.options.items())]
    return safe_name("-".join(parts))


def safe_name(name: str) -> str:
    """``name`` with every character outside ``[A-Za-z0-9._=+-]`` replaced by ``_``."""
    return re.sub(r"[^A-Za-z0-9._=+-]", "_", name)[:200]


def option_float(verifier: str, options: dict[str, Any], key: str, default: float,
                 lo: float = -math.inf, hi: float = math.inf) -> float:
    """A float option in [lo, hi]; anything else is an InputError naming the option."""
    raw = options.get(key, default)
    try:
        value = float(raw)
    except (TypeError, ValueError):
        raise InputError(f"verifier {verifier!r}: option '{key}': {raw!r} is not a number") from None
    if not (lo <= value <= hi) or math.isnan(value):
        raise InputError(f"verifier {verifier!r}: option '{key}': {value} is outside [{lo}, {hi}]")
    return value


def option_bool(verifier: str, options: dict[str, Any], key: str, default: bool) -> bool:
    raw = options.get(key, default)
    if isinstance(raw, bool):
        return raw
    text = str(raw).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise InputError(f"verifier {verifier!r}: option '{key}': {raw!r} is not true/false")


def check_unknown_options(verifier: str, options: dict[str, Any], known: set[str]) -> None:
    extra = sorted(set(options) - known)
    if extra:
        raise InputError(
            f"verifier {verifier!r}: unknown option '{extra[0]}' (known: {', '.join(sorted(known)) or 'none'})"
        )


# -- validation --------------------------------------------------------------------------------
#: reference fields of verifiers that do not declare ``requires`` themselves
FALLBACK_REQUIRES = {"unit_tests": ("tests", "entry_point")}


def check_fits(verifier: Verifier, problems: list[Problem]) -> None:
    """InputError when a problem lacks a reference field the verifier ``requires``."""
    needed = tuple(getattr(verifier, "requires", ()) or FALLBACK_REQUIRES.get(verifier.name, ()))
    for p in problems:
        for key in needed:
            if key not in p.reference or p.reference[key] is None:
                raise InputError(
                    f"verifier {verifier.name!r} needs reference field '{key}', which problem "
                    f"{p.problem_id!r} (task {p.task!r}) lacks"
                )


def load_problems(run: RunDir) -> dict[str, Problem]:
    """The run's problems by id, after checking that every sample's problem is among them
    (from the samples summary: no sample is read)."""
    from ttscale.rundir.summaries import samples_summary

    if run.path.is_file():
        raise InputError(f"{run.path}: a file, not a run directory (a counts table goes to "
                         "analyze, forecast or simulate)")
    if not run.exists():
        raise InputError(f"{run.path}: run directory does not exist")
    run.read_config()  # a run.json that is not JSON (or not a mapping) is refused, as analyze does
    if not run.has_samples():
        if not run.run_json.is_file() and not run.problems_path.is_file():
            from ttscale.rundir.outputs import not_a_run

            raise not_a_run(run.path)
        raise InputError(f"{run.samples_dir}: no samples in this run directory")
    problems = {p.problem_id: p for p in (Problem.from_row(r) for r in
                                          run.read_problems().to_dict("records"))}
    used = set(samples_summary(run).table["problem_id"].to_pylist())
    unknown = sorted(used - set(problems))
    if unknown:
        raise InputError(f"{run.samples_dir}: samples of problem {unknown[0]!r}, which "
                         f"{run.problems_path} does not list")
    return {pid: problems[pid] for pid in sorted(used)}


# -- running -----------------------------------------------------------------------------------

#: verdict rows kept in memory before they are written as a shard
FLUSH_ROWS = 500_000


@dataclass
class VerifyResult:
    name: str  # folder under verdicts/
    verified: int  # samples verified by this call
    skipped: int  # samples already verified before it
    passed: int  # of those verified by this call
    errors: int  # status error or timeout, of those verified by this call
    shards: int
    repaired: int = 0  # duplicate verdicts removed (left by concurrent runs of older versions)
    faults: dict[str, int] = field(default_factory=dict)  # executor ray: workers lost, replaced, dropped
    #: damaged verdict shards set aside (``repair=True``), their rows judged again
    set_aside: list[Path] = field(default_factory=list)


def prepare(run: RunDir, name: str | Verifier, options: dict[str, Any] | None = None,
            out_name: str | None = None) -> tuple[Verifier, str, dict[str, Problem]]:
    """Validate a verification request; return (verifier, folder name, problems used).

    ``name`` is a registered verifier's name (built with ``options``) or a Verifier object.
    A verifier's ``check_run(problems, samples)`` sees the samples' keys, one shard at a time."""
    from ttscale.verification.pending import iter_keys

    verifier = name if isinstance(name, Verifier) else make_verifier(name, options)
    problems = load_problems(run)
    check_fits(verifier, list(problems.values()))
    check = getattr(verifier, "check_run", None)
    if callable(check):
        for keys in iter_keys(run):
            check([problems[p] for p in sorted(set(keys["problem_id"]))], keys)
    folder = safe_name(out_name) if out_name else verdict_name(verifier)
    meta_path = run.verdicts_dir(folder) / "verifier.json"
    if meta_path.is_file():
        import json

        meta = json.loads(meta_path.read_text())
        mine = _jsonable(verifier.options)
        if meta.get("name") != verifier.name or meta.get("options") != mine:
            raise InputError(f"{meta_path}: verdicts there came from verifier {meta.get('name')!r} "
                             f"with options {meta.get('options')}, not {verifier.name!r} with {mine}"
                             f" (pick another {arg('name')})")
    return verifier, folder, problems


def verify_run(run_dir: str | os.PathLike | RunDir, name: str | Verifier, options: dict[str, Any] | None = None,
               *, workers: int | None = None, out_name: str | None = None,
               batch_problems: int = 64, time_limit: float = 60.0,
               time_limit_per_sample: float = 1.0, progress: Any = None,
               executor: Any = None, wait: bool | float = False,
               on_wait: Any = None, repair: bool = False) -> VerifyResult:
    """Verify every sample of ``run_dir`` not yet verified by this verifier; see module doc.

    Holds the stage lock ``verify:<folder>`` (:func:`ttscale.rundir.locks.stage_lock`) throughout:
    another process verifying into the same folder raises :class:`ttscale.rundir.locks.StageBusy`
    at once (or after ``wait`` seconds; True waits as long as it takes, telling ``on_wait``).
    A folder holding duplicate verdicts (from older versions) is repaired first. With ``repair``,
    damaged verdict shards (:mod:`ttscale.rundir.damage`) are set aside under ``damaged/`` first
    and their samples judged again.

    ``executor`` (a :class:`ttscale.sampling.executors.ExecutorSpec`; default local) set to ray fans the
    problems out to verifier actors on a Ray cluster (``workers`` is then unused).

    ``time_limit + time_limit_per_sample * n`` seconds is the wall-clock limit for a problem with
    ``n`` samples to verify (worker processes only). ``progress(done, total)`` (in samples, of
    those this call verifies) is called after each problem when given.
    """
    run = run_dir if isinstance(run_dir, RunDir) else RunDir(run_dir)
    verifier, folder, problems = prepare(run, name, options, out_name)
    # One verify per verifier folder at a time, taken before any worker or sandbox starts: a
    # second process gets StageBusy (one line, exit 2), never a second copy of every verdict.
    with stage_lock(run.path, f"verify:{folder}", wait=wait, on_wait=on_wait):
        return _verify_locked(run, verifier, folder, problems, workers=workers,
                              batch_problems=batch_problems, time_limit=time_limit,
                              time_limit_per_sample=time_limit_per_sample, progress=progress,
                              executor=executor, repair=repair)


def _record_faults(run: RunDir, folder: str, faults: dict[str, int]) -> None:
    """Add this call's cluster faults to ``executor_faults`` in the folder's verifier.json."""
    import contextlib
    import json

    path = run.verdicts_dir(folder) / "verifier.json"
    with contextlib.suppress(OSError, ValueError):  # never hides the error that ended the call
        meta = json.loads(path.read_text())
        old = meta.get("executor_faults", {})
        meta["executor_faults"] = {k: int(old.get(k, 0)) + int(faults.get(k, 0))
                                   for k in sorted(set(old) | set(faults))}
        atomic_write_json(path, meta)


def _has_duplicates(run: RunDir, folder: str) -> bool:
    """Whether some (problem, temperature) has more verdicts than samples (from the summaries)."""
    from ttscale.rundir.store import shard_paths
    from ttscale.rundir.summaries import samples_summary, verdict_summary

    if not shard_paths(run.verdicts_dir(folder)):
        return False
    v = verdict_summary(run, folder, check=False).table.to_pandas()
    done = v.groupby(["problem_id", "temperature", "budget"])["count"].sum()
    n = samples_summary(run).table.to_pandas().set_index(["problem_id", "temperature", "budget"])["n"]
    return bool((done > n.reindex(done.index, fill_value=0)).any())


def _verify_locked(run: RunDir, verifier: Verifier, folder: str, problems: dict[str, Problem], *,
                   workers: int | None, batch_problems: int, time_limit: float,
                   time_limit_per_sample: float, progress: Any, executor: Any,
                   repair: bool = False) -> VerifyResult:
    from ttscale.verification.pending import iter_tasks, mark_covered, needed_columns, plan

    set_aside = []
    if repair:
        from ttscale.rundir.store import repair_folder

        set_aside = repair_folder(run.verdicts_dir(folder), VERDICT_SCHEMA)

    # duplicates left by older versions' concurrent runs (reads the verdicts only when present)
    repaired = run.dedupe_verdicts(folder) if _has_duplicates(run, folder) else 0
    todo = plan(run, folder)  # from the summaries: a re-run with nothing to do reads no sample
    result = VerifyResult(folder, 0, todo.skipped, 0, 0, 0, repaired, set_aside=set_aside)
    atomic_write_json(run.verdicts_dir(folder) / "verifier.json", {
        "name": verifier.name, "kind": verifier.kind,
        "options": _jsonable(verifier.options)})
    if todo.todo == 0:
        mark_covered(run, folder, todo)
        return result
    tasks = iter_tasks(run, todo, needed_columns(verifier), problems)
    if workers is None:  # cheap verifiers (string matching) are faster than starting processes,
        # and one with its own pool (verify_many) parallelises itself
        inline = getattr(verifier, "cheap", False) or callable(getattr(verifier, "verify_many", None))
        workers = 0 if inline else min(os.cpu_count() or 1, todo.problems)
    n_workers = int(workers)
    if n_workers < 0:
        raise InputError(f"{arg('workers', n_workers)}: must be 0 (in-process) or more")

    def limit_fn(df: pd.DataFrame) -> float:
        return time_limit + time_limit_per_sample * len(df)

    faults: dict[str, int] = {}  # the cluster's: workers lost, replaced, dropped
    if executor is not None and not executor.is_local:  # verifier actors on a Ray cluster
        from ttscale.verification.ray_verify import ray_frames

        frames = ray_frames(verifier, tasks, executor.ray, limit_fn, batch_problems,
                            total_problems=todo.problems, faults=faults)
    elif n_workers == 0 and callable(getattr(verifier, "verify_many", None)):
        # a verifier with its own parallelism (unit_tests' sandbox pool): one call per batch
        from itertools import islice

        chunks = iter(lambda: list(islice(tasks, batch_problems)), [])
        frames = (verifier.verify_many(b)[VERDICT_COLUMNS] for b in chunks)
    elif n_workers == 0:
        frames = (_verify_one(verifier, p, s) for p, s in tasks)
    else:
        frames = _run_pool(verifier, tasks, n_workers, limit_fn)
    pending: list[pd.DataFrame] = []

    def flush() -> None:
        if pending:
            run.write_verdicts(folder, pd.concat(pending, ignore_index=True))
            result.shards += 1
            pending.clear()

    pending_problems = pending_rows = 0
    try:
        for frame in frames:  # one problem's verdicts (a batch's, for verify_many)
            pending.append(frame)
            pending_problems += int(frame["problem_id"].nunique())
            pending_rows += len(frame)
            result.verified += len(frame)
            result.passed += int(frame["passed"].sum())
            result.errors += int(frame["status"].isin(["error", "timeout"]).sum())
            if progress is not None:
                progress(result.verified, todo.todo)
            if pending_problems >= batch_problems or pending_rows >= FLUSH_ROWS:
                flush()
                pending_problems = pending_rows = 0
    finally:
        flush()  # finished problems are kept even when interrupted: a re-run resumes
        if any(faults.values()):
            _record_faults(run, folder, faults)
            result.faults = dict(faults)
    from ttscale.rundir.summaries import verdict_summary

    verdict_summary(run, folder, check=False)  # fold the new shards now (analysis reads these)
    mark_covered(run, folder, todo)  # finished: every sample shard planned for is verified
    return result
