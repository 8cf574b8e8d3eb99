"""The candidate's side of the sandbox: the zygote, its spawner, and each program's processes.

Standard library only (imported by the sandbox worker, run with ``python -I -S``). Over 400
lines: the three processes forked from the zygote's memory (spawner, reaper, program) and the
socket protocol between the spawner and init belong together.

**The zygote** is the worker's outer process: it made the namespaces but stayed outside the new
PID namespace. Once init has built the new root it forks **the spawner** into the worker's PID
namespace, then only waits for init and exits with it (the spawner dies with it). The spawner
starts from the zygote's pristine memory and never reads a job: its memory holds no test, no
expected value, nothing of the harness's verdicts. On a request from init (three file
descriptors over a Unix socket) it makes a program's world -- new PID, IPC and mount
namespaces, made by one ``unshare`` of its own and left again with ``setns`` once two
processes are born in them -- and starts in it a *reaper*, the namespace's PID 1 (a 232-byte
executable started with ``posix_spawn``: see :func:`namespaces.reaper_executable`; a forked
Python process on machines other than x86-64), then forks the program's process beside it and
moves it into the program's control-group slot. It tells init both pids (on the program's reply
pipe) and stays their parent: it reaps them once init says it is done with them (so that a pid
init signals is never reused meanwhile) and reports how the program's process ended. One fork
of Python a program, from the spawner; no process in between that only forks and exits.

**The program's process** reads its job (code, limits, uid, scratch size) from its request
pipe, confines itself (new session, its own /proc and scratch tmpfs, rlimits, its own
unprivileged uid or no capabilities, no_new_privs, the seccomp filter of :mod:`seccomp`) and
runs the code. It then says ``ready`` (or why the code raised) and serves calls: each request
names a function of the program's namespace and its arguments as plain data (:mod:`channel`);
the reply is the return value as plain data, the exception the call raised, or why the value
could not be sent. It holds no nonce, no verdict pipe, no test; whatever it does to its own
interpreter changes only the values it sends back. Init kills the reaper, and with it the
whole namespace, when the verdict is in.
"""

from __future__ import annotations

import _signal
import builtins
import os
import resource
import select
import socket
import sys
import time

import channel
import namespaces as ns

REQ_FD, RESP_FD = 3, 4  # in a candidate process: calls in, replies out
# Looked up here, once, not in each candidate: ctypes makes the function object on first use,
# which in a forked process copies some 35 pages of the zygote's memory.
_close_range = getattr(ns.libc, "close_range", None)


# --------------------------------------------------------------------------------------------
# The zygote (the worker's outer process), its spawner, and init's side of their socket
# --------------------------------------------------------------------------------------------
PR_SET_DUMPABLE = 4
MSG = 35  # every message: a letter, three 11-digit numbers, a newline
NEW_WORLD = ns.CLONE_NEWPID | ns.CLONE_NEWIPC | ns.CLONE_NEWNS
GROUPS: list = []  #: the worker's control-group slots (cgroups.Group), set before any fork
FILTER = None  #: the seccomp filter's installer, set by the worker before any fork (or None)


def _message(kind: bytes, a: int, b: int = 0, c: int = 0) -> bytes:
    return kind + f"{a:>11}{b:>11}{c:>11}\n".encode()


def serve_zygote(cfg: dict, sock: socket.socket, init_pid: int, prepare) -> None:
    """The outer process: once init says the new root is built (``R``), fork the spawner into
    the worker's PID namespace, then reap both and exit with init. Never returns."""
    ns.libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0)
    if _recv(sock)[0][:1] != b"R":
        os._exit(1)
    prepare()
    pid = os.fork()
    if pid == 0:
        try:
            ns.libc.prctl(ns.PR_SET_PDEATHSIG, 9, 0, 0, 0)  # SIGKILL when the outer process goes
            serve_spawner(cfg, sock)
        finally:
            os._exit(1)
    sock.close()
    while True:  # the spawner reaped too: init's exit waits until every process of its
        try:     # namespace is reaped, the spawner among them (a child of this process)
            done, status = os.waitpid(-1, 0)
            if done == init_pid:
                os._exit(os.waitstatus_to_exitcode(status) & 0xFF)
        except InterruptedError:
            continue
        except ChildProcessError:
            os._exit(1)


