"""Sampling on a Ray cluster: N replicas of the backend as actors, fed chunks of planned requests.

:class:`RayBackend` is a :class:`~ttscale.sampling.backends.base.Backend`, so
:func:`ttscale.sampling.sampler.run_sampling` uses it unchanged: the planner decides which (problem,
temperature, sample range) are missing, this class spreads those requests over the replicas, and
the driver writes each finished chunk as one atomic shard (the run directory stays the single
source of truth; replicas never touch it).

* Chunks: the planned requests cut into chunks of ``batch_samples`` samples as they stream in
  (never all at once), a request split across two chunks keeping its seeds (sample ``j`` keeps
  seed ``base + j``). For the transformers backend a chunk is exactly one of the batches the
  single-process path decodes together, so a Ray run computes the very same batches and draws
  the same samples, byte for byte.
* Replicas: one actor per replica holds one backend (``get_backend`` with the run's options):
  a transformers model per CPU worker, a VLLMBackend per GPU (or per tensor-parallel group with
  ``num_gpus``), an openai client each. ``in_flight`` chunks are queued per replica.
* Faults, each one line on stderr and a count in run.json (``executor_faults``): a replica that
  dies (node lost, OOM, ``ray.kill``) loses only the chunks queued on it; they go back to the
  front of the queue with the same requests and seeds, and a replacement is started
  (``max_restarts`` in all). A replacement runs the same start-up checks as the first replicas
  (the model loads, the same ttscale version) and gets chunks only once they pass; one that
  cannot be placed within ``place_timeout`` seconds (its node is gone and no other has room)
  or fails its checks is dropped, and the living replicas take the work. With no replica left,
  :class:`~ttscale.sampling.executors.cluster.ClusterLost` (one line; the caller adds the
  command that resumes). Nothing of a lost chunk was written, so the run ends with no missing
  and no duplicate sample. A lost driver takes its actors with it; ``ttscale sample RUN_DIR``
  re-plans from the shards on disk.
* Every wait polls in half-second steps: Ctrl-C is raised at once, whatever Ray is doing.
* Progress: live replicas and per replica samples/s and tokens/s in the terminal's bar, and in
  each task's name on the Ray dashboard (``ttscale sample r1: 256 samples of
  arith-0003..arith-0005, r1 at 812 samples/s``).
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from ttscale.errors import InputError
from ttscale.sampling.backends.base import Backend, BackendInfo, Request, Sample
from ttscale.sampling.executors.cluster import (
    ClusterLost,
    connect,
    fitting,
    free_text,
    need_text,
    require_ray,
    say,
    shutdown,
    start_pool,
    wait_any,
)
from ttscale.sampling.executors.replica import (
    Replica,
    actor_lost_errors,
    first_line,
    iter_chunks,
    split_requests,
)
from ttscale.sampling.executors.spec import RayOptions

__all__ = ["DEFAULT_CHUNK", "RayBackend", "RayStats", "Replica", "iter_chunks", "split_requests"]

#: default samples per chunk where the backend gives no batch size of its own
DEFAULT_CHUNK = {"transformers": 256, "vllm": 2048, "openai": 2048}


@dataclass
class _Slot:
    handle: Any
    gen: int = 0  # replaced replicas get a new generation
    state: str = "live"  # live | placing (a replacement not yet up) | dropped
    start_ref: Any = None  # the placing replacement's start call
    deadline: float = 0.0  # when a placing replacement is dropped
    samples: int = 0
    tokens: int = 0
    busy: float = 0.0  # seconds spent generating (measured on the replica)
    cpu: float = 0.0  # CPU seconds of the replica's process while generating
    queued: int = 0

    def rate(self) -> float:
        return self.samples / self.busy if self.busy > 0 else 0.0

    def token_rate(self) -> float:
        return self.tokens / self.busy if self.busy > 0 else 0.0


@dataclass
class RayStats:
    chunks: int = 0  # chunks finished
    lost_chunks: int = 0  # chunks re-queued after their replica died
    replica_deaths: int = 0
    restarts: int = 0  # replacements started
    dropped: int = 0  # replacements that could not be placed or failed their checks
    per_replica: list[dict[str, float]] = field(default_factory=list)

    def faults(self) -> dict[str, int]:
        return {"replica_deaths": self.replica_deaths, "restarts": self.restarts,
                "dropped": self.dropped, "lost_chunks": self.lost_chunks}


class _Feed:
    """Chunks to send: those lost with a replica first, then the planned ones, pulled lazily."""

    def __init__(self, chunks: Iterator[list[Request]]):
        self.chunks, self.retry = chunks, deque[list[Request]]()
        self.head: list[Request] | None = None

    def __bool__(self) -> bool:
        if self.retry or self.head is not None:
            return True
        self.head = next(self.chunks, None)
        return self.head is not None

    def pop(self) -> list[Request]:
        if self.retry:
            return self.retry.popleft()
        if not self:
            raise IndexError("no chunk left")
        chunk, self.head = self.head, None
        assert chunk is not None
        return chunk


class RayBackend(Backend):
    """The run's backend, replicated over a Ray cluster (see the module doc)."""

    streams_requests = True  # takes the whole plan lazily (chunks are cut as replicas free up)

    def __init__(self, settings: Any, opts: RayOptions):
        ray = require_ray()
        self.ray = ray
        self.opts = opts
        self.backend_name = str(settings.backend)
        self.name = f"{self.backend_name} (ray)"
        self.model = str(settings.model)
        self.options = dict(settings.backend_options)
        self.stats = RayStats()
        self.started = connect(opts.address, opts.local_cpus)
        self.slots: list[_Slot] = []
        try:
            self._setup(ray, opts)
        except BaseException:
            for slot in self.slots:  # a replica that failed to start holds its CPUs/GPUs
                if slot.handle is not None:
                    ray.kill(slot.handle)
            shutdown(self.started)
            raise

    def _setup(self, ray: Any, opts: RayOptions) -> None:
        gpus = ray.cluster_resources().get("GPU", 0)
        num_gpus = opts.num_gpus if opts.num_gpus is not None else (
            1.0 if self.backend_name == "vllm" and gpus > 0 else 0.0)
        self.num_cpus, self.num_gpus = float(opts.num_cpus), float(num_gpus)
        self.per_unit = {"CPU": self.num_cpus, "GPU": self.num_gpus}
        n = fitting(self.per_unit, opts.replicas, "replica", fit=opts.fit)
        if self.backend_name == "transformers" and "threads" not in self.options:
            self.options["threads"] = max(1, int(self.num_cpus))  # no oversubscription
        size = self.options.get("max_num_seqs") or self.options.get("batch_size")
        if self.backend_name != "transformers":
            size = None
        self.batch_samples = int(opts.batch_samples or size or DEFAULT_CHUNK.get(self.backend_name, 256))
        self.actor_cls = ray.remote(num_cpus=self.num_cpus, num_gpus=self.num_gpus,
                                    max_restarts=0, max_task_retries=0)(Replica)
        self.slots = [_Slot(self._new_actor()) for _ in range(n)]
        self.restarts_left = int(opts.max_restarts)
        refs = [s.handle.start.remote() for s in self.slots]
        up = start_pool(ray, [s.handle for s in self.slots], refs, opts.start_timeout, "replica",
                        self.per_unit)
        for i, s in enumerate(self.slots):
            if i not in up:
                s.handle, s.state = None, "dropped"
        self.slots = [self.slots[i] for i in up]
        self.started_info = self._get([refs[i] for i in up])
        for st in self.started_info:
            self._check_version(st)

    @staticmethod
    def _check_version(st: dict[str, Any]) -> None:
        from ttscale import __version__

        if st["ttscale"] != __version__:
            raise InputError(f"executor ray: node {st['node']} runs ttscale {st['ttscale']}, this "
                             f"driver {__version__} (install the same version on every node)")

    def _new_actor(self) -> Any:
        return self.actor_cls.remote(self.backend_name, self.model, self.options)

    def _get(self, refs: list[Any], timeout: float | None = None) -> list[Any]:
        """ray.get (polled, so Ctrl-C works; ``timeout`` bounds it), with a backend's InputError
        (bad model, bad option) raised as itself."""
        limit = self.opts.start_timeout if timeout is None else timeout
        end = time.monotonic() + limit
        pending = list(refs)
        while pending:
            ready = wait_any(self.ray, pending, end - time.monotonic())
            if not ready:
                raise ClusterLost(f"executor ray: the cluster did not answer within {limit:g} s")
            pending = [r for r in pending if r not in set(ready)]
        try:
            return self.ray.get(refs)
        except self.ray.exceptions.RayTaskError as e:
            cause = getattr(e, "cause", None)
            if isinstance(cause, InputError):
                raise InputError(str(cause)) from None
            raise

    # -- the Backend contract -----------------------------------------------------------------
    def info(self) -> BackendInfo:
        first = self.started_info[0]["info"]
        return BackendInfo(
            name=self.backend_name, model=self.model,
            versions={**first.get("versions", {}), "ray": self.ray.__version__},
            extra={**first.get("extra", {}), "executor": {
                "kind": "ray", "replicas": len(self.slots), "num_cpus": self.num_cpus,
                "num_gpus": self.num_gpus, "batch_samples": self.batch_samples,
                "nodes": sorted({st["node"] for st in self.started_info})}})

    def validate(self, requests: Iterable[Request]) -> None:
        live = [s for s in self.slots if s.state == "live"]
        self._get([live[0].handle.validate.remote(list(requests))])

    def fault_counts(self) -> dict[str, int]:
        """Deaths, restarts, dropped replacements and lost chunks so far (for run.json)."""
        return self.stats.faults()

    def live(self) -> int:
        return sum(s.state == "live" for s in self.slots)

    def generate(self, requests: Iterable[Request]) -> Iterator[list[Sample]]:
        feed = _Feed(iter_chunks(requests, self.batch_samples))
        inflight: dict[Any, tuple[int, int, list[Request]]] = {}
        lost = actor_lost_errors(self.ray)
        while feed or inflight:
            for i, slot in enumerate(self.slots):
                while slot.state == "live" and slot.queued < self.opts.in_flight and feed:
                    chunk = feed.pop()
                    ref = slot.handle.generate.options(name=self._task_name(i, chunk)).remote(chunk)
                    inflight[ref] = (i, slot.gen, chunk)
                    slot.queued += 1
            placing = [s for s in self.slots if s.state == "placing"]
            if not inflight and not placing:
                raise ClusterLost(
                    f"executor ray: no replica left to sample with ({self.stats.replica_deaths} "
                    f"died, {self.stats.dropped} could not be placed again, max_restarts "
                    f"{self.opts.max_restarts}); the samples written are kept")
            now = time.monotonic()
            step = min([1.0] + [max(0.0, s.deadline - now) for s in placing])
            ready = set(wait_any(self.ray, [*inflight, *(s.start_ref for s in placing)], step))
            self._settle_placing(ready)
            for ref in [r for r in inflight if r in ready]:
                i, gen, chunk = inflight.pop(ref)
                slot = self.slots[i]
                if slot.gen == gen:
                    slot.queued -= 1
                try:
                    samples, secs, cpu = self._get([ref])[0]
                except lost as e:
                    feed.retry.appendleft(chunk)  # re-planned: the same requests, the same seeds
                    self.stats.lost_chunks += 1
                    if slot.gen == gen:
                        self._replace(i, e)
                    continue
                slot.samples += len(samples)
                slot.tokens += sum(max(0, s.num_output_tokens) for s in samples)
                slot.busy += secs
                slot.cpu += cpu
                self.stats.chunks += 1
                yield samples

    def _settle_placing(self, ready: set[Any]) -> None:
        """Replacements whose start call finished go live (or are dropped when it failed);
        those past ``place_timeout`` are dropped."""
        for i, slot in enumerate(self.slots):
            if slot.state != "placing":
                continue
            if slot.start_ref in ready:
                try:
                    st = self._get([slot.start_ref])[0]
                    self._check_version(st)
                except Exception as e:  # noqa: BLE001 - a replacement that cannot start is dropped
                    self._drop(i, f"failed its start-up checks ({first_line(e)})")
                    continue
                slot.state, slot.start_ref = "live", None
                say(f"executor ray: replica r{i} is back (node {st['node']}); "
                    f"{self.live()} live replica(s)")
            elif time.monotonic() >= slot.deadline:
                self._drop(i, f"could not be placed within {self.opts.place_timeout:g} s (it needs "
                              f"{need_text(self.per_unit)} on one node; {free_text(self.per_unit)})")

    def _drop(self, i: int, why: str) -> None:
        slot = self.slots[i]
        try:
            self.ray.kill(slot.handle)
        except Exception:  # noqa: BLE001 - it may be gone already
            pass
        slot.handle, slot.state, slot.start_ref = None, "dropped", None
        self.stats.dropped += 1
        say(f"executor ray: replacement replica r{i} {why}: dropped; its work goes to the "
            f"{self.live()} live replica(s)")

    def _replace(self, i: int, e: BaseException) -> None:
        """Replica ``i`` died: start another in its place while restarts are left (it gets
        chunks once its start-up checks pass; see :meth:`_settle_placing`)."""
        slot = self.slots[i]
        self.stats.replica_deaths += 1
        try:
            self.ray.kill(slot.handle)
        except Exception:  # noqa: BLE001 - it is dead already
            pass
        slot.queued = 0
        slot.gen += 1
        if self.restarts_left <= 0:
            slot.handle, slot.state = None, "dropped"
            say(f"executor ray: replica r{i} died ({type(e).__name__}: {first_line(e)}); no restart "
                f"left (max_restarts {self.opts.max_restarts}): {self.live()} live replica(s)")
            return
        self.restarts_left -= 1
        self.stats.restarts += 1
        slot.handle = self._new_actor()
        slot.state, slot.start_ref = "placing", slot.handle.start.remote()
        slot.deadline = time.monotonic() + self.opts.place_timeout
        say(f"executor ray: replica r{i} died ({type(e).__name__}: {first_line(e)}); its chunks go "
            f"back to the queue; starting a replacement ({self.restarts_left} restart(s) left)")

    def _task_name(self, i: int, chunk: list[Request]) -> str:
        n = sum(r.n for r in chunk)
        first, last = chunk[0].problem_id, chunk[-1].problem_id
        span = first if first == last else f"{first}..{last}"
        return f"ttscale sample r{i}: {n} samples of {span}, r{i} at {self.slots[i].rate():.0f} samples/s"

    def progress_note(self) -> str:
        """Live replicas, and per replica samples/s and tokens/s, for the terminal's progress bar."""
        def one(i: int, s: _Slot) -> str:
            if s.state == "live":
                return f"r{i} {s.rate():.0f} samples/s {s.token_rate():.0f} tok/s"
            return f"r{i} {'placing' if s.state == 'placing' else 'dropped'}"

        return (f"| {self.live()}/{len(self.slots)} live | "
                + " | ".join(one(i, s) for i, s in enumerate(self.slots)))

    def close(self) -> None:
        self.stats.per_replica = [{"samples": s.samples, "tokens": s.tokens, "seconds": round(s.busy, 3)}
                                  for s in self.slots]
        for s in self.slots:
            if s.handle is not None:
                if s.state == "live":
                    try:
                        self._get([s.handle.close.remote()], timeout=30)
                    except Exception:  # noqa: BLE001 - a dead replica has nothing to release
                        pass
                self.ray.kill(s.handle)
                s.handle = None
        shutdown(self.started)
