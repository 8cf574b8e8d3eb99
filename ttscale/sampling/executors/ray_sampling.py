"""Sampling on a Ray cluster: N replicas of the backend as actors, fed chunks of planned requests.

:class:`RayBackend` is a :class:`~ttscale.sampling.backends.base.Backend`, so
:func:`ttscale.sampling.sampler.run_sampling` uses it unchanged: the planner decides which (problem,
temperature, sample range) are missing, this class spreads those requests over the replicas, and
the driver writes each finished chunk as one atomic shard (the run directory stays the single
source of truth; replicas never touch it).

* Chunks: the planned requests cut into chunks of ``batch_samples`` samples, a request split
  across two chunks keeping its seeds (sample ``j`` keeps seed ``base + j``). For the
  transformers backend a chunk is exactly one of the batches the single-process path decodes
  together, so a Ray run computes the very same batches and draws the same samples, byte for
  byte.
* Replicas: one actor per replica holds one backend (``get_backend`` with the run's options):
  a transformers model per CPU worker, a VLLMBackend per GPU (or per tensor-parallel group with
  ``num_gpus``), an openai client each. ``in_flight`` chunks are queued per replica.
* Faults: a replica that dies (node lost, OOM, ``ray.kill``) loses only the chunks queued on it;
  they go back to the front of the queue with the same requests, the same seeds, and a new
  replica replaces the dead one (``max_restarts`` times in all). Nothing of a lost chunk was
  written, so the run ends with no missing and no duplicate sample. A lost driver takes its
  actors with it; ``ttscale sample RUN_DIR`` re-plans from the shards on disk.
* Progress: per replica samples/s and tokens/s in the terminal's bar and in each task's name on the Ray
  dashboard (``ttscale sample r1: 256 samples of arith-0003..arith-0005, r1 at 812 samples/s``).
"""

from __future__ import annotations

import dataclasses
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from ttscale.errors import InputError
from ttscale.sampling.backends.base import Backend, BackendInfo, Request, Sample
from ttscale.sampling.executors.cluster import connect, fitting, require_ray, shutdown, start_pool
from ttscale.sampling.executors.spec import RayOptions

#: default samples per chunk where the backend gives no batch size of its own
DEFAULT_CHUNK = {"transformers": 256, "vllm": 2048, "openai": 2048}


def split_requests(requests: list[Request], size: int) -> list[list[Request]]:
    """Requests cut into chunks of at most ``size`` samples, in order; a request that crosses a
    chunk boundary is split, each part keeping its samples' indices and seeds."""
    chunks: list[list[Request]] = []
    cur: list[Request] = []
    room = size
    for r in requests:
        off = 0
        while off < r.n:
            take = min(room, r.n - off)
            part = r if (off == 0 and take == r.n) else dataclasses.replace(
                r, n=take, seed=r.seed + off, first_index=r.first_index + off)
            cur.append(part)
            off += take
            room -= take
            if room == 0:
                chunks.append(cur)
                cur, room = [], size
    if cur:
        chunks.append(cur)
    return chunks


class Replica:
    """One backend in one Ray actor (the class is wrapped with ``ray.remote`` by RayBackend)."""

    def __init__(self, backend: str, model: str, options: dict[str, Any]):
        self.spec = (backend, model, dict(options))
        self.backend: Any = None

    def _ensure(self) -> Any:
        if self.backend is None:
            from ttscale.sampling.backends import get_backend

            name, model, options = self.spec
            self.backend = get_backend(name, model=model, **options)
        return self.backend

    def start(self) -> dict[str, Any]:
        """Load the backend; its info, this node and ttscale's version (to check the cluster)."""
        import platform

        from ttscale import __version__

        info = dataclasses.asdict(self._ensure().info())
        return {"info": info, "node": platform.node(), "ttscale": __version__}

    def validate(self, requests: list[Request]) -> None:
        check = getattr(self._ensure(), "validate", None)
        if callable(check):
            check(requests)

    def generate(self, requests: list[Request]) -> tuple[list[Sample], float, float]:
        """All samples of ``requests``, and the wall and CPU seconds they took here."""
        t0, c0 = time.perf_counter(), time.process_time()
        out = [s for batch in self._ensure().generate(requests) for s in batch]
        return out, time.perf_counter() - t0, time.process_time() - c0

    def close(self) -> None:
        if self.backend is not None:
            self.backend.close()


@dataclass
class _Slot:
    handle: Any
    gen: int = 0  # replaced replicas get a new generation
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
    restarts: int = 0
    per_replica: list[dict[str, float]] = field(default_factory=list)


