"""Executors: where sampling and verification run (``local``: this process; ``ray``: a Ray cluster).

The planner stays in :mod:`ttscale.sampling.planner`, called by :mod:`ttscale.sampling.sampler` (it
decides exactly which (problem, temperature, sample range) are missing, and yields the requests
lazily) and the writer stays in the sampler (the driver writes every finished
batch as one atomic shard into the run directory, the single source of truth). An executor only
decides *where* the backend runs:

* ``local`` (the default): one backend in this process, as ttscale always did
  (:mod:`ttscale.sampling.executors.local`).
* ``ray``: N replicas of the same backend as Ray actors (one transformers model per CPU worker,
  one vLLM engine per GPU, the openai client fanned out), fed with chunks of the planned requests
  and sending back whole chunks (:mod:`ttscale.sampling.executors.ray_sampling`); verification as a pool
  of verifier actors (:mod:`ttscale.verification.ray_verify`).

``ExecutorSpec`` holds the choice and its options (``executor: ray`` and ``executor_options`` in a
config; ``--executor ray --replicas 2`` on the command line). Nothing of Ray is imported unless
``ray`` is chosen: ``import ttscale`` and a local run never load it.
"""

from __future__ import annotations

from typing import Any

from ttscale.sampling.executors.spec import EXECUTORS, ExecutorSpec, RayOptions, parse_executor

__all__ = ["EXECUTORS", "ExecutorSpec", "RayOptions", "parse_executor", "executor_of",
           "make_backend", "keep_connected"]


def executor_of(settings: Any) -> ExecutorSpec:
    """The ExecutorSpec of sample settings (their ``executor`` and ``executor_options``)."""
    return parse_executor(getattr(settings, "executor", "local"),
                          getattr(settings, "executor_options", None), "settings")


def make_backend(settings: Any) -> Any:
    """The backend that runs the settings' requests: a local one, or Ray replicas of it."""
    spec = executor_of(settings)
    if spec.is_local:
        from ttscale.sampling.executors.local import local_backend

        return local_backend(settings)
    from ttscale.sampling.executors.ray_sampling import RayBackend

    return RayBackend(settings, spec.ray)


def keep_connected(spec: ExecutorSpec) -> None:
    """For a sequence of stages (a sweep): connect to the cluster once, for all of them.

    Stages then find Ray initialised and reuse the connection instead of each starting (and
    stopping) a local cluster; Ray disconnects (and stops a local cluster) when the process exits.
    """
    if not spec.is_local:
        from ttscale.sampling.executors.cluster import connect

        connect(spec.ray.address, spec.ray.local_cpus)


def record_faults(run: Any, backend: Any) -> dict[str, int]:
    """Add the executor's fault counts of this call (replica deaths, restarts, ...) to run.json's
    ``executor_faults`` totals, even when the call failed; the counts of this call."""
    counts = getattr(backend, "fault_counts", None)
    faults = {k: int(v) for k, v in counts().items()} if callable(counts) else {}
    if any(faults.values()):
        import contextlib

        with contextlib.suppress(OSError):  # never hides the error that ended the call
            rec = run.read_config()
            old = rec.get("executor_faults", {})
            rec["executor_faults"] = {k: int(old.get(k, 0)) + faults.get(k, 0)
                                      for k in sorted(set(old) | set(faults))}
            run.write_config(rec)
    return faults
