"""Hostile programs: each runs in a batch among benign ones and must not pass, escape or linger.

Every case is a "completion" of ``add(a, b)`` judged by ``check(add)``. After each batch the test
checks that the benign programs got their right verdicts, that files the test made outside the
sandbox (a target file, a directory, a fake $HOME with a secret) are unchanged, that nothing
appeared in /tmp, /root or the repository, that a TCP and a UDP listener on 127.0.0.1 received
nothing, and that no process carrying the case's marker is left anywhere on the machine.
"""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path

import pytest

from ttscale.verification.sandbox import Job, Limits, SandboxPool, SandboxUnavailable, Status

REPO = Path(__file__).resolve().parents[1]
TESTS = ("def check(candidate):\n    assert candidate(2, 3) == 5\n    assert candidate(-1, 1) == 0\n"
         "    assert abs(candidate(0.5, 0.25) - 0.75) < 1e-9\n\ncheck(add)\n")
RIGHT = "def add(a, b):\n    return a + b\n"
WRONG = "def add(a, b):\n    return None\n"
T, F = {"timeout"}, {"fail"}
#: cases whose program prints this once the process carrying its marker runs
RUNS_BEFORE_VERDICT = {"orphan_daemon": "daemon running"}

# name -> (payload, statuses allowed, whether the wrong `add` is appended after the payload)
CASES: dict[str, tuple[str, set[str], bool]] = {
    "fork_bomb": ("import os\nwhile True:\n    os.fork()\n", {"fail", "timeout"}, True),
    "fork_bomb_persistent": ("import os\nwhile True:\n    try:\n        os.fork()\n"
                             "    except OSError:\n        pass\n", T, True),
    "infinite_loop": ("while True:\n    pass\n", T, True),
    "sleep_past_limit": ("import time\ntime.sleep(60)\n", T, True),
    "ignore_sigterm_and_spin": ("import signal\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
                                "while True:\n    pass\n", T, True),
    "block_all_signals_and_spin": ("import signal\nsignal.pthread_sigmask(signal.SIG_BLOCK, "
                                   "signal.valid_signals())\nwhile True:\n    pass\n", T, True),
    "memory_hog": ("x = []\nwhile True:\n    x.append(bytearray(1 << 24))\n", {"fail", "timeout"},
                   True),
    "huge_bytearray": ("x = bytearray(1 << 40)\n", F, True),
    "gigabyte_of_output": ("import os\nb = b'x' * (1 << 20)\nfor _ in range(1024):\n"
                           "    os.write(1, b)\n", {"fail", "timeout"}, True),
    "overwrite_file_outside": ("open('@TARGET@', 'w').write('pwned')\n", F, True),
    "append_file_outside": ("open('@TARGET@', 'a').write('pwned')\n", F, True),
    "delete_file_outside": ("import os\nos.remove('@TARGET@')\n", F, True),
    "delete_dir_outside": ("import shutil\nshutil.rmtree('@VICTIM@')\n", F, True),
    "write_host_tmp": ("open('/tmp/ttscale-hostile-@MARKER@', 'w').write('x')\n"
                       "open('/scratch/../tmp/ttscale-hostile-@MARKER@', 'a').write('x')\n", F, True),
    "write_home_dotfile": ("open('@HOME@/.bashrc', 'a').write('evil')\n", F, True),
    "write_real_root_home": ("open('/root/.ttscale-hostile-@MARKER@', 'w').write('x')\n", F, True),
    "write_into_repo": ("open('@REPO@/HACKED-@MARKER@', 'w').write('x')\n", F, True),
    "write_into_python_install": ("import os\nopen(os.__file__, 'a').write('#evil')\n", F, True),
    "read_home_secret": ("print(open('@SECRET@').read())\n", F, True),
    "list_test_tmp_dir": ("import os\nprint(os.listdir('@TMPDIR@'))\n", F, True),
    "read_init_environ": ("print(open('/proc/1/environ').read())\n", F, True),
    "tcp_connect_localhost": ("import socket\ns = socket.create_connection(('127.0.0.1', @PORT@), "
                              "timeout=1)\ns.sendall(b'@MARKER@')\n", F, True),
    "udp_send_localhost": ("import socket\ns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
                           "s.sendto(b'@MARKER@', ('127.0.0.1', @UDP@))\n", F, True),
    "bring_loopback_up": ("import fcntl, socket, struct\ns = socket.socket()\n"
                          "fcntl.ioctl(s, 0x8914, struct.pack('16sH14x', b'lo', 1))\n", F, True),
    "os_exit_zero_before_tests": ("import os\nos._exit(0)\n", F, True),
    "sys_exit_zero_before_tests": ("import sys\nsys.exit(0)\n", F, True),
    "exit_zero_inside_call": ("import os\ndef add(a, b):\n    os._exit(0)\n", F, False),
    "kill_parent": ("import os\nos.kill(os.getppid(), 9)\n", F, True),
    "killpg_parent": ("import os\nos.killpg(os.getpgid(os.getppid()), 9)\n", F, True),
    "kill_everything": ("import os\nos.kill(-1, 9)\n", F, True),
    "close_stdout_stderr": ("import os\nos.close(1)\nos.close(2)\n", F, True),
    "close_all_fds_right_answer": ("import os\nos.closerange(0, 1024)\n" + RIGHT, F, False),
    # the daemon carries the marker as its argv[0] (sleep would reject it as a third argument and
    # exit at once); the program says so once the daemon runs, so that the check after the
    # verdict that no process carries the marker is not vacuous
    "orphan_daemon": ("import os, time\nif os.fork() == 0:\n    os.setsid()\n    if os.fork() == 0:\n"
                      "        os.execv('/bin/sleep', ['@MARKER@', '60'])\n"
                      "    os._exit(0)\n"
                      "def running():\n    for p in os.listdir('/proc'):\n        try:\n"
                      "            if b'@MARKER@' in open(f'/proc/{p}/cmdline', 'rb').read():\n"
                      "                return True\n        except OSError:\n            pass\n"
                      "for _ in range(1000):\n    if running():\n        print('daemon running')\n"
                      "        break\n    time.sleep(0.001)\n", F, True),
    "python_daemon_right_answer": ("import subprocess, sys\nsubprocess.Popen([sys.executable, '-c', "
                                   "'import time; time.sleep(60)', '@MARKER@'], "
                                   "start_new_session=True)\n" + RIGHT, F, False),
    "thread_bomb": ("import threading, time\nwhile True:\n    threading.Thread(target=time.sleep, "
                    "args=(60,), daemon=True).start()\n", F, True),
    "recursion_bomb": ("import sys\nsys.setrecursionlimit(10 ** 8)\ndef f(n):\n    return f(n + 1)\n"
                       "f(0)\n", {"fail", "timeout"}, True),
    "giant_file_in_scratch": ("with open('big', 'wb') as f:\n    for _ in range(1024):\n"
                              "        f.write(b'0' * (1 << 20))\n", F, True),
    "fill_scratch": ("for i in range(1000):\n    open(f'f{i}', 'wb').write(b'x' * (1 << 20))\n", F,
                     True),
    "many_open_files": ("fs = [open('/dev/null') for _ in range(100000)]\n", F, True),
    "ctypes_segfault": ("import ctypes\nctypes.string_at(0)\n", F, True),
    "print_pass_markers": ("import os\nprint('passed')\nprint('PASS')\ntry:\n"
                           "    os.write(3, b'P' + b'0' * 32)\nexcept OSError:\n    pass\n", F, True),
    "forge_ready_then_exit": ("import os\nos.write(3, b'R')\nos._exit(0)\n", F, True),
    "redefine_check": ("def check(candidate):\n    return True\n", F, True),
    "patch_builtins": ("import builtins\nbuiltins.AssertionError = type('X', (Exception,), {})\n"
                       "builtins.check = lambda c: None\n", F, True),
    "atexit_and_excepthook": ("import atexit, sys\nsys.excepthook = lambda *a: None\n"
                              "atexit.register(lambda: print('PASS'))\n", F, True),
    "racing_thread_right_answer": ("import os, threading\ndef race():\n    while True:\n"
                                   "        try:\n            os.write(3, b'P' + os.read(4, 32))\n"
                                   "        except OSError:\n            pass\n"
                                   "threading.Thread(target=race, daemon=True).start()\n" + RIGHT,
                                   F, False),
    "always_equal_result": ("class E:\n    def __eq__(self, other):\n        return True\n"
                            "    def __sub__(self, other):\n        return 0\n"
                            "def add(a, b):\n    return E()\n", F, False),
    "lying_int_subclass": ("class I(int):\n    def __eq__(self, other):\n        return True\n"
                           "    __hash__ = int.__hash__\n"
                           "    def __sub__(self, other):\n        return 0\n"
                           "def add(a, b):\n    return I(0)\n", F, False),
    "patch_builtin_abs": ("import builtins\nbuiltins.abs = lambda x: 0\n"
                          "def add(a, b):\n    return {(2, 3): 5, (-1, 1): 0}.get((a, b), 0.0)\n",
                          F, False),
    "mount_tmpfs": ("import ctypes\nlibc = ctypes.CDLL(None, use_errno=True)\n"
                    "if libc.mount(b'none', b'/usr', b'tmpfs', 0, None) != 0:\n"
                    "    raise OSError(ctypes.get_errno(), 'mount')\n", F, True),
    "chroot": ("import os\nos.chroot('/scratch')\n", F, True),
    "setuid_root": ("import os\nos.setuid(0)\n", F, True),
}


