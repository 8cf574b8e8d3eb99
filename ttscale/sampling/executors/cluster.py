"""Connecting to a Ray cluster: the address, the resources it has, one line when it fails.

The address is, in order: ``executor_options.address``, ``$RAY_ADDRESS``, else a local cluster
started for this process (and stopped with it). A driver that finds Ray already initialised (a
notebook, a test fixture) uses that connection and leaves it open.
"""

from __future__ import annotations

import os
from typing import Any

from ttscale.errors import InputError


def require_ray() -> Any:
    """The ``ray`` module; InputError naming the extra to install when it is missing."""
    try:
        import ray
    except ModuleNotFoundError as e:
        raise InputError("executor: ray needs the package 'ray' (pip install 'ttscale[ray]')") from e
    return ray


def connect(address: str | None, local_cpus: int | None = None) -> bool:
    """Initialise Ray; True when this call did it (so the caller shuts it down), else False."""
    ray = require_ray()
    if ray.is_initialized():
        return False
    address = address or os.environ.get("RAY_ADDRESS") or None
    # workers' output (model loading bars, warnings) stays in the cluster's logs, not the terminal;
    # their errors still reach the driver as exceptions
    kwargs: dict[str, Any] = {"logging_level": "ERROR", "configure_logging": True, "log_to_driver": False}
    if address is None:  # a local cluster, for this process only
        kwargs.update(include_dashboard=False, num_cpus=local_cpus)
    elif local_cpus is not None:
        raise InputError("executor_options.local_cpus: only for a local cluster (no address)")
    try:
        ray.init(address=address, **kwargs)
    except (ConnectionError, TimeoutError, RuntimeError, ValueError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise InputError(f"executor ray: cannot connect to the cluster at {address or 'a new local cluster'} "
                         f"({first}); start one with `ray start --head` or set RAY_ADDRESS") from e
    return True


def resources() -> dict[str, float]:
    """The cluster's total resources (CPU, GPU, memory, ...)."""
    ray = require_ray()
    return {k: float(v) for k, v in ray.cluster_resources().items()}


def fitting(per_unit: dict[str, float], asked: int | None, what: str, key: str = "replicas") -> int:
    """How many units of ``per_unit`` resources to start: ``asked``, checked against the cluster;
    by default as many as the cluster holds (at least one)."""
    total = resources()
    holds = []
    for res, need in per_unit.items():
        if need > 0:
            holds.append(int(total.get(res, 0.0) // need))
    cap = min(holds) if holds else None
    if cap == 0:
        have = ", ".join(f"{k} {total.get(k, 0):g}" for k in per_unit if per_unit[k] > 0)
        raise InputError(f"executor_options: one {what} needs "
                         f"{', '.join(f'{k} {v:g}' for k, v in per_unit.items() if v > 0)}; "
                         f"the cluster has {have}")
    if asked is None:
        return max(1, cap if cap is not None else 1)
    if cap is not None and asked > cap:
        raise InputError(f"executor_options.{key}: {asked} {what}s need "
                         f"{', '.join(f'{k} {v * asked:g}' for k, v in per_unit.items() if v > 0)}; "
                         f"the cluster holds {cap}")
    return asked


def shutdown(started: bool) -> None:
    if started:
        require_ray().shutdown()


def start_pool(ray: Any, handles: list[Any], refs: list[Any], timeout: float, what: str,
               need: str) -> list[int]:
    """Indices of the actors whose start call (``refs``) finished within ``timeout`` seconds;
    the others (not placeable: the cluster is busy or too small) are killed. None up: InputError."""
    import sys

    ready, _ = ray.wait(refs, num_returns=len(refs), timeout=timeout)
    up = [i for i, r in enumerate(refs) if r in set(ready)]
    for i, h in enumerate(handles):
        if i not in up:
            ray.kill(h)
    if not up:
        free = ", ".join(f"{k} {v:g}" for k, v in sorted(ray.available_resources().items())
                         if k in ("CPU", "GPU"))
        raise InputError(f"executor ray: no {what} started within {timeout:g} s (each needs {need}; "
                         f"free now: {free or 'nothing'}); raise executor_options.start_timeout or "
                         "free the cluster")
    if len(up) < len(refs):
        print(f"executor ray: {len(refs) - len(up)} of {len(refs)} {what}s could not be placed "
              f"within {timeout:g} s (each needs {need}); going on with {len(up)}", file=sys.stderr)
    return up
