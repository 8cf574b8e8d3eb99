"""maj@k, best-of-k and weighted-vote@k from answer/score histograms, on a whole k grid at once.

The inputs are the rows of a verifier summary (:mod:`ttscale.rundir.summaries`): per problem, one row
per distinct (answer, score) with ``count`` samples of which ``passed`` were passed. Nothing here
touches per-sample rows, so the cost depends on problems x distinct answers, not on samples.
The estimators are those of :mod:`ttscale.analysis.curves.selection` (same conventions: null answers
draw but never vote, ties split uniformly, correctness of an answer = its mean ``passed``):

* best-of-k: exact for every problem and k (blocks of equal score, closed form).
* maj@k: a problem with one distinct answer has the closed form
  ``correct * (1 - C(n0, k) / C(n, k))`` (n0 null samples); otherwise the exact dynamic programme
  (:func:`ttscale.analysis.curves.selection._maj_one`); from the k where a Chernoff bound puts the
  most common answer's win probability within ``BOUND_EPS`` (1e-6) of 1, that answer's
  correctness (``k_bound``, error <= 1e-6, by a Chernoff bound, see :func:`_k_certain`); below it, exact for every k of the grid up to the
  largest ``k_exact`` whose estimated work (:func:`~ttscale.analysis.curves.selection.exact_maj_work`) fits the
  budget (``exact_budget`` kernel entries per problem), and Monte Carlo above it. The Monte
  Carlo draws ``n_mc`` uniform random orderings per problem as a chain of multivariate
  hypergeometric increments between consecutive grid points (so one ordering serves every k,
  as a prefix; steps of at most three draws as single categorical draws), vectorised over
  problems and replicates; each ordering's outcome is averaged exactly over the tie-break. It
  tracks only the answers that can still tie the most common one (:func:`_contenders`: the
  rarest answers whose Chernoff bounds sum to <= ``BOUND_EPS`` draw but never vote). It is unbiased, with standard error at most ``0.5 / sqrt(n_mc)``
  per problem and k, seeded. Which problems used which is returned (``k_exact`` per problem:
  every grid k above it is Monte Carlo).
* weighted-vote@k: Monte Carlo (:func:`~ttscale.analysis.curves.selection.weighted_vote_at_k`).

:func:`selection_matrix` caches its result under ``cache_dir`` keyed by the hash of the input
rows and every parameter, so analyze and compare (and every re-run) compute each once.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ttscale.analysis.curves.estimators import log_tail_ratio
from ttscale.analysis.curves.reward_selection import best_of_k_blocks
from ttscale.analysis.curves.selection import _maj_one, exact_maj_work, weighted_vote_at_k
from ttscale.errors import InputError

METRICS = ("maj@k", "best-of-k", "weighted-vote@k")
#: kernel entries of the exact maj@k DP allowed per problem (about 0.01 s on this machine; the
#: Monte Carlo above it costs less per k than the DP's quadratic growth)
EXACT_BUDGET = 3e5
#: Monte Carlo orderings per problem (standard error <= 0.5 / sqrt(N_MC) per problem and k)
N_MC = 300
#: maj@k within this of the top answer's correctness counts as settled (see _k_certain)
BOUND_EPS = 1e-6
#: cells (problems x replicates x answers) per Monte Carlo block
_MC_CELLS = 4_000_000
#: problems per Monte Carlo block at most (blocks of like k ranges waste few columns)
_MC_BLOCK = 64


@dataclass
class SelectionMatrix:
    """Per-problem estimates on a k grid and how each was computed."""

    problems: np.ndarray  # (P,) problem ids
    ks: np.ndarray  # (K,)
    values: np.ndarray  # (P, K); NaN where k exceeds the problem's samples
    k_exact: np.ndarray  # (P,) every k <= k_exact is exact, the rest Monte Carlo (0: none exact)
    #: (P,) every k >= k_bound is the top answer's correctness, within BOUND_EPS (0: none)
    k_bound: np.ndarray | None = None


def _problem_arrays(hist: pd.DataFrame, by: str):
    """Per problem (sorted): the distinct values of column ``by`` (nulls dropped) with counts and
    passed sums, and the count of rows where ``by`` is null."""
    h = hist.groupby(["problem_id", by], sort=True, dropna=False)[["count", "passed"]].sum()
    h = h.reset_index()
    out = []
    for pid, g in h.groupby("problem_id", sort=True):
        null = g[by].isna().to_numpy()
        out.append((pid, g[by].to_numpy()[~null], g["count"].to_numpy(np.int64)[~null],
                    g["passed"].to_numpy(np.float64)[~null], int(g["count"].to_numpy()[null].sum())))
    return out


# -- maj@k -------------------------------------------------------------------------------------
def _mc_maj(ms: list[np.ndarray], wcs: list[np.ndarray], nulls: np.ndarray, ks: np.ndarray,
            n_mc: int, seed: int) -> np.ndarray:
    """Monte Carlo maj@k of several problems at once on the grid ``ks`` (all <= every n).

    ``nulls[i]``: samples of problem i that draw but never vote (unparsed, or lumped answers).
    Arrays are laid out answer-major, (A, P, R), so each answer's slice is contiguous."""
    p = len(ms)
    a = max(m.size for m in ms)
    counts = np.zeros((a + 1, p), np.int64)  # last row: samples that never vote
    wc = np.zeros((a, p))
    for i, (m, w) in enumerate(zip(ms, wcs, strict=True)):
        counts[: m.size, i], wc[: m.size, i] = m, w
    counts[a] = nulls
    dt = np.int32 if counts.sum(axis=0).max() < 2**31 else np.int64
    voters = np.flatnonzero((wc > 0).any(axis=1))  # answers that are ever (partly) correct
    rng = np.random.default_rng(seed)
    out = np.zeros((p, ks.size))
    left = np.repeat(counts[:, :, None].astype(dt), n_mc, axis=2)  # (A+1, P, R) still undrawn
    drawn = np.zeros((a, p, n_mc), dt)
    rest = np.empty((p, n_mc), dt)
    prev = 0
    cum = np.empty((p, n_mc), dt)
    for col, k in enumerate(ks.tolist()):
        left.sum(axis=0, out=rest)  # undrawn
        if k - prev <= 3:  # a few single draws: each a categorical draw by inverse CDF
            for _ in range(k - prev):
                u = (rng.random((p, n_mc)) * rest).astype(dt)  # uniform in [0, rest)
                cum[:] = 0
                for j in range(a + 1):
                    cum += left[j]
                    hit = (u < cum) & (u >= cum - left[j])
                    left[j] -= hit
                    if j < a:
                        drawn[j] += hit
                rest -= 1
        else:
            need = np.full((p, n_mc), k - prev, np.int64)
            for j in range(a):  # multivariate hypergeometric as a chain of univariate ones
                rest -= left[j]
                x = rng.hypergeometric(left[j], rest, need)
                drawn[j] += x
                left[j] -= x
                need -= x
            left[a] -= need
        prev = k
        top = drawn.max(axis=0)
        num = (drawn == top).sum(axis=0)
        val = np.zeros((p, n_mc))
        for j in voters.tolist():
            val += (drawn[j] == top) * wc[j][:, None]
        val[top == 0] = 0.0  # nothing but non-voters drawn: incorrect
        out[:, col] = (val / num).mean(axis=1)
    return out


