"""The unit-test verifier: runs each generated program against its problem's tests, sandboxed.

A problem's reference holds ``tests`` (program text defining ``check``), ``entry_point`` (the
function under test) and optionally ``prompt_prefix`` (prepended to each completion; defaults to
the problem's prompt), ``reference_solution_time`` (seconds) or ``canonical_solution`` (timed once
in the sandbox, per problem and process, when ``calibrate`` is on). The candidate's program is
the HumanEval one, prompt + completion; a completion with a fenced code block (a chat answer) is
taken to be that block, after the prompt (whose imports it may rely on).

The tests never share a process with the candidate (see :mod:`ttscale.verification.sandbox`): they run in a
trusted process of their own, after the prompt (trusted: the task's own text, for the helper
functions some tests use, e.g. HumanEval/32's ``poly``), with ``check(entry_point)`` calling the
candidate's function across a plain-data channel. Arguments and return values cross as numbers,
strings, bytes, None, lists, tuples, dicts and sets only: an object whose ``__eq__`` is always
true, a lying subclass of int or str, a patched builtin, the harness's frames or modules --
nothing the candidate does in its own process reaches the tests or the verdict. A program that
raises or exits before its code finishes fails, as does one that leaves a process running.

Options: ``timeout_base`` and ``timeout_factor`` (the limit is ``max(base, factor * reference
time)``, evalplus's rule), ``calibrate``, ``workers`` and the :class:`ttscale.verification.sandbox.Limits`
fields (``memory_mb``, ``nproc``, ``nofile``, ``fsize_mb``, ``scratch_mb``, ``output_bytes``);
``workers`` defaults to two per core.
``strict_returns`` is accepted for older configs only as ``true`` (plain data is now the only way
values reach the tests). Timeouts are recorded with status ``timeout``, apart from failures.
"""

from __future__ import annotations

import functools
import math
import os
import re
import threading
from dataclasses import dataclass, fields
from typing import ClassVar

import pandas as pd

from ttscale.core.registry import verifiers
from ttscale.errors import InputError
from ttscale.plugins import Problem, Verifier
from ttscale.rundir.store import VERDICT_SCHEMA
from ttscale.verification.sandbox import Job, Limits, Result, SandboxPool, Status, scaled_timeout
from ttscale.verification.sandbox.runner import default_workers

LIMIT_FIELDS = tuple(f.name for f in fields(Limits))
OPTIONS = {"timeout_base", "timeout_factor", "calibrate", "strict_returns", "workers",
           *LIMIT_FIELDS}
FENCE = re.compile(r"```[ \t]*(?:python3?|py)?[ \t]*\n(.*?)(?:```|\Z)", re.S | re.I)
IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")

_pools: dict[tuple, SandboxPool] = {}
_pools_lock = threading.Lock()
_calibrated: dict[tuple[str, str], float] = {}


def completion_code(prefix: str, text: str) -> str:
    """The program a completion stands for: prefix + text, or prefix + its first code block."""
    m = FENCE.search(text)
    if m:
        return prefix + "\n" + m.group(1)
    return prefix + text


def test_code(tests: str, entry_point: str) -> str:
    return f"{tests}\n\ncheck({entry_point})\n"


@functools.lru_cache(maxsize=4096)
def trusted_context(prefix: str) -> str | None:
    """The prompt as code for the test process (its imports and helper functions).

    A HumanEval prompt compiles as it is (the function under test has a docstring for a body);
    a bare ``def f(x):`` header is completed with ``pass``; anything else gives no context (the
    tests then call whatever they use in the candidate's process).
    """
    for text in (prefix, prefix.rstrip() + "\n    pass\n"):
        try:
            compile(text, "<context>", "exec")
            return text
        except (SyntaxError, ValueError):
            continue
    return None


