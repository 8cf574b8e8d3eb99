"""Reward-based selection from all n samples: best-of-k (exact) and reward-weighted vote@k.

The conventions are those of :mod:`ttscale.analysis.curves.selection` (which holds maj@k and re-exports
these): every k-subset of the n samples averaged over, null answers drawn but never voting, ties
broken uniformly at random. best-of-k is exact; the weighted vote (also maj@k's Monte Carlo
fallback, with unit scores) is estimated over random k-subsets (unbiased, seeded).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ttscale.analysis.curves.estimators import _check_ks, log_tail_ratio
from ttscale.errors import InputError

#: samples per Monte Carlo batch (rows x n permutation matrix)
_CHUNK = 2_000_000


def _check_frame(df: pd.DataFrame, needed: list[str], where: str) -> None:
    missing = [c for c in needed if c not in df.columns]
    if missing:
        raise InputError(f"{where}: missing column '{missing[0]}' (need {', '.join(needed)})")
    if len(df) == 0:
        raise InputError(f"{where}: no sample rows")


def _answer_buckets(g: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, int]:
    """(multiplicities, correctness, number of null answers) of one problem's samples."""
    has = g["answer"].notna().to_numpy()
    passed = g["passed"].to_numpy(dtype=np.float64)
    if not has.any():
        return np.zeros(0, np.int64), np.zeros(0), int((~has).sum())
    codes, _ = pd.factorize(g["answer"][has], sort=True)
    m = np.bincount(codes)
    wc = np.bincount(codes, weights=passed[has]) / m
    return m.astype(np.int64), wc, int((~has).sum())


def best_of_k(scores: np.ndarray, correct: np.ndarray, ks: np.ndarray | int) -> np.ndarray:
    """Exact best-of-k (reward-ranked) accuracy of one problem, shape (K,); NaN where k > n.

    The sample with the highest score among a uniform k-subset is selected; ties in score are
    broken uniformly at random. Sort the samples by score, best first, into blocks of equal score
    starting at rank s_b. The subset's best lies in block b or later with probability
    h(s_b) = C(n - s_b, k) / C(n, k), so block b holds the best with probability
    h(s_b) - h(s_{b+1}), and by symmetry within a block the chosen sample is then uniform over the
    block: best-of-k = sum_b mean_b (h(s_b) - h(s_{b+1})) (for distinct scores this is
    sum_r C(n-1-r, k-1)/C(n, k) correct_r).
    """
    where = "best_of_k"
    kk = _check_ks(ks, where)
    sc = np.asarray(scores, dtype=np.float64).ravel()
    cor = np.asarray(correct, dtype=np.float64).ravel()
    if sc.shape != cor.shape or sc.size == 0:
        raise InputError(f"{where}: fields 'scores' and 'correct' must be equally long and non-empty")
    if not np.isfinite(sc).all():
        raise InputError(f"{where}: field 'scores' holds a NaN or infinite score")
    order = np.argsort(-sc, kind="stable")
    sc, cor = sc[order], cor[order]
    starts = np.flatnonzero(np.r_[True, sc[1:] != sc[:-1]])
    return best_of_k_blocks(np.diff(np.r_[starts, sc.size]), np.add.reduceat(cor, starts), kk)


def best_of_k_blocks(sizes: np.ndarray, passed: np.ndarray, ks: np.ndarray) -> np.ndarray:
    """best-of-k of one problem from its blocks of equal score, best score first: ``sizes[b]``
    samples of which ``passed[b]`` are correct (see :func:`best_of_k`); NaN where k > n."""
    sizes = np.asarray(sizes, dtype=np.int64)
    n = int(sizes.sum())
    starts = np.r_[0, np.cumsum(sizes)[:-1]]
    means = np.asarray(passed, dtype=np.float64) / sizes
    # summation by parts: sum_b mean_b (h(s_b) - h(s_{b+1})) with h(0) = 1 and h(n) = 0
    jumps = np.diff(means)
    out = np.full(ks.size, means[0])
    keep = jumps != 0
    if keep.any():
        h = np.exp(log_tail_ratio(np.full(keep.sum(), n), starts[1:][keep], ks))
        out = out + jumps[keep] @ np.nan_to_num(h, nan=0.0)
    out[ks > n] = np.nan
    return np.clip(out, 0.0, 1.0)


def best_of_k_from_samples(df: pd.DataFrame, ks: np.ndarray | int) -> tuple[np.ndarray, np.ndarray]:
    """best-of-k from per-sample rows (problem_id, score, passed): (problem ids, (P, K))."""
    _check_frame(df, ["problem_id", "score", "passed"], "best_of_k_from_samples")
    kk = _check_ks(ks, "best_of_k_from_samples")
    if not np.isfinite(df["score"].to_numpy(dtype=np.float64)).all():
        raise InputError("best_of_k_from_samples: column 'score' holds a NaN or infinite score")
    ids, rows = [], []
    for pid, g in df.groupby("problem_id", sort=True):
        ids.append(pid)
        rows.append(best_of_k(g["score"].to_numpy(np.float64), g["passed"].to_numpy(np.float64), kk))
    return np.asarray(ids), np.vstack(rows)


