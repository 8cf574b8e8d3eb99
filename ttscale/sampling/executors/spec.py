"""What an executor is: its name (``local`` or ``ray``) and, for ray, its options, validated.

Kept apart from ``ttscale.sampling.executors`` (which builds backends) so that the Ray modules can import
the options without importing the package that imports them.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ttscale.errors import InputError

EXECUTORS = ("local", "ray")


class RayOptions(BaseModel):
    """``executor_options`` of ``executor: ray`` (every key optional)."""

    model_config = ConfigDict(extra="forbid")

    address: str | None = Field(None, description="Ray cluster address (default: $RAY_ADDRESS, else a local cluster started for this run).")
    replicas: int | None = Field(None, gt=0, description="Backend replicas (default: as many as the cluster's CPUs, or GPUs for vllm, hold).")
    num_cpus: float = Field(1.0, ge=0, description="CPUs reserved per replica (and per verifier worker).")
    num_gpus: float | None = Field(None, ge=0, description="GPUs per replica (default: 1 for vllm on a cluster with GPUs, else 0).")
    batch_samples: int | None = Field(None, gt=0, description="Samples per task sent to a replica (default: the backend's batch size, 256; 2048 for vllm/openai).")
    in_flight: int = Field(2, gt=0, description="Tasks queued per replica (2 keeps a replica busy while the driver writes).")
    max_restarts: int = Field(3, ge=0, description="Times a dead replica (or verifier worker) is replaced before the run fails.")
    verify_workers: int | None = Field(None, gt=0, description="Verifier actors (default: the cluster's CPUs / num_cpus).")
    start_timeout: float = Field(600.0, gt=0, description="Seconds to wait for replicas to be placed and loaded; those not up by then are dropped (none up: an error).")
    place_timeout: float = Field(120.0, gt=0, description="Seconds a replacement replica (or verifier worker) may take to be placed and loaded; past it, it is dropped with one line and the work goes to the living ones.")
    fit: bool = Field(False, description="Start as many replicas as the cluster holds when that is fewer than `replicas` (one line) instead of failing; a resume sets it for the replicas stored in run.json.")
    local_cpus: int | None = Field(None, gt=0, description="CPUs of the local cluster started when no address is given (default: all).")


class ExecutorSpec(BaseModel):
    """An executor choice: ``kind`` and, for ray, its options."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["local", "ray"] = "local"
    ray: RayOptions = Field(default_factory=RayOptions)

    @property
    def is_local(self) -> bool:
        return self.kind == "local"


def parse_executor(kind: str | None, options: dict[str, Any] | None, source: str) -> ExecutorSpec:
    """An ExecutorSpec; a bad name or option is one InputError naming ``source`` and the key."""
    kind = kind or "local"
    if kind not in EXECUTORS:
        raise InputError(f"{source}: executor: {kind!r} is not one of {', '.join(EXECUTORS)}")
    options = dict(options or {})
    if kind == "local":
        if options:
            raise InputError(f"{source}: executor_options: {sorted(options)[0]!r} is only for executor: ray")
        return ExecutorSpec()
    try:
        return ExecutorSpec(kind="ray", ray=RayOptions.model_validate(options))
    except ValidationError as e:
        err = e.errors()[0]
        field = ".".join(str(p) for p in err["loc"]) or "(top level)"
        msg = "unknown key" if err["type"] == "extra_forbidden" else err["msg"]
        raise InputError(f"{source}: executor_options.{field}: {msg}") from e
