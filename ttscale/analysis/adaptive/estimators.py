"""Exactly unbiased pass@k under adaptive sampling ("sample until solved").

The rule (:class:`StoppingRule`): a (problem, temperature) is sampled in rounds whose boundaries
``b_1 < b_2 < ... < K`` are fixed in advance (``first_round``, then growing by ``growth``, the
last one K). After each round the oracle verifier checks the new samples; the (problem,
temperature) stops at the first boundary ``b >= min_samples`` where it has at least ``successes``
(r) successes, or at K.

What a stopped (problem, temperature) shows is T (samples drawn), S (successes) and T' (the
boundary checked before T, 0 if none). Given (T, S) and the rule, every success pattern the rule
allows is equally likely (the likelihood is ``p^S (1-p)^(T-S)`` for each), and the rule only
forbids ``S(T') >= r`` when ``T' >= min_samples``. So the Rao-Blackwellised indicator "the first
k samples all fail" is ``N_k / N_0`` with

* ``N_0 = sum_{j<=min(S, r-1)} C(T', j) C(T-T', S-j)`` (allowed patterns),
* ``N_k = sum_{j<=min(S, r-1)} C(T'-k, j) C(T-T', S-j)`` for ``k <= T'``,
  ``C(T-k, S)`` for ``T' < k <= T``, and 0 for ``k > T``,

an unbiased estimate of ``(1-p)^k`` for every k; ``pass@k = 1 - N_k / N_0``. Without the
constraint (``T' < min_samples``, or ``S < r``) it is the usual ``1 - C(T-k, S) / C(T, S)``.
Numerically ``N_k / N_0 = sum_j w_j C(T'-j, k)/C(T', k)``: the plain survival ratio within the
first T' samples, mixed over the hypergeometric weights ``w_j`` of j successes among them,
truncated to ``j < r``; the ratios are :func:`ttscale.analysis.curves.estimators.log_tail_ratio`'s
cumulative sums, the weights log-gamma terms normalised in log space.

Selection estimators (maj@k, best-of-k, weighted vote) are only valid for ``k <= min_samples``:
the first ``min_samples`` samples of every (problem, temperature) are a fixed-size sample.
"""

from __future__ import annotations

import numpy as np
from scipy.special import gammaln, logsumexp

from ttscale.analysis.curves.estimators import _check_ks, _int_array, log_tail_ratio
from ttscale.errors import InputError
from ttscale.sampling.stopping import StoppingRule

__all__ = [
    "StoppingRule",
    "adaptive_pass_at_k",
    "adaptive_survival",
    "simulate_rule",
]


# -- estimators -----------------------------------------------------------------------------
def _rows(n: object, c: object, prev: object, where: str) -> tuple[np.ndarray, ...]:
    nn = _int_array(n, "n", where)
    cc = _int_array(c, "c", where)
    pp = _int_array(prev, "prev", where)
    if nn.size == 1 and cc.size != 1:
        nn = np.full(cc.shape, nn[0])
    if pp.size == 1 and cc.size != 1:
        pp = np.full(cc.shape, pp[0])
    if not (nn.shape == cc.shape == pp.shape):
        raise InputError(f"{where}: fields 'n', 'c' and 'prev' differ in length "
                         f"({nn.size}, {cc.size}, {pp.size})")
    checks = [((nn < 1), "n", "needs at least 1 sample"),
              ((cc < 0) | (cc > nn), "c", "is outside [0, n]"),
              ((pp < 0) | (pp >= nn), "prev", "is outside [0, n) (the boundary before n)")]
    for bad, name, msg in checks:
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise InputError(f"{where}: field '{name}' entry {i}: n={int(nn[i])}, c={int(cc[i])}, "
                             f"prev={int(pp[i])}: {name} {msg}")
    return nn, cc, pp


def _per_row(x: object, size: int, name: str, where: str, low: int) -> np.ndarray:
    arr = _int_array(x, name, where)
    if arr.size == 1:
        arr = np.full(size, arr[0])
    if arr.size != size:
        raise InputError(f"{where}: field '{name}' has {arr.size} entries for {size} rows")
    if (arr < low).any():
        raise InputError(f"{where}: field '{name}' must be at least {low}, got {int(arr.min())}")
    return arr


def adaptive_survival(n: object, c: object, prev: object, ks: object, r: object,
                      m: object = 1) -> np.ndarray:
    """``N_k / N_0``, the unbiased estimate of ``(1-p)^k`` per row and k: shape (rows, len(ks)).

    Row i drew ``n[i]`` samples with ``c[i]`` successes, the boundary checked before ``n[i]``
    being ``prev[i]`` (0 if none), under the rule "stop once >= ``r`` successes and >= ``m``
    samples" (``r``, ``m`` one number or one per row). For ``k > n[i]`` the value is 0 when the
    row stopped (c >= r: a success is among its samples) and NaN otherwise (no estimate of
    samples never drawn).
    """
    where = "adaptive_pass_at_k"
    nn, cc, pp = _rows(n, c, prev, where)
    kk = _check_ks(ks, where)
    rr = _per_row(r, nn.size, "r", where, 1)
    mm = _per_row(m, nn.size, "m", where, 0)
    out = np.empty((nn.size, kk.size))
    if nn.size == 0:
        return out
    beyond = kk[None, :] > nn[:, None]
    constrained = (pp >= mm) & (pp > 0) & (cc >= rr)
    plain = ~constrained
    if plain.any():
        out[plain] = np.exp(log_tail_ratio(nn[plain], cc[plain], kk))
    rows = np.flatnonzero(constrained)
    if rows.size:
        out[rows] = _constrained(nn[rows], cc[rows], pp[rows], rr[rows], kk, rows)
    stopped = (cc >= rr)[:, None]
    out[beyond] = np.nan
    out[beyond & stopped] = 0.0
    return out


