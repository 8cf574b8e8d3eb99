"""Verifier worker processes: one problem per task, a wall-clock limit per task, restarts.

Used by :func:`ttscale.verification.verify.verify_run`. Workers are spawned (safe beside torch
threads); each task runs on its worker's main thread, where Math-Verify's SIGALRM timeouts work.
The parent holds a wall-clock limit per task and kills and restarts a worker that exceeds it,
recording those samples with status ``timeout``. Tasks may come from an iterator: they are
pulled only as workers free up, so the samples in memory are those of the tasks in flight.
"""

from __future__ import annotations

import math
import multiprocessing as mp
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from multiprocessing.connection import wait
from typing import Any

import numpy as np
import pandas as pd

from ttscale.plugins import Problem, Verifier
from ttscale.rundir.store import VERDICT_SCHEMA

VERDICT_COLUMNS = [f.name for f in VERDICT_SCHEMA]


def verdict_frame(samples: pd.DataFrame, passed: Any, *, score: Any = None, answer: Any = None,
                  status: Any = None, error: Any = None) -> pd.DataFrame:
    """Verdict rows (VERDICT_SCHEMA columns) for ``samples``, defaults filled in:
    score NaN, answer null, status pass/fail from ``passed``, error null."""
    n = len(samples)
    passed_arr = np.asarray(passed, dtype=bool).reshape(n)
    df = pd.DataFrame({
        "problem_id": samples["problem_id"].astype(str).to_numpy(),
        "temperature": samples["temperature"].astype(float).to_numpy(),
        "sample_index": samples["sample_index"].astype(np.int64).to_numpy(),
        "passed": passed_arr,
        "budget": (samples["budget"].astype(np.int64).to_numpy() if "budget" in samples
                   else np.zeros(n, np.int64)),
        "score": np.full(n, np.nan) if score is None else np.asarray(score, dtype=float).reshape(n),
        "answer": pd.Series([None] * n if answer is None else list(answer), dtype=object),
        "status": pd.Series(list(status) if status is not None
                            else np.where(passed_arr, "pass", "fail"), dtype=object),
        "error": pd.Series([None] * n if error is None else list(error), dtype=object),
    })
    return df[VERDICT_COLUMNS]


def _failed_frame(samples: pd.DataFrame, status: str, message: str) -> pd.DataFrame:
    n = len(samples)
    return verdict_frame(samples, np.zeros(n, bool), status=[status] * n, error=[message] * n)


def _verify_one(verifier: Verifier, problem: Problem, samples: pd.DataFrame) -> pd.DataFrame:
    out = verifier.verify(problem, samples)
    if "budget" not in out.columns and len(out) == len(samples):  # a verifier from before budgets
        out = out.assign(budget=(samples["budget"].to_numpy() if "budget" in samples else 0))
    missing = [c for c in VERDICT_COLUMNS if c not in out.columns]
    if missing or len(out) != len(samples):
        raise RuntimeError(f"verifier {verifier.name!r} returned {len(out)} rows for "
                           f"{len(samples)} samples (missing columns {missing})")
    return out[VERDICT_COLUMNS]


def _worker_main(conn: Any, verifier: Verifier) -> None:
    """A worker's loop: (problem, samples) in, ("ok", verdicts) | ("error", message) out.

    It first sends ("ready", None): a worker that dies before that never started (an
    unpicklable verifier, or a script without an ``if __name__ == "__main__":`` guard re-run by
    ``spawn``), which is the caller's problem, not the samples'.
    """
    conn.send(("ready", None))
    while True:
        try:
            msg = conn.recv()
        except EOFError:
            return
        if msg is None:
            return
        problem, samples = msg
        try:
            conn.send(("ok", _verify_one(verifier, problem, samples)))
        except Exception as e:  # noqa: BLE001 - reported as error verdicts by the parent
            conn.send(("error", f"{type(e).__name__}: {e}"))


#: worker processes started in this process so far (for tests and benchmarks)
workers_started = 0
#: id(verifier) -> idle workers kept for the next pool of that verifier (see keep_workers)
_kept: dict[int, list[_Worker]] = {}