def serve_spawner(cfg: dict, sock: socket.socket) -> None:
    """The spawner: a process of the worker's PID namespace, forked from the zygote's pristine
    memory (it never reads a job), that makes each program's world. Never returns.

    ``F seq`` from init with three file descriptors (output, calls in, replies out): new PID,
    IPC and mount namespaces, the program's reaper and its process (:func:`_spawn`). A fork
    that fails: ``E seq errno`` on the socket. ``D seq`` from init (the verdict is in and both
    are killed, or the spare could not start): kill the reaper, reap both once they are gone, then ``P seq status cpu_us`` (the program's process)
    and ``Q seq`` (its reaper). Until ``D`` they stay unreaped, so that their pids, which init
    signals, are never reused meanwhile. Ends when init closes the socket."""
    # the executable reaper, in the root init built (x86-64), unless the config says not to
    elf = cfg.get("elf_reaper", True) and os.access(ns.REAPER, os.X_OK)
    own = [(os.open(f"/proc/self/ns/{name}", os.O_RDONLY | os.O_CLOEXEC), flag)
           for name, flag in (("pid", ns.CLONE_NEWPID), ("ipc", ns.CLONE_NEWIPC),
                              ("mnt", ns.CLONE_NEWNS))]
    kids: dict[int, tuple[int, int, bool]] = {}  # pidfd -> (seq, pid, whether the program's)
    gone: set[int] = set()  # pidfds of processes that have ended, not yet reaped
    done: set[int] = set()  # seqs init is done with
    while True:
        ready = select.select([sock.fileno(), *(fd for fd in kids if fd not in gone)], [], [])[0]
        for fd in ready:
            if fd != sock.fileno():
                gone.add(fd)
                continue
            data, fds = _recv(sock)
            kind, seq = data[:1], int(data[1:12])
            if kind == b"D":  # killed by init already, but for a spare that never started
                done.add(seq)
                for fd, (n, pid, is_program) in kids.items():
                    if n == seq and not is_program and fd not in gone:
                        os.kill(pid, 9)  # its namespace's PID 1: the namespace dies with it
            elif len(fds) != 3:
                for f in fds:
                    os.close(f)
                sock.sendall(_message(b"E", seq))
            else:
                try:
                    reaper, program = _spawn(cfg, own, fds, seq, sock, elf)
                except OSError as e:
                    sock.sendall(_message(b"E", seq, e.errno or 0))
                else:
                    kids[os.pidfd_open(reaper)] = (seq, reaper, False)
                    kids[os.pidfd_open(program)] = (seq, program, True)
                finally:
                    for f in fds:
                        os.close(f)
        for fd in [fd for fd in gone if kids[fd][0] in done]:
            seq, pid, is_program = kids.pop(fd)
            gone.discard(fd)
            os.close(fd)
            status, cpu = _wait(pid)
            sock.sendall(_message(b"P", seq, status, cpu) if is_program else _message(b"Q", seq))
        if done:
            live = {seq for seq, _, _ in kids.values()}
            done &= live


def _wait(pid: int) -> tuple[int, int]:
    """Reap ``pid`` (ended): its wait status and CPU microseconds."""
    while True:
        try:
            _, status, usage = os.wait4(pid, 0)
            return status, int(1e6 * (usage.ru_utime + usage.ru_stime))
        except InterruptedError:
            continue
        except ChildProcessError:
            return 0, 0


def _spawn(cfg: dict, own: list, fds: list[int], seq: int, sock: socket.socket,
           elf: bool) -> tuple[int, int]:
    """Program ``seq``'s world: new PID, IPC and mount namespaces, made here and entered by the
    two processes started next -- the first is the new namespace's PID 1, its reaper (``elf``:
    the executable one, else a forked Python process); the second is the program's process --
    after which this process goes back to its own namespaces. Says
    both pids (in the worker's namespace) on the program's reply pipe, before the program
    speaks."""
    ns.check(ns.libc.unshare(NEW_WORLD), "unshare")
    reaper = program = 0
    try:
        if elf:
            reaper = os.posix_spawn(ns.REAPER, ["reaper"], {})
        else:
            reaper = os.fork()
            if reaper == 0:
                try:
                    reaper_main()
                finally:
                    os._exit(1)
        program = os.fork()
        if program == 0:
            try:
                sock.close()
                program_main(cfg, fds)
            finally:
                os._exit(1)
        if GROUPS:  # before its job is sent: everything it starts is born inside
            GROUPS[seq % len(GROUPS)].attach(program)
    except OSError:
        for pid in (program, reaper):  # its namespace dies with its PID 1
            if pid > 0:
                os.kill(pid, 9)
                _wait(pid)
        raise
    finally:
        for fd, flag in own:  # back to its own namespaces (or gone: never in a program's)
            if ns.libc.setns(fd, flag) != 0:
                os._exit(1)
    channel.send(fds[2], b"H%d,%d" % (reaper, program))
    return reaper, program


def _recv(sock: socket.socket, deadline: float | None = None) -> tuple[bytes, list[int]]:
    """One message and the descriptors that came with it; ZygoteGone at EOF."""
    data, fds = b"", []
    while len(data) < MSG:
        if deadline is not None:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not select.select([sock], [], [], remaining)[0]:
                raise TimeoutError("no answer on the zygote's socket")
        chunk, got, _, _ = socket.recv_fds(sock, MSG - len(data), 3)
        if not chunk:
            for f in fds + got:
                os.close(f)
            raise ZygoteGone()
        data += chunk
        fds += got
    return data, fds


