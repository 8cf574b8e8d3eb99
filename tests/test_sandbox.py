"""The code sandbox: statuses, limits, isolation basics, output capture, worker restarts."""

from __future__ import annotations

import os
import threading
import time

import pytest

from ttscale.verification.sandbox import (
    Job,
    Limits,
    SandboxPool,
    SandboxUnavailable,
    Status,
    run_programs,
    scaled_timeout,
)


@pytest.fixture(scope="module")
def pool():
    p = SandboxPool(workers=2, limits=Limits(output_bytes=4096))
    try:
        p.start()
    except SandboxUnavailable as e:
        pytest.skip(str(e))
    yield p
    p.close()


def statuses(results):
    return [r.status.value for r in results]


def test_statuses_of_plain_programs(pool):
    res = pool.run([
        Job("x = 1 + 1\nassert x == 2\n", timeout=2),
        Job("assert 1 == 2, 'nope'\n", timeout=2),
        Job("while True:\n    pass\n", timeout=0.5),
        Job("def f(:\n", timeout=2),
        Job("raise ValueError('bad value')\n", timeout=2),
    ])
    assert statuses(res) == ["pass", "fail", "timeout", "fail", "fail"]
    assert res[1].error == "program raised: AssertionError: nope"
    assert res[2].error == "wall-clock limit of 0.5 s"
    assert res[3].error.startswith("program raised: SyntaxError")
    assert res[4].error == "program raised: ValueError: bad value"
    assert 0.5 <= res[2].duration < 3.0


def test_tests_phase_runs_after_code_in_same_namespace(pool):
    code = "def add(a, b):\n    return a + b\n"
    res = pool.run([
        Job(code, "assert add(2, 3) == 5\n"),
        Job(code, "assert add(2, 3) == 6\n"),
        Job(code, "assert undefined_name(1)\n"),
    ])
    assert statuses(res) == ["pass", "fail", "fail"]
    assert res[1].error == "tests raised: AssertionError: "
    assert res[2].error == "tests raised: NameError: name 'undefined_name' is not defined"


def test_exiting_before_or_during_tests_never_passes(pool):
    good = "def add(a, b):\n    return a + b\n"
    res = pool.run([
        Job("import sys\nsys.exit(0)\n" + good, "assert add(1, 1) == 2\n"),
        Job("import os\nos._exit(0)\n" + good, "assert add(1, 1) == 2\n"),
        Job("import os\ndef add(a, b):\n    os._exit(0)\n", "assert add(1, 1) == 2\n"),
        Job("import sys\ndef add(a, b):\n    raise SystemExit(0)\n", "assert add(1, 1) == 2\n"),
        Job("import os, signal\nos.kill(os.getpid(), signal.SIGKILL)\n", "pass\n"),
    ])
    assert statuses(res) == ["fail"] * 5
    assert res[0].error == "program exited early: SystemExit: 0"
    assert res[1].error == "the program exited with code 0 before the tests ran"
    assert res[2].error == "the program exited with code 0 during a call to add"
    # the tests run in their own process: the candidate's SystemExit is an exception there
    assert res[3].error == "tests raised: CandidateError: 0"
    assert res[4].error == "the program was killed by SIGKILL before the tests ran"


def test_stdout_and_stderr_are_captured_and_capped(pool):
    res = pool.run([
        Job("import sys\nprint('hello')\nprint('oops', file=sys.stderr)\n"),
        Job("import sys\nfor _ in range(1000):\n    sys.stdout.write('y' * 1000)\n"),
    ])
    assert statuses(res) == ["pass", "pass"]
    assert res[0].output == "hello\noops\n" and not res[0].truncated
    assert res[1].output == "y" * 4096 and res[1].truncated


def test_huge_output_is_drained_without_blocking(pool):
    # 200 MB of output: the worker keeps 4 KiB and throws the rest away while the program runs.
    res = pool.run([Job("import os\nb = b'z' * (1 << 20)\nfor _ in range(200):\n    os.write(1, b)\n",
                        timeout=30)])
    assert res[0].status is Status.PASS
    assert res[0].output == "z" * 4096 and res[0].truncated