@verifiers.register("unit_tests", "runs generated code against the problem's unit tests, sandboxed")
@dataclass
class UnitTests(Verifier):
    name: ClassVar[str] = "unit_tests"
    kind: ClassVar[str] = "oracle"
    option_help: ClassVar[dict[str, str]] = {
        "timeout_base": "seconds every program gets before scaling (default 4)",
        "timeout_factor": "times the reference solution's time added to the limit (default 4)",
        "calibrate": "time the reference solution when the task gives no time (default true)",
        "strict_returns": "a test that returns without checking does not pass (default true)",
        "workers": "sandboxed worker processes (default: the CPU count)",
        **{name: f"sandbox limit (default {getattr(Limits(), name)})" for name in LIMIT_FIELDS},
    }

    def __post_init__(self) -> None:
        unknown = sorted(set(self.options) - OPTIONS)
        if unknown:
            raise InputError(
                f"unit_tests verifier: unknown option(s) {unknown} (known: {sorted(OPTIONS)})"
            )
        for name in ("timeout_base", "timeout_factor"):
            value = self.options.get(name, 4.0)
            if not isinstance(value, int | float) or not math.isfinite(value) or value <= 0:
                raise InputError(f"unit_tests verifier: option '{name}' must be a positive number, "
                                 f"got {value!r}")
        for name in ("calibrate", "strict_returns"):
            if not isinstance(self.options.get(name, True), bool):
                raise InputError(f"unit_tests verifier: option '{name}' must be true or false, "
                                 f"got {self.options[name]!r}")
        if self.options.get("strict_returns", True) is False:
            raise InputError("unit_tests verifier: option 'strict_returns' can no longer be false: "
                             "the tests run in a process of their own and receive plain data only "
                             "(numbers, strings, bytes, None, lists, tuples, dicts, sets)")
        for name in ("workers", *LIMIT_FIELDS):
            value = self.options.get(name)
            if value is not None and (not isinstance(value, int) or isinstance(value, bool)
                                      or value < 1):
                raise InputError(f"unit_tests verifier: option '{name}' must be a positive "
                                 f"integer, got {value!r}")

    # -- the pool ----------------------------------------------------------------------------
    def limits(self) -> Limits:
        return Limits(**{k: self.options[k] for k in LIMIT_FIELDS if k in self.options})

    def pool(self) -> SandboxPool:
        """A warm pool for these options, shared within the process."""
        workers = int(self.options.get("workers") or default_workers())
        key = (os.getpid(), workers, self.limits())
        with _pools_lock:
            pool = _pools.get(key)
            if pool is None:
                pool = _pools[key] = SandboxPool(workers=workers, limits=self.limits())
                import atexit

                atexit.register(pool.close)
            return pool

    # -- building programs -------------------------------------------------------------------
    def _reference(self, problem: Problem) -> tuple[str, str, str]:
        ref = problem.reference or {}
        where = f"problems.parquet: problem {problem.problem_id!r}"
        tests, entry = ref.get("tests"), ref.get("entry_point")
        if not isinstance(tests, str) or not tests.strip():
            raise InputError(f"{where}: reference field 'tests' missing or empty "
                             "(needed by the unit_tests verifier)")
        if not isinstance(entry, str) or not IDENTIFIER.match(entry):
            raise InputError(f"{where}: reference field 'entry_point' missing or not an identifier")
        prefix = ref.get("prompt_prefix", problem.prompt)
        if not isinstance(prefix, str):
            raise InputError(f"{where}: reference field 'prompt_prefix' must be a string")
        return prefix, tests, entry

    def timeout(self, problem: Problem) -> float:
        """The time limit of this problem's programs (seconds)."""
        ref = problem.reference or {}
        base = float(self.options.get("timeout_base", 4.0))
        factor = float(self.options.get("timeout_factor", 4.0))
        t = ref.get("reference_solution_time")
        if t is None and self._wants_calibration(problem):
            self.calibrate([problem])
            t = _calibrated.get(self._calibration_key(problem))
            t = None if t is None or math.isnan(t) else t
        if t is not None and (not isinstance(t, int | float) or isinstance(t, bool)):
            raise InputError(f"problems.parquet: problem {problem.problem_id!r}: reference field "
                             f"'reference_solution_time' must be a number, got {t!r}")
        return scaled_timeout(t, base=base, factor=factor)

    def _wants_calibration(self, problem: Problem) -> bool:
        ref = problem.reference or {}
        return (ref.get("reference_solution_time") is None and bool(self.options.get("calibrate", True))
                and isinstance(ref.get("canonical_solution"), str))

    def _calibration_key(self, problem: Problem) -> tuple[str, str]:
        prefix, tests, _ = self._reference(problem)
        return (problem.problem_id, prefix + problem.reference["canonical_solution"] + tests)

    def calibrate(self, problems: list[Problem]) -> None:
        """Time the canonical solutions not timed yet in this process, in one batch."""
        todo = {}
        for p in problems:
            if self._wants_calibration(p) and self._calibration_key(p) not in _calibrated:
                prefix, tests, entry = self._reference(p)
                todo[self._calibration_key(p)] = Job(
                    prefix + p.reference["canonical_solution"], test_code(tests, entry), 60.0,
                    entry, trusted_context(prefix))
        if todo:
            results = self.pool().run(list(todo.values()))
            for key, r in zip(todo, results, strict=True):
                _calibrated[key] = r.duration if r.passed else math.nan

    def jobs(self, problem: Problem, samples: pd.DataFrame) -> list[Job]:
        prefix, tests, entry = self._reference(problem)
        timeout = self.timeout(problem)
        test = test_code(tests, entry)
        texts = samples["text"].tolist() if "text" in samples.columns else []
        if len(texts) != len(samples):
            raise InputError(f"samples of problem {problem.problem_id!r}: no 'text' column")
        context = trusted_context(prefix)
        return [Job(completion_code(prefix, t if isinstance(t, str) else ""), test, timeout, entry,
                    context) for t in texts]

    # -- verdicts ----------------------------------------------------------------------------
    def verify(self, problem: Problem, samples: pd.DataFrame) -> pd.DataFrame:
        return self.verify_many([(problem, samples)])

    def verify_many(self, items: list[tuple[Problem, pd.DataFrame]]) -> pd.DataFrame:
        """Verdicts for the samples of several problems, run as one batch over the pool."""
        jobs: list[Job] = []
        self.calibrate([problem for problem, _ in items])
        for problem, samples in items:
            jobs += self.jobs(problem, samples)
        results = self.pool().run(jobs) if jobs else []
        keys: dict[str, list] = {"problem_id": [], "temperature": [], "sample_index": [], "budget": []}
        for _, samples in items:  # plain lists: per-problem pandas selections cost more than runs
            for col, values in keys.items():
                values += (samples[col].tolist() if col in samples.columns
                           else [0] * len(samples))  # budget 0: samples without the budget axis
        return verdict_frame(pd.DataFrame(keys), results)


def verdict_frame(keys: pd.DataFrame, results: list[Result]) -> pd.DataFrame:
    """Rows of VERDICT_SCHEMA: the sample keys with each result's status."""
    out = keys.reset_index(drop=True).copy()
    out["temperature"] = out["temperature"].astype("float64")
    out["sample_index"] = out["sample_index"].astype("int64")
    out["budget"] = out["budget"].astype("int64") if "budget" in out else 0
    out["passed"] = [r.status is Status.PASS for r in results]
    out["score"] = math.nan
    out["answer"] = pd.Series([None] * len(results), dtype=object)
    out["status"] = [r.status.value for r in results]
    out["error"] = [r.error if r.status in (Status.ERROR, Status.TIMEOUT) else None
                    for r in results]
    return out[VERDICT_SCHEMA.names]
