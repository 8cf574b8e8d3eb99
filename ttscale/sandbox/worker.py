"""The sandboxed worker: a long-lived process that runs untrusted programs one at a time.

Run by :mod:`ttscale.sandbox.runner` as ``python -I -S worker.py CONFIG_JSON``; standard library
only, so that nothing of ttscale (or the caller's environment) is visible inside the sandbox.

Start-up (see :func:`enter_sandbox`): the process unshares its mount, network, IPC, UTS and PID
namespaces (and a user namespace when not root), then forks the namespace's init, which builds a
new root on tmpfs -- read-only bind mounts of /usr, /lib*, /bin and the Python installation, a
fresh /proc, a few /dev nodes, an empty /etc and a per-program tmpfs at /scratch -- pivots into
it, unmounts the old root and remounts the new root read-only. The network namespace holds only
a loopback interface that is down: no address, local or remote, can be reached.

Per program (see :func:`run_job`), init forks a child that calls setsid, sets rlimits (CPU time,
address space, processes, file size, open files, no core), drops to an unprivileged uid of its
own (root mode) or all capabilities (user-namespace mode), sets no_new_privs and runs the code,
then the tests, with ``exec``. Init reads the child's stdout+stderr (the first
``output_bytes`` kept, the rest drained and discarded), enforces the wall-clock limit, and at the
end SIGKILLs every process of the namespace (``kill(-1)`` from init) and reaps them.

Proof that the tests ran: the child holds no secret. When ``exec`` of the tests returns, the
harness (with references it took before any untrusted code ran) disables GC, tracing and all
signals, and writes ``R`` on a result pipe. Init then checks that the child is the only live
process of the namespace and has one thread, and only then writes a fresh random nonce (drawn
after the fork, so it never was in the child's memory) on a second pipe; the harness echoes
``P`` + nonce and exits. An early exit (``sys.exit``, ``os._exit``, a signal, a closed pipe), a
helper thread or process racing for the nonce, or bytes written on the pipe out of turn all end
as ``fail``. Limit: the tests run in the program's own interpreter, so a program written against
this harness (introspecting frames, ``ctypes``, an ``__eq__`` that is always true) can still fake
a pass; a full defence evaluates the tests in another process.

Protocol with the parent (one JSON object per line): after set-up init writes
``{"ready": true}`` (or ``{"ready": false, "error": ...}``); then for each request
``{"code", "test", "timeout", "limits"}`` it answers ``{"status", "error", "output",
"truncated", "duration"}``. EOF on its input ends it, and with it the whole namespace.
"""

from __future__ import annotations

import _signal
import builtins
import ctypes
import gc
import json
import os
import platform
import resource
import select
import signal
import sys
import time

CLONE_NEWNS, CLONE_NEWUTS, CLONE_NEWIPC = 0x00020000, 0x04000000, 0x08000000
CLONE_NEWUSER, CLONE_NEWPID, CLONE_NEWNET = 0x10000000, 0x20000000, 0x40000000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 1, 2, 4, 8
MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = 32, 4096, 16384, 1 << 18
MNT_DETACH = 2
PR_SET_PDEATHSIG, PR_SET_NO_NEW_PRIVS = 1, 38
SYS_PIVOT_ROOT = {"x86_64": 155, "aarch64": 41, "arm64": 41, "riscv64": 41, "ppc64le": 203}
SYS_CAPSET = {"x86_64": 126, "aarch64": 91, "arm64": 91, "riscv64": 91, "ppc64le": 184}
IN_FD, OUT_FD = 3, 4  # the parent's pipes, moved here at start-up
RES_FD, NONCE_FD = 3, 4  # in a program's process: the result and nonce pipes
NONCE_LEN = 32
PRELOAD = (  # what HumanEval-style programs import most; others import in the program's process
    "typing math random copy string collections re hashlib itertools functools heapq bisect "
    "operator"
).split()

# Trusted code run once in the worker: it builds the AST node types (built on the first
# ``compile``) and typing's cached aliases, which each forked program would otherwise rebuild.
WARM_UP = """
from typing import Any, Dict, List, Optional, Tuple, Union
_ = (List[int], List[str], List[float], Dict[str, int], Tuple[int, int], Optional[int],
     Union[int, float], List[Any], Tuple[int, ...], Optional[str], List[List[int]])
"""

_libc = ctypes.CDLL(None, use_errno=True)
ALL_SIGNALS = _signal.valid_signals()


def _check(rc: int, what: str) -> None:
    if rc != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def _mount(src: str | None, dst: str, fstype: str | None, flags: int, data: str | None = None):
    def enc(s: str | None) -> bytes | None:
        return s.encode() if s is not None else None

    _check(_libc.mount(enc(src), enc(dst), enc(fstype), ctypes.c_ulong(flags), enc(data)),
           f"mount {src} on {dst}")


