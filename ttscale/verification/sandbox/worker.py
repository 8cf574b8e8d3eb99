"""The sandboxed worker: a long-lived process that judges untrusted programs one at a time.

Run by :mod:`ttscale.verification.sandbox.runner` as ``python -I -S worker.py CONFIG_JSON``: standard library
only (with its siblings), so nothing of ttscale or of the caller's environment is inside the
sandbox. It confines itself (see :mod:`namespaces`: own mount, network, IPC, UTS and PID
namespaces, a read-only root, no network) and becomes two processes:

- **init** (PID 1 of the new PID namespace) reads the jobs, runs each program's *tests* itself
  (:mod:`tester`) and decides every verdict. It is not dumpable and, in root mode, another uid
  than the programs: a program can neither trace it, open its memory or descriptors, nor
  signal it.
- **the zygote** (the outer process, outside the PID namespace) forks **the spawner** into it
  once, from memory that never held a job, a test or a verdict; the spawner makes each
  program's world and forks its processes (:mod:`candidate`), ``AHEAD`` jobs ahead so that no
  program waits for a fork.

Per program, a world of its own (:mod:`candidate`): PID, IPC and mount namespaces with a
reaper as PID 1, a fresh /proc and scratch, a uid no other live program has (8 per worker, in
turn), the seccomp filter, and -- where the machine has one -- the worker's control group,
bounding memory and tasks of all its processes together (:mod:`cgroups`). The spawner moves
the program's process into the group; init sends it its code and limits; the program's process confines
itself, runs the code and answers calls; init runs the tests, whose calls to the program's functions cross a pipe as
plain data (:mod:`channel`). The verdict is ``pass`` only if the code ran to its end and every
test passed, and the program left nothing running (no other process, no other thread). Then
init SIGKILLs the program's reaper: the kernel kills every process of its namespace, and its
IPC objects, mounts and scratch go with it.

What a program can do to its own interpreter -- patch builtins, rewrite frames, replace
modules, write on its descriptors, mutate built-in types with ctypes -- changes only the values
it sends back, and those are rebuilt as exact built-in types on init's side. What it cannot do
is escape, touch the host, reach the network, outlive its verdict, starve the other programs,
read the tests, or write the verdict.

Protocol with the parent (one JSON object per line): after set-up init writes
``{"ready": true}`` (or ``{"ready": false, "error": ...}``); then for each request
``{"code", "test", "timeout", "limits", "entry_point", "context"}`` it answers ``{"status",
"error", "output", "truncated", "duration"}``. EOF on its input ends it, and with it the whole
namespace.
"""

from __future__ import annotations

import _signal
import gc
import json
import os
import select
import signal
import socket
import sys
import time
from collections import deque

# The sibling module, found by path: run with -I, this script has no package around it.
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import candidate  # noqa: E402
import cgroups  # noqa: E402
import channel  # noqa: E402
import namespaces as ns  # noqa: E402
import seccomp  # noqa: E402
import tester  # noqa: E402

del sys.path[0]

IN_FD, OUT_FD = 3, 4  # the parent's pipes, moved here at start-up
START_TIMEOUT = 10.0  # seconds a candidate process may take to start
#: spare candidates in the making: each takes longer to make than a short program takes to run
#: (new namespaces, a control-group move: the kernel waits for RCU grace periods), mostly waiting.
#: Fewer than the control-group slots: no spare ever sits in the slot of the program running.
AHEAD = cgroups.SLOTS - 1
#: What HumanEval-style programs import most; others import in the program's process. Not
#: ``random`` nor anything that imports ``threading``: each registers an after-fork hook that
#: then runs in every program (reseeding, 0.1-0.25 ms; threading's, 0.7 ms), used or not. Not
#: ``hashlib`` either: it maps OpenSSL's libcrypto (3.7 MB of the zygote's 16.5 MB, 15 of its
#: 118 mappings), which every fork copies and every exit tears down, for 1 HumanEval problem in
#: 164 (sandbox CPU per program, 5 alternating runs: 7.1 ms without it vs 8.0 ms with it).
PRELOAD = (
    "typing math copy string collections re itertools functools heapq bisect operator"
).split()

