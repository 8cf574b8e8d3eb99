"""The errors users see as one line: bad input (exit code 2) and failed writes (exit code 1)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

#: set while the command line runs a command: messages then name flags (``--n-boot``), else the
#: Python arguments of the API verb (``n_boot=``)
_CLI_WORDING: ContextVar[bool] = ContextVar("ttscale_cli_wording", default=False)
_UNSET: Any = object()


class InputError(Exception):
    """Bad user input: a malformed file, a missing field, an impossible request.

    The message is one line that names the file (or flag) and what is wrong with it. The CLI
    prints it to stderr and exits with code 2; nothing is written before it is raised.
    """

    exit_code = 2

    def __init__(self, message: str):
        super().__init__(" ".join(str(message).split()))


def where(path: object, field: str | None = None) -> str:
    """Format a location for an error message: ``path`` or ``path: field 'x'``."""
    return f"{path}" if field is None else f"{path}: field '{field}'"


class StorageError(OSError):
    """Writing to disk failed (full, read-only, over quota): one line, exit code 1.

    Not the user's input, so not an InputError; but no traceback either. What was written
    before stays whole (every write is atomic), and running the command again resumes.
    """

    exit_code = 1

    @classmethod
    def from_os_error(cls, path: object, e: OSError) -> StorageError:
        cause = e.strerror or type(e).__name__
        return cls(e.errno or 0, f"cannot write {path}: {cause}")

    def __str__(self) -> str:
        return str(self.strerror)


def os_error_line(e: OSError) -> str:
    """One line for an OS error: the path(s) and the cause (``StorageError`` has both already)."""
    if isinstance(e, StorageError):
        return str(e)
    cause = e.strerror or str(e) or type(e).__name__
    paths = [str(p) for p in (e.filename, e.filename2) if p is not None]
    text = f"{' -> '.join(paths)}: {cause}" if paths else cause
    return " ".join(text.split())


@contextmanager
def cli_wording() -> Iterator[None]:
    """Within it, :func:`arg` names command-line flags (the CLI runs each command inside it)."""
    token = _CLI_WORDING.set(True)
    try:
        yield
    finally:
        _CLI_WORDING.reset(token)


def arg(name: str, value: Any = _UNSET, flag: str | None = None) -> str:
    """An argument in the caller's words: ``n_boot=5`` (or ``n_boot``) from Python, ``--n-boot 5``
    (or ``--n-boot``) from the command line; a switch (``value`` True) is its flag alone there
    (``--allow-stale``). ``name`` is the API verb's keyword; ``flag`` the command's spelling where
    it is not ``--`` + name with dashes (e.g. ``INPUT`` for ``source``)."""
    if _CLI_WORDING.get():
        shown = flag or "--" + name.replace("_", "-")
        return shown if value is _UNSET or value is True else f"{shown} {value}"
    return name if value is _UNSET else f"{name}={value!r}"


def arg_option(name: str, key: str, value: Any, flag: str) -> str:
    """One key of a dict argument in the caller's words: ``backend_options={'retry_window': 600}``
    from Python, ``--backend-option retry_window=600`` from the command line."""
    if _CLI_WORDING.get():
        return f"{flag} {key}={value}"
    return f"{name}={{{key!r}: {value!r}}}"


def in_cli() -> bool:
    """Whether the command line is running the current command (see :func:`cli_wording`)."""
    return _CLI_WORDING.get()
