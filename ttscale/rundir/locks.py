"""One lock per stage of a run directory: sampling, each verifier, analysis.

A stage that writes into a run directory holds its lock for as long as it writes::

    from ttscale.rundir.locks import stage_lock

    with stage_lock(run_dir, "verify:unit_tests"):
        ...  # build the verifier, read what is done, write what is missing

Stage names: ``"sampling"`` (samples/, run.json, problems.parquet, and the importer's
``verdicts/imported``), ``"verify:<folder>"`` (``verdicts/<folder>/``) and ``"analysis"`` (an
analysis output directory: lock that directory), ``"sweep"`` (a sweep's root). Other names are
allowed (``[A-Za-z0-9_.@=+-]``, one ``:``); they clean nothing unless told what.

- Take the lock BEFORE anything expensive (loading a model, starting a sandbox pool, starting an
  engine on a GPU): a second process asking for a held stage gets :class:`StageBusy` at once, an
  :class:`ttscale.errors.InputError` whose one line names the run directory, the stage and the
  holder (pid, host, command, since when); the CLI prints it and exits with code 2. With
  ``wait=True`` (or a number of seconds) it waits instead, after telling ``on_wait`` what it waits
  for.
- The lock is an ``flock`` on ``RUN_DIR/.locks/<stage>.lock``: the kernel releases it when its
  holder dies, SIGKILL included, so a killed run never leaves a stale lock. The file stays (it
  holds the last holder's description); its presence means nothing.
- When it takes a lock, the new holder removes what killed writers of that stage left behind:
  hidden temporary files (``.*.tmp``) and hidden temporary folders (``.tmp-*``) of the stage's
  folders. Every writer of a stage holds its lock, so whatever temporary file is there belongs to
  no live process.
- Re-entrant within a thread (a sweep that holds ``sampling`` may call code that takes it
  again); another thread of the same process is refused like another process. Distinct stages
  never block each other (verifying with two verifiers at once is fine).
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import shutil
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from ttscale.errors import InputError

LOCK_DIR = ".locks"
STAGE_NAME = re.compile(r"[A-Za-z0-9_.@=+-]+(:[A-Za-z0-9_.@=+-]+)?\Z")
#: how often a waiting process retries
POLL_SECONDS = 0.2

_held: dict[tuple[str, str, int], int] = {}  # (lock file, stage, thread) -> depth
_held_lock = threading.Lock()


class StageBusy(InputError):
    """Another process holds this stage of this run directory (one line, exit code 2)."""


def lock_path(run_dir: str | os.PathLike, stage: str) -> Path:
    """The lock file of ``stage`` in ``run_dir`` (``verify:x`` -> ``.locks/verify@x.lock``)."""
    if not isinstance(stage, str) or not STAGE_NAME.match(stage):
        raise ValueError(f"invalid stage name {stage!r}")
    return Path(run_dir) / LOCK_DIR / f"{stage.replace(':', '@')}.lock"


def stage_folders(run_dir: str | os.PathLike, stage: str) -> list[Path]:
    """The folders whose stale temporary files the holder of ``stage`` removes."""
    root = Path(run_dir)
    if stage == "sampling":
        return [root, root / "samples", root / "verdicts" / "imported", root / "adaptive"]
    if stage.startswith("verify:"):
        return [root / "verdicts" / stage.split(":", 1)[1]]
    if stage == "analysis":
        return [root]
    return []


def remove_stale_temporaries(folders: Iterable[str | os.PathLike]) -> list[Path]:
    """Delete hidden ``.*.tmp`` files and ``.tmp-*`` folders directly in ``folders``.

    Only safe under the lock of the stage that writes there. Returns what was removed.
    """
    removed = []
    for folder in folders:
        try:
            entries = list(os.scandir(folder))
        except (FileNotFoundError, NotADirectoryError):
            continue
        for e in entries:
            try:
                if e.name.startswith(".tmp-") and e.is_dir(follow_symlinks=False):
                    shutil.rmtree(e.path, ignore_errors=True)
                elif (e.name.startswith(".") and e.name.endswith(".tmp")
                      and e.is_file(follow_symlinks=False)):
                    os.unlink(e.path)
                else:
                    continue
            except FileNotFoundError:
                continue
            removed.append(Path(e.path))
    return removed


def _describe_holder(path: Path) -> str:
    try:
        info = json.loads(path.read_text() or "{}")
    except (OSError, ValueError):
        info = {}
    if not isinstance(info, dict) or not info.get("pid"):
        return "another process"
    since = str(info.get("since", "?"))
    command = " ".join(str(info.get("command", "")).split())
    if len(command) > 400:  # whole, unless absurdly long
        command = command[:399] + "…"
    return (f"pid {info['pid']} on {info.get('host', '?')}, since {since}"
            + (f": {command}" if command else ""))


def _busy_message(run_dir: Path, stage: str, path: Path) -> str:
    return (f"{run_dir}: stage '{stage}' is already running in this run directory "
            f"({_describe_holder(path)}); wait for it to finish or stop it")


def _try_lock(fd: int) -> bool:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False


@contextmanager
def stage_lock(
    run_dir: str | os.PathLike,
    stage: str,
    *,
    wait: bool | float = False,
    on_wait: Callable[[str], None] | None = None,
    clean: Iterable[str | os.PathLike] | None = None,
) -> Iterator[Path]:
    """Hold the lock of ``stage`` in ``run_dir`` (created if need be); yields the lock file.

    Raises :class:`StageBusy` when another process holds it (after up to ``wait`` seconds if a
    number, forever if True; ``on_wait(line)`` is called once when waiting starts). On taking it,
    removes the stage's stale temporary files (``clean``: the folders; default
    :func:`stage_folders`). OS errors (read-only or full disk) surface as ``OSError``.
    """
    root = Path(run_dir)
    path = lock_path(root, stage)
    key = (os.path.realpath(path), stage, threading.get_ident())
    with _held_lock:
        if _held.get(key):
            _held[key] += 1
            reentrant = True
        else:
            reentrant = False
    if reentrant:
        try:
            yield path
        finally:
            with _held_lock:
                _held[key] -= 1
        return
    if root.exists() and not root.is_dir():
        raise InputError(f"{root}: exists and is not a directory")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)
    try:
        if not _try_lock(fd):
            if wait is False or wait is None:
                raise StageBusy(_busy_message(root, stage, path))
            deadline = None if wait is True else time.monotonic() + float(wait)
            if on_wait is not None:
                on_wait(f"{root}: waiting for stage '{stage}' ({_describe_holder(path)}) to finish")
            while not _try_lock(fd):
                if deadline is not None and time.monotonic() >= deadline:
                    raise StageBusy(_busy_message(root, stage, path))
                time.sleep(POLL_SECONDS)
        info = {"pid": os.getpid(), "host": socket.gethostname(), "stage": stage,
                "since": datetime.now(UTC).isoformat(timespec="seconds"),
                "command": " ".join([os.path.basename(sys.argv[0] or "python"), *sys.argv[1:]])}
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, (json.dumps(info) + "\n").encode(), 0)
        except OSError as e:  # a full disk: name the file (pwrite's error has no path)
            from ttscale.errors import StorageError

            raise StorageError.from_os_error(path, e) from e
        remove_stale_temporaries(stage_folders(root, stage) if clean is None else clean)
        with _held_lock:
            _held[key] = 1
        try:
            yield path
        finally:
            with _held_lock:
                _held.pop(key, None)
    finally:
        os.close(fd)  # releases the flock