def test_results_keep_input_order_across_workers(pool):
    jobs = [Job(f"import time\ntime.sleep({0.2 if i % 3 == 0 else 0})\nprint({i})\n")
            for i in range(12)]
    res = pool.run(jobs)
    assert [r.output for r in res] == [f"{i}\n" for i in range(12)]


def test_filesystem_is_read_only_but_scratch(pool):
    res = pool.run([
        Job("import os\nassert os.getcwd() == '/scratch'\nopen('f.txt', 'w').write('x' * 100)\n"
            "assert open('/tmp/f.txt').read() == 'x' * 100\n"),
        Job("open('/usr/ttscale_probe', 'w')\n"),
        Job("open('/etc/ttscale_probe', 'w')\n"),
        Job("import os\nos.mkdir('/newdir')\n"),
    ])
    assert statuses(res) == ["pass", "fail", "fail", "fail"]
    assert "Read-only file system" in res[1].error
    assert "Read-only file system" in res[2].error or "Permission denied" in res[2].error


def test_scratch_is_fresh_for_every_program():
    with SandboxPool(workers=1) as p:
        res = p.run([Job("open('left_over', 'w').write('x')\n"),
                     Job("import os\nassert os.listdir('.') == [], os.listdir('.')\n")])
    assert statuses(res) == ["pass", "pass"]


def test_environment_is_clean_and_uid_unprivileged(pool, monkeypatch):
    monkeypatch.setenv("TTSCALE_SECRET_TOKEN", "hunter2")
    res = pool.run([Job(
        "import os\nassert 'TTSCALE_SECRET_TOKEN' not in os.environ\n"
        "assert os.environ['HOME'] == '/scratch'\n"
        "assert os.getuid() != 0 and os.geteuid() != 0\n"
        "assert os.getpid() > 1 and os.getppid() == 0\n"  # its parent is outside its namespace
    )])
    assert statuses(res) == ["pass"], res[0].error


def test_network_is_unreachable(pool):
    res = pool.run([Job(
        "import socket\n"
        "try:\n"
        "    socket.create_connection(('127.0.0.1', 9), timeout=1)\n"
        "except OSError as e:\n"
        "    print(type(e).__name__, e.errno)\n"
        "import os\nprint(sorted(os.listdir('/sys/class/net')) if os.path.exists('/sys') else 'nosys')\n"
    )])
    assert res[0].status is Status.PASS
    assert res[0].output.splitlines()[0] == "OSError 101"  # ENETUNREACH: loopback is down


def test_memory_limit_raises_memory_error():
    with SandboxPool(workers=1, limits=Limits(memory_mb=256)) as p:
        res = p.run([Job("x = bytearray(512 * 1024 * 1024)\n"),
                     Job("x = bytearray(64 * 1024 * 1024)\n")])
    assert statuses(res) == ["fail", "pass"]
    assert res[0].error == "program raised: MemoryError: "


def test_worker_killed_midway_is_restarted_and_others_finish():
    with SandboxPool(workers=1) as p:
        p.start()
        victim = p._workers[0].proc
        jobs = [Job("import time\ntime.sleep(5)\n", timeout=10)] + [Job(f"print({i})\n") for i in range(4)]
        killer = threading.Timer(0.5, victim.kill)
        killer.start()
        res = p.run(jobs)
        killer.join()
        assert res[0].status is Status.ERROR  # not a timeout: the death ended it, not its 10 s limit
        assert "worker died" in res[0].error
        assert statuses(res[1:]) == ["pass"] * 4
        assert [r.output for r in res[1:]] == [f"{i}\n" for i in range(4)]
        assert p.restarts == 1


def test_scaled_timeout_follows_evalplus_rule():
    assert scaled_timeout(None) == 4.0
    assert scaled_timeout(0.5) == 4.0
    assert scaled_timeout(2.5) == 10.0
    assert scaled_timeout(0.1, base=0.2, factor=3.0) == pytest.approx(0.3)
    assert scaled_timeout(float("nan"), base=1.5) == 1.5


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="memory_mb"):
        Limits(memory_mb=0)
    with pytest.raises(ValueError, match="at least one worker"):
        SandboxPool(workers=0)
    with pytest.raises(ValueError, match="timeout"):
        SandboxPool(workers=1).run([Job("x=1", timeout=0)])


