"""Third-party logs (vLLM, transformers, torch, Hugging Face, httpx, Python warnings) go to a
log file in the run directory, not into ttscale's own output.

``with third_party_logs(run_dir / "logs" / "backend.log", verbose=False):`` points those
loggers at the file for the duration (the file and its folder are made on the first record,
so a call that logs nothing writes nothing), silences transformers' and the hub's progress bars,
and sets ``VLLM_LOGGING_CONFIG_PATH`` so that vLLM's engine processes, which configure their
own logging from it, write to the same file. With ``verbose`` the records also go to stderr.
On exit every logger is put back as it was.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

#: loggers whose records are routed (children such as vllm.engine follow their parent)
LOGGERS = ("vllm", "transformers", "torch", "huggingface_hub", "httpx", "httpcore", "urllib3",
           "accelerate", "filelock", "py.warnings", "ray")
FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
_ACTIVE: list[Path] = []  # the log files of the third_party_logs blocks now open, innermost last


def active_log_path() -> Path | None:
    """The log file of the innermost open :func:`third_party_logs` block that is not verbose (for
    libraries that write to file descriptor 2 themselves, such as Ray's C++ client), else None."""
    return _ACTIVE[-1] if _ACTIVE else None


class LazyFileHandler(logging.FileHandler):
    """A file handler that makes the file's folder when the first record arrives."""

    def __init__(self, filename: str, mode: str = "a", encoding: str | None = "utf-8") -> None:
        super().__init__(filename, mode=mode, encoding=encoding, delay=True)

    def _open(self) -> Any:
        Path(self.baseFilename).parent.mkdir(parents=True, exist_ok=True)
        return super()._open()


def _vllm_config(path: Path, verbose: bool) -> dict[str, Any]:
    handlers: dict[str, Any] = {"file": {"class": "ttscale.core.logs.LazyFileHandler", "formatter": "plain",
                                         "filename": str(path)}}
    if verbose:
        handlers["stderr"] = {"class": "logging.StreamHandler", "formatter": "plain",
                              "stream": "ext://sys.stderr"}
    return {"version": 1, "disable_existing_loggers": False,
            "formatters": {"plain": {"format": FORMAT}}, "handlers": handlers,
            "loggers": {"vllm": {"handlers": list(handlers), "level": "INFO", "propagate": False}}}


@contextmanager
def third_party_logs(path: str | os.PathLike, verbose: bool = False) -> Iterator[Path]:
    """Route third-party logs to ``path`` (and stderr when ``verbose``); see the module doc."""
    path = Path(path).absolute()
    handlers: list[logging.Handler] = [LazyFileHandler(str(path))]
    if verbose:
        handlers.append(logging.StreamHandler(sys.stderr))
    for h in handlers:
        h.setFormatter(logging.Formatter(FORMAT))
    try:  # transformers installs its own stderr handler on first use: install it now, then swap
        import transformers.utils.logging as tf_logging

        tf_logging.get_logger("transformers")
        if not verbose:
            tf_logging.disable_progress_bar()
    except ImportError:
        tf_logging = None
    saved = []
    for name in LOGGERS:
        lg = logging.getLogger(name)
        saved.append((lg, lg.handlers[:], lg.propagate, lg.level))
        lg.handlers = list(handlers)
        lg.propagate = False
        if lg.level == logging.NOTSET or lg.level > logging.INFO:
            lg.setLevel(logging.INFO)
    logging.captureWarnings(True)
    env = {k: os.environ.get(k) for k in ("VLLM_LOGGING_CONFIG_PATH", "VLLM_CONFIGURE_LOGGING",
                                           "HF_HUB_DISABLE_PROGRESS_BARS")}
    cfg_dir = tempfile.mkdtemp(prefix="ttscale-logs-")
    cfg_path = Path(cfg_dir) / "vllm-logging.json"
    cfg_path.write_text(json.dumps(_vllm_config(path, verbose)))
    os.environ["VLLM_LOGGING_CONFIG_PATH"] = str(cfg_path)
    os.environ["VLLM_CONFIGURE_LOGGING"] = "1"
    if not verbose:
        os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] = "1"
    if not verbose:
        _ACTIVE.append(path)
    try:
        yield path
    finally:
        if not verbose:
            _ACTIVE.remove(path)
        logging.captureWarnings(False)
        for lg, hs, prop, level in saved:
            lg.handlers, lg.propagate = hs, prop
            lg.setLevel(level)
        for h in handlers:
            h.close()
        if tf_logging is not None and not verbose:
            tf_logging.enable_progress_bar()
        for k, v in env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        cfg_path.unlink(missing_ok=True)
        os.rmdir(cfg_dir)
