"""Linux namespaces for the code sandbox: the worker's confinement, made with libc calls.

Standard library only: imported by the worker script (run with ``python -I -S``) from its own
folder, before the worker pivots into its new root.

:func:`enter_sandbox` unshares the mount, network, IPC, UTS and PID namespaces (and a user
namespace when not root, mapping the caller to root inside it), then forks: the caller waits and
exits with its child, which is PID 1 of the new PID namespace. :func:`build_root` makes that
process a new root on tmpfs -- read-only, nosuid, nodev bind mounts of /usr, /bin, /sbin, /lib*
and the Python installation, a fresh /proc, /dev/{null,zero,full,random,urandom}, an empty /etc,
/tmp as a link to /scratch -- pivots into it, detaches the old root and remounts the new one
read-only. Nothing of the host's /home, /root, /tmp or the repository is visible. The new network
namespace holds a loopback interface that is down: no address, local or remote, is reachable.
:func:`reaper_executable` is each program namespace's PID 1 (written into the new root).
:func:`kill_program` SIGKILLs a program's own PID namespace (its processes, then its PID 1; the
worker's spawner, their parent, reaps them); :func:`program_leftovers` says whether a program
still runs other processes or threads; :func:`kill_all` SIGKILLs every process of the worker's
namespace (``kill(-1)``). Both killers refuse to run anywhere but the worker's PID 1.
"""

from __future__ import annotations

import ctypes
import os
import platform
import select
import signal
import struct
import time

CLONE_NEWNS, CLONE_NEWUTS, CLONE_NEWIPC = 0x00020000, 0x04000000, 0x08000000
CLONE_NEWUSER, CLONE_NEWPID, CLONE_NEWNET = 0x10000000, 0x20000000, 0x40000000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 1, 2, 4, 8
MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = 32, 4096, 16384, 1 << 18
MNT_DETACH = 2
PR_SET_PDEATHSIG, PR_SET_NO_NEW_PRIVS = 1, 38
SYS_PIVOT_ROOT = {"x86_64": 155, "aarch64": 41, "arm64": 41, "riscv64": 41, "ppc64le": 203}
SYS_CAPSET = {"x86_64": 126, "aarch64": 91, "arm64": 91, "riscv64": 91, "ppc64le": 184}

libc = ctypes.CDLL(None, use_errno=True)
# Looked up now, in the process every program is forked from, not in each program's process:
# ctypes makes a function object on an attribute's first use, and in a forked process that
# writes on pages shared with the zygote (the first ``mount`` in a program's process cost 0.39
# ms and 61 page faults, 0.22 ms and 27 with this). The same for the machine's name.
for _name in ("mount", "prctl", "setns", "unshare", "syscall", "umount2"):
    getattr(libc, _name, None)  # (a libc without one fails where it is called, as before)
del _name
MACHINE = platform.machine()


def check(rc: int, what: str) -> None:
    """Raise OSError (with errno) when a libc call returned non-zero."""
    if rc != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def mount(src: str | None, dst: str, fstype: str | None, flags: int,
          data: str | None = None) -> None:
    def enc(s: str | None) -> bytes | None:
        return s.encode() if s is not None else None

    check(libc.mount(enc(src), enc(dst), enc(fstype), ctypes.c_ulong(flags), enc(data)),
          f"mount {src} on {dst}")


# --------------------------------------------------------------------------------------------
# Start-up: namespaces and the new root
# --------------------------------------------------------------------------------------------
def enter_sandbox(cfg: dict, close_in_outer: tuple[int, ...] = (), outer=None) -> None:
    """Unshare namespaces, fork init (this function returns in init only), build the root.

    The outer process (outside the new PID namespace, so init's ``kill(-1)`` never reaches it)
    calls ``outer(init_pid)`` if given, else waits for init; either way it exits with init."""
    uid, gid = os.getuid(), os.getgid()
    flags = CLONE_NEWNS | CLONE_NEWNET | CLONE_NEWIPC | CLONE_NEWUTS | CLONE_NEWPID
    if uid != 0:
        flags |= CLONE_NEWUSER
    check(libc.unshare(flags), "unshare (needs root or unprivileged user namespaces)")
    if uid != 0:
        with open("/proc/self/setgroups", "w") as f:
            f.write("deny")
        with open("/proc/self/uid_map", "w") as f:
            f.write(f"0 {uid} 1")
        with open("/proc/self/gid_map", "w") as f:
            f.write(f"0 {gid} 1")
    pid = os.fork()
    if pid:  # the outer process: wait for init, then go with it
        for fd in close_in_outer:
            os.close(fd)
        if outer is not None:
            try:
                outer(pid)
            finally:
                os._exit(1)
        while True:
            try:
                _, status = os.waitpid(pid, 0)
                os._exit(os.waitstatus_to_exitcode(status) & 0xFF)
            except ChildProcessError:
                os._exit(1)
            except InterruptedError:
                continue
    # init of the new PID namespace
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    build_root(cfg)