def _contenders(m: np.ndarray, n: int, k: int) -> np.ndarray:
    """The answers a Monte Carlo from ``k`` on must track: the most common answer(s), and every
    other answer except the rarest ones whose Chernoff bounds (see :func:`_k_certain`) on
    reaching the most common answer's votes at k sum to at most BOUND_EPS. The rest cannot tie
    or win at any k' >= k but with that probability, so they draw but never vote."""
    p = m / float(n)
    gap = (np.sqrt(p.max()) - np.sqrt(p)) ** 2
    bound = np.exp(np.clip(k * np.log1p(-np.minimum(gap, 1.0 - 1e-300)), -745.0, 0.0))
    order = np.argsort(bound, kind="stable")  # least likely to reach the top first
    lump = np.cumsum(bound[order]) <= BOUND_EPS
    keep = np.ones(m.size, bool)
    keep[order[lump]] = False
    return keep


def maj_matrix(hist: pd.DataFrame, ks: np.ndarray, exact_budget: float = EXACT_BUDGET,
               n_mc: int = N_MC, seed: int = 0) -> SelectionMatrix:
    """maj@k per problem of histogram rows (problem_id, answer, count, passed); see module doc."""
    ks = np.asarray(ks, np.int64)
    per = _problem_arrays(hist, "answer")
    values = np.full((len(per), ks.size), np.nan)
    k_exact = np.zeros(len(per), np.int64)
    k_bound = np.zeros(len(per), np.int64)  # 0: none
    mc: list[tuple[int, np.ndarray]] = []  # (row, grid columns) left to Monte Carlo
    for i, (_, _, m, passed, n0) in enumerate(per):
        n = int(m.sum()) + n0
        fits = ks <= n
        wc = passed / np.maximum(m, 1)
        if m.size <= 1:  # one answer (or none): closed form
            w = float(wc[0]) if m.size else 0.0
            values[i, fits] = w * -np.expm1(log_tail_ratio(np.array([n]), np.array([n - n0]),
                                                           ks[fits]))[0] if m.size else 0.0
            k_exact[i] = n
            continue
        grid = ks[fits]
        cols = np.flatnonzero(fits)
        k_sure = _k_certain(m, n, grid)
        if k_sure <= grid.max():  # the plurality answer wins but with probability <= BOUND_EPS
            top = int(np.argmax(m))
            sure = grid >= k_sure
            values[i, cols[sure]] = wc[top]
            k_bound[i] = int(grid[sure][0])
            grid, cols = grid[~sure], cols[~sure]
            if not grid.size:
                continue
        if exact_maj_work(m, wc, int(grid.max())) <= exact_budget:
            cut = grid.size
        else:  # the longest prefix of the grid the exact DP can afford
            lo, hi = 0, grid.size
            while lo < hi:
                mid = (lo + hi + 1) // 2
                if exact_maj_work(m, wc, int(grid[mid - 1])) <= exact_budget:
                    lo = mid
                else:
                    hi = mid - 1
            cut = lo
        if cut:
            values[i, cols[:cut]] = _maj_one(m, wc, n0, grid[:cut])
            k_exact[i] = int(grid[cut - 1])
        if cut < grid.size:
            mc.append((i, cols[cut:]))
    if mc:
        _fill_mc(values, per, mc, ks, n_mc, seed)
    return SelectionMatrix(np.asarray([r[0] for r in per]), ks, np.clip(values, 0.0, 1.0), k_exact,
                           k_bound)


