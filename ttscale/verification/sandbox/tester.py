"""The trusted side of a program's run: the benchmark's tests, against a candidate they can only
call.

Standard library only (imported by the sandbox worker, run with ``python -I -S``). Over 400 lines
on purpose: it is the whole trusted judge, kept in one module so that the worker loads it in one
read before any candidate runs.

The tests run in the sandbox's init -- the worker process that holds the jobs and decides
verdicts -- never in the candidate's process. Init waits for the candidate to say it ran its
code, runs the trusted ``context`` (the task's prompt: helper functions the tests use) and then
the tests. Every name the tests use that neither the context nor the builtins define -- and
always the entry point -- is a :class:`Candidate`: calling it sends the arguments as plain data
to the candidate's process and returns the reply decoded into exact built-in values. An
exception in the candidate is raised here (as the built-in exception of that name when there is
one, else :class:`CandidateError`); a reply that is not plain data, or a candidate process that
ended, fails the tests. The candidate cannot reach this process: another uid (root mode) or no
capabilities and this process not dumpable (user-namespace mode); a signal it may send (same
uid) can only end the tests early, never pass them.

To save one round trip between the processes per call, the tests are first dry-run with
recorders in place of the candidate's functions (:func:`prefetch`); the calls found go in one
batch and the real run takes each reply whose request matches, byte for byte and in order, then
goes live. The wall-clock limit holds throughout (``SIGALRM``, and deadlines on every wait).
"""

from __future__ import annotations

import builtins
import io
import os
import select
import signal
import sys
import time

import channel

#: most calls sent ahead in one batch
MAX_PREFETCH = 2000
#: largest reply accepted from a candidate (bytes)
MAX_REPLY = 16 << 20
#: starts a verdict's text when the candidate's process ended; init says how it ended
ENDED = "\x01"
#: built-in exceptions a candidate's exception may be raised as (never SystemExit & co.)
EXCEPTIONS = {name: obj for name, obj in vars(builtins).items()
              if isinstance(obj, type) and issubclass(obj, Exception)}


class TimeUp(BaseException):
    """The program's wall-clock limit passed while its tests ran."""


class Link:
    """Init's ends of the channel, with the program's deadline and its output collected."""

    def __init__(self, req_w: int, resp_r: int, out_r: int, deadline: float, keep):
        self.req_w, self.resp_r, self.out_r, self.deadline, self.keep = (
            req_w, resp_r, out_r, deadline, keep)
        self.out_fd = out_r  # to close at the end (out_r is -1 once at EOF)
        self.buf = bytearray()  # replies read ahead

    def _wait(self, fd: int, write: bool = False) -> None:
        """Until ``fd`` is ready, reading the candidate's output meanwhile; TimeUp at the deadline."""
        while True:
            remaining = self.deadline - time.monotonic()
            if remaining <= 0:
                raise TimeUp()
            reads = [self.out_r] if self.out_r >= 0 else []
            if not write:
                reads.append(fd)
            r, w, _ = select.select(reads, [fd] if write else [], [], remaining)
            if self.out_r >= 0 and self.out_r in r:
                data = os.read(self.out_r, 1 << 16)
                if data:
                    self.keep(data)
                else:
                    self.out_r = -1
            if (write and w) or (not write and fd in r):
                return

    def send(self, body: bytes) -> None:
        data = memoryview(len(body).to_bytes(4, "big") + body)
        while data:
            self._wait(self.req_w, write=True)
            try:
                data = data[os.write(self.req_w, data):]
            except BlockingIOError:
                continue
            except OSError:
                raise channel.ChannelClosed() from None

    def _read_exact(self, n: int) -> bytes:
        while len(self.buf) < n:
            self._wait(self.resp_r)
            chunk = os.read(self.resp_r, max(n - len(self.buf), 1 << 16))
            if not chunk:
                raise channel.ChannelClosed()
            self.buf += chunk
        data = bytes(self.buf[:n])
        del self.buf[:n]
        return data

    def receive(self) -> bytes:
        n = int.from_bytes(self._read_exact(4), "big")
        if n > MAX_REPLY:
            raise channel.NotPlainData(f"a reply of {n} bytes (the limit is {MAX_REPLY})")
        return self._read_exact(n)


class CandidateError(Exception):
    """The candidate raised an exception of its own class (or one that must not cross as is)."""


class CandidateGone(BaseException):
    """The candidate's process ended or broke the channel: the tests cannot go on."""