def build_root(cfg: dict) -> None:
    if os.getpid() != 1:
        raise RuntimeError("not the init of a new PID namespace")
    mount(None, "/", None, MS_REC | MS_PRIVATE)
    mount("tmpfs", "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, "size=1m,mode=0755")
    root = "/tmp/r"
    os.mkdir(root)
    mount("tmpfs", root, "tmpfs", MS_NOSUID | MS_NODEV, "size=4m,mode=0755")
    binds = ["/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"]
    binds += [p for p in cfg["ro_paths"] if p not in binds]
    done: list[str] = []
    for src in binds:
        if not os.path.lexists(src) or any(src.startswith(d + "/") for d in done):
            continue
        dst = root + src
        if os.path.islink(src):
            os.makedirs(os.path.dirname(dst), exist_ok=True)
            os.symlink(os.readlink(src), dst)
            continue
        if not os.path.isdir(src):
            continue
        os.makedirs(dst, exist_ok=True)
        mount(src, dst, None, MS_BIND | MS_REC)
        mount(None, dst, None, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV)
        done.append(src)
    for d in ("dev", "proc", "scratch", "etc"):  # each program mounts its own /scratch, /proc
        os.mkdir(f"{root}/{d}")
    elf = reaper_executable()
    if elf is not None:  # each program's PID 1 (else a forked Python process is)
        fd = os.open(root + REAPER, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o555)
        try:
            os.write(fd, elf)
        finally:
            os.close(fd)
    for node in ("null", "zero", "full", "random", "urandom"):
        open(f"{root}/dev/{node}", "w").close()
        mount(f"/dev/{node}", f"{root}/dev/{node}", None, MS_BIND)
    mount("proc", f"{root}/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
    os.symlink("/scratch", f"{root}/tmp")
    os.chdir(root)
    arch = MACHINE
    if arch in SYS_PIVOT_ROOT:
        check(libc.syscall(SYS_PIVOT_ROOT[arch], b".", b"."), "pivot_root")
        check(libc.umount2(b".", MNT_DETACH), "umount old root")
    else:  # chroot: safe here because programs never keep CAP_SYS_CHROOT
        os.chroot(".")
    os.chdir("/")
    mount(None, "/", None, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV)


REAPER = "/.reaper"  #: where the new root holds :func:`reaper_executable`


def reaper_executable() -> bytes | None:
    """A program namespace's PID 1 as a static x86-64 Linux executable of 232 bytes (None on
    other machines): it closes every descriptor, blocks every signal, then reaps children
    forever (``wait4``; with none, it waits for ``SIGCHLD``). Started with ``posix_spawn`` (no
    copy of the spawner's page tables, none of its pages touched), it costs a fraction of a
    forked Python reaper."""
    if MACHINE != "x86_64":
        return None
    q = struct.Struct("<Q").pack
    code = bytes.fromhex(
        "31ff" "beffffffff" "31d2" "b8b4010000" "0f05"  # close_range(0, ~0U, 0)
        "31ff" "488d35" "47000000" "31d2" "41ba08000000" "b80e000000" "0f05"
        # ^ rt_sigprocmask(SIG_BLOCK, &every, NULL, 8)
        "bfffffffff" "31f6" "ba00000040" "4531d2" "b83d000000" "0f05"  # loop: wait4(-1, 0, __WALL, 0)
        "4883f8f6" "75e4"  # if it did not fail with ECHILD: loop
        "488d3d" "1d000000" "31f6" "31d2" "41ba08000000" "b880000000" "0f05"
        # ^ rt_sigtimedwait(&{SIGCHLD}, NULL, NULL, 8)
        "ebca" "9090"  # loop
    ) + q(0xFFFFFFFFFFFFFFFF) + q(1 << (signal.SIGCHLD - 1))  # every signal; SIGCHLD
    base, start = 0x400000, 64 + 56
    size = start + len(code)
    header = b"\x7fELF\x02\x01\x01" + bytes(9) + struct.pack(
        "<HHIQQQIHHHHHH", 2, 0x3E, 1, base + start, 64, 0, 0, 64, 56, 1, 0, 0, 0)
    segment = struct.pack("<IIQQQQQQ", 1, 5, 0, base, base, size, size, 0x1000)  # PT_LOAD, R+X
    return header + segment + code


def drop_capabilities() -> None:
    """All capabilities off (user-namespace mode, where no other uid can be switched to)."""
    arch = MACHINE
    header = (ctypes.c_uint32 * 2)(0x20080522, 0)
    data = (ctypes.c_uint32 * 6)()
    check(libc.syscall(SYS_CAPSET[arch], header, data), "capset")


def kill_all(timeout: float = 5.0) -> None:
    """SIGKILL every process of this PID namespace but init; return once all are dead.

    Init reaps its own children; the spawner has its parent outside the namespace (the zygote
    reaps it), and its children (programs' processes and reapers) come to init once it is dead:
    so this also waits until no process of the namespace but init is alive (zombies aside).
    """
    if os.getpid() != 1:  # kill(-1) outside a PID namespace would hit the whole machine
        raise RuntimeError("refusing kill(-1): not the init of a PID namespace")
    try:
        os.kill(-1, signal.SIGKILL)
    except ProcessLookupError:
        pass
    until = time.monotonic() + timeout
    while True:
        _reap()
        if not _alive_others() or time.monotonic() > until:
            return
        try:
            os.kill(-1, signal.SIGKILL)
        except ProcessLookupError:
            pass
        time.sleep(0.0005)


def kill_program(reaper: int, program: int, timeout: float = 5.0, members=None) -> None:
    """SIGKILL every process of a program's PID namespace and wait until they have exited
    (their descriptors, sockets among them, closed): first the program's own (its first
    process ``program``, and whatever else it runs: found by namespace, until none is left),
    then its PID 1, ``reaper`` (with which the kernel would kill the namespace anyway). The
    reaper's own exit and the reaping are left for later, off the verdict's path: the last
    process of a namespace takes a grace period of the kernel to go, and the reaper holds the
    namespace until then. ``members``, if given, lists the program's processes (its control
    group: one read) instead of a scan of /proc by namespace."""
    if os.getpid() != 1:
        raise RuntimeError("refusing to kill: not the init of a PID namespace")
    until = time.monotonic() + timeout
    try:
        world = os.readlink(f"/proc/{reaper}/ns/pid")
    except OSError:
        world = None
    done: set[int] = set()
    todo = [program]
    for _ in range(10):
        _kill_and_wait(todo, until)
        done.update(todo)
        if world is None:
            break
        found = members() if members is not None else _members(world)
        todo = [pid for pid in found if pid not in done and pid != reaper]
        if not todo:
            break
    try:
        os.kill(reaper, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _members(world: str) -> list[int]:
    """Processes of the PID namespace ``world`` (a /proc/PID/ns/pid link's text)."""
    found = []
    for name in os.listdir("/proc"):
        if name.isdigit() and name != "1":
            try:
                if os.readlink(f"/proc/{name}/ns/pid") == world:
                    found.append(int(name))
            except OSError:
                pass
    return found


def _kill_and_wait(pids: list[int], until: float) -> None:
    fds = []
    for pid in pids:
        try:
            fds.append(os.pidfd_open(pid))
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
    try:
        waiting = list(fds)
        while waiting:
            left = until - time.monotonic()
            ready = select.select(waiting, [], [], max(0.0, left))[0]
            if not ready and left <= 0:
                raise RuntimeError("a program's process survived SIGKILL")
            waiting = [fd for fd in waiting if fd not in ready]
    finally:
        for fd in fds:
            os.close(fd)


def program_leftovers(reaper: int, pid: int, grace: float = 0.25) -> str | None:
    """Why the program still runs more than its first process and thread: another process of
    its namespace now, or another thread once ``grace`` seconds are over (a joined thread can
    take a moment to be gone)."""
    until = time.monotonic() + grace
    while True:
        why = _leftovers(reaper, pid)
        if why is None or why.startswith("another") or time.monotonic() > until:
            return why
        time.sleep(0.002)


def _leftovers(reaper: int, pid: int) -> str | None:
    """Why the program whose first process is ``pid`` runs more than that one process and
    thread (other live processes of its PID namespace but its ``reaper``, or other threads), or
    None."""
    try:
        world = os.readlink(f"/proc/{pid}/ns/pid")
        if len(os.listdir(f"/proc/{pid}/task")) != 1:
            return "other threads were still running when the tests finished"
    except OSError:
        return None
    for name in os.listdir("/proc"):
        if not name.isdigit() or name in ("1", str(pid), str(reaper)):
            continue
        try:
            if os.readlink(f"/proc/{name}/ns/pid") != world:
                continue
            state = read_proc(f"/proc/{name}/stat").rsplit(b")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if state not in (b"Z", b"X"):
            return "another process was still running when the tests finished"
    return None


def _alive() -> list[tuple[int, int]]:
    """(pid, parent pid) of every live process of the namespace but init (zombies aside)."""
    out = []
    for name in os.listdir("/proc"):
        if name.isdigit() and name != "1":
            try:
                fields = read_proc(f"/proc/{name}/stat").rsplit(b")", 1)[1].split()
            except (OSError, IndexError):
                continue
            if fields[0] not in (b"Z", b"X"):
                out.append((int(name), int(fields[1])))
    return out


def read_proc(path: str) -> bytes:
    """A small /proc file in one read, without a Python file object (this runs once or twice
    per program: os.open costs a fraction of open())."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        return os.read(fd, 1 << 16)
    finally:
        os.close(fd)


def _reap() -> None:
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        except InterruptedError:
            continue
        if pid == 0:
            return


def _alive_others() -> bool:
    return bool(_alive())
