"""Executors: where sampling and verification run (``local``: this process; ``ray``: a Ray cluster).

The planner stays in :mod:`ttscale.sampling` (it decides exactly which (problem, temperature,
sample range) are missing) and the writer stays there too (the driver writes every finished
batch as one atomic shard into the run directory, the single source of truth). An executor only
decides *where* the backend runs:

* ``local`` (the default): one backend in this process, as ttscale always did
  (:mod:`ttscale.executors.local`).
* ``ray``: N replicas of the same backend as Ray actors (one transformers model per CPU worker,
  one vLLM engine per GPU, the openai client fanned out), fed with chunks of the planned requests
  and sending back whole chunks (:mod:`ttscale.executors.ray_sampling`); verification as a pool
  of verifier actors (:mod:`ttscale.executors.ray_verify`).

``ExecutorSpec`` holds the choice and its options (``executor: ray`` and ``executor_options`` in a
config; ``--executor ray --replicas 2`` on the command line). Nothing of Ray is imported unless
``ray`` is chosen: ``import ttscale`` and a local run never load it.
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


def executor_of(settings: Any) -> ExecutorSpec:
    """The ExecutorSpec of sample settings (their ``executor`` and ``executor_options``)."""
    return parse_executor(getattr(settings, "executor", "local"),
                          getattr(settings, "executor_options", None), "settings")


def make_backend(settings: Any) -> Any:
    """The backend that runs the settings' requests: a local one, or Ray replicas of it."""
    spec = executor_of(settings)
    if spec.is_local:
        from ttscale.executors.local import local_backend

        return local_backend(settings)
    from ttscale.executors.ray_sampling import RayBackend

    return RayBackend(settings, spec.ray)


def keep_connected(spec: ExecutorSpec) -> None:
    """For a sequence of stages (a sweep): connect to the cluster once, for all of them.

    Stages then find Ray initialised and reuse the connection instead of each starting (and
    stopping) a local cluster; Ray disconnects (and stops a local cluster) when the process exits.
    """
    if not spec.is_local:
        from ttscale.executors.cluster import connect

        connect(spec.ray.address, spec.ray.local_cpus)
