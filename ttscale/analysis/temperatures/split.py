"""The exact best split of a sampling budget over temperatures: branch and bound.

Minimises ``sum_p prod_t M_t[p, a_t]`` over ``sum_t a_t = K``, ``0 <= a_t <= cap_t``, where
``M_t[p, a]`` is problem p's chance to miss with a samples at temperature t (see
:mod:`ttscale.analysis.temperatures.best` for why the bound below is valid: each ``log M_t[p, .]`` is
concave, so for the temperatures not yet assigned the per-problem minimum over the allocations
of the remaining budget sits at a vertex of the capped simplex).

Temperatures are assigned in order; the last two are searched in one vectorised step; a branch
is dropped when its lower bound is not below the best value found less a tolerance (1e-12
relative), so the result is optimal up to floating-point ties.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import numpy as np


def _vertex_bound(tables: Sequence[np.ndarray], caps: np.ndarray, temps: list[int], total: int) -> np.ndarray:
    """(P, total + 1): per problem, the least miss product over vertices for each budget R."""
    num_p = tables[0].shape[0]
    out = np.full((num_p, total + 1), np.inf)
    budgets = np.arange(total + 1)
    for free in temps:
        others = [t for t in temps if t != free]
        for size in range(len(others) + 1):
            for full in itertools.combinations(others, size):
                base = np.ones(num_p)
                for u in full:
                    base = base * tables[u][:, caps[u]]
                a_free = budgets - int(sum(caps[u] for u in full))
                ok = (a_free >= 0) & (a_free <= caps[free])
                if not ok.any():
                    continue
                vals = base[:, None] * tables[free][:, a_free[ok]]
                out[:, ok] = np.minimum(out[:, ok], vals)
    return out


def exact_split(
    tables: Sequence[np.ndarray], caps: Sequence[int], total: int,
    start: Sequence[int], max_nodes: int = 200_000,
) -> tuple[tuple[int, ...], bool]:
    """(best allocation, proven optimal). ``tables[t]``: (P, cap_t + 1) miss probabilities;
    ``start``: a feasible allocation (the incumbent to beat, e.g. the greedy split)."""
    caps_a = np.asarray(caps, dtype=np.int64)
    temps = len(tables)
    num_p = tables[0].shape[0]

    def value(alloc: Sequence[int]) -> float:
        prod = np.ones(num_p)
        for t, a in enumerate(alloc):
            prod = prod * tables[t][:, int(a)]
        return float(prod.sum())

    best = [tuple(int(a) for a in start), value(start)]
    if temps == 1:
        return (int(total),), True
    tol = 1e-12 * max(best[1], 1e-300)
    bounds = {j: _vertex_bound(tables, caps_a, list(range(j, temps)), total) for j in range(1, temps - 1)}
    suffix_cap = np.concatenate([np.cumsum(caps_a[::-1])[::-1], [0]])
    nodes = [0]
    complete = [True]

    def last_two(j: int, rest: int, prefix: np.ndarray, head: tuple[int, ...]) -> None:
        lo, hi = max(0, rest - int(caps_a[j + 1])), min(rest, int(caps_a[j]))
        if lo > hi:
            return
        a = np.arange(lo, hi + 1)
        vals = prefix @ (tables[j][:, a] * tables[j + 1][:, rest - a])
        i = int(np.argmin(vals))
        if vals[i] < best[1] - tol:
            best[0], best[1] = (*head, int(a[i]), int(rest - a[i])), float(vals[i])

    def search(j: int, rest: int, prefix: np.ndarray, head: tuple[int, ...]) -> None:
        if j == temps - 2:
            last_two(j, rest, prefix, head)
            return
        nodes[0] += 1
        if nodes[0] > max_nodes:
            complete[0] = False
            return
        lo, hi = max(0, rest - int(suffix_cap[j + 1])), min(rest, int(caps_a[j]))
        if lo > hi:
            return
        a = np.arange(lo, hi + 1)
        lower = prefix @ (tables[j][:, a] * bounds[j + 1][:, rest - a])
        for i in np.argsort(lower, kind="stable"):
            if lower[i] >= best[1] - tol:
                break
            search(j + 1, rest - int(a[i]), prefix * tables[j][:, a[i]], (*head, int(a[i])))
            if not complete[0]:
                return

    search(0, int(total), np.ones(num_p), ())
    return tuple(int(x) for x in best[0]), complete[0]