@pytest.fixture(scope="module")
def pool():
    p = SandboxPool(workers=2, limits=Limits(memory_mb=512, output_bytes=1 << 20))
    try:
        p.start()
    except SandboxUnavailable as e:
        pytest.skip(str(e))
    yield p
    p.close()


def _snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() if p.is_file() else b"<dir>"
            for p in sorted(root.rglob("*"))}


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


def test_suite_is_large_enough():
    assert len(CASES) >= 30


@pytest.mark.parametrize("name", sorted(CASES))
def test_hostile_program_is_contained(pool, tmp_path, name):
    payload, allowed, append_wrong = CASES[name]
    marker = f"ttscale-hostile-{name}-{os.getpid()}-{time.time_ns()}"
    secret = f"SECRET-{time.time_ns()}-do-not-leak"
    home = tmp_path / "home"
    home.mkdir()
    (home / "secret.txt").write_text(secret)
    (home / ".bashrc").write_text("# original\n")
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "keep.txt").write_text("keep me")
    target = tmp_path / "target.txt"
    target.write_text("original")
    tcp = socket.socket()
    tcp.bind(("127.0.0.1", 0))
    tcp.listen(8)
    tcp.settimeout(0.2)
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind(("127.0.0.1", 0))
    udp.settimeout(0.2)
    before = _snapshot(tmp_path)
    subs = {"@TARGET@": str(target), "@VICTIM@": str(victim), "@HOME@": str(home),
            "@SECRET@": str(home / "secret.txt"), "@TMPDIR@": str(tmp_path), "@REPO@": str(REPO),
            "@MARKER@": marker, "@PORT@": str(tcp.getsockname()[1]),
            "@UDP@": str(udp.getsockname()[1])}
    code = payload
    for k, v in subs.items():
        code = code.replace(k, v)
    if append_wrong:
        code += "\n" + WRONG
    jobs = [Job(RIGHT, TESTS, 5, "add"), Job(code, TESTS, 1.5, "add"), Job(WRONG, TESTS, 5, "add"),
            Job(RIGHT.replace("a + b", "b + a"), TESTS, 5, "add")]
    try:
        results = pool.run(jobs)
        hostile = results[1]
        assert hostile.status.value in allowed, (hostile.status, hostile.error)
        assert [r.status for r in results[::2]] == [Status.PASS, Status.FAIL]
        assert results[3].status is Status.PASS
        assert results[2].error == "tests raised: AssertionError: "
        assert len(hostile.output.encode()) <= (1 << 20) + 4  # the cap (+ a replacement char)
        assert secret not in hostile.output and secret not in (hostile.error or "")
        assert _snapshot(tmp_path) == before
        assert not Path(f"/tmp/ttscale-hostile-{marker}").exists()
        assert not Path(f"/root/.ttscale-hostile-{marker}").exists()
        assert not (REPO / f"HACKED-{marker}").exists()
        with pytest.raises(TimeoutError):
            tcp.accept()
        with pytest.raises(TimeoutError):
            udp.recv(100)
        assert _processes_with(marker) == []
        if name in RUNS_BEFORE_VERDICT:  # the process the check looks for did run
            assert RUNS_BEFORE_VERDICT[name] in hostile.output, hostile.output
    finally:
        tcp.close()
        udp.close()