@contextmanager
def keep_workers(verifier: Verifier) -> Iterator[None]:
    """Within the block, the worker processes a verify of ``verifier`` (this very instance)
    starts stay alive when it ends, and the next verify of it takes them up again instead of
    spawning and importing anew; they are stopped when the block ends. Adaptive sampling
    verifies every round inside one block."""
    key = id(verifier)
    if key in _kept:  # nested: the outer block owns them
        yield
        return
    _kept[key] = []
    try:
        yield
    finally:
        for w in _kept.pop(key, []):
            w.stop()


class _Worker:
    def __init__(self, ctx: Any, verifier: Verifier):
        global workers_started
        workers_started += 1
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=_worker_main, args=(child, verifier))
        self.proc.start()
        child.close()
        self.task: tuple[Problem, pd.DataFrame] | None = None
        self.deadline = math.inf
        self.ready = False

    def wait_ready(self, timeout: float = 300.0) -> None:
        """Block until the worker has started; RuntimeError (nothing written) if it cannot."""
        if self.ready:
            return
        msg = None
        if self.conn.poll(timeout):
            try:
                msg = self.conn.recv()
            except (EOFError, OSError):
                msg = None
        if not msg or msg[0] != "ready":
            self.stop(kill=True)
            raise RuntimeError(
                f"a verifier worker process failed to start (exit code {self.proc.exitcode}); "
                "in a script, call verify_run under `if __name__ == \"__main__\":` (workers "
                "are spawned), or pass workers=0"
            )
        self.ready = True

    def submit(self, task: tuple[Problem, pd.DataFrame], limit: float) -> None:
        self.wait_ready()
        self.task = task
        self.deadline = time.monotonic() + limit
        self.conn.send(task)

    def stop(self, kill: bool = False) -> None:
        if not kill:
            try:
                self.conn.send(None)
            except (BrokenPipeError, OSError):
                kill = True
        if kill:
            self.proc.kill()
        self.proc.join(timeout=5)
        if self.proc.is_alive():
            self.proc.kill()
            self.proc.join()
        self.conn.close()


def _run_pool(verifier: Verifier, tasks: Iterable[tuple[Problem, pd.DataFrame]], workers: int,
              limit_fn: Any) -> Any:
    """Yield verdict frames, one per task, as workers finish them (in any order)."""
    ctx = mp.get_context("spawn")
    source = iter(tasks)
    first = next(source, None)
    if first is None:
        return
    kept = _kept.get(id(verifier))
    pool = []
    while kept and len(pool) < max(1, workers):
        w = kept.pop()
        if w.proc.is_alive():
            pool.append(w)
        else:
            w.stop(kill=True)
    pool += [_Worker(ctx, verifier) for _ in range(max(1, workers) - len(pool))]
    queue = [first]

    def take() -> Any:
        if queue:
            return queue.pop()
        return next(source, None)

    try:
        while True:
            for w in pool:
                if w.task is None:
                    task = take()
                    if task is not None:
                        w.submit(task, limit_fn(task[1]))
            if all(w.task is None for w in pool):
                break
            busy = [w for w in pool if w.task is not None]
            timeout = max(0.0, min(w.deadline for w in busy) - time.monotonic())
            ready = wait([w.conn for w in busy], timeout=timeout)
            for i, w in enumerate(pool):
                if w.task is None:
                    continue
                if w.conn in ready:
                    try:
                        status, payload = w.conn.recv()
                    except (EOFError, OSError):
                        status, payload = "died", f"worker exited with code {w.proc.exitcode}"
                    task, w.task = w.task, None
                    if status == "ok":
                        yield payload
                        continue
                    yield _failed_frame(task[1], "error", payload)
                    if status == "died":
                        w.stop(kill=True)
                        pool[i] = _Worker(ctx, verifier)
                elif time.monotonic() >= w.deadline:
                    task, w.task = w.task, None
                    w.stop(kill=True)
                    pool[i] = _Worker(ctx, verifier)
                    yield _failed_frame(task[1], "timeout",
                                        f"problem took over {limit_fn(task[1]):.0f} s")
    finally:
        for w in pool:
            if kept is not None and w.task is None and w.proc.is_alive():
                kept.append(w)  # idle and well: the next verify of this verifier takes it
            else:
                w.stop(kill=w.task is not None)