def test_run_programs_plain_strings(pool):
    res = run_programs(["print(6 * 7)", "1/0"], timeout=2, pool=pool)
    assert statuses(res) == ["pass", "fail"]
    assert res[0].output == "42\n"
    assert res[1].error == "program raised: ZeroDivisionError: division by zero"
    assert run_programs([], pool=pool) == []


def test_no_program_process_outlives_its_verdict(pool):
    marker = f"ttscale-orphan-{os.getpid()}-{time.time_ns()}"
    code = (
        "import os\n"
        "if os.fork() == 0:\n"
        "    os.setsid()\n"
        f"    os.execv('/bin/sleep', ['{marker}', '100'])\n"
    )
    res = pool.run([Job(code, "pass\n")])
    # A helper cannot touch the verdict (the test process's alone), but a program must not
    # leave anything running: fail, and the helper is gone.
    assert res[0].status is Status.FAIL
    assert res[0].error == "another process was still running when the tests finished"
    assert _processes_with(marker) == []


def _processes_with(marker: str) -> list[int]:
    found = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open(f"/proc/{name}/cmdline", "rb") as f:
                    if marker.encode() in f.read():
                        found.append(int(name))
            except OSError:
                pass
    return found


def test_user_namespace_mode_without_root(tmp_path):
    """The worker run by an unprivileged user: namespaces via a user namespace, no capabilities."""
    import json
    import shutil
    import subprocess
    import tempfile

    from ttscale.verification.sandbox.runner import WORKER_PATH

    python = shutil.which("python3", path="/usr/bin:/bin")
    if os.geteuid() != 0 or not shutil.which("setpriv") or python is None:
        pytest.skip("needs root (to drop to nobody), setpriv and a system python3")
    folder = tempfile.mkdtemp(prefix="ttscale-userns-", dir="/tmp")
    try:
        os.chmod(folder, 0o755)
        worker = shutil.copy(WORKER_PATH, folder)
        os.chmod(worker, 0o644)
        for sibling in ("namespaces.py", "candidate.py", "tester.py", "channel.py", "cgroups.py",
                        "seccomp.py"):
            os.chmod(shutil.copy(WORKER_PATH.with_name(sibling), folder), 0o644)
        limits = {"memory_mb": 512, "nproc": 16, "nofile": 64, "fsize_mb": 16, "scratch_mb": 8,
                  "output_bytes": 10000}
        jobs = [
            "import os\nprint(os.getuid())\nopen('/usr/ttscale_probe', 'w')\n",
            "import ctypes\nlibc = ctypes.CDLL(None, use_errno=True)\n"
            "print(libc.umount2(b'/usr', 2), ctypes.get_errno())\n"
            "print(libc.mount(b'none', b'/usr', b'tmpfs', 0, None), ctypes.get_errno())\n",
            "def f(x):\n    return x * 2\n",
        ]
        lines = "".join(json.dumps({"code": c, "test": "assert f(2) == 4\n" if "def f" in c else None,
                                    "timeout": 5.0, "limits": limits}) + "\n" for c in jobs)
        cfg = {"uid": 0, "drop_uid": False, "ro_paths": [], "nproc_base": 200}
        out = subprocess.run(
            ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", python, "-I", "-S",
             worker, json.dumps(cfg)], input=lines.encode(), capture_output=True, timeout=60,
            cwd="/", env={"PATH": "/usr/bin:/bin"})
    finally:
        shutil.rmtree(folder)
    replies = [json.loads(line) for line in out.stdout.decode().splitlines()]
    if not replies[0]["ready"]:
        pytest.skip(f"unprivileged user namespaces are off here: {replies[0]['error']}")
    assert [r["status"] for r in replies[1:]] == ["fail", "pass", "pass"]
    assert replies[1]["output"] == "0\n"  # root inside the user namespace, without capabilities
    assert "Read-only file system" in replies[1]["error"]
    assert replies[2]["output"] == "-1 1\n-1 1\n"  # umount and mount: EPERM


