"""The streaming planner: the requests for exactly the samples a run lacks, generated lazily.

For each (problem, temperature), the sample indices ``0 .. K-1`` missing from the run are held
as half-open ranges (one range for a fresh run, whatever K), computed from the indices on disk
with numpy; :class:`RequestPlan` then yields the requests one by one (at most
``max_n_per_request`` samples each, seed ``seed_base(seed, problem, temperature) + first_index``)
each time it is iterated. Memory is the ranges plus the samples already on disk, never a
Python object per planned sample or per planned request: K = 1,000,000 over 100 (problem,
temperature) pairs is planned in a few MB (``benchmarks/bench_ray.py --planner``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np
import pandas as pd

from ttscale.sampling.backends.base import Backend, Request, seed_base

Ranges = dict[tuple[str, float], list[tuple[int, int]]]


def gaps(have: np.ndarray, k: int) -> list[tuple[int, int]]:
    """Half-open ranges of ``0 .. k-1`` not in ``have`` (any order, repeats allowed)."""
    have = np.unique(have[(have >= 0) & (have < k)])
    edges = np.concatenate(([-1], have, [k]))
    starts, ends = edges[:-1] + 1, edges[1:]
    keep = ends > starts
    return [(int(a), int(b)) for a, b in zip(starts[keep], ends[keep], strict=True)]


def missing_ranges(existing: pd.DataFrame, problem_ids: list[str], temperatures: list[float],
                   k: int) -> Ranges:
    """For each (problem, temperature) lacking samples, the missing indices as ranges."""
    have: dict[tuple[str, float], np.ndarray] = {}
    if len(existing):
        idx = existing["sample_index"].to_numpy(np.int64)
        for (pid, t), rows in existing.groupby(["problem_id", "temperature"]).indices.items():
            have[(str(pid), float(t))] = idx[rows]
    empty = np.empty(0, np.int64)
    out: Ranges = {}
    for pid in problem_ids:
        for t in temperatures:
            r = gaps(have.get((pid, float(t)), empty), k)
            if r:
                out[(pid, float(t))] = r
    return out


class RequestPlan:
    """The planned requests: iterate (as often as needed) to get them, lazily, in problem order.

    ``samples`` is their total number of samples, ``len()`` their number; :meth:`distinct`
    gives one request per (problem, temperature), enough to check prompts before sampling.
    """

    def __init__(self, problems: list[Any], prompts: dict[str, Any], ranges: Ranges,
                 temperatures: list[float], seed: int, max_n: int, make: Any):
        self.problems, self.prompts, self.ranges = problems, prompts, ranges
        self.temperatures, self.seed, self.max_n, self.make = temperatures, seed, max_n, make
        self.samples = sum(hi - lo for rs in ranges.values() for lo, hi in rs)
        self.count = sum(-(-(hi - lo) // max_n) for rs in ranges.values() for lo, hi in rs)

    def __len__(self) -> int:
        return self.count

    def __bool__(self) -> bool:
        return self.count > 0

    def _runs(self) -> Iterator[tuple[Any, float, int, int, int]]:
        for p in self.problems:
            for t in self.temperatures:
                rs = self.ranges.get((p.problem_id, float(t)))
                if rs:
                    base = seed_base(self.seed, p.problem_id, t)
                    for lo, hi in rs:
                        yield p, float(t), base, lo, hi

    def __iter__(self) -> Iterator[Request]:
        for p, t, base, lo, hi in self._runs():
            for first in range(lo, hi, self.max_n):
                yield self.make(p.problem_id, self.prompts[p.problem_id], t,
                                min(self.max_n, hi - first), base + first, first)

    def distinct(self) -> list[Request]:
        """The first request of each (problem, temperature) with missing samples."""
        seen: set[tuple[str, float]] = set()
        out = []
        for p, t, base, lo, hi in self._runs():
            if (p.problem_id, t) not in seen:
                seen.add((p.problem_id, t))
                out.append(self.make(p.problem_id, self.prompts[p.problem_id], t,
                                     min(self.max_n, hi - lo), base + lo, lo))
        return out


def plan(problems: list[Any], prompts: dict[str, Any], existing: pd.DataFrame,
         temperatures: list[float], k: int, seed: int, max_n: int, max_tokens: int,
         stop: tuple[str, ...], top_p: float) -> RequestPlan:
    """A :class:`RequestPlan` for the samples ``existing`` lacks (``prompts``: per problem id,
    the prompt to send: text or chat messages)."""
    ranges = missing_ranges(existing, [p.problem_id for p in problems], temperatures, k)

    def make(pid: str, prompt: Any, t: float, n: int, s: int, first: int) -> Request:
        return Request(pid, prompt, t, n, s, first, max_tokens, tuple(stop), top_p)

    return RequestPlan(problems, prompts, ranges, [float(t) for t in temperatures], seed, max_n, make)


def iter_chunks(requests: Iterable[Request], size: int) -> Iterator[list[Request]]:
    """Requests cut into chunks of at most ``size`` samples, in order, as they come; a request
    that crosses a chunk boundary is split, each part keeping its samples' indices and seeds."""
    cur: list[Request] = []
    room = size
    for r in requests:
        off = 0
        while off < r.n:
            take = min(room, r.n - off)
            part = r if (off == 0 and take == r.n) else dataclasses.replace(
                r, n=take, seed=r.seed + off, first_index=r.first_index + off)
            cur.append(part)
            off += take
            room -= take
            if room == 0:
                yield cur
                cur, room = [], size
    if cur:
        yield cur