class Candidate:
    """A function of the candidate's program, called across the channel.

    Calls first look in ``prefetched`` (the replies to a batch sent before the tests ran, see
    :func:`prefetch`): the i-th call takes the i-th reply if its request is byte for byte the
    i-th prefetched one; from the first call that differs on, every call goes across live.
    """

    def __init__(self, name: str, link: Link, prefetched: Prefetched):
        self.__name__ = self.__qualname__ = name
        self._link, self._pre = link, prefetched

    def __repr__(self) -> str:
        return f"<candidate {self.__name__}>"

    def __call__(self, *args, **kwargs):
        try:
            request = channel.encode(["call", self.__name__, list(args), kwargs])
        except channel.NotPlainData as e:
            raise TestsError(f"the tests passed {e}") from None
        try:
            raw = self._pre.take(request)
            if raw is None:
                self._link.send(request)
                raw = self._link.receive()
            reply = channel.decode(raw)
        except channel.ChannelClosed:
            raise CandidateGone(f"{ENDED}during a call to {self.__name__}") from None
        except channel.NotPlainData as e:
            raise CandidateGone(f"{self.__name__} sent {e}") from None
        if type(reply) is list and reply and reply[0] == "ok" and len(reply) == 2:
            return reply[1]
        if type(reply) is list and len(reply) == 3 and reply[0] == "raise":
            name, text = reply[1], reply[2]
            cls = EXCEPTIONS.get(name) if type(name) is str else None
            if cls is not None:
                try:
                    raise cls(str(text))
                except TypeError:  # exceptions whose constructor wants other arguments
                    pass
            raise CandidateError(str(text))
        if type(reply) is list and len(reply) == 2 and reply[0] == "bad":
            raise CandidateGone(str(reply[1]))
        raise CandidateGone(f"{self.__name__} sent a malformed reply")


class Prefetched:
    """Requests sent ahead in one batch and the candidate's replies, taken in order."""

    def __init__(self, requests: list[bytes] = (), replies: list[bytes] = ()):
        self.requests, self.replies, self.pos = list(requests), list(replies), 0

    def take(self, request: bytes) -> bytes | None:
        i = self.pos
        if i < len(self.requests) and i < len(self.replies) and self.requests[i] == request:
            self.pos += 1
            return self.replies[i]
        self.requests = []  # diverged (or done): live from now on
        return None


class _StopDryRun(BaseException):
    pass


class _Any:
    """What a recorded call returns in the dry run: equal to, and usable as, anything."""

    def __eq__(self, other):
        return True

    def __ne__(self, other):
        return False

    __lt__ = __le__ = __gt__ = __ge__ = __contains__ = __eq__

    def _self(self, *args, **kwargs):
        return self

    __add__ = __radd__ = __sub__ = __rsub__ = __mul__ = __rmul__ = __truediv__ = _self
    __rtruediv__ = __floordiv__ = __rfloordiv__ = __mod__ = __rmod__ = __pow__ = _self
    __rpow__ = __neg__ = __pos__ = __abs__ = __round__ = __getitem__ = __call__ = _self
    __and__ = __rand__ = __or__ = __ror__ = __xor__ = __rxor__ = __getattr__ = _self

    def __bool__(self):
        return True

    def __hash__(self):
        return 0

    def __iter__(self):
        return iter(())

    def __len__(self):
        return 0

    def __index__(self):
        return 0

    def __float__(self):
        return 0.0

    __int__ = __index__


class _Recorder:
    def __init__(self, name: str, calls: list[bytes]):
        self.__name__ = self.__qualname__ = name
        self._calls = calls

    def __call__(self, *args, **kwargs):
        if len(self._calls) >= MAX_PREFETCH:
            raise _StopDryRun()
        try:
            self._calls.append(channel.encode(["call", self.__name__, list(args), kwargs]))
        except channel.NotPlainData:
            raise _StopDryRun() from None
        return _Any()


def prefetch(tests, base: dict, proxied: set[str]) -> list[bytes]:
    """The calls the tests will make, found by a dry run of the tests (trusted code) in which
    the candidate's functions return :class:`_Any`; stops at the first thing that does not fit.

    Sent as one batch, they save a round trip between the processes per call (the tests'
    verdict still comes from the real run, which checks each call against this list). Global
    random state is restored afterwards and the dry run's output discarded.
    """
    import random

    calls: list[bytes] = []
    state = random.getstate()
    out, err = sys.stdout, sys.stderr
    try:
        sys.stdout = sys.stderr = io.StringIO()
        namespace = dict(base)  # the context's definitions, run once already
        for name in proxied:
            namespace[name] = _Recorder(name, calls)
        exec(tests, namespace)
    except TimeUp:
        raise
    except BaseException:  # noqa: BLE001 - the dry run ends where it ends
        pass
    finally:
        sys.stdout, sys.stderr = out, err
        random.setstate(state)
    return calls


class TestsError(BaseException):
    """The tests (or their context) could not run: the task's fault, not the candidate's."""


def free_names(code) -> set[str]:
    """Every global name a code object (and the code nested in it) refers to."""
    names, stack = set(), [code]
    while stack:
        c = stack.pop()
        names.update(c.co_names)
        stack.extend(k for k in c.co_consts if hasattr(k, "co_names"))
    return names


_compiled: dict[tuple[str, str | None], object] = {}


