"""The ``adaptive:`` block of sample and sweep settings, and the check that a resumed run keeps it.

Kept apart from :mod:`ttscale.orchestration.adaptive` (the sampling loop, which drives
:mod:`ttscale.sampling.sampler`) so that ``SampleSettings`` can hold it without an import cycle.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from ttscale.errors import InputError, arg
from ttscale.sampling.stopping import StoppingRule

#: the fields of the rule; a resumed run must keep every one
RULE_FIELDS = ("successes", "min_samples", "first_round", "growth", "verifier", "verifier_options")


class AdaptiveSettings(BaseModel):
    """The ``adaptive:`` block: sample until solved (see the module doc)."""

    model_config = ConfigDict(extra="forbid")

    successes: int = Field(4, ge=1, description="r: stop once this many samples passed the oracle verifier.")
    min_samples: int = Field(1, ge=1, description="m: never stop before this many samples (maj@k etc. are valid for k <= m).")
    first_round: int = Field(32, ge=1, description="The first round boundary (samples per (problem, temperature)).")
    growth: float = Field(2.0, gt=1, allow_inf_nan=False, description="Each boundary is the last times this (rounded up).")
    verifier: str | None = Field(None, description="The verifier that decides (default: the task's oracle, its first).")
    verifier_options: dict[str, Any] = Field(default_factory=dict, description="Options of that verifier.")

    def rule(self) -> StoppingRule:
        return StoppingRule(self.successes, self.min_samples, self.first_round, float(self.growth))


def check_rule(old: dict[str, Any], s: Any, where: str) -> None:
    """InputError naming the field when ``s`` would change the stored run's stopping rule."""
    theirs = old.get("adaptive")
    mine = s.adaptive.model_dump() if s.adaptive is not None else None
    if theirs is None and mine is None:
        return
    if theirs is None:
        raise InputError(f"{where}: field 'adaptive': this run was sampled without a stopping rule; "
                         f"use another {arg('out')} for an adaptive run")
    if mine is None:
        raise InputError(f"{where}: field 'adaptive': this run samples until solved "
                         f"({theirs}); give the same adaptive block or use another {arg('out')}")
    for key in RULE_FIELDS:
        if theirs.get(key) != mine.get(key):
            raise InputError(f"{where}: field 'adaptive.{key}' is {theirs.get(key)!r} in this run, "
                             f"not {mine.get(key)!r}: the stopping rule cannot change (use another {arg('out')})")
