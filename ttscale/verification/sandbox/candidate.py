"""The candidate's side of the sandbox: the zygote that forks it, and its process.

Standard library only (imported by the sandbox worker, run with ``python -I -S``).

**The zygote** is the worker's outer process: it made the namespaces but stayed outside the new
PID namespace, so the namespace's init (which holds the jobs and their tests) cannot take it
down with ``kill(-1)``, and it never reads a job: its memory holds no test, no expected value,
nothing of the harness's verdicts. On a request from init (three file descriptors over a Unix
socket) it forks a candidate process into the sandbox's PID namespace; when that process ends
If init ends, the zygote ends.

**A candidate** starts from the zygote's pristine memory and makes the program's world: new PID,
IPC and mount namespaces, with a *reaper* as their PID 1 and the program's process beside it; it
tells init both pids, then exits (both become init's children; init kills the reaper, and with
it the whole namespace, when the verdict is in). **The program's process** reads its job (code,
limits, uid, scratch size) from its request pipe, confines itself (new session, its own /proc
and scratch tmpfs, rlimits, its own unprivileged uid or no capabilities, no_new_privs, the
seccomp filter of :mod:`seccomp`) and runs the code. It then says ``ready`` (or why the code raised)
and serves calls: each request names a function of the program's namespace and its arguments
as plain data (:mod:`channel`); the reply is the return value as plain data, the exception the
call raised, or why the value could not be sent. It holds no nonce, no verdict pipe, no test;
whatever it does to its own interpreter changes only the values it sends back.
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
# The zygote (the worker's outer process) and init's side of its socket
# --------------------------------------------------------------------------------------------
PR_SET_DUMPABLE = 4
MSG = 24  # every message: a letter, two 11-digit numbers, a newline


def _message(kind: bytes, a: int, b: int = 0) -> bytes:
    return kind + f"{a:>11}{b:>11}\n".encode()


def serve_zygote(cfg: dict, sock: socket.socket, init_pid: int, prepare) -> None:
    """Fork candidates on init's requests until init ends. Never returns.

    ``R`` from init: the new root is built (forks may go into it). ``F seq`` with three file
    descriptors (output, calls in, replies out): fork that program's candidate process. A fork
    that fails: ``E seq errno``. The forked process only makes the program's own namespaces
    and forks the program's process into them, then exits (reaped here): the program's process
    is the child of init from then on, which alone waits for it.
    """
    init_fd = os.pidfd_open(init_pid)
    ns.libc.prctl(4, 0, 0, 0, 0)  # PR_SET_DUMPABLE: not dumpable
    if _recv(sock)[0][:1] != b"R":
        os._exit(1)
    prepare()
    children: dict[int, int] = {}  # pidfd -> pid
    while True:
        for fd in select.select([sock.fileno(), init_fd, *children], [], [])[0]:
            if fd == init_fd:
                _, status = os.waitpid(init_pid, 0)
                os._exit(os.waitstatus_to_exitcode(status) & 0xFF)
            if fd == sock.fileno():
                data, fds = _recv(sock)
                seq = int(data[1:12])
                if len(fds) != 3:
                    for f in fds:
                        os.close(f)
                    sock.sendall(_message(b"E", seq, 0))
                    continue
                try:
                    pid = os.fork()
                except OSError as e:
                    for f in fds:
                        os.close(f)
                    sock.sendall(_message(b"E", seq, e.errno or 0))
                    continue
                if pid == 0:
                    try:
                        sock.close()
                        for f in (init_fd, *children):
                            os.close(f)
                        candidate_main(cfg, fds, seq)
                    finally:
                        os._exit(1)
                for f in fds:
                    os.close(f)
                children[os.pidfd_open(pid)] = pid
            elif fd in children:
                pid = children.pop(fd)
                os.close(fd)
                os.waitpid(pid, 0)


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
    """Init's end of the zygote's socket: fork requests, and how each candidate ended."""

    def __init__(self, sock: socket.socket):
        self.sock = sock
        self.seq = 0
        self.failed: dict[int, str] = {}  # seq -> why its process could not be forked

    def ready(self) -> None:
        self.sock.sendall(_message(b"R", 0, 0))

    def fork(self, fds: list[int]) -> int:
        """Ask for a candidate process on ``fds`` (output, calls in, replies out); its seq."""
        while select.select([self.sock], [], [], 0)[0]:  # reports nobody asked for: keep it small
            self._read(None)
        self.seq += 1
        self.failed = {k: v for k, v in self.failed.items() if k >= self.seq - 1}
        socket.send_fds(self.sock, [_message(b"F", self.seq, 0)], fds)
        return self.seq

    def _read(self, deadline: float | None) -> None:
        data, fds = _recv(self.sock, deadline)
        for f in fds:
            os.close(f)
        kind, n, value = data[:1], int(data[1:12]), int(data[12:23])
        if kind == b"E":
            why = os.strerror(value) if value else "no descriptors"
            self.failed[n] = f"sandbox: could not start the program's process ({why})"


class ZygoteGone(Exception):
    """The zygote (the worker's outer process) ended: the worker is being stopped."""


# --------------------------------------------------------------------------------------------
# A candidate process
# --------------------------------------------------------------------------------------------
NEW_WORLD = ns.CLONE_NEWPID | ns.CLONE_NEWIPC | ns.CLONE_NEWNS
FILTER = None  #: the seccomp filter's installer, set by the worker before any fork (or None)
GROUPS: list = []  #: the worker's control-group slots (cgroups.Group), set before any fork


def candidate_main(cfg: dict, fds: list[int], seq: int) -> None:
    """The forked process: a new PID, IPC and mount namespace for one program, with a reaper
    as its PID 1 (when init kills that one, the kernel kills every process of the namespace)
    and the program's process beside it, moved into the control-group slot of program ``seq``.
    Says both pids in the worker's namespace, then exits: both become init's children. Never
    returns."""
    try:
        ns.check(ns.libc.unshare(NEW_WORLD), "unshare")
        reaper = os.fork()
        if reaper == 0:
            try:
                reaper_main()
            finally:
                os._exit(1)
        program = os.fork()
        if program and GROUPS:  # before its job is sent: everything it starts is born inside
            GROUPS[seq % len(GROUPS)].attach(program)
    except BaseException:  # noqa: BLE001 - init sees the channel close and asks for another
        os._exit(3)
    if program:
        try:
            channel.send(fds[2], b"H%d,%d" % (reaper, program))  # before the program speaks
        finally:
            os._exit(0)
    try:
        program_main(cfg, fds)
    finally:
        os._exit(1)


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
