"""Verification on a Ray cluster: a pool of verifier actors, one problem (or one batch) per task.

:func:`ray_frames` is what :func:`ttscale.verification.verify.verify_run` iterates over with
``executor=ray``: it yields verdict frames as workers finish them, and ``verify_run`` writes them
as shards and skips, on a later call, the samples already judged (resumable as locally).

* Streaming: tasks are pulled from the shard-by-shard reader as workers free up (a few batches
  ahead), never all at once, so the driver holds about what the local path holds.
* Workers: ``verify_workers`` actors (default: as many as the nodes hold at ``num_cpus`` each),
  each holding the verifier object. A verifier with its own pool (``verify_many``: unit tests in
  the sandbox) is called once per batch of problems, so its sandbox runs on the worker's node;
  any other verifier is called once per problem, on the actor's main thread (Math-Verify's
  SIGALRM timeouts work there).
* Limits: as locally, ``time_limit + time_limit_per_sample * n`` seconds per problem (summed over
  a batch), counted from the moment the task goes to a worker that is placed, loaded and idle
  (so only time spent running counts; a worker still waiting for a node gets no task). A task
  over it, on a node still alive, has its worker killed and replaced, and its samples get status
  ``timeout``. An exception inside the verifier gives status ``error`` for those samples.
* Never a verdict that was not computed: work lost with its node (the node is dead when the
  task fails or its time is up) is run again on another worker, whatever the number of tries;
  a worker that dies on a live node (the sample may have killed it) gets one more try, then
  status ``error``. A replacement that cannot be placed within ``place_timeout`` seconds is
  dropped; with no worker left the frames computed so far are kept and the rest stays pending
  for the next verify (:class:`~ttscale.sampling.executors.cluster.ClusterLost`). Each death,
  replacement or drop is one line on stderr and a count in ``faults``.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Iterable, Iterator
from itertools import islice
from typing import Any

import pandas as pd

from ttscale.errors import InputError
from ttscale.sampling.executors.cluster import (
    ClusterLost,
    connect,
    fitting,
    free_text,
    require_ray,
    say,
    shutdown,
    start_pool,
    wait_any,
)
from ttscale.sampling.executors.replica import actor_lost_errors, first_line
from ttscale.sampling.executors.spec import RayOptions

FAULT_KEYS = ("worker_deaths", "lost_tasks", "restarts", "dropped")


class VerifierWorker:
    """One verifier in one Ray actor (wrapped with ``ray.remote`` by :func:`ray_frames`)."""

    def __init__(self, verifier: Any):
        self.verifier = verifier

    def ready(self) -> str:
        """This worker's node id (the driver checks it when work is lost)."""
        import ray

        return str(ray.get_runtime_context().get_node_id())

    def verify(self, tasks: list[tuple[Any, pd.DataFrame]]) -> pd.DataFrame:
        from ttscale.verification.pool import VERDICT_COLUMNS, _verify_one

        many = getattr(self.verifier, "verify_many", None)
        if callable(many):
            return many(tasks)[VERDICT_COLUMNS]
        return pd.concat([_verify_one(self.verifier, p, s) for p, s in tasks], ignore_index=True)


def _batches(tasks: Iterable[Any], verifier: Any, batch_problems: int, workers: int,
             total_problems: int | None) -> Iterator[list[Any]]:
    """Tasks grouped for one call each, lazily: one problem per call, or for a verifier with
    ``verify_many`` up to ``batch_problems`` (fewer when that spreads the problems over the workers)."""
    it = iter(tasks)
    if not callable(getattr(verifier, "verify_many", None)):
        size = 1
    else:
        spread = math.ceil(total_problems / max(1, workers)) if total_problems else batch_problems
        size = max(1, min(batch_problems, spread))
    return iter(lambda: list(islice(it, size)), [])