def _k_certain(m: np.ndarray, n: int, ks: np.ndarray) -> float:
    """The smallest k of ``ks`` from which the most common answer wins a k-subset's vote with
    probability at least 1 - BOUND_EPS (inf if none).

    For another answer b, D = 1[draw is b] - 1[draw is the top answer] has mean p_b - p_1 < 0
    (shares of all n samples, unparsed ones included), and by Hoeffding (1963, Theorem 4) a
    sum over draws without replacement is dominated in convex order by one with replacement, so
    the Chernoff bound holds: P(X_b >= X_1) <= min_l E[exp(l D)]^k = (1 - (sqrt(p_1) -
    sqrt(p_b))^2)^k. The top answer wins outright unless some b reaches it, so maj@k is within
    sum_b (1 - (sqrt(p_1) - sqrt(p_b))^2)^k of the top answer's correctness."""
    order = np.sort(m)[::-1]
    if order.size < 2 or order[0] == order[1]:
        return np.inf
    p = order / float(n)
    gap = (np.sqrt(p[0]) - np.sqrt(p[1:])) ** 2  # > 0
    logs = np.log1p(-np.minimum(gap, 1.0 - 1e-300))
    total = np.exp(np.clip(ks[:, None] * logs[None, :], -745.0, 0.0)).sum(axis=1)
    ok = np.flatnonzero(total <= BOUND_EPS)
    return float(ks[ok[0]]) if ok.size else np.inf


