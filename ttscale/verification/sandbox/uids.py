"""The unprivileged uids the sandbox gives programs (root mode), and counting a uid's processes.

No account has these uids: a block of 1024 per pool process (by pid), 8 per worker, one per
program in turn, so that no two live programs share one (RLIMIT_NPROC counts per uid, and the
kernel keeps some state per uid, such as its keyring).
"""

from __future__ import annotations

import itertools
import os

_uids = itertools.count()
#: first of the unprivileged uids the sandboxes use (no account has them)
UID_BASE = 100_000_000
#: uids of one pool process: its workers' blocks of 8, one a program, used in turn
UIDS_PER_PROCESS = 1024


def worker_uid() -> int:
    """The first of 8 unprivileged uids no one else uses, for one worker's programs in turn:
    RLIMIT_NPROC counts per uid, and a program must not share a uid with another live one."""
    return UID_BASE + (os.getpid() % 1_000_000) * UIDS_PER_PROCESS + (next(_uids) % 128) * 8


def sandbox_uid(uid: int) -> bool:
    """Whether ``uid`` is one the sandboxes give their programs."""
    return UID_BASE <= uid < UID_BASE + 1_000_000 * UIDS_PER_PROCESS


def count_processes(uid: int) -> int:
    n = 0
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open(f"/proc/{name}/status") as f:
                    for line in f:
                        if line.startswith("Uid:"):
                            n += int(line.split()[1]) == uid
                            break
            except (OSError, ValueError, IndexError):
                pass
    return n
