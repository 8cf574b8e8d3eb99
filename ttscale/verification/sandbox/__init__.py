"""A sandbox for generated code: warm namespaced workers, each program in a world of its own
(PID, IPC and mount namespaces, scratch, uid, seccomp filter, control group; see runner, worker
and candidate)."""

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
