"""The errors users see as one line: bad input (exit code 2) and failed writes (exit code 1)."""

from __future__ import annotations


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
