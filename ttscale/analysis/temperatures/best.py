"""Coverage when samples drawn at several temperatures are pooled, and the best budget split.

Given per-problem counts at T temperatures (``n[:, t]`` samples, ``c[:, t]`` correct), taking
``k_t`` samples at temperature t (drawn without replacement from that temperature's n_t, the
temperatures independent) misses every right answer with probability

    prod_t C(n_t - c_t, k_t) / C(n_t, k_t)

so the unbiased pooled coverage is the mean over problems of one minus that product. The best
split of a total budget k across temperatures is found exactly, by branch and bound (the default;
:func:`best_split` ``method="exact"``), by enumerating every composition (``"exhaustive"``, for
checking), or by a heuristic (``"greedy"``: one sample at a time to the temperature with the
largest gain, then block moves; it misses the optimum in about 1 of 250 random cases and is
labelled so in :class:`Split`).

Why the bound is exact: each problem's log miss probability ``log C(n-c, a)/C(n, a)`` is concave
in a (its increments ``log((n-c-i)/(n-i))`` fall with i), so a sum of them over the temperatures
left is concave in the allocation, and its minimum over ``{sum a = R, 0 <= a <= cap}`` is at a
vertex (every temperature at 0 or its cap but one). Letting each problem pick its own best vertex
gives a lower bound on the summed miss probability of any completion of a partial split; a
branch is dropped only when that bound cannot beat the best split found, so the search returns
the optimum (ties to the first found).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from ttscale.errors import InputError


def _check(n: Any, c: Any, source: str) -> tuple[np.ndarray, np.ndarray]:
    n_a = np.asarray(n)
    c_a = np.asarray(c)
    if n_a.ndim == 1:
        n_a, c_a = n_a[:, None], c_a[:, None] if c_a.ndim == 1 else c_a
    if n_a.ndim != 2 or n_a.shape != c_a.shape or n_a.size == 0:
        raise InputError(f"{source}: fields 'num_samples' and 'num_correct' must be (problems, temperatures) arrays of one shape")
    for name, arr in (("num_samples", n_a), ("num_correct", c_a)):
        a = arr.astype(float)
        if not np.all(np.isfinite(a)) or np.any(a != np.round(a)) or (a < 0).any():
            raise InputError(f"{source}: field '{name}' must hold whole numbers >= 0")
    n_i, c_i = n_a.astype(np.int64), c_a.astype(np.int64)
    if (n_i == 0).any() or (c_i > n_i).any():
        raise InputError(f"{source}: field 'num_correct' must be <= 'num_samples' > 0 at every temperature")
    return n_i, c_i


def _log_miss_table(n: np.ndarray, c: np.ndarray, k_max: int) -> np.ndarray:
    """log C(n-c, k) / C(n, k) for k = 0..k_max, shape (P, k_max + 1); -inf when k > n - c.

    As the running sum of log((n-c-j) / (n-j)) over j < k: one log a cell."""
    n_f, c_f = n.astype(float)[:, None], c.astype(float)[:, None]
    j = np.arange(int(k_max), dtype=float)[None, :]
    ok = j < n_f - c_f  # a miss of j + 1 draws is still possible
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(ok, np.log1p(-c_f / np.where(ok, n_f - j, 1.0)), -np.inf)
    out = np.zeros((n.shape[0], int(k_max) + 1))
    np.cumsum(terms, axis=1, out=out[:, 1:])
    return out


def pooled_coverage(n: Any, c: Any, allocation: Any, source: str = "counts") -> np.ndarray:
    """Unbiased coverage when ``allocation[..., t]`` samples are taken at temperature t.

    ``n``, ``c``: (problems, temperatures). ``allocation``: (T,) or (S, T) -> returns (S,).
    """
    n_i, c_i = _check(n, c, source)
    alloc = np.atleast_2d(np.asarray(allocation))
    if alloc.shape[-1] != n_i.shape[1] or np.any(alloc != np.round(alloc)) or (alloc < 0).any():
        raise InputError(f"{source}: field 'allocation' must hold {n_i.shape[1]} whole numbers >= 0 per row")
    alloc = alloc.astype(np.int64)
    n_min = n_i.min(axis=0)
    if (alloc > n_min).any():
        t = int(np.flatnonzero((alloc > n_min).any(axis=0))[0])
        raise InputError(f"{source}: field 'allocation': {int(alloc[:, t].max())} samples at temperature #{t} exceed the {int(n_min[t])} available")
    log_miss = np.zeros((alloc.shape[0], n_i.shape[0]))
    for t in range(n_i.shape[1]):
        table = _log_miss_table(n_i[:, t], c_i[:, t], int(alloc[:, t].max()))
        log_miss += table[:, alloc[:, t]].T
    return 1.0 - np.exp(log_miss).mean(axis=1)


@dataclass(frozen=True)
class Split:
    """A split of a sampling budget across temperatures and the pooled coverage it reaches.

    ``exact``: whether ``allocation`` is proven optimal (False for the greedy heuristic, or when
    the exact search hit its node limit and returns the best split it found).
    """

    allocation: tuple[int, ...]
    coverage: float
    exact: bool = True
    method: str = "exact"


def _compositions(total: int, parts: int, caps: np.ndarray) -> np.ndarray:
    rows = []
    for head in itertools.product(*(range(min(total, int(cap)) + 1) for cap in caps[:-1])):
        rest = total - sum(head)
        if 0 <= rest <= caps[-1]:
            rows.append((*head, rest))
    return np.array(rows, dtype=np.int64).reshape(-1, parts)


def best_split(n: Any, c: Any, total: int, method: str = "auto", source: str = "counts",
               max_nodes: int = 200_000) -> Split:
    """The split of ``total`` samples across temperatures with the highest pooled coverage.

    ``method``: "exact" (two temperatures: every split, vectorised; more: branch and bound, see
    the module docstring; proven optimal unless ``max_nodes`` is hit, which ``Split.exact``
    reports), "exhaustive" (every composition; small budgets only), "greedy" (a heuristic: add
    one sample at a time where the gain is largest, then move blocks of samples between
    temperatures while that helps), or "auto" (= exact). Ties go to the first allocation found
    (lexicographic order for exhaustive and for exact with one or two temperatures).
    """
    n_i, c_i = _check(n, c, source)
    temps = n_i.shape[1]
    caps = n_i.min(axis=0)
    if total < 0 or total > caps.sum():
        raise InputError(f"{source}: field 'total' must be in [0, {int(caps.sum())}], got {total}")
    if method == "auto":
        method = "exact"
    if method == "exhaustive":
        allocs = _compositions(int(total), temps, caps)
        cov = pooled_coverage(n_i, c_i, allocs, source)
        best = int(np.argmax(cov))
        return Split(tuple(int(x) for x in allocs[best]), float(cov[best]), True, "exhaustive")
    if method == "exact":
        logs = [_log_miss_table(n_i[:, t], c_i[:, t], int(min(caps[t], total))) for t in range(temps)]
        alloc, proven = split_from_logs(logs, caps, int(total), max_nodes)
        cov = coverage_from_logs(logs, alloc)
        return Split(alloc, cov, proven, "exact")
    if method != "greedy":
        raise InputError(f"{source}: field 'method' {method!r} is not one of auto, exact, exhaustive, greedy")
    logs = [_log_miss_table(n_i[:, t], c_i[:, t], int(min(caps[t], total))) for t in range(temps)]
    alloc = _greedy(logs, np.minimum(caps, total), int(total))
    cov = coverage_from_logs(logs, alloc)
    return Split(tuple(int(x) for x in alloc), cov, False, "greedy")


def coverage_from_logs(logs: list[np.ndarray], alloc: Any) -> float:
    """Pooled coverage of the allocation ``alloc`` from per-temperature log miss tables."""
    return 1.0 - float(np.exp(sum(lg[:, int(a)] for lg, a in zip(logs, alloc, strict=True))).mean())


#: cells (problems x allocations) evaluated at once by the two-temperature enumeration
_ENUM_CELLS = 4_000_000


def split_from_logs(logs: list[np.ndarray], caps: np.ndarray, total: int,
                    max_nodes: int = 200_000) -> tuple[tuple[int, ...], bool]:
    """(best allocation of ``total``, proven optimal) from per-temperature log miss tables
    (``logs[t][p, a]`` = log C(n-c, a) / C(n, a), at least ``min(cap_t, total) + 1`` columns).

    One or two temperatures: every split is evaluated (vectorised, in blocks), the first best in
    lexicographic order wins, as with ``method="exhaustive"``. More: the branch and bound of
    :mod:`ttscale.analysis.temperatures.split`, started from the greedy split."""
    from ttscale.analysis.temperatures.split import exact_split

    temps = len(logs)
    caps_eff = np.minimum(np.asarray(caps, np.int64), int(total))
    if temps == 1:
        return (int(total),), True
    if temps == 2:
        lo, hi = max(0, total - int(caps_eff[1])), min(total, int(caps_eff[0]))
        step = max(1, _ENUM_CELLS // max(logs[0].shape[0], 1))
        best, best_a = np.inf, lo
        for start in range(lo, hi + 1, step):
            a = np.arange(start, min(hi, start + step - 1) + 1)
            miss = np.exp(logs[0][:, a] + logs[1][:, total - a]).sum(axis=0)
            i = int(np.argmin(miss))
            if miss[i] < best:
                best, best_a = float(miss[i]), int(a[i])
        return (best_a, int(total - best_a)), True
    start = _greedy(logs, caps_eff, int(total))
    tables = [np.exp(lg[:, : int(caps_eff[t]) + 1]) for t, lg in enumerate(logs)]
    return exact_split(tables, caps_eff, int(total), start, max_nodes)


def _greedy(logs: list[np.ndarray], caps: np.ndarray, total: int) -> np.ndarray:
    """The greedy split (one sample at a time where the gain is largest, then block moves)."""
    temps = len(logs)
    alloc = np.zeros(temps, dtype=np.int64)

    def log_miss(a: np.ndarray) -> np.ndarray:
        return sum(logs[t][:, a[t]] for t in range(temps))

    for _ in range(int(total)):
        best_t, best_cov = -1, -np.inf
        for t in range(temps):
            if alloc[t] >= caps[t]:
                continue
            trial = alloc.copy()
            trial[t] += 1
            cov = 1.0 - float(np.exp(log_miss(trial)).mean())
            if cov > best_cov:
                best_t, best_cov = t, cov
        alloc[best_t] += 1
    # local search: move blocks of samples between temperatures while coverage improves (greedy
    # alone can stop short: sampling without replacement is not exactly diminishing-returns)
    current = 1.0 - float(np.exp(log_miss(alloc)).mean())
    improved = True
    while improved:
        improved = False
        for src, dst in itertools.permutations(range(temps), 2):
            step = max(int(alloc[src]), 1)
            while step >= 1:
                if alloc[src] >= step and alloc[dst] + step <= caps[dst]:
                    trial = alloc.copy()
                    trial[src] -= step
                    trial[dst] += step
                    cov = 1.0 - float(np.exp(log_miss(trial)).mean())
                    if cov > current + 1e-15:
                        alloc, current, improved = trial, cov, True
                        continue
                step //= 2
    return alloc


def counts_by_temperature(
    df: pd.DataFrame, temperature_col: str = "temperature", source: str = "counts"
) -> tuple[np.ndarray, np.ndarray, list[float]]:
    """A counts table with a temperature column -> (n, c) of shape (problems, temperatures).

    Every problem must have counts at every temperature (InputError names the first gap).
    """
    for col in ("problem", "num_samples", "num_correct", temperature_col):
        if col not in df.columns:
            raise InputError(f"{source}: missing column '{col}'")
    temps = pd.to_numeric(df[temperature_col], errors="coerce")
    bad = temps.isna() | ~np.isfinite(temps.astype(float)) | (temps < 0)
    if bad.any():
        value = df[temperature_col][bad].iloc[0]
        raise InputError(f"{source}: field '{temperature_col}': {value!r} is not a temperature "
                         "(a finite number >= 0)")
    df = df.assign(**{temperature_col: temps.astype(float)})
    n_t = df.pivot_table(index="problem", columns=temperature_col, values="num_samples", aggfunc="sum")
    c_t = df.pivot_table(index="problem", columns=temperature_col, values="num_correct", aggfunc="sum")
    if n_t.isna().any().any():
        prob, temp = next((p, t) for p in n_t.index for t in n_t.columns if pd.isna(n_t.loc[p, t]))
        raise InputError(f"{source}: field '{temperature_col}': problem {prob!r} has no counts at {temp}")
    return n_t.to_numpy(np.int64), c_t.to_numpy(np.int64), [float(t) for t in n_t.columns]
