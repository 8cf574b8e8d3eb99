"""Verification on a Ray cluster: a pool of verifier actors, one problem (or one batch) per task.

:func:`ray_frames` is what :func:`ttscale.verification.verify.verify_run` iterates over with
``executor=ray``: it yields verdict frames as workers finish them, and ``verify_run`` writes them
as shards and skips, on a later call, the samples already judged (resumable as locally).

* Workers: ``verify_workers`` actors (default: the cluster's CPUs / ``num_cpus``), each holding
  the verifier object. A verifier with its own pool (``verify_many``: unit tests in the sandbox)
  is called once per batch of problems, so its sandbox runs on the worker's node; any other
  verifier is called once per problem, on the actor's main thread (Math-Verify's SIGALRM
  timeouts work there).
* Limits: as locally, ``time_limit + time_limit_per_sample * n`` seconds per problem (summed over
  a batch); a task over it has its worker killed and replaced, and its samples get status
  ``timeout``. An exception inside the verifier gives status ``error`` for those samples.
* Faults: a worker that dies (node lost, OOM, ``ray.kill``) loses only its task, which is run again
  on a fresh worker; a task whose worker dies twice gets status ``error`` (a sample that kills
  its verifier must not kill the run).
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Iterator
from typing import Any

import pandas as pd

from ttscale.errors import InputError
from ttscale.sampling.executors.cluster import connect, fitting, require_ray, shutdown, start_pool
from ttscale.sampling.executors.spec import RayOptions


class VerifierWorker:
    """One verifier in one Ray actor (wrapped with ``ray.remote`` by :func:`ray_frames`)."""

    def __init__(self, verifier: Any):
        self.verifier = verifier

    def ready(self) -> bool:
        return True

    def verify(self, tasks: list[tuple[Any, pd.DataFrame]]) -> pd.DataFrame:
        from ttscale.verification.pool import VERDICT_COLUMNS, _verify_one

        many = getattr(self.verifier, "verify_many", None)
        if callable(many):
            return many(tasks)[VERDICT_COLUMNS]
        return pd.concat([_verify_one(self.verifier, p, s) for p, s in tasks], ignore_index=True)


def _batches(tasks: list[Any], verifier: Any, batch_problems: int, workers: int) -> list[list[Any]]:
    if not callable(getattr(verifier, "verify_many", None)):
        return [[t] for t in tasks]
    size = max(1, min(batch_problems, math.ceil(len(tasks) / max(1, workers))))
    return [tasks[i:i + size] for i in range(0, len(tasks), size)]


def ray_frames(verifier: Any, tasks: list[tuple[Any, pd.DataFrame]], opts: RayOptions,
               limit_fn: Any, batch_problems: int = 64) -> Iterator[pd.DataFrame]:
    """Verdict frames of ``tasks`` ((problem, samples) pairs), in any order; see the module doc."""
    from ttscale.verification.pool import _failed_frame

    ray = require_ray()
    started = connect(opts.address, opts.local_cpus)
    try:
        n = fitting({"CPU": float(opts.num_cpus)}, opts.verify_workers, "verifier worker",
                    "verify_workers")
        batches = _batches(tasks, verifier, batch_problems, n)
        n = min(n, len(batches))
        cls = ray.remote(num_cpus=float(opts.num_cpus), max_restarts=0, max_task_retries=0)(VerifierWorker)
        ref_verifier = ray.put(verifier)
        pool = [cls.remote(ref_verifier) for _ in range(n)]
        refs = [w.ready.remote() for w in pool]
        up = start_pool(ray, pool, refs, opts.start_timeout, "verifier worker", f"CPU {opts.num_cpus:g}")
        pool, n = [pool[i] for i in up], len(up)
        try:
            ray.get([refs[i] for i in up])
        except ray.exceptions.RayError as e:
            raise InputError(f"executor ray: verifier {verifier.name!r} cannot start on the cluster "
                             f"({str(e).strip().splitlines()[-1][:200]})") from e
        restarts = int(opts.max_restarts) * max(1, n)
        queue: deque[tuple[int, list[Any]]] = deque((0, b) for b in batches)
        busy: dict[Any, tuple[int, int, list[Any], float]] = {}  # ref -> worker, tries, batch, deadline
        idle = list(range(n))
        name = getattr(verifier, "name", "verifier")
        done = 0
        try:
            while queue or busy:
                while idle and queue:
                    w = idle.pop()
                    tries, batch = queue.popleft()
                    limit = sum(limit_fn(s) for _, s in batch)
                    label = batch[0][0].problem_id + (f"..{batch[-1][0].problem_id}" if len(batch) > 1 else "")
                    ref = pool[w].verify.options(name=f"ttscale verify {name}: {label} "
                                                 f"({done}/{len(batches)} done)").remote(batch)
                    busy[ref] = (w, tries, batch, time.monotonic() + limit)
                if not busy:
                    raise InputError("executor ray: every verifier worker died and max_restarts is spent; "
                                     "the verdicts written are kept, run again to resume")
                timeout = max(0.0, min(d for *_, d in busy.values()) - time.monotonic())
                ready, _ = ray.wait(list(busy), num_returns=1, timeout=timeout)
                if not ready:  # the earliest deadline passed: kill that worker, record timeouts
                    ref = min(busy, key=lambda r: busy[r][3])
                    w, _, batch, _ = busy.pop(ref)
                    ray.kill(pool[w])  # a timeout is the verifier's limit, not a fault: no restart spent
                    _respawn(pool, w, cls, ref_verifier, idle, restarts, consume=False)
                    done += 1
                    for _p, s in batch:
                        yield _failed_frame(s, "timeout", f"problem took over {limit_fn(s):.0f} s")
                    continue
                ref = ready[0]
                w, tries, batch, _ = busy.pop(ref)
                try:
                    frame = ray.get(ref)
                except ray.exceptions.RayTaskError as e:  # the verifier raised
                    idle.append(w)
                    done += 1
                    cause = getattr(e, "cause", None)
                    msg = f"{type(cause).__name__}: {cause}" if cause is not None else str(e).splitlines()[0]
                    for _p, s in batch:
                        yield _failed_frame(s, "error", msg)
                    continue
                except ray.exceptions.RayError:  # the worker died: run its task again elsewhere
                    restarts = _respawn(pool, w, cls, ref_verifier, idle, restarts)
                    if tries >= 1:
                        done += 1
                        for _p, s in batch:
                            yield _failed_frame(s, "error", "verifier worker died twice on this problem")
                    else:
                        queue.appendleft((tries + 1, batch))
                    continue
                idle.append(w)
                done += 1
                yield frame
        finally:
            for w in pool:
                if w is not None:
                    ray.kill(w)
    finally:
        shutdown(started)


def _respawn(pool: list[Any], w: int, cls: Any, ref_verifier: Any, idle: list[int], restarts: int,
             consume: bool = True) -> int:
    """Replace worker ``w`` (dead, or killed at its time limit: ``consume=False``) while restarts
    are left; the restarts left after it."""
    if consume and restarts <= 0:
        pool[w] = None
        return restarts
    pool[w] = cls.remote(ref_verifier)
    idle.append(w)
    return restarts - 1 if consume else restarts
