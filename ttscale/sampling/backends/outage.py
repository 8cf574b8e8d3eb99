"""A server that stops answering: say so while waiting, wait long enough for a restart, then stop
with one line that says how to resume.

:class:`Outage` is shared by all the concurrent requests of an :class:`OpenAIBackend`. The first
failed attempt (connection refused, timeout, 429, 5xx) starts the outage clock and prints one
line on stderr; requests keep retrying with back-off until the server answers again (one line:
back after N s) or ``retry_window`` seconds have passed since the outage began, at which point
:class:`ServerUnavailable` is raised. :func:`preflight` asks ``GET /v1/models`` once before a run
writes anything: an unreachable server or a model it does not serve is an InputError then.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Any

from ttscale.errors import InputError, arg, arg_option

#: default seconds to keep retrying while a server does not answer: long enough for a restart
DEFAULT_RETRY_WINDOW = 60.0


class ServerUnavailable(InputError):
    """The server did not answer for the whole retry window. Exit code 3 (not bad input)."""

    exit_code = 3


class Outage:
    """The state of one server's availability, as seen by all requests to it."""

    def __init__(self, base_url: str, window: float = DEFAULT_RETRY_WINDOW,
                 clock: Callable[[], float] = time.monotonic, say: Callable[[str], Any] | None = None):
        if not window >= 0:
            raise InputError(f"openai backend: option 'retry_window' must be >= 0 seconds, got {window}")
        self.base_url, self.window, self._clock = base_url, float(window), clock
        self._say = say or (lambda text: print(text, file=sys.stderr, flush=True))
        self.since: float | None = None  # when the current outage began
        self.outages = 0

    def failed(self, why: str) -> None:
        """An attempt failed (retryable): start the clock and say so, once per outage."""
        if self.since is None:
            self.since = self._clock()
            self.outages += 1
            self._say(f"ttscale: {self.base_url} is not answering ({why}); retrying for up to "
                      f"{self.window:g} s ({arg_option('backend_options', 'retry_window', 'SECONDS', '--backend-option')} "
                      "to wait longer)")

    def recovered(self) -> None:
        """An attempt succeeded: the outage (if any) is over."""
        if self.since is not None:
            self._say(f"ttscale: {self.base_url} answers again after {self._clock() - self.since:.0f} s; "
                      "sampling continues")
            self.since = None

    def elapsed(self) -> float:
        return 0.0 if self.since is None else self._clock() - self.since

    def remaining(self) -> float:
        return max(0.0, self.window - self.elapsed())

    def exhausted(self) -> bool:
        return self.since is not None and self.elapsed() >= self.window

    def give_up(self, last: str) -> ServerUnavailable:
        return ServerUnavailable(f"openai backend: {self.base_url} did not answer for {self.elapsed():.0f} s "
                                 f"(last error: {last})")


def preflight(base_url: str, model: str, api_key: str | None, timeout: float = 10.0) -> list[str] | None:
    """``GET {base_url}/models`` once: InputError if the server cannot be reached, or if it lists
    its models and ``model`` is not among them. Returns the served models (None if not listed)."""
    import httpx

    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    url = f"{base_url.rstrip('/')}/models"
    try:
        resp = httpx.get(url, headers=headers, timeout=timeout)
    except httpx.TransportError as e:
        raise InputError(f"{arg_option('backend_options', 'base_url', base_url, '--backend-option')}: no server answers there "
                         f"({type(e).__name__}: {e}); start it, or check the address") from e
    if resp.status_code in (401, 403):
        raise InputError(f"{arg_option('backend_options', 'base_url', base_url, '--backend-option')}: GET /models returned {resp.status_code} "
                         f"(set OPENAI_API_KEY or {arg_option('backend_options', 'api_key', '...', '--backend-option')})")
    if resp.status_code != 200:
        return None  # a server without the listing: the first request will tell
    try:
        data = resp.json().get("data")
        served = [str(m["id"]) for m in data]
    except (ValueError, AttributeError, KeyError, TypeError):
        return None
    if served and model not in served:
        raise InputError(f"{arg('model', model)}: not served at {base_url} (served: {', '.join(served[:10])})")
    return served
