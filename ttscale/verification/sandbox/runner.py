"""A pool of warm sandboxed workers that run untrusted Python programs, many per second.

Each worker (:mod:`ttscale.verification.sandbox.worker`) is one long-lived process in its own
namespaces (no network, read-only filesystem, its own PID namespace) that runs each program in a
world of its own -- PID, IPC and mount namespaces, scratch tmpfs, uid, seccomp filter, and the
worker's control group (made here, removed when the worker stops) -- and its tests in a trusted
process of its own, which
calls the program's functions across a plain-data channel and alone decides the verdict. The
pool runs as many workers as cores, feeds them from one queue, and restarts a worker that dies
or answers garbage (that program's verdict is ``error``); the other programs go on.

Needs root, or unprivileged user namespaces: no external binary (bubblewrap, unshare) is used;
the worker makes the system calls itself through libc.
"""

from __future__ import annotations

import json
import math
import os
import select
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from pathlib import Path

from ttscale.errors import InputError
from ttscale.verification.sandbox import cgroups
from ttscale.verification.sandbox.uids import count_processes, worker_uid

WORKER_PATH = Path(__file__).resolve().with_name("worker.py")
#: seconds a worker may take to set up its sandbox
START_TIMEOUT = 30.0
#: seconds a worker may take beyond a program's own limit before it is deemed hung
REPLY_SLACK = 10.0
#: programs queued on a worker at once, so that it never waits for the parent between two
PIPELINE_DEPTH = 2


class Status(StrEnum):
    """How a program ended: the tests ran and passed, failed, ran out of time, or the sandbox failed."""

    PASS = "pass"
    FAIL = "fail"
    TIMEOUT = "timeout"
    ERROR = "error"


class SandboxUnavailable(RuntimeError, InputError):
    """The sandbox cannot be set up on this machine (needs root or user namespaces).

    An InputError too, so the CLI reports it as one line with exit code 2, never a traceback.
    """


@dataclass(frozen=True)
class Limits:
    """Resource limits of one program (its process and everything it starts)."""

    memory_mb: int = 2048  #: address space (RLIMIT_AS) of each process
    nproc: int = 16  #: processes and threads of the program's own uid (RLIMIT_NPROC)
    nofile: int = 64  #: open file descriptors (RLIMIT_NOFILE)
    fsize_mb: int = 16  #: largest file it may write (RLIMIT_FSIZE)
    scratch_mb: int = 32  #: size of its scratch tmpfs (also its working directory, /tmp, $HOME)
    output_bytes: int = 1 << 20  #: stdout+stderr kept; the rest is read and discarded

    def __post_init__(self) -> None:
        for name, value in asdict(self).items():
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"sandbox limit {name!r} must be a positive integer, got {value!r}")


@dataclass(frozen=True)
class Job:
    """One program: ``code`` runs in the candidate's process, ``test`` in a trusted one.

    The verdict is ``pass`` only if the code ran to its end without an exception and then the
    tests did. The tests run in their own process, after the trusted ``context`` (e.g. the
    task's prompt, for the helper functions its tests use); every name they use that neither
    defines -- and always ``entry_point`` -- calls the candidate's function of that name across
    a plain-data channel (arguments and return values: numbers, strings, bytes, None, lists,
    tuples, dicts, sets; anything else fails).
    """

    code: str
    test: str | None = None
    timeout: float = 5.0  #: wall-clock seconds; the CPU limit is this, rounded up, plus one
    #: the function under test (called across the channel even if ``context`` defines it)
    entry_point: str | None = None
    #: trusted code run in the test process before the tests (never in the candidate's)
    context: str | None = None


@dataclass(frozen=True)
class Result:
    status: Status
    error: str | None = None  #: why it did not pass (the exception, the signal, the limit)
    output: str = ""  #: the program's stdout and stderr, interleaved, up to the output limit
    truncated: bool = False  #: whether output was cut at the limit
    duration: float = 0.0  #: wall-clock seconds from fork to verdict

    @property
    def passed(self) -> bool:
        return self.status is Status.PASS


def scaled_timeout(reference_time: float | None, base: float = 4.0, factor: float = 4.0) -> float:
    """``max(base, factor * reference_time)``: evalplus's rule, robust to slow machines."""
    if reference_time is None or not math.isfinite(reference_time) or reference_time <= 0:
        return float(base)
    return max(float(base), float(factor) * float(reference_time))


_warned: set[str] = set()


def _warn_once(line: str) -> None:
    """One line on stderr per process for each isolation layer the machine lacks."""
    if line not in _warned:
        _warned.add(line)
        print(line, file=sys.stderr)