def _fill_mc(values: np.ndarray, per: list, mc: list[tuple[int, np.ndarray]], ks: np.ndarray,
             n_mc: int, seed: int) -> None:
    """Monte Carlo for the (row, columns) pairs of ``mc``: each problem keeps only its
    contenders from its first Monte Carlo k (:func:`_contenders`), problems sorted by their
    last and first columns and run in blocks (bounded in memory) on the union of the block's columns."""
    prob = {}
    for r, mine in mc:
        _, _, m, passed, n0 = per[r]
        n = int(m.sum()) + n0
        keep = _contenders(m, n, int(ks[mine[0]]))
        prob[r] = (m[keep], (passed / np.maximum(m, 1))[keep], n0 + int(m[~keep].sum()), n)
    mc = sorted(mc, key=lambda rc: (int(rc[1][-1]), int(rc[1][0])))  # like ranges together
    width = max(prob[r][0].size for r, _ in mc) + 1
    step = max(1, min(_MC_BLOCK, _MC_CELLS // (n_mc * width)))
    for lo in range(0, len(mc), step):
        block = mc[lo:lo + step]
        cols = np.unique(np.concatenate([c for _, c in block]))
        cols = cols[ks[cols] <= min(prob[r][3] for r, _ in block)]
        ms, wcs, nulls = ([prob[r][i] for r, _ in block] for i in range(3))
        nulls = np.asarray(nulls, np.int64)
        got = _mc_maj(ms, wcs, nulls, ks[cols], n_mc, seed + 7919 * lo)
        pos = {c: j for j, c in enumerate(cols.tolist())}
        for i, (r, mine) in enumerate(block):
            if all(c in pos for c in mine.tolist()):
                values[r, mine] = got[i, [pos[c] for c in mine.tolist()]]
            else:  # more samples than the block's smallest problem: on its own
                values[r, mine] = _mc_maj([ms[i]], [wcs[i]], nulls[i:i + 1], ks[mine], n_mc,
                                          seed + 7919 * lo + i + 1)[0]


# -- best-of-k and weighted vote ---------------------------------------------------------------
def best_matrix(hist: pd.DataFrame, ks: np.ndarray) -> SelectionMatrix:
    """best-of-k per problem of histogram rows (problem_id, score, count, passed): exact."""
    ks = np.asarray(ks, np.int64)
    per = _problem_arrays(hist, "score")
    rows = []
    for pid, score, m, passed, n0 in per:
        if n0 or not np.isfinite(score.astype(float)).all():
            raise InputError(f"best-of-k: problem {pid!r} has a sample without a finite score")
        order = np.argsort(-score.astype(float), kind="stable")
        rows.append(best_of_k_blocks(m[order], passed[order], ks))
    n = np.asarray([int(r[2].sum()) + r[4] for r in per])
    return SelectionMatrix(np.asarray([r[0] for r in per]), ks, np.vstack(rows), n)


def weighted_matrix(hist: pd.DataFrame, ks: np.ndarray, n_mc: int = 2000,
                    seed: int = 0) -> SelectionMatrix:
    """weighted-vote@k per problem (Monte Carlo) from rows (problem_id, answer, score, count, passed)."""
    ks = np.asarray(ks, np.int64)
    ids, rows = [], []
    for i, (pid, g) in enumerate(hist.groupby("problem_id", sort=True)):
        has = g["answer"].notna().to_numpy()
        codes = np.full(len(g), -1, np.int64)
        codes[has], uniq = pd.factorize(g["answer"][has], sort=True)
        cnt = g["count"].to_numpy(np.int64)
        cor = (np.bincount(codes[has], weights=g["passed"].to_numpy(np.float64)[has],
                           minlength=len(uniq))
               / np.maximum(np.bincount(codes[has], weights=cnt[has], minlength=len(uniq)), 1))
        sc = g["score"].to_numpy(np.float64)
        if not np.isfinite(sc[has]).all():
            raise InputError(f"weighted-vote@k: problem {pid!r} has an answer without a finite score")
        ids.append(pid)
        rows.append(weighted_vote_at_k(np.repeat(codes, cnt), np.repeat(np.where(has, sc, 0.0), cnt),
                                       cor, ks, n_mc, seed + i))
    return SelectionMatrix(np.asarray(ids), ks, np.vstack(rows), np.zeros(len(ids), np.int64))


# -- one entry point, cached -------------------------------------------------------------------
def _key(hist: pd.DataFrame, metric: str, ks: np.ndarray, params: dict) -> str:
    h = hashlib.sha256()
    h.update(json.dumps({"metric": metric, "ks": ks.tolist(), **params, "v": 2}).encode())
    h.update(pd.util.hash_pandas_object(hist[["problem_id", "answer", "score", "count", "passed"]],
                                        index=False).to_numpy().tobytes())
    return h.hexdigest()[:24]


def selection_matrix(hist: pd.DataFrame, metric: str, ks: np.ndarray, *,
                     cache_dir: str | Path | None = None, n_mc: int | None = None, seed: int = 0,
                     exact_budget: float = EXACT_BUDGET) -> SelectionMatrix:
    """``metric`` per problem of histogram rows (columns problem_id, answer, score, count,
    passed; one group: rows are summed per problem) on the grid ``ks``, from the cache when the
    same rows and parameters were computed before."""
    if metric not in METRICS:
        raise InputError(f"metric {metric!r} is not one of {', '.join(METRICS)}")
    ks = np.unique(np.asarray(ks, np.int64))
    hist = hist.sort_values(["problem_id", "answer", "score"], na_position="last",
                            kind="stable").reset_index(drop=True)
    n_mc = n_mc if n_mc is not None else (N_MC if metric == "maj@k" else 2000)
    params = {"n_mc": n_mc, "seed": seed, "budget": exact_budget if metric == "maj@k" else None}
    path = Path(cache_dir) / f"{_key(hist, metric, ks, params)}.npz" if cache_dir else None
    if path is not None and path.is_file():
        try:
            with np.load(path, allow_pickle=False) as z:
                return SelectionMatrix(z["problems"], z["ks"], z["values"], z["k_exact"],
                                       z["k_bound"])
        except (OSError, ValueError, KeyError):
            pass
    if metric == "maj@k":
        res = maj_matrix(hist, ks, exact_budget, n_mc, seed)
    elif metric == "best-of-k":
        res = best_matrix(hist, ks)
    else:
        res = weighted_matrix(hist, ks, n_mc, seed)
    if path is not None:
        import io

        from ttscale.rundir.store import atomic_write_bytes

        buf = io.BytesIO()
        k_bound = res.k_bound if res.k_bound is not None else np.zeros_like(res.k_exact)
        np.savez(buf, problems=res.problems.astype(str), ks=res.ks, values=res.values,
                 k_exact=res.k_exact, k_bound=k_bound)
        try:
            atomic_write_bytes(path, buf.getvalue())
        except OSError:
            pass
    return res