# Trusted code run once in the worker: it builds the AST node types (built on the first
# ``compile``) and typing's cached aliases, which each forked program would otherwise rebuild.
WARM_UP = """
from typing import Any, Dict, List, Optional, Tuple, Union
_ = (List[int], List[str], List[float], Dict[str, int], Tuple[int, int], Optional[int],
     Union[int, float], List[Any], Tuple[int, ...], Optional[str], List[List[int]])
"""



def _write_line(obj: dict) -> None:
    data = (json.dumps(obj) + "\n").encode()
    while data:
        data = data[os.write(OUT_FD, data):]


def _prepare_process() -> None:
    """What every program's process starts with, set once in the worker before any fork."""
    os.environ.clear()
    os.environ.update(PATH="/usr/bin:/bin", HOME="/scratch", TMPDIR="/scratch",
                      LANG="C.UTF-8", PYTHONDONTWRITEBYTECODE="1")
    sys.argv = ["program"]
    for stream in (sys.stdout, sys.stderr):
        stream.reconfigure(line_buffering=True)  # interleaved as on a terminal
    _signal.signal(_signal.SIGXFSZ, _signal.SIG_DFL)  # a file over the size limit kills
    exec(compile(WARM_UP, "<warm-up>", "exec"), {})  # lazily built state: once, not per fork
    gc.collect()
    gc.freeze()  # fewer copy-on-write faults in each forked program


class Candidates:
    """Programs' processes (each in its world) forked ``AHEAD`` jobs ahead by the spawner, so
    that none is waited for."""

    def __init__(self, zygote: candidate.ZygoteClient):
        self.zygote = zygote
        self.ahead: deque[tuple[int, int, int, int]] = deque()

    def _order(self) -> tuple[int, int, int, int]:
        out_r, out_w = os.pipe()  # the candidate's stdout and stderr
        req_r, req_w = os.pipe()  # tests -> candidate (and first its job)
        resp_r, resp_w = os.pipe()  # candidate -> tests (and first its pid)
        seq = self.zygote.fork([out_w, req_r, resp_w])
        for fd in (out_w, req_r, resp_w):
            os.close(fd)
        return seq, out_r, req_w, resp_r

    def take(self, keep) -> tuple[int, int, int, tester.Link]:
        """(seq, pid of its reaper, pid of its process, link) of a live candidate (pids in
        this namespace); orders the next one."""
        for _ in range(3):
            while len(self.ahead) <= AHEAD:
                self.ahead.append(self._order())
            seq, out_r, req_w, resp_r = self.ahead.popleft()
            link = tester.Link(req_w, resp_r, out_r, time.monotonic() + START_TIMEOUT, keep)
            try:
                hello = link.receive()  # b"H" + the reaper's and the program's pids
                reaper, _, program = hello[1:].partition(b",")
                if hello[:1] == b"H" and reaper.isdigit() and program.isdigit() \
                        and len(hello) < 24:
                    return seq, int(reaper), int(program), link
            except (channel.ChannelClosed, channel.NotPlainData, tester.TimeUp):
                pass
            for fd in (out_r, req_w, resp_r):  # its process could not start: the next one
                os.close(fd)
            self.zygote.done(seq)
        why = self.zygote.failed.get(seq, "no answer")
        raise RuntimeError(f"no candidate process could be started ({why})")