def contiguous_ranges(indices: list[int]) -> list[tuple[int, int]]:
    """Sorted distinct integers as half-open runs: [0, 1, 2, 5, 6] -> [(0, 3), (5, 7)]."""
    out: list[tuple[int, int]] = []
    for i in sorted(set(indices)):
        if out and out[-1][1] == i:
            out[-1] = (out[-1][0], i + 1)
        else:
            out.append((i, i + 1))
    return out


def missing_indices(existing: pd.DataFrame, problem_ids: list[str], temperatures: list[float],
                    k: int) -> dict[tuple[str, float], list[int]]:
    """For each (problem, temperature), the sample indices in 0..k-1 that ``existing`` lacks."""
    have: dict[tuple[str, float], set[int]] = {}
    if len(existing):
        for (pid, t), idx in existing.groupby(["problem_id", "temperature"])["sample_index"]:
            have[(str(pid), float(t))] = set(int(i) for i in idx)
    out = {}
    for pid in problem_ids:
        for t in temperatures:
            got = have.get((pid, float(t)), set())
            lack = [i for i in range(k) if i not in got]
            if lack:
                out[(pid, float(t))] = lack
    return out


def samples_asked(r: Request) -> int:
    """Samples a request gives: n, times its number of budgets."""
    return r.n * max(1, len(r.budgets))


class RequestList(list):
    """Requests as a list (a run with budgets, an adaptive round), with a plan's ``samples`` and
    ``distinct``."""

    @property
    def samples(self) -> int:
        return sum(samples_asked(r) for r in self)

    def distinct(self) -> list[Request]:
        seen: set[tuple[str, float]] = set()
        return [r for r in self if (r.problem_id, r.temperature) not in seen
                and not seen.add((r.problem_id, r.temperature))]


#: samples handed to a local backend per call (a multiple of its batch size): bounds the memory of
#: a huge plan; a run below it is one call, as before
WINDOW_SAMPLES = 1 << 18


def windows(backend: Backend, requests: RequestPlan) -> Iterator[Iterable[Any]]:
    """The plan as the backend takes it: whole and lazy for one that streams (Ray), else in
    windows of about WINDOW_SAMPLES samples cut at a multiple of its batch size (so a batch
    holds the same samples as in one call, and draws the same samples)."""
    if getattr(backend, "streams_requests", False):
        yield requests
        return
    if requests.samples <= WINDOW_SAMPLES:
        yield list(requests)  # backends index their requests
        return
    size = max(1, int(getattr(backend, "batch_size", 1) or 1))
    yield from iter_chunks(requests, max(1, WINDOW_SAMPLES // size) * size)