def adaptive_pass_at_k(n: object, c: object, prev: object, ks: object, r: object,
                       m: object = 1) -> np.ndarray:
    """Unbiased pass@k per row under the stopping rule: ``1 - N_k / N_0`` (see the module doc).

    Same arguments as :func:`adaptive_survival`; for rows with no constraint (not stopped, or
    stopped at the first boundary at or past ``m``) it equals the usual estimator.
    """
    return 1.0 - adaptive_survival(n, c, prev, ks, r, m)


def _lcomb(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """log C(a, b), -inf where b < 0 or b > a."""
    ok = (b >= 0) & (b <= a)
    a_, b_ = np.where(ok, a, 0).astype(np.float64), np.where(ok, b, 0).astype(np.float64)
    val = gammaln(a_ + 1) - gammaln(b_ + 1) - gammaln(a_ - b_ + 1)
    return np.where(ok, val, -np.inf)


def _constrained(n: np.ndarray, c: np.ndarray, prev: np.ndarray, r: np.ndarray,
                 ks: np.ndarray, index: np.ndarray) -> np.ndarray:
    """N_k / N_0 for rows that stopped with S >= r and a checked boundary T' >= m before T."""
    jmax = int(r.max())
    j = np.arange(jmax)[None, :]
    # log of the hypergeometric weight of j successes among the first T' (up to the common
    # factor 1/C(T, S)), for j < r; -inf where impossible
    lh = _lcomb(prev[:, None], j) + _lcomb((n - prev)[:, None], c[:, None] - j)
    lh = np.where(j < r[:, None], lh, -np.inf)
    log_n0 = logsumexp(lh, axis=1)  # log N_0 (>= 0 when the observed pattern is allowed)
    if not np.isfinite(log_n0).all():
        i = int(np.flatnonzero(~np.isfinite(log_n0))[0])
        raise InputError(f"adaptive_pass_at_k: entry {int(index[i])}: n={int(n[i])}, "
                         f"c={int(c[i])}, prev={int(prev[i])} cannot come from the rule (fewer than "
                         f"r={int(r[i])} successes at prev is impossible)")
    w = np.exp(lh - log_n0[:, None])
    out = np.zeros((n.size, ks.size))
    early = ks[None, :] <= prev[:, None]
    for jj in range(jmax):
        live = w[:, jj] > 0
        if not live.any():
            continue
        s = np.minimum(jj, prev[live])
        ratio = np.exp(log_tail_ratio(prev[live], s, ks))  # C(T'-j, k)/C(T', k); NaN for k > T'
        out[live] += w[live, jj, None] * np.where(early[live], np.nan_to_num(ratio), 0.0)
    # T' < k <= T: C(T-k, S)/N_0 = [C(T-k, S)/C(T, S)] * C(T, S)/N_0
    log_cts = _lcomb(n, c)
    lr = np.where(early, -np.inf, log_tail_ratio(n, c, ks))
    late = np.exp(lr + (log_cts - log_n0)[:, None])  # <= 1 wherever it is used
    return np.where(early, out, np.nan_to_num(late))


# -- simulation (planning, benchmarks) ------------------------------------------------------
def simulate_rule(rates: np.ndarray, rule: StoppingRule, k: int,
                  rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Draw one adaptive run per rate: successes round by round (binomial per round, exact in
    distribution). Returns arrays ``n`` (samples drawn), ``c`` (successes), ``prev`` (the
    boundary before n, 0 if none), ``stopped`` and, for the same draws, ``c_full`` (successes
    among all K samples, what full sampling would have seen)."""
    p = np.clip(np.asarray(rates, dtype=np.float64), 0.0, 1.0)
    bounds = np.array(rule.boundaries(k))
    widths = np.diff(np.concatenate([[0], bounds]))
    cum = np.cumsum(rng.binomial(widths[None, :], p[:, None]), axis=1)  # (P, rounds)
    ok = (cum >= rule.successes) & (bounds[None, :] >= rule.min_samples)
    ok[:, -1] = True
    stop = ok.argmax(axis=1)
    idx = np.arange(p.size)
    n = bounds[stop]
    prev = np.where(stop > 0, bounds[np.maximum(stop - 1, 0)], 0)
    c = cum[idx, stop]
    return {"n": n, "c": c, "prev": prev, "stopped": c >= rule.successes, "c_full": cum[:, -1]}