class ZygoteClient:
    """Init's end of the spawner's socket: requests for programs' worlds, and how each
    program's processes ended (the spawner is their parent; it reaps them once init is done)."""

    def __init__(self, sock: socket.socket):
        self.sock = sock
        self.seq = 0
        self.failed: dict[int, str] = {}  # seq -> why its process could not be forked
        self.ended: dict[int, tuple[int, float]] = {}  # seq -> (wait status, CPU s), reaped
        self.reaped: set[int] = set()  # seqs whose reaper is reaped

    def ready(self) -> None:
        self.sock.sendall(_message(b"R", 0))

    def fork(self, fds: list[int]) -> int:
        """Ask for a program's world and process on ``fds`` (output, calls in, replies out);
        its seq."""
        self.poll()
        self.seq += 1
        self.failed = {k: v for k, v in self.failed.items() if k >= self.seq - 1}
        socket.send_fds(self.sock, [_message(b"F", self.seq)], fds)
        return self.seq

    def done(self, seq: int) -> None:
        """Init is done with program ``seq`` (both its processes killed): reap them."""
        self.sock.sendall(_message(b"D", seq))

    def poll(self) -> None:
        """Read the reports that came meanwhile."""
        while select.select([self.sock], [], [], 0)[0]:
            self._read(None)

    def reap(self, seq: int, until: float, program_only: bool = False) -> tuple[int, float]:
        """Wait until program ``seq``'s process (and, unless ``program_only``, its reaper) is
        reaped; the process's (wait status, CPU seconds). RuntimeError after ``until``."""
        while seq not in self.ended or not (program_only or seq in self.reaped):
            try:
                self._read(until)
            except TimeoutError:
                raise RuntimeError(f"program {seq}'s processes were not reaped in time") from None
        return self.ended[seq]

    def is_reaped(self, seq: int) -> bool:
        return seq in self.ended and seq in self.reaped

    def forget(self, seq: int) -> None:
        self.ended.pop(seq, None)
        self.reaped.discard(seq)

    def _read(self, deadline: float | None) -> None:
        data, fds = _recv(self.sock, deadline)
        for f in fds:
            os.close(f)
        kind, n, a, b = data[:1], int(data[1:12]), int(data[12:23]), int(data[23:34])
        if kind == b"E":
            why = os.strerror(a) if a else "no descriptors"
            self.failed[n] = f"sandbox: could not start the program's process ({why})"
        elif kind == b"P":
            self.ended[n] = (a, b / 1e6)
        elif kind == b"Q":
            self.reaped.add(n)


class ZygoteGone(Exception):
    """The zygote's spawner ended: the worker is being stopped."""


# --------------------------------------------------------------------------------------------
# A program's processes
# --------------------------------------------------------------------------------------------


def reaper_main() -> None:
    """PID 1 of a program's namespace: holds no descriptor, takes no signal the program can
    send (as a namespace's init, it gets none it has no handler for), reaps every process
    re-parented to it, until init kills it and with it the namespace. Never returns."""
    if _close_range is None or _close_range(0, 0xFFFFFFFF, 0) != 0:
        for name in os.listdir("/proc/self/fd"):
            try:
                os.close(int(name))
            except OSError:
                pass
    # Dumpable (its memory holds nothing), so that init, without root, may read which PID
    # namespace it is in (/proc/PID/ns/pid needs ptrace access).
    ns.libc.prctl(PR_SET_DUMPABLE, 1, 0, 0, 0)
    every = _signal.valid_signals()
    _signal.pthread_sigmask(_signal.SIG_BLOCK, every)
    while True:
        _signal.sigwaitinfo({_signal.SIGCHLD})
        while True:
            try:
                if os.waitpid(-1, os.WNOHANG)[0] == 0:
                    break
            except ChildProcessError:
                break
            except InterruptedError:
                continue


