"""The openai backend when its server goes away (issue 14, item 2), with a real local server
(scripts/serve_openai.py: the embedded model through transformers, seeded like vLLM's server)
killed and restarted under a real ``ttscale sample``."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

pytest.importorskip("httpx")
pytest.importorskip("transformers")

REPO = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, port: int):
        self.port = port
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, str(REPO / "scripts" / "serve_openai.py"), "--port", str(self.port)],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        line = self.proc.stdout.readline()
        assert line.startswith("serving"), line

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()


@pytest.fixture()
def server():
    s = Server(_free_port())
    s.start()
    yield s
    s.kill()


def _sample(port: int, out: Path, *extra: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "ttscale", "sample", "--backend", "openai", "--model", "embedded",
         "--backend-option", f"base_url=http://127.0.0.1:{port}/v1", "--backend-option", "concurrency=1",
         "--task", "arithmetic", "--num-problems", "40", "-k", "4", "--max-tokens", "6", "--quiet",
         "--out", str(out), *extra],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for_shard(out: Path, proc: subprocess.Popen, timeout: float = 120) -> None:
    end = time.time() + timeout
    while time.time() < end:
        if list((out / "samples").glob("part-*")):
            return
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.05)
    raise AssertionError("no shard written")


def _texts(out: Path) -> pd.DataFrame:
    df = pd.read_parquet(out / "samples")[["problem_id", "temperature", "sample_index", "text"]]
    return df.sort_values(["problem_id", "temperature", "sample_index"]).reset_index(drop=True)


def test_server_killed_and_restarted_within_the_window(tmp_path, server):
    out = tmp_path / "run"
    proc = _sample(server.port, out, "--backend-option", "rate_limit=6")
    _wait_for_shard(out, proc)
    server.kill()
    time.sleep(3)
    server.start()  # the same port, a fresh process
    stdout, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 0, stderr
    assert "is not answering" in stderr and "retrying for up to 60 s" in stderr
    assert "answers again after" in stderr
    assert "Traceback" not in stderr
    assert "wrote 160 samples" in stdout
    clean = tmp_path / "clean"
    ref = _sample(server.port, clean)
    ref.communicate(timeout=300)
    assert ref.returncode == 0
    pd.testing.assert_frame_equal(_texts(out), _texts(clean))  # identical to a run never interrupted


def test_server_gone_past_the_window_prints_how_to_resume(tmp_path, server):
    out = tmp_path / "run"
    proc = _sample(server.port, out, "--backend-option", "rate_limit=6",
                   "--backend-option", "retry_window=2")
    _wait_for_shard(out, proc)
    server.kill()
    t0 = time.time()
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 3, stderr
    assert time.time() - t0 < 60  # the window given, not the default
    lines = stderr.strip().splitlines()
    assert "Traceback" not in stderr and len(lines) == 2, stderr
    assert "retrying for up to 2 s" in lines[0]
    assert "did not answer for" in lines[1] and f"resume with: ttscale sample {out}" in lines[1]
    kept = len(pd.read_parquet(out / "samples"))
    assert 0 < kept < 160
    server.start()
    resumed = subprocess.run([sys.executable, "-m", "ttscale", "sample", str(out), "--quiet"],
                             capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert len(_texts(out)) == 160


def test_preflight_before_anything_is_written(tmp_path, server):
    out = tmp_path / "run"
    r = subprocess.run([sys.executable, "-m", "ttscale", "sample", "--backend", "openai", "--model", "other",
                        "--backend-option", f"base_url=http://127.0.0.1:{server.port}/v1",
                        "--task", "arithmetic", "-k", "2", "--out", str(out)],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "not served" in r.stderr and "embedded" in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    port = _free_port()  # nobody listens there
    r = subprocess.run([sys.executable, "-m", "ttscale", "sample", "--backend", "openai", "--model", "embedded",
                        "--backend-option", f"base_url=http://127.0.0.1:{port}/v1",
                        "--task", "arithmetic", "-k", "2", "--out", str(out)],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "no server answers there" in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    assert not out.exists()
    assert os.environ.get("VLLM_LOGGING_CONFIG_PATH") is None
