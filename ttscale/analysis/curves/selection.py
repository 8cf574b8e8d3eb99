"""Selection estimators from all n samples: maj@k, best-of-k, reward-weighted vote@k.

Each one answers "if only k of the n samples had been drawn (a uniform k-subset, without
replacement), how often would the selected answer be correct?", averaged over every k-subset
rather than read off the first k samples (which is biased by order and noisy).

Conventions shared by the three:

* Answers are compared as given (already normalised by the verifier). A sample whose answer is
  null (unparsed) still uses up one of the k draws but never votes: it cannot win. When every one
  of the k drawn samples is null, the selection fails (counts as incorrect).
* The correctness of an answer is the mean of ``passed`` over the samples that gave it (1 or 0
  when the verifier is consistent): selecting an answer returns one of its samples at random.
* Ties are broken uniformly at random among the tied answers (or tied scores), and the estimate
  is the expectation over that choice too.

maj@k and best-of-k are exact; the reward-weighted vote is estimated by Monte Carlo over random
k-subsets (unbiased, seeded). best-of-k and the weighted vote live in
:mod:`ttscale.analysis.curves.reward_selection` and are re-exported here.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import pandas as pd
from numpy.lib.stride_tricks import as_strided

from ttscale.analysis.curves.estimators import _check_ks
from ttscale.analysis.curves.reward_selection import (  # noqa: F401 - best-of-k and the weighted vote live there
    _CHUNK,
    _answer_buckets,
    _check_frame,
    best_of_k,
    best_of_k_from_samples,
    weighted_vote_at_k,
    weighted_vote_at_k_from_samples,
)
from ttscale.errors import InputError


def _log_comb_table(n: int) -> np.ndarray:
    from scipy.special import gammaln

    return gammaln(np.arange(n + 2, dtype=np.float64) + 1.0)  # lg[i] = log(i!)


def _lc_row(lg: np.ndarray, a: int, length: int) -> np.ndarray:
    """log C(a, y) for y = 0 .. length-1 (-inf where y > a), by slicing the table."""
    out = np.full(length, -np.inf)
    v = min(length, a + 1)
    out[:v] = lg[a] - lg[:v] - lg[a - v + 1 : a + 1][::-1]
    return out


@lru_cache(maxsize=256)
def _gauss01(nodes: int) -> tuple[np.ndarray, np.ndarray]:
    """Gauss-Legendre nodes and weights on [0, 1]: exact for polynomials of degree < 2*nodes."""
    t, w = np.polynomial.legendre.leggauss(nodes)
    return (t + 1.0) / 2.0, w / 2.0


def _windows(a: np.ndarray, d: int) -> np.ndarray:
    """View ``v[..., x, t] = a[..., x + t]`` over the last axis (a sliding window of length d)."""
    st = a.strides[-1]
    shape = (*a.shape[:-1], a.shape[-1] - d + 1, d)
    return as_strided(a, shape=shape, strides=(*a.strides[:-1], st, st), writeable=False)


def _log_comb_rows(lg: np.ndarray, tot: np.ndarray, width: int) -> np.ndarray:
    """log C(tot[r], i) for i = 0 .. width-1: shape (rows, width), -inf where i > tot[r]."""
    i = np.arange(width)
    ok = i[None, :] <= tot[:, None]
    diff = np.where(ok, tot[:, None] - i[None, :], 0)
    return np.where(ok, lg[tot][:, None] - lg[i][None, :] - lg[diff], -np.inf)


def _merge(q: np.ndarray, sizes: np.ndarray, m: int, js: np.ndarray, tie_w: np.ndarray,
           lg: np.ndarray) -> np.ndarray:
    """Add one answer of m samples that must not exceed j draws (j draws: a tie, weight w).

    Row r of ``q[r, node, x]`` is E[w**T ; constraints] given x draws from a pool of ``sizes[r]``
    samples, for the threshold ``js[r]``. Drawing x from pool + answer puts y ~
    Hypergeometric(x; m, size) draws on the answer, so the new
    ``q[r, :, x] = sum_y C(m, y) C(size, x-y) / C(size+m, x) * g(y) * q[r, :, x-y]`` with g = 1
    below j, w at j and 0 above. Window index t = d-1-y.
    """
    rows, nodes, width = q.shape
    d = int(min(js.max(), width - 1)) + 1
    lcs = np.concatenate([np.full((rows, d - 1), -np.inf), _log_comb_rows(lg, sizes, width)], axis=1)
    lcd = _log_comb_rows(lg, sizes + m, width)
    with np.errstate(invalid="ignore"):
        kern = np.exp(_lc_row(lg, m, d)[::-1] + _windows(lcs, d) - lcd[:, :, None])
    kern[~np.isfinite(lcd)] = 0.0  # more draws than the pool holds: impossible
    tie_t = d - 1 - js  # the window column holding y = j; < 0 when j draws do not fit
    y = d - 1 - np.arange(d)
    win = _windows(np.concatenate([np.zeros((rows, nodes, d - 1)), q], axis=2), d)
    plain = (y[None, :] < js[:, None]).astype(np.float64)
    out = np.einsum("rnxt,rxt->rnx", win, kern * plain[:, None, :], optimize=False)
    r = np.flatnonzero(tie_t >= 0)
    if r.size:
        tie_col = kern[r, :, tie_t[r]]  # (ties, width)
        out[r] += tie_w[None, :, None] * tie_col[:, None, :] * win[r, :, :, tie_t[r]]
    return out


def _maj_one(m: np.ndarray, wc: np.ndarray, m0: int, ks: np.ndarray) -> np.ndarray:
    """Exact maj@k of one problem: answer multiplicities m, correctness wc, m0 null samples.

    For each correct answer a and each count j it may be drawn, the states of all j are advanced
    together (rows of one array), one other answer at a time, largest first: an answer with
    fewer than j samples cannot reach j and simply belongs to the free pool of row j.
    """
    from scipy.stats import hypergeom

    n = int(m.sum()) + int(m0)
    out = np.full(ks.size, np.nan)
    fits = ks <= n
    out[fits] = 0.0
    if not fits.any():
        return out
    kmax = int(ks[fits].max())
    lg = _log_comb_table(n)
    kf = ks[fits]
    log_total = lg[n] - lg[kf] - lg[n - kf]
    acc = np.zeros(kf.size)
    for a in np.flatnonzero((wc > 0) & (m > 0)):
        ma = int(m[a])
        others = np.sort(np.delete(m, a))[::-1]
        rest = n - ma
        top = int(others[0]) if others.size else 0
        # drawn more than any other answer could be: a wins outright
        acc += wc[a] * hypergeom.sf(top, n, ma, kf)
        jmax = min(ma, top, kmax)
        if jmax < 1:
            continue
        js = np.arange(1, jmax + 1)
        bound = (others[None, :] >= js[:, None]).sum(axis=1)
        free = rest - (others[None, :] * (others[None, :] >= js[:, None])).sum(axis=1)
        # E[1/(1+T)] = integral_0^1 E[w**T] dw, exact by Gauss-Legendre for degree <= ties
        nodes = np.minimum(bound, (kmax - js) // js) // 2 + 1
        rem = np.zeros((jmax, kmax))
        lo = 0
        while lo < jmax:
            width = kmax - int(js[lo]) + 1
            hi = lo + 1
            while (hi < jmax and nodes[hi] == nodes[lo]
                   and (hi + 1 - lo) * width * (js[hi] + 1) * nodes[lo] <= _CHUNK):
                hi += 1
            tie_w, wt = _gauss01(int(nodes[lo]))
            rows = js[lo:hi]
            fill = np.arange(width)[None, :] <= free[lo:hi, None]
            q = np.repeat(fill[:, None, :].astype(np.float64), tie_w.size, axis=1)
            sizes = free[lo:hi].copy()
            for mb in others.tolist():
                act = int(np.searchsorted(rows, mb, side="right"))  # rows with j <= mb
                if act == 0:
                    break
                q[:act] = _merge(q[:act], sizes[:act], mb, rows[:act], tie_w, lg)
                sizes[:act] += mb
            rem[lo:hi, :width] = np.einsum("n,rnx->rx", wt, q)
            lo = hi
        # P(a drawn j times) * E[1/(1+T); all others <= j | k-j draws among the others]
        x = kf[None, :] - js[:, None]
        ok = (x >= 0) & (x <= rest)
        xs = np.where(ok, x, 0)
        logh = lg[ma] - lg[js] - lg[ma - js]
        logh = logh[:, None] + lg[rest] - lg[xs] - lg[np.where(ok, rest - xs, 0)] - log_total
        hit = np.where(ok, np.exp(np.where(ok, logh, -np.inf)) * rem[js[:, None] - 1, xs], 0.0)
        acc += wc[a] * hit.sum(axis=0)
    out[fits] = np.clip(acc, 0.0, 1.0)
    return out


def exact_maj_work(m: np.ndarray, wc: np.ndarray, kmax: int) -> float:
    """Rough count of kernel entries the exact maj@k of one problem evaluates."""
    work = 0.0
    ms = np.minimum(np.asarray(m, np.int64), kmax)
    for a in np.flatnonzero((np.asarray(wc) > 0) & (ms > 0)):
        lim = np.minimum(np.delete(ms, a), ms[a]).astype(np.float64)
        work += float(np.sum(kmax * lim * (lim + 1) / 2.0)) + kmax * float(ms[a])
    return work


#: above this many kernel entries per problem, method="auto" switches maj@k to Monte Carlo
EXACT_BUDGET = 3e7


def maj_at_k(
    answer_counts: list[np.ndarray],
    correct: list[np.ndarray],
    ks: np.ndarray | int,
    num_null: np.ndarray | None = None,
    method: str = "auto",
    n_mc: int = 2000,
    seed: int = 0,
) -> np.ndarray:
    """Exact majority-vote accuracy maj@k per problem, shape (P, K); NaN where k > n.

    Problem i has distinct (non-null) answers with multiplicities ``answer_counts[i]`` and
    correctness ``correct[i]`` (bool, or a fraction in [0, 1]: the mean ``passed`` of that
    answer's samples), plus ``num_null[i]`` samples without an answer (default 0). For a uniform
    k-subset of the n samples, the plurality answer among the non-null draws wins, ties broken
    uniformly at random; null draws never win, and an all-null subset counts as incorrect.

    Exact: conditioned on a correct answer a being drawn j times, every other answer must be
    drawn at most j times, and with T others at exactly j, a wins with probability 1/(1+T).
    Those probabilities come from a dynamic programme over answers with hypergeometric
    convolutions (each state a probability in [0, 1], no overflow), and E[1/(1+T)] as the
    integral of E[w**T] over w in [0, 1], done exactly by Gauss-Legendre quadrature. All k are
    computed at once. The cost grows like kmax * sum_b min(m_a, m_b)**2 over correct answers a
    and other answers b: about 0.02 s a problem at n = 100, 0.07 s at n = 256, 1 s at
    n = kmax = 1,000 (answers of 370 and 210 samples) and 12 s at n = 2,000 on a 2-core machine.

    ``method``: "exact"; "mc" (the Monte Carlo of :func:`weighted_vote_at_k` with every score 1,
    unbiased, ``n_mc`` random k-subsets per k, seeded by ``seed + problem index``); or "auto"
    (default): exact unless a problem's estimated work exceeds ``EXACT_BUDGET`` kernel entries
    (about n > 1,000 with one or two dominant answers), then Monte Carlo for that problem.
    """
    where = "maj_at_k"
    kk = _check_ks(ks, where)
    if len(answer_counts) != len(correct):
        raise InputError(f"{where}: fields 'answer_counts' and 'correct' differ in length")
    nulls = np.zeros(len(answer_counts), np.int64) if num_null is None else np.asarray(num_null)
    if method not in ("auto", "exact", "mc"):
        raise InputError(f"{where}: field 'method' must be auto, exact or mc, got {method!r}")
    if nulls.shape != (len(answer_counts),) or (nulls < 0).any():
        raise InputError(f"{where}: field 'num_null' must be one count >= 0 per problem")
    out = np.full((len(answer_counts), kk.size), np.nan)
    for i, (m, wc) in enumerate(zip(answer_counts, correct, strict=True)):
        m = np.asarray(m)
        wc = np.asarray(wc, dtype=np.float64)
        if m.shape != wc.shape or m.ndim != 1:
            raise InputError(f"{where}: problem {i}: 'answer_counts' and 'correct' differ in shape")
        if (m < 1).any() or (m != np.round(m)).any():
            raise InputError(f"{where}: problem {i}: field 'answer_counts' must be whole numbers >= 1")
        if not ((wc >= 0) & (wc <= 1)).all():
            raise InputError(f"{where}: problem {i}: field 'correct' must lie in [0, 1]")
        if m.sum() + nulls[i] < 1:
            raise InputError(f"{where}: problem {i}: no samples")
        m = m.astype(np.int64)
        n = int(m.sum() + nulls[i])
        kmax = int(min(kk.max(), n))
        if method == "exact" or (method == "auto" and exact_maj_work(m, wc, kmax) <= EXACT_BUDGET):
            out[i] = _maj_one(m, wc, int(nulls[i]), kk)
        else:
            labels = np.r_[np.repeat(np.arange(m.size), m), np.full(int(nulls[i]), -1)]
            out[i] = weighted_vote_at_k(labels, np.ones(labels.size), wc, kk, n_mc, seed + i)
    return out


def maj_at_k_from_samples(
    df: pd.DataFrame, ks: np.ndarray | int, method: str = "auto", n_mc: int = 2000, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """maj@k from per-sample rows (problem_id, answer, passed): (problem ids, (P, K) matrix).

    Null answers (None/NaN) are samples without a vote; see :func:`maj_at_k` for the rules.
    """
    _check_frame(df, ["problem_id", "answer", "passed"], "maj_at_k_from_samples")
    ids, counts, correct, nulls = [], [], [], []
    for pid, g in df.groupby("problem_id", sort=True):
        m, wc, m0 = _answer_buckets(g)
        ids.append(pid)
        counts.append(m)
        correct.append(wc)
        nulls.append(m0)
    nulls_arr = np.asarray(nulls, np.int64)
    return np.asarray(ids), maj_at_k(counts, correct, ks, nulls_arr, method, n_mc, seed)