class World:
    """What each program gets of its own besides its namespaces: a uid no other live program
    has (in root mode; rotated, so that nothing the kernel keeps per uid is met again soon),
    its bounds as a whole in a control-group slot (where the machine has them), and the
    reaping of the programs killed before it (by the spawner, their parent)."""

    UIDS = 8  #: uids per worker, used in turn

    def __init__(self, cfg: dict, groups: list, zygote: candidate.ZygoteClient):
        self.cfg, self.groups, self.zygote, self.n = cfg, groups, zygote, 0
        self.dying: list[int] = []  # seqs of programs killed, not known to be reaped

    def next_uid(self) -> int:
        self.n += 1
        return self.cfg["uid"] + self.n % self.UIDS if self.cfg["drop_uid"] else 0

    def group(self, seq: int):
        return self.groups[seq % len(self.groups)] if self.groups else None

    def settle(self, seq: int, timeout: float = 5.0) -> None:
        """Forget the killed programs that are reaped; wait for those that shared program
        ``seq``'s slot (the one before it there), so that nothing of them counts against it."""
        until = time.monotonic() + timeout
        self.zygote.poll()
        keep = []
        for old in self.dying:
            if self.groups and (seq - old) % len(self.groups) == 0:
                self.zygote.reap(old, until)
            if self.zygote.is_reaped(old):
                self.zygote.forget(old)
            else:
                keep.append(old)
        self.dying = keep


def run_job(job: dict, cfg: dict, world: World, candidates: Candidates) -> dict:
    """Run one program: its code in a candidate process, its tests here (see :mod:`tester`)."""
    lim = job["limits"]
    start = time.monotonic()
    deadline = start + float(job["timeout"])
    cap = int(lim["output_bytes"])
    output = bytearray()
    cut = [False]

    def keep(data: bytes) -> None:
        cut[0] |= _keep(output, data, cap)

    seq, reaper, cand, link = candidates.take(keep)
    link.deadline = deadline
    world.settle(seq)
    group, oom_before = world.group(seq), 0
    if group is not None:  # its process is in the slot already (moved there by its candidate)
        group.limit(int(lim["memory_mb"]), int(lim["nproc"]))
        oom_before = group.oom_kills()
    try:
        link.send(tester.job_header(job, world.next_uid()))
        status, error = tester.judge(job, tester.compiled(job), link)
    except tester.TimeUp:
        status, error = "timeout", None
    except channel.ChannelClosed:
        status, error = "fail", f"{tester.ENDED}before the tests ran"
    lingering = None
    if status == "pass" and (group is None or group.tasks() != 1):  # 1: its process alone
        lingering = ns.program_leftovers(reaper, cand)
    # Whether it ended by itself (its descriptors close a moment before it is gone)
    ended_alone = status == "fail" and bool(error) and error.startswith(tester.ENDED) \
        and _ends(cand, 1.0)
    ns.kill_program(reaper, cand, members=group.members if group is not None else None)
    world.zygote.done(seq)  # the spawner may reap both now
    wait_status, cpu = 0, 0.0
    if ended_alone:  # it is gone already: how it ended says more
        wait_status, cpu = world.zygote.reap(seq, time.monotonic() + 5.0, program_only=True)
    world.dying.append(seq)
    duration = time.monotonic() - start
    out_r = link.out_r if link.out_r >= 0 else None
    if out_r is not None:
        os.set_blocking(out_r, False)  # every writer is dead now: read what is left up to EOF
    while out_r is not None:
        try:
            data = os.read(out_r, 1 << 16)
        except BlockingIOError:
            break
        if not data:
            break
        keep(data)
    for fd in (link.out_fd, link.req_w, link.resp_r):
        os.close(fd)
    if status == "timeout":
        error = f"wall-clock limit of {float(job['timeout']):.3g} s"
    elif lingering:  # hygiene, as before: a program must not leave anything running
        status, error = "fail", lingering
    elif status == "fail":
        signalled = ended_alone and os.WIFSIGNALED(wait_status)
        sig = os.WTERMSIG(wait_status) if signalled else 0
        if sig == signal.SIGKILL and group is not None and group.oom_kills() > oom_before:
            error = (f"the program ran out of memory ({int(lim['memory_mb'])} MiB across all "
                     "its processes)")
        elif sig == signal.SIGXCPU or (sig == signal.SIGKILL
                                       and cpu >= int(job["timeout"]) + 1 - 0.05):
            status, error = "timeout", "CPU time limit"
        elif error and error.startswith(tester.ENDED):
            how = _describe_exit(wait_status if ended_alone else None)
            error = f"{how} {error[1:]}"
    return {"status": status, "error": error, "truncated": cut[0],
            "output": output.decode("utf-8", "replace"), "duration": duration}


