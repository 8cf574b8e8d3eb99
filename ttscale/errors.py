"""The one error type users see: bad input, reported as one line and exit code 2."""

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
