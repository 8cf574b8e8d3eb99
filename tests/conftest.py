"""In CI a skip of something CI installs is a failure (issue 23, item 13).

``.ci/run`` installs every extra, chromium, the embedded model and vLLM's CPU engine, so there a
test that skips because one of them is missing hides a broken install: with ``TTSCALE_CI=1`` (set
by ``.ci/run``) or ``CI=true`` (set by CI services), such a skip is reported as a failure, module-
level ``importorskip`` included. Skips that remain allowed: tests marked ``gpu`` or ``vllm`` (the
vLLM tests run in their own environment, where ``TTSCALE_REQUIRE_VLLM=1`` makes their skips fail),
a missing CUDA GPU, and what a container may forbid rather than CI install (mounting a tmpfs or a
read-only filesystem).
"""

from __future__ import annotations

import os
import re

import pytest

IN_CI = os.environ.get("TTSCALE_CI") == "1" or os.environ.get("CI", "").lower() in ("true", "1")
ALLOWED_MARKERS = ("gpu", "vllm")
ALLOWED_REASONS = re.compile(r"CUDA|GPU|cannot mount a tmpfs|needs root and mount namespaces")


def _reason(rep) -> str:
    longrepr = rep.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        return str(longrepr[2])
    return str(longrepr)


def _fail_skip(rep, reason: str) -> None:
    rep.outcome = "failed"
    rep.longrepr = (f"skipped in CI ({reason}): CI installs this test's prerequisites, so this skip "
                    "hides a broken install (see tests/conftest.py)")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if not IN_CI or not rep.skipped or hasattr(rep, "wasxfail"):
        return
    if any(item.get_closest_marker(m) is not None for m in ALLOWED_MARKERS):
        return
    reason = _reason(rep)
    if not ALLOWED_REASONS.search(reason):
        _fail_skip(rep, reason)


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector):
    outcome = yield
    rep = outcome.get_result()
    if not IN_CI or not rep.skipped:
        return
    reason = _reason(rep)
    if ALLOWED_REASONS.search(reason) or "vllm" in str(getattr(collector, "path", "")):
        return
    _fail_skip(rep, reason)