def weighted_vote_at_k(
    answers: np.ndarray,
    scores: np.ndarray,
    correct: np.ndarray,
    ks: np.ndarray | int,
    n_mc: int = 2000,
    seed: int = 0,
) -> np.ndarray:
    """Reward-weighted vote@k of one problem by Monte Carlo over k-subsets, shape (K,).

    ``answers`` are integer answer codes per sample (-1 = null: no vote), ``scores`` the reward
    of each sample and ``correct`` the correctness of each answer code (indexed by code). In a
    k-subset, the answer with the largest summed score among the answers drawn at least once wins
    (ties, by exact equality of the sums, split uniformly). No exact form is practical, so
    ``n_mc`` random permutations are drawn (seeded); the first k of each is a uniform k-subset
    for every k at once. Each subset's outcome is averaged exactly over the tie-break, so the
    estimate is unbiased with standard error at most 0.5 / sqrt(n_mc).
    """
    where = "weighted_vote_at_k"
    kk = _check_ks(ks, where)
    lab = np.asarray(answers, dtype=np.int64).ravel()
    sc = np.asarray(scores, dtype=np.float64).ravel()
    cor = np.asarray(correct, dtype=np.float64).ravel()
    n = lab.size
    if sc.shape != lab.shape or n == 0:
        raise InputError(f"{where}: fields 'answers' and 'scores' must be equally long and non-empty")
    if not np.isfinite(sc[lab >= 0]).all():
        raise InputError(f"{where}: field 'scores' holds a NaN or infinite score")
    if n_mc < 1:
        raise InputError(f"{where}: field 'n_mc' must be >= 1, got {n_mc}")
    n_ans = int(lab.max()) + 1 if (lab >= 0).any() else 0
    if cor.size < n_ans:
        raise InputError(f"{where}: field 'correct' has {cor.size} entries for {n_ans} answers")
    out = np.full(kk.size, np.nan)
    fits = kk <= n
    if n_ans == 0:
        out[fits] = 0.0
        return out
    want = np.zeros(n + 1, dtype=np.int64) - 1
    want[kk[fits]] = np.flatnonzero(fits)
    kmax = int(kk[fits].max()) if fits.any() else 0
    rng = np.random.default_rng(seed)
    total = np.zeros(kk.size)
    step = max(1, _CHUNK // max(n, n_ans))
    # null samples go to an extra column that never wins
    lab_ext = np.where(lab < 0, n_ans, lab)
    for lo in range(0, n_mc, step):
        rows = min(step, n_mc - lo)
        perm = np.argsort(rng.random((rows, n)), axis=1)[:, :kmax]
        sums = np.zeros((rows, n_ans + 1))
        seen = np.zeros((rows, n_ans + 1), dtype=bool)
        r = np.arange(rows)
        for t in range(kmax):
            pick = lab_ext[perm[:, t]]
            sums[r, pick] += sc[perm[:, t]]
            seen[r, pick] = True
            col = want[t + 1]
            if col < 0:
                continue
            vals = np.where(seen[:, :n_ans], sums[:, :n_ans], -np.inf)
            best = vals.max(axis=1, keepdims=True)
            tied = (vals == best) & seen[:, :n_ans]
            num = tied.sum(axis=1)
            val = np.where(num > 0, (tied * cor[:n_ans]).sum(axis=1) / np.maximum(num, 1), 0.0)
            total[col] += val.sum()
    out[fits] = total[fits] / n_mc
    return out


def weighted_vote_at_k_from_samples(
    df: pd.DataFrame, ks: np.ndarray | int, n_mc: int = 2000, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """weighted-vote@k from rows (problem_id, answer, passed, score): (problem ids, (P, K))."""
    _check_frame(df, ["problem_id", "answer", "passed", "score"], "weighted_vote_at_k_from_samples")
    kk = _check_ks(ks, "weighted_vote_at_k_from_samples")
    ids, rows = [], []
    for i, (pid, g) in enumerate(df.groupby("problem_id", sort=True)):
        has = g["answer"].notna().to_numpy()
        lab = np.full(len(g), -1, dtype=np.int64)
        codes, _ = pd.factorize(g["answer"][has], sort=True)
        lab[has] = codes
        passed = g["passed"].to_numpy(np.float64)
        cor = np.bincount(codes, weights=passed[has]) / np.maximum(np.bincount(codes), 1)
        sc = g["score"].to_numpy(np.float64)
        if not np.isfinite(sc[has]).all():
            raise InputError(
                f"weighted_vote_at_k_from_samples: column 'score' of problem {pid!r} holds a NaN"
            )
        ids.append(pid)
        rows.append(weighted_vote_at_k(lab, np.where(has, sc, 0.0), cor, kk, n_mc, seed + i))
    return np.asarray(ids), np.vstack(rows)