def _write_line(obj: dict) -> None:
    data = (json.dumps(obj) + "\n").encode()
    while data:
        data = data[os.write(OUT_FD, data):]


# --------------------------------------------------------------------------------------------
# Start-up: namespaces and the new root
# --------------------------------------------------------------------------------------------
def enter_sandbox(cfg: dict) -> None:
    """Unshare namespaces, fork init (this function returns in init only), build the root."""
    uid, gid = os.getuid(), os.getgid()
    flags = CLONE_NEWNS | CLONE_NEWNET | CLONE_NEWIPC | CLONE_NEWUTS | CLONE_NEWPID
    if uid != 0:
        flags |= CLONE_NEWUSER
    _check(_libc.unshare(flags), "unshare (needs root or unprivileged user namespaces)")
    if uid != 0:
        with open("/proc/self/setgroups", "w") as f:
            f.write("deny")
        with open("/proc/self/uid_map", "w") as f:
            f.write(f"0 {uid} 1")
        with open("/proc/self/gid_map", "w") as f:
            f.write(f"0 {gid} 1")
    pid = os.fork()
    if pid:  # the outer process: wait for init, then go with it
        os.close(IN_FD)
        os.close(OUT_FD)
        while True:
            try:
                _, status = os.waitpid(pid, 0)
                os._exit(os.waitstatus_to_exitcode(status) & 0xFF)
            except ChildProcessError:
                os._exit(1)
            except InterruptedError:
                continue
    # init of the new PID namespace
    _libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    _build_root(cfg)


