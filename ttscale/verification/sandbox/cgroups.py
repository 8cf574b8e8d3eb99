"""Control groups for the sandbox: one program's memory and process count bounded as a whole.

Standard library only: used by the runner (on the host, to make and remove each worker's group)
and by the worker (to set a program's limits, move its first process in, and read whether the
kernel killed it for memory). Each worker gets two slots (a leaf group per controller in each);
its programs use them in turn, and a slot takes a new program only once the one before it there
is reaped, so that what a killed program still holds while it dies never counts against the
next. ``memory`` is limited to the program's ``memory_mb`` (swap off) and ``pids`` to its
``nproc``, across every process and thread it starts.

cgroup v2 is used where its root offers the ``memory`` and ``pids`` controllers and can be
written; else cgroup v1's ``memory`` and ``pids`` hierarchies; else none (:func:`create` says
why, in one line, and the programs keep only their per-process rlimits).
"""

from __future__ import annotations

import os
import time

ROOT = "ttscale-sandbox"  #: the folder under each hierarchy's root holding the workers' groups


def _mounts() -> tuple[str | None, dict[str, str]]:
    """(the cgroup2 mount point, {v1 controller: its mount point}) from /proc/self/mountinfo."""
    v2, v1 = None, {}
    try:
        with open("/proc/self/mountinfo") as f:
            lines = f.read().splitlines()
    except OSError:
        return None, {}
    for line in lines:
        left, _, right = line.partition(" - ")
        fields, rest = left.split(), right.split()
        if len(fields) < 5 or len(rest) < 3 or fields[3] != "/":
            continue
        if rest[0] == "cgroup2" and v2 is None:
            v2 = fields[4]
        elif rest[0] == "cgroup":
            for opt in rest[2].split(","):
                if opt in ("memory", "pids"):
                    v1.setdefault(opt, fields[4])
    return v2, v1


def _write(path: str, value: str) -> None:
    fd = os.open(path, os.O_WRONLY)
    try:
        os.write(fd, value.encode())
    finally:
        os.close(fd)


def _remove_stale(parent: str) -> None:
    """Remove groups of workers whose process is gone (left by a killed run; empty by then)."""
    try:
        names = os.listdir(parent)
    except OSError:
        return
    for name in names:
        owner = name.split("-", 1)[0]
        if owner.isdigit() and not os.path.exists(f"/proc/{owner}"):
            try:
                os.rmdir(os.path.join(parent, name))
            except OSError:
                pass


SLOTS = 4  #: groups per worker, used by its programs in turn


def create(tag: str) -> tuple[dict | None, str | None]:
    """Make a worker's groups: ({"kind": "v1" or "v2", "dirs": [[...], [...]]}, None) -- per
    slot, a leaf per controller -- or (None, why not). ``tag`` starts with the calling process's
    pid (stale groups of dead processes are removed)."""
    v2, v1 = _mounts()
    why = []
    if v2 is not None:
        try:
            with open(os.path.join(v2, "cgroup.controllers")) as f:
                have = set(f.read().split())
            if {"memory", "pids"} <= have:
                parent = os.path.join(v2, ROOT)
                os.makedirs(parent, exist_ok=True)
                _write(os.path.join(v2, "cgroup.subtree_control"), "+memory +pids")
                _write(os.path.join(parent, "cgroup.subtree_control"), "+memory +pids")
                _remove_stale(parent)
                slots = []
                for i in range(SLOTS):
                    leaf = os.path.join(parent, f"{tag}-{i}")
                    os.mkdir(leaf)
                    slots.append([leaf])
                    _write(os.path.join(leaf, "memory.swap.max"), "0")
                return {"kind": "v2", "dirs": slots}, None
            why.append("cgroup2 has no memory and pids controllers")
        except OSError as e:
            why.append(f"cgroup2: {e.strerror or e}")
    if "memory" in v1 and "pids" in v1:
        made: list[str] = []
        try:
            for ctl in ("memory", "pids"):
                parent = os.path.join(v1[ctl], ROOT)
                os.makedirs(parent, exist_ok=True)
                _remove_stale(parent)
                for i in range(SLOTS):
                    leaf = os.path.join(parent, f"{tag}-{i}")
                    os.mkdir(leaf)
                    made.append(leaf)
                    if ctl == "memory":
                        _write(os.path.join(leaf, "memory.swappiness"), "0")
            return {"kind": "v1", "dirs": [[made[i], made[SLOTS + i]] for i in range(SLOTS)]}, None
        except OSError as e:
            remove(made)
            why.append(f"cgroup v1: {e.strerror or e}")
    elif not why:
        why.append("no cgroup memory and pids controllers are mounted")
    return None, "; ".join(why)


