"""Progress bars with rates for the long stages (verify, analyze, compare), on stderr.

:func:`progress_bar` returns a ``progress(done, total)`` callable, the form the library's
functions accept (``verify_run(..., progress=...)``, ``analyze(..., progress=...)``): a tqdm bar
created at the first call (so a stage with nothing to do prints nothing), advanced to ``done``,
showing the rate in ``unit``/s and the time left. ``close()`` ends it. Disabled (a no-op) when
``enabled`` is false or stderr is not a terminal unless ``force``.
"""

from __future__ import annotations

import sys
from typing import Any


class ProgressBar:
    """``bar(done, total)`` moves the bar; ``bar.close()`` ends it."""

    def __init__(self, desc: str, unit: str, enabled: bool = True) -> None:
        self.desc, self.unit, self.enabled = desc, unit, enabled
        self._bar: Any = None

    def __call__(self, done: int, total: int) -> None:
        if not self.enabled:
            return
        if self._bar is None:
            from tqdm import tqdm

            self._bar = tqdm(total=total, desc=self.desc, unit=self.unit, file=sys.stderr,
                             unit_scale=True, dynamic_ncols=True, leave=True, mininterval=0.5)
        if total != self._bar.total:
            self._bar.total = total
        self._bar.update(done - self._bar.n)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def __enter__(self) -> ProgressBar:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def progress_bar(desc: str, unit: str, enabled: bool = True, force: bool = False) -> ProgressBar:
    """A progress bar for ``desc`` counting ``unit`` (see the module doc)."""
    return ProgressBar(desc, unit, enabled and (force or sys.stderr.isatty()))