def _build_root(cfg: dict) -> None:
    if os.getpid() != 1:
        raise RuntimeError("not the init of a new PID namespace")
    _mount(None, "/", None, MS_REC | MS_PRIVATE)
    _mount("tmpfs", "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, "size=1m,mode=0755")
    root = "/tmp/r"
    os.mkdir(root)
    _mount("tmpfs", root, "tmpfs", MS_NOSUID | MS_NODEV, "size=4m,mode=0755")
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
        _mount(src, dst, None, MS_BIND | MS_REC)
        _mount(None, dst, None, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV)
        done.append(src)
    for d in ("dev", "proc", "scratch", "etc"):
        os.mkdir(f"{root}/{d}")
    for node in ("null", "zero", "full", "random", "urandom"):
        open(f"{root}/dev/{node}", "w").close()
        _mount(f"/dev/{node}", f"{root}/dev/{node}", None, MS_BIND)
    _mount("proc", f"{root}/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
    os.symlink("/scratch", f"{root}/tmp")
    os.chdir(root)
    arch = platform.machine()
    if arch in SYS_PIVOT_ROOT:
        _check(_libc.syscall(SYS_PIVOT_ROOT[arch], b".", b"."), "pivot_root")
        _check(_libc.umount2(b".", MNT_DETACH), "umount old root")
    else:  # chroot: safe here because programs never keep CAP_SYS_CHROOT
        os.chroot(".")
    os.chdir("/")
    _mount(None, "/", None, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV)


def _fresh_scratch(cfg: dict, size_mb: int) -> None:
    """Mount a new, empty tmpfs at /scratch, unless the last program left it untouched."""
    if cfg.get("scratch_mb") == size_mb and not os.listdir("/scratch"):
        st = os.stat("/scratch")
        if (st.st_mode & 0o7777, st.st_uid) == (0o700, cfg["uid"] if cfg["drop_uid"] else 0):
            return
    cfg["scratch_mb"] = size_mb
    try:
        _libc.umount2(b"/scratch", MNT_DETACH)
    except OSError:
        pass
    ids = f",uid={cfg['uid']},gid={cfg['uid']}" if cfg["drop_uid"] else ""
    _mount("tmpfs", "/scratch", "tmpfs", MS_NOSUID | MS_NODEV, f"size={size_mb}m,mode=0700{ids}")


# --------------------------------------------------------------------------------------------
# One program
# --------------------------------------------------------------------------------------------
def _drop_capabilities() -> None:
    """All capabilities off (user-namespace mode, where no other uid can be switched to)."""
    arch = platform.machine()
    header = (ctypes.c_uint32 * 2)(0x20080522, 0)
    data = (ctypes.c_uint32 * 6)()
    _check(_libc.syscall(SYS_CAPSET[arch], header, data), "capset")


def _child(job: dict, cfg: dict, fds: tuple[int, int, int]) -> None:
    """In the forked child: confine, run code then tests, prove completion. Never returns."""
    write, read, exit_, settrace, setprofile = os.write, os.read, os._exit, sys.settrace, sys.setprofile
    sigmask, gc_disable, exec_, compile_ = _signal.pthread_sigmask, gc.disable, exec, compile
    all_signals, block = ALL_SIGNALS, _signal.SIG_BLOCK
    base_exc = BaseException
    try:
        out_w, res_w, nonce_r = fds
        os.setsid()
        _libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        null = os.open("/dev/null", os.O_RDONLY)
        os.dup2(null, 0)
        os.dup2(out_w, 1)
        os.dup2(out_w, 2)
        os.dup2(res_w, RES_FD)
        os.dup2(nonce_r, NONCE_FD)
        if _libc.close_range(NONCE_FD + 1, 0xFFFFFFFF, 0) != 0:
            for name in os.listdir("/proc/self/fd"):
                if int(name) > NONCE_FD:
                    try:
                        os.close(int(name))
                    except OSError:
                        pass
        _signal.signal(_signal.SIGPIPE, _signal.SIG_DFL)  # ignored in the worker
        os.chdir("/scratch")
        lim = job["limits"]
        cpu = int(job["timeout"]) + 1
        for res, val in (
            (resource.RLIMIT_CPU, (cpu, cpu + 1)),
            (resource.RLIMIT_AS, (lim["memory_mb"] << 20,) * 2),
            (resource.RLIMIT_NPROC, (lim["nproc"] + cfg.get("nproc_base", 0),) * 2),
            (resource.RLIMIT_FSIZE, (lim["fsize_mb"] << 20,) * 2),
            (resource.RLIMIT_NOFILE, (lim["nofile"],) * 2),
            (resource.RLIMIT_CORE, (0, 0)),
        ):
            resource.setrlimit(res, val)
        if cfg["drop_uid"]:
            os.setgroups([])
            os.setgid(cfg["uid"])
            os.setuid(cfg["uid"])
        else:
            _drop_capabilities()
        _check(_libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "no_new_privs")
        namespace = {"__name__": "__main__", "__builtins__": builtins}
    except base_exc as e:
        write(RES_FD, f"Fsandbox set-up failed: {e!r}"[:4000].encode())
        exit_(3)
    phase = "program"
    try:
        exec_(compile_(job["code"], "<program>", "exec"), namespace)
        if job.get("test"):
            settrace(None)
            setprofile(None)
            phase = "tests"
            exec_(compile_(job["test"], "<tests>", "exec"), namespace)
        phase = "flush"
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except base_exc:
                pass
    except base_exc as e:
        try:
            what = "exited early" if isinstance(e, SystemExit) else "raised"
            msg = f"F{phase} {what}: {type(e).__name__}: {e}"
        except base_exc:
            msg = f"F{phase} raised an exception"
        try:
            write(RES_FD, msg[:4000].encode("utf-8", "replace"))
        finally:
            exit_(1)
    # The proof: no untrusted code may run from here on.
    gc_disable()
    settrace(None)
    setprofile(None)
    sigmask(block, all_signals)
    write(RES_FD, b"R")
    nonce = b""
    while len(nonce) < NONCE_LEN:
        chunk = read(NONCE_FD, NONCE_LEN - len(nonce))
        if not chunk:
            exit_(1)
        nonce += chunk
    write(RES_FD, b"P" + nonce)
    exit_(0)


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


def _kill_all() -> None:
    """SIGKILL every process of this PID namespace but init, and reap them all."""
    if os.getpid() != 1:  # kill(-1) outside a PID namespace would hit the whole machine
        raise RuntimeError("refusing kill(-1): not the init of a PID namespace")
    try:
        os.kill(-1, signal.SIGKILL)
    except ProcessLookupError:
        pass
    while True:
        try:
            pid, _ = os.waitpid(-1, 0)
        except ChildProcessError:
            return
        except InterruptedError:
            continue


def _alone(pid: int) -> str | None:
    """Why ``pid`` is not the only live, single-threaded process of the namespace (or None)."""
    for name in os.listdir("/proc"):
        if name.isdigit() and int(name) not in (1, pid):
            try:
                with open(f"/proc/{name}/stat", "rb") as f:
                    state = f.read().rsplit(b")", 1)[1].split()[0]
            except (OSError, IndexError):
                continue
            if state not in (b"Z", b"X"):
                return "another process was still running when the tests finished"
    try:
        if len(os.listdir(f"/proc/{pid}/task")) != 1:
            return "other threads were still running when the tests finished"
    except OSError:
        return "the program's process vanished"
    return None


def run_job(job: dict, cfg: dict) -> dict:
    """Run one program in a fresh child; the verdict as a JSON-able dict."""
    lim = job["limits"]
    _fresh_scratch(cfg, lim["scratch_mb"])
    out_r, out_w = os.pipe()
    res_r, res_w = os.pipe()
    nonce_r, nonce_w = os.pipe()
    start = time.monotonic()
    pid = os.fork()
    if pid == 0:
        os.close(out_r)
        os.close(res_r)
        os.close(nonce_w)
        try:
            _child(job, cfg, (out_w, res_w, nonce_r))
        finally:
            os._exit(1)  # whatever happens, a program's process never returns into the worker
    for fd in (out_w, res_w, nonce_r):
        os.close(fd)
    pidfd = os.pidfd_open(pid)
    deadline = start + float(job["timeout"])
    cap = int(lim["output_bytes"])
    output, res = bytearray(), bytearray()
    truncated = exited = False
    status: str | None = None
    error: str | None = None
    nonce: bytes | None = None
    wait_status: int | None = None
    readable = {out_r, res_r}
    timed_out = False
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            timed_out = True
            break
        ready, _, _ = select.select(list(readable) + [pidfd], [], [], remaining)
        for fd in ready:
            if fd == pidfd:
                exited = True
                _, wait_status = os.waitpid(pid, 0)
                continue
            data = os.read(fd, 1 << 16)
            if not data:
                readable.discard(fd)
            elif fd == out_r:
                truncated |= _keep(output, data, cap)
            else:
                res += data[: 8192 - len(res)]
        if res[:1] == b"R" and nonce is None and not exited:
            error = _alone(pid)
            if error:
                status = "fail"
                break
            nonce = os.urandom(NONCE_LEN // 2).hex().encode()
            try:
                os.write(nonce_w, nonce)
            except OSError:
                pass
        if exited or (nonce is not None and len(res) >= 2 + NONCE_LEN) or not _valid(res):
            break
    _kill_all()
    duration = time.monotonic() - start
    for fd in (out_r, res_r):  # every writer is dead now: read what is left up to EOF
        os.set_blocking(fd, False)
        while True:
            try:
                data = os.read(fd, 1 << 16)
            except BlockingIOError:
                break
            if not data:
                break
            if fd == out_r:
                truncated |= _keep(output, data, cap)
            else:
                res += data[: 8192 - len(res)]
    for fd in (out_r, res_r, nonce_w, pidfd):
        os.close(fd)
    if timed_out:
        status, error = "timeout", f"wall-clock limit of {float(job['timeout']):.3g} s"
    elif status is None:
        status = "fail"
        if nonce is not None and bytes(res) == b"RP" + nonce:
            status = "pass"
        elif res[:1] == b"F":
            error = bytes(res[1:]).decode("utf-8", "replace")
        elif not _valid(res):
            error = "the program wrote on the result pipe out of turn"
        else:
            error = _describe_exit(wait_status) + " before the tests finished"
    if status == "fail" and wait_status is not None and os.WIFSIGNALED(wait_status):
        if os.WTERMSIG(wait_status) == signal.SIGXCPU:
            status, error = "timeout", "CPU time limit"
    return {"status": status, "error": error, "truncated": truncated,
            "output": output.decode("utf-8", "replace"), "duration": duration}


def _keep(output: bytearray, data: bytes, cap: int) -> bool:
    """Append what fits under ``cap``; True when something was cut."""
    room = cap - len(output)
    if room > 0:
        output += data[:room]
    return len(data) > room


def _valid(res: bytes | bytearray) -> bool:
    """Whether the result pipe holds a prefix of ``F...`` or ``R`` + ``P`` + nonce."""
    if not res or res[:1] == b"F":
        return True
    return res[:1] == b"R" and res[1:2] in (b"", b"P") and len(res) <= 2 + NONCE_LEN


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
    for name in PRELOAD:
        __import__(name)
    try:
        enter_sandbox(cfg)
    except Exception as e:
        _write_line({"ready": False, "error": f"{type(e).__name__}: {e}"})
        os._exit(2)
    _prepare_process()
    _write_line({"ready": True})
    reader = os.fdopen(IN_FD, "rb")
    for line in reader:
        job = json.loads(line)
        try:
            reply = run_job(job, cfg)
        except Exception as e:  # a sandbox fault, never the program's: report and go on
            try:
                _kill_all()
            except Exception:
                pass
            reply = {"status": "error", "error": f"sandbox: {type(e).__name__}: {e}",
                     "output": "", "truncated": False, "duration": 0.0}
        _write_line(reply)
    os._exit(0)


if __name__ == "__main__":
    main()
