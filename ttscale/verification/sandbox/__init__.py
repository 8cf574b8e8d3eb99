"""A sandbox for generated code: warm, namespaced, rlimited workers (see runner and worker)."""

from ttscale.verification.sandbox.runner import (
    Job,
    Limits,
    Result,
    SandboxPool,
    SandboxUnavailable,
    Status,
    default_pool,
    run_programs,
    scaled_timeout,
)

__all__ = [
    "Job",
    "Limits",
    "Result",
    "SandboxPool",
    "SandboxUnavailable",
    "Status",
    "default_pool",
    "run_programs",
    "scaled_timeout",
]
