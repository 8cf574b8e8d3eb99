"""Checks on where a command will write, made before it writes anything.

``check_out_dir`` and ``check_out_file`` find the nearest existing ancestor of an output path
and refuse, in one line naming the flag, a path under a file, a folder that cannot be written
(read-only filesystem, no permission), or an output that exists as the wrong kind of thing.
``check_run_target`` also refuses a non-empty folder that is not a run directory, so that
``run.json`` and ``samples/`` never land among a user's own files.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ttscale.errors import InputError


def _nearest_existing(path: Path) -> Path:
    p = path
    while not p.exists() and p != p.parent:
        if p.is_symlink():  # a dangling link: report it, not its parent
            return p
        p = p.parent
    return p


def _named(flag: str, path: Path) -> str:
    """``--out PATH`` for a flag, ``out=PATH`` for an API argument, ``PATH`` when ``flag`` is
    the path itself or a description already holding it."""
    if flag.startswith("-"):
        return f"{flag} {path}"
    if flag.isidentifier():
        return f"{flag}={str(path)!r}"
    return flag if str(path) in flag else f"{flag} {path}"


def check_out_dir(path: str | os.PathLike, flag: str = "--out") -> Path:
    """``path`` is (or can be made) a writable folder; InputError otherwise. Writes nothing."""
    path = Path(path)
    where = _named(flag, path)
    if path.exists() and not path.is_dir():
        raise InputError(f"{where}: exists and is not a folder")
    base = _nearest_existing(path)
    if not base.is_dir():
        raise InputError(f"{where}: {base} is not a folder")
    if not os.access(base, os.W_OK | os.X_OK):
        why = "is on a read-only filesystem" if _read_only_fs(base) else "is not writable"
        raise InputError(f"{where}: {why}" if base == path else f"{where}: {base} {why}")
    return path


def check_out_file(path: str | os.PathLike, flag: str = "--out") -> Path:
    """``path`` is a file that can be written (its folder made); InputError otherwise."""
    path = Path(path)
    if path.is_dir():
        raise InputError(f"{_named(flag, path)}: is a folder, expected a file name")
    if path.exists() and not os.access(path, os.W_OK):
        raise InputError(f"{_named(flag, path)}: is not writable")
    check_out_dir(path.parent, flag)
    return path


def check_run_target(path: str | os.PathLike, flag: str = "--out") -> Path:
    """A run directory to create or extend: writable, and either new, empty or a run already."""
    path = check_out_dir(path, flag)
    if path.is_dir() and not (path / "run.json").exists() and not (path / "samples").exists():
        entries = [e.name for e in path.iterdir() if e.name not in (".lock", ".locks")
                   and not (e.name == "logs" and _only_backend_logs(e))]
        if entries:
            raise InputError(f"{flag} {path}: is a folder with other files ({len(entries)} entries, "
                             f"e.g. {sorted(entries)[0]!r}) and not a run directory: give a new or empty folder")
    return path


def _only_backend_logs(folder: Path) -> bool:
    """A ``logs`` folder holding only what sampling writes there before its first samples."""
    return folder.is_dir() and all(p.name.startswith("backend.log") for p in folder.iterdir())


def _read_only_fs(path: Path) -> bool:
    try:
        return bool(os.statvfs(path).f_flag & os.ST_RDONLY)
    except OSError:
        return False


def remove_if_empty_run(path: str | os.PathLike) -> None:
    """Undo a run directory this call created when its first samples never came.

    Removes only what sampling writes before its first shard (run.json, problems.parquet, the
    lock, an empty samples/ folder) and then the folder if that left it empty; never anything else.
    """
    path = Path(path)
    if (path / "samples").is_dir() and any((path / "samples").glob("part-*")):
        return
    for name in ("run.json", "problems.parquet", ".lock", ".locks/sampling.lock", "logs/backend.log"):
        (path / name).unlink(missing_ok=True)
    for folder in (path / "samples", path / ".locks", path / "logs", path):
        try:
            folder.rmdir()
        except OSError:
            pass


@contextmanager
def undo_if_nothing_drawn(path: str | os.PathLike, created: bool) -> Iterator[None]:
    """On an error inside, remove the run directory this call created if it holds no samples."""
    try:
        yield
    except BaseException:
        if created:
            _close_log_files_under(Path(path))
            remove_if_empty_run(path)
        raise


def _close_log_files_under(path: Path) -> None:
    """Close file handlers of third-party loggers that write below ``path`` (ttscale.core.logs)."""
    import logging

    for name in [None, *logging.root.manager.loggerDict]:
        logger = logging.getLogger(name)
        for h in getattr(logger, "handlers", []):
            if isinstance(h, logging.FileHandler) and Path(h.baseFilename).is_relative_to(path.absolute()):
                h.close()


def not_a_run(path: str | os.PathLike, what: str = "no run.json, no problems.parquet") -> InputError:
    """The one wording of "this is not a run directory", listing the runs below it (a sweep)."""
    path = Path(path)
    runs = sorted(str(p.parent.relative_to(path)) for p in path.glob("**/run.json")
                  if p.parent != path) if path.is_dir() else []
    if runs:
        shown = ", ".join(runs[:6]) + (f", ... ({len(runs)} in all)" if len(runs) > 6 else "")
        return InputError(f"{path}: not a run directory but a folder of runs ({shown}): give one of them")
    return InputError(f"{path}: not a run directory ({what})")