def remove(dirs: list[str], timeout: float = 2.0) -> None:
    """Remove a worker's groups once their last process is gone (retried up to ``timeout``)."""
    until = time.monotonic() + timeout
    for d in dirs:
        while True:
            try:
                os.rmdir(d)
                break
            except FileNotFoundError:
                break
            except OSError:
                if time.monotonic() > until:
                    break
                time.sleep(0.01)


def flat(spec: dict) -> list[str]:
    """Every folder of a worker's groups (to remove them)."""
    return [d for slot in spec["dirs"] for d in slot]


class Group:
    """One slot of a worker's groups (a leaf per controller), seen from inside its sandbox
    through descriptors opened before it was entered."""

    def __init__(self, kind: str, dirs: list[str]):
        self.kind = kind
        self.dirs = [os.open(d, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC) for d in dirs]
        self.procs = [os.open("cgroup.procs", os.O_WRONLY | os.O_CLOEXEC, dir_fd=d)
                      for d in self.dirs]
        self.limits: tuple[int, int] | None = None

    def _set(self, dir_fd: int, name: str, value: str) -> None:
        fd = os.open(name, os.O_WRONLY | os.O_CLOEXEC, dir_fd=dir_fd)
        try:
            os.write(fd, value.encode())
        finally:
            os.close(fd)

    def limit(self, memory_mb: int, nproc: int) -> None:
        """The next program's bounds: memory (no swap) and tasks, across all its processes."""
        if self.limits == (memory_mb, nproc):
            return
        if self.kind == "v2":
            self._set(self.dirs[0], "memory.max", str(memory_mb << 20))
            self._set(self.dirs[0], "pids.max", str(nproc))
        else:
            self._set(self.dirs[0], "memory.limit_in_bytes", str(memory_mb << 20))
            self._set(self.dirs[1], "pids.max", str(nproc))
        self.limits = (memory_mb, nproc)

    def attach(self, pid: int) -> None:
        """Move process ``pid`` (of the caller's PID namespace) in; its children are born
        inside. Slow (the kernel waits for an RCU grace period): done by each candidate for its
        own program's process, one job ahead, never by init."""
        for fd in self.procs:
            os.write(fd, str(pid).encode())

    def _read(self, dir_fd: int, name: str) -> str:
        fd = os.open(name, os.O_RDONLY | os.O_CLOEXEC, dir_fd=dir_fd)
        try:
            return os.read(fd, 1 << 16).decode()
        finally:
            os.close(fd)

    def tasks(self) -> int:
        """How many tasks (processes and threads, zombies not yet reaped among them) the slot
        holds: one read, where scanning /proc costs a read per process."""
        return int(self._read(self.dirs[-1], "pids.current"))

    def members(self) -> list[int]:
        """The processes in the slot (pids in the reader's namespace): the program's first
        process and everything it started, wherever re-parented (none can leave the group: no
        cgroup file is visible in the sandbox)."""
        return [int(p) for p in self._read(self.dirs[-1], "cgroup.procs").split()]

    def oom_kills(self) -> int:
        """How many processes the kernel has killed in this group for memory, so far."""
        name = "memory.events" if self.kind == "v2" else "memory.oom_control"
        fd = os.open(name, os.O_RDONLY | os.O_CLOEXEC, dir_fd=self.dirs[0])
        try:
            text = os.read(fd, 4096).decode()
        finally:
            os.close(fd)
        for line in text.splitlines():
            key, _, value = line.partition(" ")
            if key == "oom_kill":
                return int(value)
        return 0