def test_only_plain_data_reaches_the_tests_so_generic_reward_hacks_fail(pool):
    tests = "assert f(2) == 4\nassert abs(f(0.5) - 1.0) < 1e-9\n"
    always_equal = ("class E:\n    def __eq__(self, other):\n        return True\n"
                    "    def __sub__(self, other):\n        return 0\n"
                    "def f(x):\n    return E()\n")
    lying_str = "class S(str):\n    def __eq__(self, other):\n        return True\n" \
                "    __hash__ = str.__hash__\ndef f(x):\n    return S('no')\n"
    patched_abs = ("import builtins\nbuiltins.abs = lambda x: 0\n"
                   "def f(x):\n    return 4 if x == 2 else 0.0\n")
    nested_ok = "def f(x):\n    return x * 2\ndef g():\n    return [1, (2.5, 'a'), {'k': {3}}, None]\n"
    res = pool.run([
        Job(always_equal, tests, entry_point="f"),
        Job(always_equal, tests),  # names the tests use are the candidate's even without entry_point
        Job(lying_str, "assert f(1) == 'yes'\n", entry_point="f"),
        Job(patched_abs, tests, entry_point="f"),  # its builtins are not the tests' builtins
        Job(nested_ok, tests + "assert g() == [1, (2.5, 'a'), {'k': {3}}, None]\n", entry_point="g"),
        Job(nested_ok, tests, entry_point="missing"),
    ])
    assert statuses(res) == ["fail", "fail", "fail", "fail", "pass", "pass"]
    assert res[0].error == ("tests: f returned a value of type 'E': only plain data (numbers, "
                            "strings, bytes, None, and lists, tuples, dicts, sets of those) "
                            "crosses to the tests")
    assert "returned a value of type 'S'" in res[2].error
    assert res[3].error == "tests raised: AssertionError: "


def test_channel_round_trip_and_refusals():
    """The channel's encoding: exact types back, and the same refusals at the same depth."""
    import importlib.util
    import math
    from pathlib import Path

    import ttscale.verification.sandbox

    spec = importlib.util.spec_from_file_location(
        "_channel", Path(ttscale.verification.sandbox.__file__).with_name("channel.py"))
    channel = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(channel)
    big = 1 << channel.BIG_INT_BITS
    shared = [1, 2]
    value = [None, True, 0, -1, 2.5, "é\n", b"\x00", 1 + 2j, (1, (2,)), {1: "a", (2, 3): [4]},
             {1, 2}, frozenset({"x"}), big, -big, big - 1, [shared, shared], {"k": {"s": set()}}]
    back = channel.decode(channel.encode(value))
    assert back == value and [type(v) for v in back] == [type(v) for v in value]
    assert type(back[8][1]) is tuple and type(back[10]) is set and type(back[11]) is frozenset
    nan = channel.decode(channel.encode([float("nan")]))[0]
    assert math.isnan(nan)

    def nest(n, inner):
        for _ in range(n):
            inner = [inner]
        return inner

    depth = channel.MAX_DEPTH
    assert channel.decode(channel.encode(nest(depth, []))) == nest(depth, [])  # empty: fits
    assert channel.decode(channel.encode(nest(depth - 1, [1]))) == nest(depth - 1, [1])
    for bad in (nest(depth, [1]), nest(depth, {1: 2}), nest(depth + 5, 1)):  # scalars too deep
        with pytest.raises(channel.NotPlainData, match="nested deeper"):
            channel.encode(bad)
    with pytest.raises(channel.NotPlainData, match="nested deeper"):
        channel.decode(b'{"l":[' * (depth + 1) + b"1" + b"]}" * (depth + 1))
    loop = [1]
    loop.append(loop)
    with pytest.raises(channel.NotPlainData, match="contains itself"):
        channel.encode(loop)

    class Lying(int):
        def __eq__(self, other):
            return True

        __hash__ = int.__hash__

    for bad in (Lying(1), [Lying(1)], {Lying(1): 1}, {1: [Lying(1)]}, object()):
        with pytest.raises(channel.NotPlainData, match="only plain data"):
            channel.encode(bad)
    for raw in (b'{"x":1}', b"[1,2", b'{"d":[[{"l":[]},1]]}', b"\xff", b'{"l":[1]} x',
                b'{"c":[1,true]}', b'{"i":"zz"}'):
        with pytest.raises(channel.NotPlainData):
            channel.decode(raw)