def _confine(cfg: dict, fds: list[int]) -> str:
    """Stdio and channel on fixed descriptors, its own /proc and scratch, rlimits, its uid, no
    privileges, the system-call filter; returns the code."""
    out_w, req_r, resp_w = fds
    os.setsid()
    null = os.open("/dev/null", os.O_RDONLY)
    os.dup2(null, 0)
    os.dup2(out_w, 1)
    os.dup2(out_w, 2)
    os.dup2(req_r, REQ_FD)
    os.dup2(resp_w, RESP_FD)
    if _close_range is None or _close_range(RESP_FD + 1, 0xFFFFFFFF, 0) != 0:
        for name in os.listdir("/proc/self/fd"):
            if int(name) > RESP_FD:
                try:
                    os.close(int(name))
                except OSError:
                    pass
    _signal.signal(_signal.SIGPIPE, _signal.SIG_DFL)  # not signal.signal: no enum conversions
    # A spare waits here for its program: "cpu memory_mb nproc fsize_mb nofile uid scratch_mb\n"
    # + its code (no JSON: the less this process runs before the program, the fewer pages it
    # copies).
    head, _, code = channel.receive(REQ_FD).partition(b"\n")
    cpu, memory_mb, nproc, fsize_mb, nofile, uid, scratch_mb = map(int, head.split())
    ns.mount("proc", "/proc", "proc", ns.MS_NOSUID | ns.MS_NODEV | ns.MS_NOEXEC)
    ids = f",uid={uid},gid={uid}" if cfg["drop_uid"] else ""
    ns.mount("tmpfs", "/scratch", "tmpfs", ns.MS_NOSUID | ns.MS_NODEV,
             f"size={scratch_mb}m,mode=0700{ids}")
    os.chdir("/scratch")
    for res, val in (
        (resource.RLIMIT_CPU, (cpu, cpu + 1)),
        (resource.RLIMIT_AS, (memory_mb << 20,) * 2),
        # without root, the reapers of this and the next program share the uid too
        (resource.RLIMIT_NPROC, (nproc + cfg.get("nproc_base", 0) + 2 * (not cfg["drop_uid"]),) * 2),
        (resource.RLIMIT_FSIZE, (fsize_mb << 20,) * 2),
        (resource.RLIMIT_NOFILE, (nofile,) * 2),
        (resource.RLIMIT_CORE, (0, 0)),
    ):
        resource.setrlimit(res, val)
    if cfg["drop_uid"]:
        os.setgroups([])
        os.setgid(uid)
        os.setuid(uid)
    else:
        ns.drop_capabilities()
        # the zygote is not dumpable; without root init needs ptrace access to find this
        # program's processes by namespace (their memory is the program's own)
        ns.libc.prctl(PR_SET_DUMPABLE, 1, 0, 0, 0)
    ns.check(ns.libc.prctl(ns.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "no_new_privs")
    if FILTER is not None:
        FILTER.install()
    return code.decode("utf-8", "surrogatepass")


def program_main(cfg: dict, fds: list[int]) -> None:
    """Confine, run the program, then answer calls until the tests are done. Never returns."""
    send, receive, encode = channel.send, channel.receive, channel.encode
    exit_ = os._exit
    try:
        code = _confine(cfg, fds)
    except BaseException as e:  # noqa: BLE001 - reported, then gone
        try:
            send(RESP_FD, encode(["setup", f"sandbox set-up failed: {e!r}"[:4000]]))
        finally:
            exit_(3)
    namespace = {"__name__": "__main__", "__builtins__": builtins}
    try:
        exec(compile(code, "<program>", "exec"), namespace)
        for stream in (sys.stdout, sys.stderr):
            stream.flush()
        reply = encode(["ready"])
    except BaseException as e:  # noqa: BLE001 - the program's own failure, sent as text
        reply = encode(["raised", _describe(e)])
    send(RESP_FD, reply)
    while True:
        try:
            message = receive(REQ_FD)
        except BaseException:  # noqa: BLE001 - the tests are done (EOF) or the channel broke
            exit_(0)
        if message[:1] == b"B":  # a batch of calls, answered in one message, in order
            reply = b"B" + b"\n".join(_answer(namespace, part) for part in message[1:].split(b"\n"))
        else:
            reply = _answer(namespace, message)
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except BaseException:  # noqa: BLE001
                pass
        try:
            send(RESP_FD, reply)
        except BaseException:  # noqa: BLE001
            exit_(0)


def _answer(namespace: dict, message: bytes) -> bytes:
    """One call's reply: ``ok`` + value, ``raise`` + type + text, or ``bad`` + why."""
    encode = channel.encode
    try:
        _, name, args, kwargs = channel.decode(message)
        if name not in namespace:
            raise NameError(f"name {name!r} is not defined")
        result = namespace[name](*args, **kwargs)
        try:
            return encode(["ok", result])
        except channel.NotPlainData as e:
            return encode(["bad", f"{name} returned {e}"])
    except BaseException as e:  # noqa: BLE001 - the call's exception, sent as text
        try:
            return encode(["raise", type(e).__name__, str(e)[:4000]])
        except BaseException:  # noqa: BLE001
            return encode(["raise", "Exception", "an exception that cannot be described"])


def _describe(e: BaseException) -> str:
    try:
        what = "exited early" if isinstance(e, SystemExit) else "raised"
        return f"{what}: {type(e).__name__}: {e}"[:4000]
    except BaseException:  # noqa: BLE001
        return "raised an exception"