def default_workers() -> int:
    """Two workers per core: a program's tests wait on the program's own process (and it on
    them), so a second worker keeps each core busy in the meantime."""
    return 2 * (os.cpu_count() or 1)


def _python() -> str:
    return os.path.realpath(getattr(sys, "_base_executable", None) or sys.executable)


class _Worker:
    """One sandboxed worker process and the line protocol with it."""

    def __init__(self) -> None:
        self.proc: subprocess.Popen | None = None
        self.buf = bytearray()
        self.restarts = -1
        self.cgroup_dirs: list[str] = []
        self.isolation: dict = {}
        self.uid = -1  #: the first of its programs' 8 uids (root mode)

    def start(self) -> None:
        self.stop()
        self.restarts += 1
        uid = self.uid = worker_uid()
        group, why = (None, "needs root") if os.geteuid() != 0 else \
            cgroups.create(f"{os.getpid()}-{uid}")
        self.cgroup_dirs = cgroups.flat(group) if group else []
        cfg = {
            "uid": uid,
            "cgroup": group,
            "cgroup_why": why,
            "drop_uid": os.geteuid() == 0,
            # Without root, programs keep the caller's uid, whose processes all count for
            # RLIMIT_NPROC: the limit is set that far above what already runs.
            "nproc_base": 0 if os.geteuid() == 0 else count_processes(os.getuid()),
            "ro_paths": sorted({os.path.realpath(p) for p in
                                (sys.base_prefix, sys.base_exec_prefix,
                                 os.path.dirname(_python()))}),
        }
        self.proc = subprocess.Popen(
            [_python(), "-I", "-S", str(WORKER_PATH), json.dumps(cfg)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
            env={"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"}, close_fds=True,
            start_new_session=True, cwd="/",
        )
        self.buf.clear()
        reply = self._read_line(time.monotonic() + START_TIMEOUT)
        if not reply or not reply.get("ready"):
            why = (reply or {}).get("error", "no answer from the sandbox worker")
            self.stop()
            raise SandboxUnavailable(
                f"cannot start the code sandbox ({why}); it needs Linux namespaces: run as root "
                "or enable unprivileged user namespaces (sysctl kernel.unprivileged_userns_clone=1)"
            )
        self.isolation = reply.get("isolation") or {}
        if not self.isolation.get("seccomp"):
            _warn_once("sandbox: no system-call filter ("
                       f"{self.isolation.get('seccomp_why', 'unknown')}): IPC objects, keyrings, "
                       "file locks and ptrace are confined only by each program's namespaces")
        if not self.isolation.get("cgroup"):
            _warn_once("sandbox: no control group for programs ("
                       f"{self.isolation.get('cgroup_why', 'unknown')}): memory is bounded per "
                       "process (RLIMIT_AS), processes per uid (RLIMIT_NPROC), not per program")

    def _read_line(self, deadline: float) -> dict | None:
        assert self.proc is not None and self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        while b"\n" not in self.buf:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not select.select([fd], [], [], remaining)[0]:
                return None
            data = os.read(fd, 1 << 20)
            if not data:
                return None
            self.buf += data
        line, _, rest = bytes(self.buf).partition(b"\n")
        self.buf[:] = rest
        try:
            obj = json.loads(line)
        except ValueError:
            return None
        return obj if isinstance(obj, dict) else None

    def send(self, job: Job, limits: Limits) -> bool:
        """Queue a program on the worker (started if need be); False if its pipe is broken."""
        if self.proc is None or self.proc.poll() is not None:
            self.start()
        assert self.proc is not None and self.proc.stdin is not None
        request = {"code": job.code, "test": job.test, "timeout": float(job.timeout),
                   "entry_point": job.entry_point, "context": job.context,
                   "limits": asdict(limits)}
        try:
            self.proc.stdin.write((json.dumps(request) + "\n").encode())
            self.proc.stdin.flush()
            return True
        except OSError:
            return False

    def receive(self, job: Job) -> Result | None:
        """The verdict of the oldest queued program; None if the worker died, hung or lied."""
        reply = self._read_line(time.monotonic() + float(job.timeout) + REPLY_SLACK)
        try:
            if reply is None:
                return None
            return Result(
                status=Status(reply["status"]), error=reply.get("error"),
                output=str(reply.get("output", "")), truncated=bool(reply.get("truncated")),
                duration=float(reply.get("duration", 0.0)),
            )
        except (KeyError, ValueError, TypeError):
            return None

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None:
            return
        try:
            if proc.stdin:
                proc.stdin.close()
            proc.wait(timeout=2)
        except (OSError, subprocess.TimeoutExpired):
            proc.kill()
            proc.wait()
        finally:
            if proc.stdout:
                proc.stdout.close()
            dirs, self.cgroup_dirs = self.cgroup_dirs, []
            cgroups.remove(dirs)  # empty once the worker's namespaces are gone


@dataclass
class SandboxPool:
    """Warm sandboxed workers, two per core by default. Use as a context manager or ``close()``."""

    workers: int = field(default_factory=lambda: default_workers())
    limits: Limits = field(default_factory=Limits)

    def __post_init__(self) -> None:
        if int(self.workers) < 1:
            raise ValueError(f"sandbox pool needs at least one worker, got {self.workers}")
        self._workers = [_Worker() for _ in range(int(self.workers))]
        self._lock = threading.Lock()  # one run() at a time per pool
        self._pid = os.getpid()

    def start(self) -> SandboxPool:
        """Start every worker now (otherwise each starts on its first program)."""
        for w in self._workers:
            if w.proc is None or w.proc.poll() is not None:
                w.start()
        return self

    @property
    def isolation(self) -> dict:
        """What confines the programs on this machine, as the first started worker reports it:
        ``seccomp`` (the filter's length in BPF instructions, or None) and ``cgroup`` ("v1",
        "v2" or None), with ``seccomp_why`` / ``cgroup_why`` where one is missing."""
        for w in self._workers:
            if w.isolation:
                return dict(w.isolation)
        return {}

    @property
    def restarts(self) -> int:
        """How many times a worker was replaced after dying or misbehaving."""
        return sum(max(w.restarts, 0) for w in self._workers)

    def run(self, jobs: Sequence[Job]) -> list[Result]:
        """Verdicts for ``jobs``, in order; programs run concurrently, one per worker."""
        for job in jobs:
            if not (isinstance(job.timeout, int | float) and job.timeout > 0):
                raise ValueError(f"program timeout must be a positive number, got {job.timeout!r}")
        results: list[Result | None] = [None] * len(jobs)
        todo = deque(range(len(jobs)))
        take = threading.Lock()
        failures: list[BaseException] = []

        def next_job() -> int | None:
            with take:
                return todo.popleft() if todo else None

        def drain(worker: _Worker) -> None:
            inflight: deque[int] = deque()
            try:
                while True:
                    while len(inflight) < PIPELINE_DEPTH:
                        i = next_job()
                        if i is None:
                            break
                        inflight.append(i)
                        if not worker.send(jobs[i], self.limits):
                            break  # the worker died: receive() below says so
                    if not inflight:
                        return
                    i = inflight.popleft()
                    result = worker.receive(jobs[i])
                    if result is None:  # this program broke or hung its worker
                        results[i] = Result(Status.ERROR, error="the sandbox worker died or hung "
                                            "while running this program; it was restarted")
                        worker.start()
                        with take:
                            todo.extendleft(reversed(inflight))
                        inflight.clear()
                    else:
                        results[i] = result
            except BaseException as e:  # noqa: BLE001 - re-raised in the caller's thread
                failures.append(e)

        with self._lock:
            busy = self._workers[: max(1, min(len(self._workers), len(jobs)))]
            threads = [threading.Thread(target=drain, args=(w,), daemon=True) for w in busy]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
        if failures:
            raise failures[0]
        return [r for r in results if r is not None]

    def close(self) -> None:
        for w in self._workers:
            w.stop()

    def __enter__(self) -> SandboxPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


_default: SandboxPool | None = None
_default_lock = threading.Lock()


def default_pool() -> SandboxPool:
    """This process's shared pool (two workers per core), created on first use."""
    global _default
    with _default_lock:
        if _default is None or _default._pid != os.getpid():
            _default = SandboxPool()
            import atexit

            atexit.register(_default.close)
        return _default


def run_programs(
    programs: Sequence[str | Job],
    timeout: float = 5.0,
    limits: Limits | None = None,
    workers: int | None = None,
    pool: SandboxPool | None = None,
) -> list[Result]:
    """Run each program (source text, or a :class:`Job`) in the sandbox; results in order.

    A plain string passes when it runs to its end without an exception. With neither ``pool``
    nor ``workers``/``limits`` given, the process's shared warm pool is used.
    """
    jobs = [p if isinstance(p, Job) else Job(code=p, timeout=timeout) for p in programs]
    if pool is not None:
        return pool.run(jobs)
    if workers is None and limits is None:
        return default_pool().run(jobs)
    with SandboxPool(workers=workers or default_workers(), limits=limits or Limits()) as p:
        return p.run(jobs)
