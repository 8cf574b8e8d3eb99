"""``math``: the Math-Verify oracle (``0.5`` = ``\\boxed{1/2}``, ``#### 72`` = ``72``, intervals,
sets, symbolic expressions).

Math-Verify parses the reference and each completion into SymPy, then compares them. It is slow
next to string matching (1-100 ms a call), so this verifier does each piece of work once per
problem: it parses each *distinct* completion text once, and verifies each *distinct* parsed
answer once (10,000 samples of one problem repeat a few dozen answers). ``dedup=false`` turns
that off (every sample parsed and verified on its own: the baseline of
``benchmarks/bench_math_verify.py``; the verdicts are the same).

Timeouts: Math-Verify's own timeouts use SIGALRM, which only works on a process's main thread.
``ttscale verify`` runs this verifier on the main thread of worker processes, where the
per-call timeouts (options ``parse_timeout``, ``verify_timeout``, whole seconds) apply and a
timed-out sample gets status ``timeout``; the parent also kills a worker stuck past its
wall-clock limit. Called off the main thread (a thread pool), the verifier runs Math-Verify
with its timeouts off instead of crashing, and the caller owns the time limit.

The ``answer`` column holds a canonical form of the parsed answer for voting: numbers as in
:func:`ttscale.verification.answers.canonical_number` (``0.5`` and ``\\frac{1}{2}`` -> ``0.5``), other
expressions as SymPy prints them.
"""

from __future__ import annotations

import logging
import signal
import threading
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, ClassVar

import pandas as pd

from ttscale.core.registry import verifiers
from ttscale.plugins import Problem, Verifier
from ttscale.verification.answers import canonical_number, parse_number
from ttscale.verification.verify import (
    check_unknown_options,
    option_bool,
    option_float,
    verdict_frame,
)

_TIMEOUT = object()  # sentinel: the call timed out


def _timeouts_allowed() -> bool:
    return hasattr(signal, "SIGALRM") and threading.current_thread() is threading.main_thread()


def canonical_parsed(parsed: list[Any]) -> str | None:
    """A canonical string for a Math-Verify parse result (its first, preferred element).

    Never evaluates anything (``2^{2^{30}}`` stays symbolic): rational and float values, or an
    extracted string that reads as a number (``1/2``, which Math-Verify keeps unevaluated),
    become :func:`canonical_number`; anything else is SymPy's printout without spaces.
    """
    if not parsed:
        return None
    expr = parsed[0]
    text = parsed[1] if len(parsed) > 1 and isinstance(parsed[1], str) else None
    try:
        import sympy

        if isinstance(expr, sympy.Rational):
            return canonical_number(Fraction(int(expr.p), int(expr.q)))
        if isinstance(expr, sympy.Float):
            return canonical_number(Fraction(str(expr)))
    except (ImportError, ValueError, TypeError):
        pass
    num = parse_number(text) if text else None
    if num is not None:
        return canonical_number(num)
    try:
        return "".join(str(expr).split()).lower()
    except ValueError:  # an integer too long to print
        return text


@verifiers.register("math", "Math-Verify equivalence of the final answer (SymPy)")
@dataclass
class MathAnswer(Verifier):
    """Math-Verify equivalence of each sample's answer with the reference answer."""

    name: ClassVar[str] = "math"
    kind: ClassVar[str] = "oracle"
    requires: ClassVar[tuple[str, ...]] = ("answer",)
    option_help: ClassVar[dict[str, str]] = {
        "dedup": "verify each distinct answer of a problem once (default true)",
        "parse_timeout": "seconds for Math-Verify's parse of one answer, 0 for none (default 5)",
        "verify_timeout": "seconds for one equivalence check, 0 for none (default 5)",
        "float_rounding": "decimal places numbers are rounded to before comparing (default 6)",
    }

    def __post_init__(self) -> None:
        check_unknown_options(self.name, self.options,
                              {"dedup", "parse_timeout", "verify_timeout", "float_rounding"})
        self.dedup = option_bool(self.name, self.options, "dedup", True)
        self.parse_timeout = int(option_float(self.name, self.options, "parse_timeout", 5, 0, 3600))
        self.verify_timeout = int(option_float(self.name, self.options, "verify_timeout", 5, 0, 3600))
        self.float_rounding = int(option_float(self.name, self.options, "float_rounding", 6, 0, 30))
        try:
            import math_verify  # noqa: F401
        except ImportError:
            from ttscale.errors import InputError

            raise InputError("verifier 'math' needs Math-Verify: pip install "
                             "'math-verify[antlr4_13_2]' (or ttscale[math])") from None

    # Math-Verify calls, each returning _TIMEOUT on a timeout
    def _parse(self, text: str) -> Any:
        from math_verify import parse
        from math_verify.errors import TimeoutException

        t = self.parse_timeout if _timeouts_allowed() and self.parse_timeout > 0 else None
        try:
            return parse(text, parsing_timeout=t, raise_on_error=True)
        except TimeoutException:
            return _TIMEOUT
        except Exception:  # noqa: BLE001 - Math-Verify could not read it: no answer
            return []

    def _verify(self, gold: list[Any], parsed: list[Any]) -> Any:
        from math_verify import verify
        from math_verify.errors import TimeoutException

        t = self.verify_timeout if _timeouts_allowed() and self.verify_timeout > 0 else None
        try:
            return bool(verify(gold, parsed, float_rounding=self.float_rounding,
                               timeout_seconds=t, raise_on_error=True))
        except TimeoutException:
            return _TIMEOUT
        except Exception:  # noqa: BLE001 - incomparable expressions are not equal
            return False

    def parse_gold(self, answer: str) -> list[Any]:
        for candidate in (answer, f"${answer}$", f"\\boxed{{{answer}}}"):
            parsed = self._parse(candidate)
            if parsed is not _TIMEOUT and parsed:
                return parsed
        return []

    def verify(self, problem: Problem, samples: pd.DataFrame) -> pd.DataFrame:
        logging.getLogger("math_verify").setLevel(logging.ERROR)
        n = len(samples)
        gold = self.parse_gold(str(problem.reference["answer"]))
        if not gold:
            msg = f"reference answer {problem.reference['answer']!r} does not parse"
            return verdict_frame(samples, [False] * n, status=["error"] * n, error=[msg] * n)
        texts = samples["text"].fillna("").astype(str).tolist()
        parse_cache: dict[str, Any] = {}
        verify_cache: dict[str, Any] = {}
        passed, answers, status, errors = [], [], [], []
        for text in texts:
            if self.dedup and text in parse_cache:
                parsed = parse_cache[text]
            else:
                parsed = parse_cache[text] = self._parse(text)
            if parsed is _TIMEOUT:
                passed.append(False)
                answers.append(None)
                status.append("timeout")
                errors.append(f"parsing took over {self.parse_timeout} s")
                continue
            key = canonical_parsed(parsed)
            if key is None:
                ok: Any = False
            elif self.dedup and key in verify_cache:
                ok = verify_cache[key]
            else:
                ok = verify_cache[key] = self._verify(gold, parsed)
            answers.append(key)
            if ok is _TIMEOUT:
                passed.append(False)
                status.append("timeout")
                errors.append(f"verification took over {self.verify_timeout} s")
            else:
                passed.append(bool(ok))
                status.append("pass" if ok else "fail")
                errors.append(None)
        return verdict_frame(samples, passed, answer=answers, status=status, error=errors)