class RayBackend(Backend):
    """The run's backend, replicated over a Ray cluster (see the module doc)."""

    def __init__(self, settings: Any, opts: RayOptions):
        ray = require_ray()
        self.ray = ray
        self.opts = opts
        self.backend_name = str(settings.backend)
        self.name = f"{self.backend_name} (ray)"
        self.model = str(settings.model)
        self.options = dict(settings.backend_options)
        self.started = connect(opts.address, opts.local_cpus)
        self.slots: list[_Slot] = []
        try:
            self._setup(ray, opts)
        except BaseException:
            for slot in self.slots:  # a replica that failed to start holds its CPUs/GPUs
                ray.kill(slot.handle)
            shutdown(self.started)
            raise

    def _setup(self, ray: Any, opts: RayOptions) -> None:
        gpus = ray.cluster_resources().get("GPU", 0)
        num_gpus = opts.num_gpus if opts.num_gpus is not None else (
            1.0 if self.backend_name == "vllm" and gpus > 0 else 0.0)
        self.num_cpus, self.num_gpus = float(opts.num_cpus), float(num_gpus)
        n = fitting({"CPU": self.num_cpus, "GPU": self.num_gpus}, opts.replicas, "replica")
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
        self.stats = RayStats()
        refs = [s.handle.start.remote() for s in self.slots]
        need = f"CPU {self.num_cpus:g}" + (f", GPU {self.num_gpus:g}" if self.num_gpus else "")
        up = start_pool(ray, [s.handle for s in self.slots], refs, opts.start_timeout, "replica", need)
        self.slots = [self.slots[i] for i in up]
        self.started_info = self._get([refs[i] for i in up])
        from ttscale import __version__

        for st in self.started_info:
            if st["ttscale"] != __version__:
                raise InputError(f"executor ray: node {st['node']} runs ttscale {st['ttscale']}, this "
                                 f"driver {__version__} (install the same version on every node)")

    def _new_actor(self) -> Any:
        return self.actor_cls.remote(self.backend_name, self.model, self.options)

    def _get(self, refs: list[Any]) -> list[Any]:
        """ray.get, with a backend's InputError (bad model, bad option) raised as itself."""
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

    def validate(self, requests: list[Request]) -> None:
        self._get([self.slots[0].handle.validate.remote(requests)])

    def generate(self, requests: list[Request]) -> Iterator[list[Sample]]:
        queue: deque[list[Request]] = deque(split_requests(requests, self.batch_samples))
        inflight: dict[Any, tuple[int, int, list[Request]]] = {}
        while queue or inflight:
            for i, slot in enumerate(self.slots):
                while slot.handle is not None and slot.queued < self.opts.in_flight and queue:
                    chunk = queue.popleft()
                    ref = slot.handle.generate.options(name=self._task_name(i, chunk)).remote(chunk)
                    inflight[ref] = (i, slot.gen, chunk)
                    slot.queued += 1
            if not inflight:
                raise InputError(f"executor ray: every replica died and max_restarts "
                                 f"({self.opts.max_restarts}) is spent; the samples written are "
                                 "kept, run again to resume")
            ready, _ = self.ray.wait(list(inflight), num_returns=1)
            ref = ready[0]
            i, gen, chunk = inflight.pop(ref)
            slot = self.slots[i]
            if slot.gen == gen:
                slot.queued -= 1
            try:
                samples, secs, cpu = self._get([ref])[0]
            except (self.ray.exceptions.RayActorError, self.ray.exceptions.WorkerCrashedError,
                    self.ray.exceptions.ObjectLostError, self.ray.exceptions.OutOfMemoryError):
                queue.appendleft(chunk)  # re-planned: the same requests, the same seeds
                self.stats.lost_chunks += 1
                if slot.gen == gen:
                    self._replace(i)
                continue
            slot.samples += len(samples)
            slot.tokens += sum(max(0, s.num_output_tokens) for s in samples)
            slot.busy += secs
            slot.cpu += cpu
            self.stats.chunks += 1
            yield samples

    def _replace(self, i: int) -> None:
        """Replica ``i`` died: start another in its place while restarts are left."""
        slot = self.slots[i]
        self.stats.replica_deaths += 1
        try:
            self.ray.kill(slot.handle)
        except Exception:  # noqa: BLE001 - it is dead already
            pass
        slot.queued = 0
        slot.gen += 1
        if self.restarts_left <= 0:
            slot.handle = None
            return
        self.restarts_left -= 1
        self.stats.restarts += 1
        slot.handle = self._new_actor()

    def _task_name(self, i: int, chunk: list[Request]) -> str:
        n = sum(r.n for r in chunk)
        first, last = chunk[0].problem_id, chunk[-1].problem_id
        span = first if first == last else f"{first}..{last}"
        return f"ttscale sample r{i}: {n} samples of {span}, r{i} at {self.slots[i].rate():.0f} samples/s"

    def progress_note(self) -> str:
        """Per replica samples/s and tokens/s, for the terminal's progress bar."""
        return "| " + " | ".join(
            f"r{i} {s.rate():.0f} samples/s {s.token_rate():.0f} tok/s" if s.handle is not None
            else f"r{i} dead" for i, s in enumerate(self.slots))

    def close(self) -> None:
        self.stats.per_replica = [{"samples": s.samples, "tokens": s.tokens, "seconds": round(s.busy, 3)}
                                  for s in self.slots]
        for s in self.slots:
            if s.handle is not None:
                try:
                    self.ray.get(s.handle.close.remote(), timeout=30)
                except Exception:  # noqa: BLE001 - a dead replica has nothing to release
                    pass
                self.ray.kill(s.handle)
                s.handle = None
        shutdown(self.started)