def _ends(pid: int, timeout: float) -> bool:
    """Whether process ``pid`` has ended within ``timeout`` seconds (0: reaped already)."""
    if pid <= 0:
        return True
    try:
        pidfd = os.pidfd_open(pid)
    except ProcessLookupError:
        return True
    try:
        return bool(select.select([pidfd], [], [], timeout)[0])
    finally:
        os.close(pidfd)


def _keep(output: bytearray, data: bytes, cap: int) -> bool:
    """Append what fits under ``cap``; True when something was cut."""
    room = cap - len(output)
    if room > 0:
        output += data[:room]
    return len(data) > room


def _describe_exit(wait_status: int | None) -> str:
    if wait_status is None:
        return "the program ended"
    if os.WIFSIGNALED(wait_status):
        sig = os.WTERMSIG(wait_status)
        try:
            name = signal.Signals(sig).name
        except ValueError:
            name = str(sig)
        return f"the program was killed by {name}"
    return f"the program exited with code {os.WEXITSTATUS(wait_status)}"


def main() -> None:
    cfg = json.loads(sys.argv[1])
    os.dup2(0, IN_FD)
    os.dup2(1, OUT_FD)
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    os.close(null)
    isolation: dict = {"seccomp": None, "cgroup": None}
    groups: list = []
    if cfg.get("cgroup"):
        try:
            groups = [cgroups.Group(cfg["cgroup"]["kind"], dirs) for dirs in cfg["cgroup"]["dirs"]]
            candidate.GROUPS = groups
            isolation["cgroup"] = cfg["cgroup"]["kind"]
        except OSError as e:
            isolation["cgroup_why"] = f"the worker's control group cannot be opened ({e})"
    else:
        isolation["cgroup_why"] = cfg.get("cgroup_why", "no control group was made")
    if cfg.get("seccomp", True):
        bpf, why = seccomp.compile_filter()
        if bpf is not None:
            candidate.FILTER = seccomp.Installer(bpf)
            isolation["seccomp"] = len(bpf) // 8
        else:
            isolation["seccomp_why"] = why
    else:
        isolation["seccomp_why"] = "turned off"
    for name in PRELOAD:
        __import__(name)
    zygote_end, outer_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)

    def outer(init_pid: int) -> None:
        zygote_end.close()
        candidate.serve_zygote(cfg, outer_end, init_pid, _prepare_process)

    try:
        ns.enter_sandbox(cfg, close_in_outer=(IN_FD, OUT_FD), outer=outer)
    except Exception as e:
        _write_line({"ready": False, "error": f"{type(e).__name__}: {e}"})
        os._exit(2)
    outer_end.close()
    ns.libc.prctl(4, 0, 0, 0, 0)  # PR_SET_DUMPABLE 0: no one reads this memory (the tests run here)
    _prepare_process()
    zygote = candidate.ZygoteClient(zygote_end)
    world = World(cfg, groups, zygote)
    zygote.ready()  # the new root is built: the zygote may fork into it
    candidates = Candidates(zygote)
    candidates.ahead.extend(candidates._order() for _ in range(AHEAD))  # while the first job comes
    _write_line({"ready": True, "isolation": isolation})
    reader = os.fdopen(IN_FD, "rb")
    for line in reader:
        job = json.loads(line)
        try:
            reply = run_job(job, cfg, world, candidates)
        except candidate.ZygoteGone:  # the worker was killed from outside: go without a word (restarted)
            ns.kill_all()
            os._exit(2)
        except Exception as e:  # a sandbox fault, never the program's: report, then go (restarted)
            try:
                ns.kill_all()
            except Exception:
                pass
            _write_line({"status": "error", "error": f"sandbox: {type(e).__name__}: {e}",
                         "output": "", "truncated": False, "duration": 0.0})
            os._exit(2)
        _write_line(reply)
    ns.kill_all()  # every program, spare and dying one gone and reaped before the worker goes
    os._exit(0)


if __name__ == "__main__":
    main()
