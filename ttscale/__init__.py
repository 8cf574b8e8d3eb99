"""ttscale: a test-time compute scaling simulator.

Sample K completions per problem (vLLM, transformers, OpenAI-compatible servers, or the embedded
model), verify them with pluggable verifiers, and turn the verdicts into unbiased scaling curves,
fitted laws, forecasts, ceilings and costs. Every stage reads and writes one run directory.

The same verbs as the ``ttscale`` command, callable from Python (see ``ttscale.api``)::

    import ttscale
    ttscale.sample("arithmetic", model="embedded", num_samples=32, out="runs/a")
    ttscale.verify("runs/a", "exact")
    a = ttscale.analyze("runs/a")            # or a counts table: path or DataFrame
    a.curves, a.fits, a.plot()
    ttscale.compare("runs/a", ["exact", "imperfect(base=exact,fpr=0.1)"])
    ttscale.forecast(counts, to=10_000); ttscale.simulate(counts, fpr=0.05)
    f = ttscale.frontier("runs/a"); f.table, f.moves, f.allocation, f.plot()
    ttscale.sweep("examples/embedded.yaml"); ttscale.report("results/embedded-think")
    run = ttscale.open_run("runs/a"); run.samples, run.verdicts

Importing ``ttscale`` is cheap: each name is loaded on first use (no torch, vLLM or matplotlib
until a verb needs them). Bad input raises :class:`ttscale.InputError`.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

#: public name -> module that defines it (loaded on first access)
_EXPORTS: dict[str, str] = {
    # the verbs (one per CLI command)
    "sample": "ttscale.api",
    "verify": "ttscale.api",
    "analyze": "ttscale.api",
    "compare": "ttscale.api",
    "forecast": "ttscale.api",
    "forecast_records": "ttscale.api",
    "simulate": "ttscale.api",
    "temperatures": "ttscale.api",
    "frontier": "ttscale.api",
    "sweep": "ttscale.api",
    "sweep_plan": "ttscale.api",
    "report": "ttscale.api",
    "list_plugins": "ttscale.api",
    "open_run": "ttscale.rundir.runs",
    # what they return
    "Run": "ttscale.rundir.runs",
    "Analysis": "ttscale.analysis.results",
    "Comparison": "ttscale.analysis.results",
    "Simulation": "ttscale.analysis.results",
    "Frontier": "ttscale.analysis.frontier.result",
    "SamplingResult": "ttscale.sampling.sampler",
    "VerifyResult": "ttscale.verification.verify",
    "SweepConfig": "ttscale.orchestration.config",
    "InputError": "ttscale.errors",
    # estimators on per-problem counts (numpy in, numpy out)
    "pass_at_k": "ttscale.api.checks",  # strict: k > n is an InputError
    "coverage": "ttscale.api.checks",
    "bootstrap_ci": "ttscale.analysis.curves.estimators",
    "maj_at_k": "ttscale.analysis.curves.selection",
    "best_of_k": "ttscale.analysis.curves.selection",
    "weighted_vote_at_k": "ttscale.analysis.curves.selection",
    "fit_power_law": "ttscale.analysis.laws.power_law",
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str) -> Any:
    """Load a public name from its module on first access (PEP 562)."""
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'ttscale' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