def compiled(job: dict) -> object:
    """(tests, context, names the tests use) compiled, or why not; cached in init, inherited."""
    key = (job.get("test") or "", job.get("context"))
    if key not in _compiled:
        if len(_compiled) > 256:
            _compiled.clear()
        try:
            tests = compile(key[0], "<tests>", "exec")
            context = compile(key[1], "<context>", "exec") if key[1] else None
            _compiled[key] = (tests, context, free_names(tests))
        except (SyntaxError, ValueError) as e:
            _compiled[key] = f"the tests do not compile: {e}"
    return _compiled[key]


def judge(job: dict, compiled_tests: object, link: Link) -> tuple[str, str | None]:
    """The tests against the candidate: (status, why) with status pass, fail, error or timeout."""
    out, err = sys.stdout, sys.stderr
    captured = io.StringIO()

    def time_up(signum, frame):
        raise TimeUp()

    old = signal.signal(signal.SIGALRM, time_up)
    signal.setitimer(signal.ITIMER_REAL, max(1e-3, link.deadline - time.monotonic()))
    try:
        sys.stdout = sys.stderr = captured  # the tests' own prints go with the program's output
        verdict = _judge(job, compiled_tests, link)
    except TimeUp:
        verdict = "T"
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
        sys.stdout, sys.stderr = out, err
    text = captured.getvalue()
    if text:
        link.keep(text.encode("utf-8", "replace"))
    kind, why = verdict[:1], verdict[1:] or None
    return {"P": "pass", "F": "fail", "E": "error", "T": "timeout"}[kind], why


def _judge(job: dict, compiled_tests: object, link: Link) -> str:
    # Everything that needs no answer from the candidate is done while it runs its code: the
    # context, the dry run, and the batch of calls sent ahead (read once the code is done).
    calls: list[bytes] = []
    namespace = {"__name__": "__main__", "__builtins__": builtins}
    proxied: set[str] = set()
    setup_error = None
    if job.get("test") and isinstance(compiled_tests, str):
        setup_error = f"E{compiled_tests}"
    elif job.get("test"):
        tests, context, names = compiled_tests
        if context is not None:
            try:
                exec(context, namespace)
            except TimeUp:
                raise
            except BaseException as e:  # noqa: BLE001
                setup_error = f"Ethe tests' context raised {type(e).__name__}: {e}"
        proxied = {n for n in names if n not in namespace and not hasattr(builtins, n)}
        if job.get("entry_point"):
            proxied.add(job["entry_point"])
        if setup_error is None and job.get("prefetch", True):
            calls = prefetch(tests, namespace, proxied)
            if calls:
                try:
                    link.send(b"B" + b"\n".join(calls))
                except channel.ChannelClosed:
                    calls = []
    try:
        first = channel.decode(link.receive())
    except channel.ChannelClosed:
        return f"F{ENDED}before the tests ran"
    except channel.NotPlainData as e:
        return f"Fthe program sent {e}"
    if first != ["ready"]:
        if type(first) is list and len(first) == 2 and first[0] == "raised":
            return f"Fprogram {first[1]}"
        if type(first) is list and len(first) == 2 and first[0] == "setup":
            return f"E{first[1]}"
        return "Fthe program sent a malformed message"
    if not job.get("test"):
        return "P"
    if setup_error is not None:
        return setup_error
    pre = Prefetched()
    if calls:
        try:
            pre = Prefetched(calls, link.receive()[1:].split(b"\n"))
        except channel.ChannelClosed:
            return f"F{ENDED}during a call to {channel.decode(calls[0])[1]}"
        except channel.NotPlainData as e:
            return f"Fthe program sent {e}"
    for name in proxied:
        namespace[name] = Candidate(name, link, pre)
    try:
        exec(tests, namespace)
    except TimeUp:
        raise
    except CandidateGone as e:
        text = str(e)
        return "F" + (text if text.startswith(ENDED) else f"tests: {text}")
    except TestsError as e:
        return f"Etests: {e}"
    except BaseException as e:  # noqa: BLE001
        try:
            return f"Ftests raised: {type(e).__name__}: {e}"[:4000]
        except BaseException:  # noqa: BLE001
            return "Ftests raised an exception"
    return "P"


def job_header(job: dict, uid: int) -> bytes:
    """The job as the program's process is told it, no tests: one line (CPU seconds: the wall
    limit rounded down, plus one; memory_mb, nproc, fsize_mb, nofile, uid, scratch_mb), the code."""
    lim = job["limits"]
    head = (f"{int(job['timeout']) + 1:d} {int(lim['memory_mb']):d} {int(lim['nproc']):d} "
            f"{int(lim['fsize_mb']):d} {int(lim['nofile']):d} {int(uid):d} "
            f"{int(lim['scratch_mb']):d}\n")
    return head.encode() + str(job["code"]).encode("utf-8", "surrogatepass")
