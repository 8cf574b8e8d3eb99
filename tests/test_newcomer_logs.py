"""Quiet output (issue 14, item 5): the transformers backend uses the current KV-cache keyword
(no deprecation warning per batch), and third-party logs go to RUN_DIR/logs/backend.log, on
stderr only with --verbose."""

from __future__ import annotations

import logging
import subprocess
import sys

from ttscale.core.logs import LOGGERS, third_party_logs


def _sample(out, *extra):
    return subprocess.run(
        [sys.executable, "-W", "error::FutureWarning", "-m", "ttscale", "sample", "--task", "arithmetic",
         "--num-problems", "3", "-k", "4", "--max-tokens", "6", "--out", str(out), *extra],
        capture_output=True, text=True, timeout=300)


def test_quiet_sample_prints_one_line_and_logs_to_the_run(tmp_path):
    r = _sample(tmp_path / "run", "--quiet")
    assert r.returncode == 0, r.stderr
    assert r.stderr == ""  # no deprecation warnings, no "Loading weights" bar, no library logs
    assert len(r.stdout.strip().splitlines()) == 1 and "wrote 12 samples" in r.stdout
    log = (tmp_path / "run" / "logs" / "backend.log").read_text()
    assert "transformers" in log and "LlamaConfig" in log


def test_verbose_also_prints_the_library_logs(tmp_path):
    r = _sample(tmp_path / "run", "--quiet", "--verbose")
    assert r.returncode == 0, r.stderr
    assert "transformers.configuration_utils" in r.stderr
    assert "deprecated" not in r.stderr


def test_loggers_are_restored_and_an_idle_log_writes_nothing(tmp_path):
    import transformers.utils.logging as tf_logging

    tf_logging.get_logger("transformers")  # transformers' own handler, installed on first use
    before = [(logging.getLogger(n).handlers[:], logging.getLogger(n).propagate) for n in LOGGERS]
    with third_party_logs(tmp_path / "logs" / "backend.log"):
        pass
    assert not (tmp_path / "logs").exists()
    with third_party_logs(tmp_path / "logs" / "backend.log"):
        logging.getLogger("vllm.engine").info("engine started")
    assert "engine started" in (tmp_path / "logs" / "backend.log").read_text()
    assert [(logging.getLogger(n).handlers, logging.getLogger(n).propagate) for n in LOGGERS] == before