class _Pool:
    """The verifier actors and their states: idle, busy, placing (a replacement not up yet),
    dropped."""

    def __init__(self, ray: Any, cls: Any, ref_verifier: Any, opts: RayOptions, n: int,
                 faults: dict[str, int]):
        self.ray, self.cls, self.ref_verifier, self.opts, self.faults = ray, cls, ref_verifier, opts, faults
        self.handles: list[Any] = [cls.remote(ref_verifier) for _ in range(n)]
        self.state = ["placing"] * n
        self.node: list[str | None] = [None] * n
        self.start_ref: list[Any] = [h.ready.remote() for h in self.handles]
        self.deadline = [0.0] * n
        self.restarts = int(opts.max_restarts) * max(1, n)

    def start(self) -> None:
        """The first workers, bounded by ``start_timeout`` (none placed: InputError)."""
        per = {"CPU": float(self.opts.num_cpus)}
        up = start_pool(self.ray, self.handles, self.start_ref, self.opts.start_timeout,
                        "verifier worker", per)
        for w in range(len(self.handles)):
            if w not in up:
                self.handles[w], self.state[w] = None, "dropped"
        try:
            nodes = self.ray.get([self.start_ref[w] for w in up])
        except self.ray.exceptions.RayError as e:
            raise InputError(f"executor ray: the verifier cannot start on the cluster "
                             f"({str(e).strip().splitlines()[-1][:200]})") from e
        for w, node in zip(up, nodes, strict=True):
            self.state[w], self.node[w], self.start_ref[w] = "idle", node, None

    def count(self, state: str) -> int:
        return self.state.count(state)

    def node_alive(self, w: int) -> bool:
        """Whether worker ``w``'s node is alive (unknown node: assumed alive)."""
        try:
            alive = {n["NodeID"]: bool(n.get("Alive")) for n in self.ray.nodes()}
        except Exception:  # noqa: BLE001 - no answer from the cluster: do not blame the sample
            return False
        return alive.get(self.node[w], True)

    def respawn(self, w: int, why: str, consume: bool = True) -> None:
        """Replace worker ``w`` (dead, or killed at its time limit: ``consume=False``) while
        restarts are left; the replacement gets work once it is placed (see :meth:`settle`)."""
        try:
            self.ray.kill(self.handles[w])
        except Exception:  # noqa: BLE001 - it is dead already
            pass
        if consume and self.restarts <= 0:
            self.handles[w], self.state[w] = None, "dropped"
            say(f"executor ray: verifier worker w{w} {why}; no restart left: "
                f"{self.count('idle') + self.count('busy')} worker(s) left")
            return
        if consume:
            self.restarts -= 1
            self.faults["restarts"] += 1
            say(f"executor ray: verifier worker w{w} {why}; starting a replacement "
                f"({self.restarts} restart(s) left)")
        self.handles[w] = self.cls.remote(self.ref_verifier)
        self.state[w], self.node[w] = "placing", None
        self.start_ref[w] = self.handles[w].ready.remote()
        self.deadline[w] = time.monotonic() + self.opts.place_timeout

    def settle(self, ready: set[Any]) -> None:
        """Placing workers whose start finished become idle; those past ``place_timeout`` are
        dropped with one line."""
        for w, st in enumerate(self.state):
            if st != "placing":
                continue
            if self.start_ref[w] in ready:
                try:
                    self.node[w] = self.ray.get(self.start_ref[w])
                    self.state[w], self.start_ref[w] = "idle", None
                except self.ray.exceptions.RayError as e:
                    self._drop(w, f"failed to start ({first_line(e)})")
            elif time.monotonic() >= self.deadline[w]:
                self._drop(w, f"could not be placed within {self.opts.place_timeout:g} s (needs CPU "
                              f"{self.opts.num_cpus:g} on one node; "
                              f"{free_text({'CPU': float(self.opts.num_cpus)})})")

    def _drop(self, w: int, why: str) -> None:
        try:
            self.ray.kill(self.handles[w])
        except Exception:  # noqa: BLE001 - it may be gone already
            pass
        self.handles[w], self.state[w], self.start_ref[w] = None, "dropped", None
        self.faults["dropped"] += 1
        say(f"executor ray: replacement verifier worker w{w} {why}: dropped; "
            f"{self.count('idle') + self.count('busy')} worker(s) left")

    def kill_all(self) -> None:
        for h in self.handles:
            if h is not None:
                self.ray.kill(h)


def ray_frames(verifier: Any, tasks: Iterable[tuple[Any, pd.DataFrame]], opts: RayOptions,
               limit_fn: Any, batch_problems: int = 64, total_problems: int | None = None,
               faults: dict[str, int] | None = None) -> Iterator[pd.DataFrame]:
    """Verdict frames of ``tasks`` ((problem, samples) pairs, read lazily), in any order; see
    the module doc. ``faults`` (when given) receives the counts of :data:`FAULT_KEYS`."""
    from ttscale.verification.pool import _failed_frame

    faults = faults if faults is not None else {}
    for k in FAULT_KEYS:
        faults.setdefault(k, 0)
    ray = require_ray()
    started = connect(opts.address, opts.local_cpus)
    try:
        n = fitting({"CPU": float(opts.num_cpus)}, opts.verify_workers, "verifier worker",
                    "verify_workers")
        if total_problems is not None:
            n = max(1, min(n, total_problems))
        batches = _batches(tasks, verifier, batch_problems, n, total_problems)
        cls = ray.remote(num_cpus=float(opts.num_cpus), max_restarts=0, max_task_retries=0)(VerifierWorker)
        pool = _Pool(ray, cls, ray.put(verifier), opts, n, faults)
        try:
            pool.start()
            yield from _loop(ray, pool, batches, verifier, limit_fn, faults, _failed_frame)
        finally:
            pool.kill_all()
    finally:
        shutdown(started)


