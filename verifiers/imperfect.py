"""``imperfect``: any oracle verifier made wrong at chosen rates, to study imperfect verifiers.

Options: ``base`` (an oracle verifier's name, default ``exact``), ``fpr`` (the chance of
accepting a wrong sample), ``fnr`` (the chance of rejecting a right one), ``seed`` (default 0),
and ``base.KEY=VALUE`` for the base verifier's own options.

Each flip is decided by a uniform number hashed from (seed, problem_id, temperature,
sample_index), so re-runs, resumed runs and any split over worker processes give the same
verdicts, and two imperfect verifiers with different rates but one seed are coupled (raising
``fpr`` only ever adds acceptances).

Verdict rows: ``passed`` and ``status`` (pass/fail) are the *imperfect* decision; ``answer`` is
the base verifier's normalised answer. The truth is not duplicated here: ``ttscale compare``
joins these rows on the sample key with a reference oracle's verdicts (``--oracle``; by default
the first oracle listed, else this verifier's base, ``verdicts/<base>/``) to get each sample's
true correctness, and from it the accept rates for right and wrong samples.
The verdict folder's name encodes the options: ``imperfect-exact-fpr0.1-fnr0.05`` (``-seedS``
added for a seed other than 0).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import pandas as pd

from ttscale.core.registry import verifiers
from ttscale.errors import InputError
from ttscale.plugins import Problem, Verifier
from ttscale.verification.verify import make_verifier, option_float, verdict_frame


def flip_uniforms(seed: int, samples: pd.DataFrame) -> np.ndarray:
    """One uniform number in [0, 1) per sample, a hash of (seed, problem, temperature, index, budget)."""
    out = np.empty(len(samples))
    budgets = (samples["budget"].astype(np.int64) if "budget" in samples
               else pd.Series(np.zeros(len(samples), np.int64)))
    keys = zip(samples["problem_id"].astype(str), samples["temperature"].astype(float),
               samples["sample_index"].astype(np.int64), budgets, strict=True)
    for i, (pid, temp, idx, budget) in enumerate(keys):
        # budget 0 (no budget axis) hashes as before budgets existed: the same flips
        tail = f"\x00{int(budget)}" if int(budget) else ""
        key = f"{seed}\x00{pid}\x00{temp!r}\x00{int(idx)}{tail}".encode()
        h = int.from_bytes(hashlib.blake2b(key, digest_size=8).digest(), "little")
        out[i] = (h >> 11) / float(1 << 53)
    return out


@verifiers.register("imperfect", "an oracle with seeded false-positive/negative rates")
@dataclass
class ImperfectVerifier(Verifier):
    """Wraps an oracle verifier; flips its verdicts at rates ``fpr`` and ``fnr``."""

    name: ClassVar[str] = "imperfect"
    kind: ClassVar[str] = "imperfect"
    option_help: ClassVar[dict[str, str]] = {
        "base": "the oracle made imperfect (default exact); base.KEY=VALUE for its options",
        "fpr": "chance of accepting a wrong sample (default 0)",
        "fnr": "chance of rejecting a right sample (default 0)",
        "seed": "seed of the flips (default 0)",
    }

    def __post_init__(self) -> None:
        known = {"base", "fpr", "fnr", "seed"}
        for key in self.options:
            if key not in known and not key.startswith("base."):
                raise InputError(f"verifier 'imperfect': unknown option '{key}' (known: base, "
                                 "fpr, fnr, seed, base.KEY)")
        self.base_name = str(self.options.get("base", "exact"))
        if self.base_name == "imperfect":
            raise InputError("verifier 'imperfect': option 'base': cannot wrap itself")
        self.fpr = option_float(self.name, self.options, "fpr", 0.0, 0.0, 1.0)
        self.fnr = option_float(self.name, self.options, "fnr", 0.0, 0.0, 1.0)
        seed = option_float(self.name, self.options, "seed", 0, 0, 2**63 - 1)
        if seed != int(seed):
            raise InputError(f"verifier 'imperfect': option 'seed': {seed} is not a whole number")
        self.seed = int(seed)
        base_opts = {k[5:]: v for k, v in self.options.items() if k.startswith("base.")}
        self.base = make_verifier(self.base_name, base_opts)
        if self.base.kind != "oracle":
            raise InputError(f"verifier 'imperfect': option 'base': {self.base_name!r} is a "
                             f"{self.base.kind}, not an oracle")
        self.requires = tuple(getattr(self.base, "requires", ()) or ())
        self.cheap = bool(getattr(self.base, "cheap", False))

    def dir_name(self) -> str:
        name = f"imperfect-{self.base_name}-fpr{self.fpr:g}-fnr{self.fnr:g}"
        return name + (f"-seed{self.seed}" if self.seed else "")

    def check_run(self, problems: list[Problem], samples: pd.DataFrame) -> None:
        check = getattr(self.base, "check_run", None)
        if callable(check):
            check(problems, samples)

    def verify(self, problem: Problem, samples: pd.DataFrame) -> pd.DataFrame:
        base = self.base.verify(problem, samples)
        truth = base["passed"].to_numpy(dtype=bool)
        u = flip_uniforms(self.seed, samples)
        passed = np.where(truth, u >= self.fnr, u < self.fpr)
        status = base["status"].to_numpy(dtype=object).copy()
        decided = np.isin(status, ["pass", "fail"])
        # an error/timeout of the base verifier stays one (with the imperfect decision applied)
        status[decided] = np.where(passed[decided], "pass", "fail")
        return verdict_frame(samples, passed, answer=base["answer"].tolist(),
                             status=status.tolist(), error=base["error"].tolist())
