"""Adaptive sampling's stopping rule: fixed round boundaries, stop once ``successes`` are seen.

The rule is a sampling plan, so it lives with sampling; its exactly unbiased estimators are in
:mod:`ttscale.analysis.adaptive.estimators`, which explains the rule in full.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from ttscale.errors import InputError

__all__ = ["StoppingRule"]


@dataclass(frozen=True)
class StoppingRule:
    """Stop a (problem, temperature) at the first boundary with ``>= successes`` successes and
    ``>= min_samples`` samples; boundaries start at ``first_round`` and grow by ``growth``."""

    successes: int = 4
    min_samples: int = 1
    first_round: int = 32
    growth: float = 2.0

    def __post_init__(self) -> None:
        self.check()

    def check(self, k: int | None = None, where: str = "adaptive") -> None:
        """InputError naming the field for a rule that cannot be run (or not with this K)."""
        def bad(field: str, msg: str) -> InputError:
            return InputError(f"{where}: field '{field}': {msg}")

        for field in ("successes", "min_samples", "first_round"):
            v = getattr(self, field)
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
                raise bad(field, f"must be a whole number, got {v!r}")
        if self.successes < 1:
            raise bad("successes", f"must be at least 1, got {self.successes}")
        if self.min_samples < 1:
            raise bad("min_samples", f"must be at least 1, got {self.min_samples}")
        if self.first_round < 1:
            raise bad("first_round", f"must be at least 1, got {self.first_round}")
        g = self.growth
        if isinstance(g, bool) or not isinstance(g, (int, float)) or not math.isfinite(g) or g <= 1:
            raise bad("growth", f"must be a number > 1, got {g!r}")
        if k is not None:
            if self.min_samples > k:
                raise bad("min_samples", f"{self.min_samples} exceeds K={k} (num_samples)")
            if self.successes > k:
                raise bad("successes", f"{self.successes} exceeds K={k} (num_samples)")

    def boundaries(self, k: int) -> list[int]:
        """The round boundaries below K, then K: ``first_round``, then ``ceil(b * growth)``
        (at least b + 1). They do not depend on K except for the cap, so a run extended to a
        larger K continues the same boundaries (with the old K as one more check)."""
        out: list[int] = []
        b = int(self.first_round)
        while b < k:
            out.append(b)
            nxt = b * self.growth
            b = max(b + 1, math.ceil(nxt - 1e-9 * nxt))
        out.append(int(k))
        return out

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