def _loop(ray: Any, pool: _Pool, batches: Iterator[list[Any]], verifier: Any, limit_fn: Any,
          faults: dict[str, int], failed: Any) -> Iterator[pd.DataFrame]:
    retry: deque[tuple[int, list[Any]]] = deque()  # (tries, batch) lost with a worker
    head: list[Any] | None = None
    busy: dict[Any, tuple[int, int, list[Any], float]] = {}  # ref -> worker, tries, batch, deadline
    name = getattr(verifier, "name", "verifier")
    lost = actor_lost_errors(ray)
    done = 0

    def more() -> bool:
        nonlocal head
        if retry or head is not None:
            return True
        head = next(batches, None)
        return head is not None

    def take() -> tuple[int, list[Any]]:
        nonlocal head
        if retry:
            return retry.popleft()
        batch, head = head, None
        return 0, batch  # type: ignore[return-value]

    while more() or busy:
        for w in range(len(pool.state)):
            if pool.state[w] != "idle" or not more():
                continue
            tries, batch = take()
            limit = sum(limit_fn(s) for _, s in batch)
            label = batch[0][0].problem_id + (f"..{batch[-1][0].problem_id}" if len(batch) > 1 else "")
            ref = pool.handles[w].verify.options(name=f"ttscale verify {name}: {label} "
                                                 f"({done} batches done)").remote(batch)
            # the worker is placed, loaded and idle: the clock counts its running time only
            busy[ref] = (w, tries, batch, time.monotonic() + limit)
            pool.state[w] = "busy"
        if not busy and not pool.count("placing"):
            raise ClusterLost("executor ray: no verifier worker left (max_restarts spent or the "
                              "replacements could not be placed); the verdicts written are kept "
                              "and the other samples stay pending: run verify again to finish")
        now = time.monotonic()
        ends = [d for *_, d in busy.values()] + [pool.deadline[w] for w, st in enumerate(pool.state)
                                                 if st == "placing"]
        step = max(0.0, min([1.0] + [e - now for e in ends]))
        refs = [*busy, *(pool.start_ref[w] for w, st in enumerate(pool.state) if st == "placing")]
        ready = set(wait_any(ray, refs, step))
        pool.settle(ready)
        for ref in [r for r in busy if r in ready]:
            w, tries, batch, _ = busy.pop(ref)
            try:
                frame = ray.get(ref)
            except ray.exceptions.RayTaskError as e:  # the verifier raised: its verdict
                pool.state[w] = "idle"
                done += 1
                cause = getattr(e, "cause", None)
                msg = f"{type(cause).__name__}: {cause}" if cause is not None else str(e).splitlines()[0]
                for _p, s in batch:
                    yield failed(s, "error", msg)
                continue
            except lost as e:
                faults["worker_deaths"] += 1
                if not pool.node_alive(w):  # lost with its node: not the sample's doing
                    faults["lost_tasks"] += 1
                    retry.appendleft((tries, batch))
                    pool.respawn(w, f"was lost with its node ({first_line(e)}); its task runs again")
                elif tries >= 1:
                    pool.respawn(w, "died again on the same task (status error for its samples)")
                    done += 1
                    for _p, s in batch:
                        yield failed(s, "error", "verifier worker died twice on this problem")
                else:
                    faults["lost_tasks"] += 1
                    retry.appendleft((tries + 1, batch))
                    pool.respawn(w, f"died ({first_line(e)}); its task runs again")
                continue
            pool.state[w] = "idle"
            done += 1
            yield frame
        now = time.monotonic()
        for ref in [r for r in busy if busy[r][3] <= now]:  # over its time limit
            w, tries, batch, _ = busy.pop(ref)
            if not pool.node_alive(w):  # the node went away: the time was not spent running
                faults["worker_deaths"] += 1
                faults["lost_tasks"] += 1
                retry.appendleft((tries, batch))
                pool.respawn(w, "was lost with its node; its task runs again")
                continue
            pool.respawn(w, "hit its time limit", consume=False)  # the verifier's limit, not a fault
            done += 1
            for _p, s in batch:
                yield failed(s, "timeout", f"problem took over {limit_fn(s):.0f} s")
