"""What-if beyond the run on the budget axis: accuracy at thinking budgets larger than any sampled,
from the sequential law, placed on the cost axes and marked ``extrapolated``.

A *family* is every coverage configuration that differs only in its budget (same model,
temperature, verifier...). With three or more budgets > 0, the family's accuracy over the budget
is fitted by the sequential law of :mod:`ttscale.analysis.laws.sequential` (TTSPM: ``F(B) = F_max
(1 - exp(-lam B))`` on the mean pass rate). Two checks decide whether the law may be followed
beyond the data, and a family that fails either gets a note instead of a forecast:

* the law fits the measured budgets (:func:`~ttscale.analysis.laws.sequential.fit_check`);
* a back-test (four or more budgets): the law fitted without the largest budget predicts its
  pass@1 within three standard errors of the difference (from the same bootstrap over problems).

Under the law every problem approaches its own ceiling at the common rate, so a problem's success
rate at a budget B' beyond the largest sampled budget B is its rate at B times
``s = (1 - exp(-lam B')) / (1 - exp(-lam B))`` (capped at 1). Coverage at k is the mean over
problems of ``1 - E[(1 - min(1, s p))^k]`` under each problem's posterior at B (the empirical-Bayes
Beta prior of the family's counts at B, :func:`~ttscale.analysis.forecasting.beta_fits.fit_beta_mixture`),
by quadrature. Its interval is a bootstrap over problems that refits the law in each draw: sampling
error given the law, not the law's own error (which is why the two checks come first).

Cost per sample at B' continues the last two sampled budgets' line: a trace still thinking at the
largest budget keeps thinking, and the share still thinking is the slope of the tokens used between
the last two budgets. That is exact for tokens and Monkeys FLOPs per token and a lower bound for
Kinetics eFLOPs, whose memory term grows faster than the length (the note says so).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ttscale.analysis.frontier.configs import NO_BUDGET, Configurations
from ttscale.errors import InputError, arg

#: quadrature points on (0, 1) for the posterior expectations
GRID = (np.arange(256) + 0.5) / 256


def _coverage(a: np.ndarray, b: np.ndarray, scale: float, ks: np.ndarray) -> np.ndarray:
    """(P, len(ks)): ``1 - E[(1 - min(1, scale p))^k]`` for p ~ Beta(a_i, b_i), by quadrature."""
    from scipy.special import betaln

    logw = ((a[:, None] - 1) * np.log(GRID)[None, :] + (b[:, None] - 1) * np.log1p(-GRID)[None, :]
            - betaln(a, b)[:, None])
    w = np.exp(logw)
    w /= w.sum(axis=1, keepdims=True)
    miss = 1.0 - np.minimum(1.0, scale * GRID)
    return 1.0 - w @ (miss[:, None] ** ks[None, :])


def _families(cs: Configurations) -> list[tuple[str, list[int], np.ndarray]]:
    """(label, configuration indices ordered by budget, budgets) of each family with >= 3 budgets."""
    if "budget" not in cs.axes:
        return []
    rest = [a for a in cs.axes if a != "budget"]
    cfg = cs.configs.reset_index(drop=True)
    cfg = cfg[np.array([j not in cs.fixed for j in range(len(cfg))]) & (cfg["budget"] > NO_BUDGET).to_numpy()]
    out = []
    for key, g in (cfg.groupby(rest, sort=True, dropna=False) if rest else [((), cfg)]):
        key = key if isinstance(key, tuple) else (key,)
        g = g.sort_values("budget")
        label = ", ".join(f"{a}={v}" for a, v in zip(rest, key, strict=True)) or "all"
        out.append((label, [int(j) for j in g.index], g["budget"].to_numpy(float)))
    return out


def extrapolate_budget(cs: Configurations, factors: list[int], level: float = 0.9, n_boot: int = 100,
                       seed: int = 0) -> tuple[pd.DataFrame, list[str]]:
    """Rows like :func:`ttscale.analysis.frontier.whatif.extrapolate_k`'s (``config`` is the family's
    largest-budget configuration, ``budget`` the what-if budget, ``method`` ``sequential_law``) for
    each family that passes both checks and each factor of its largest budget; and the notes."""
    from ttscale.analysis.forecasting.beta_fits import fit_beta_mixture
    from ttscale.analysis.laws.sequential import fit_budget_curve, fit_check

    if not factors or any(int(f) != f or f < 2 for f in factors):
        raise InputError(f"{cs.source}: {arg('whatif_budget', flag='--what-if-budget')} factors must be whole "
                         f"numbers >= 2, got {factors}")
    rows: list[dict] = []
    notes: list[str] = []
    families = _families(cs)
    if not families:
        return pd.DataFrame(), ["what-if budget: no configuration family has three or more budgets > 0"]
    rng = np.random.default_rng(seed)
    for label, js, b in families:
        if len(b) < 3:
            notes.append(f"what-if budget skipped for {label}: {len(b)} budget(s); the law needs three or more")
            continue
        n, c = cs.n[:, js].astype(float), cs.c[:, js].astype(float)
        rates = c / n
        f_max, lam = fit_budget_curve(b, rates.mean(axis=0))
        chi2, p_fit, status = fit_check(b, rates, n, f_max, lam)
        if status == "rejected":
            notes.append(f"what-if budget skipped for {label}: the sequential law does not fit its budgets "
                         f"(chi2 {chi2:.1f}, p {p_fit:.2g}); following it past {int(b[-1])} tokens would be a guess")
            continue
        draws = [rng.integers(0, len(rates), len(rates)) for _ in range(n_boot)]
        if len(b) >= 4:
            def miss(sub: np.ndarray, b: np.ndarray = b) -> float:  # prediction minus measurement
                f0, l0 = fit_budget_curve(b[:-1], sub[:, :-1].mean(axis=0))
                return float(f0 * -np.expm1(-l0 * b[-1]) - sub[:, -1].mean())

            gap = miss(rates)
            pred = gap + rates[:, -1].mean()
            checks = draws if len(draws) >= 50 else [rng.integers(0, len(rates), len(rates)) for _ in range(50)]
            spread = np.std([miss(rates[d]) for d in checks])
            se = max(float(spread), 0.5 / n[:, -1].sum())
            if abs(gap) > 3 * se:
                notes.append(f"what-if budget skipped for {label}: the law fitted without budget {int(b[-1])} "
                             f"predicts {pred:.3f} there, measured {rates[:, -1].mean():.3f} "
                             f"(more than 3 standard errors of the difference): not safe to extrapolate")
                continue
        jmax = js[-1]
        try:
            prior = fit_beta_mixture(cs.n[:, jmax], cs.c[:, jmax], 1, cs.source)
        except InputError:
            notes.append(f"what-if budget skipped for {label}: nothing solved at budget {int(b[-1])}")
            continue
        a_post = prior.alpha[0] + cs.c[:, jmax]
        b_post = prior.beta[0] + cs.n[:, jmax] - cs.c[:, jmax]
        ks = cs.ks[cs.ks <= cs.n[:, jmax].min()]
        slope = {m: (cs.each[m][:, js[-1]].mean() - cs.each[m][:, js[-2]].mean()) / (b[-1] - b[-2])
                 for m in cs.metrics}
        lams = [fit_budget_curve(b, rates[d].mean(axis=0))[1] for d in draws]
        for f in sorted(set(int(x) for x in factors)):
            new = f * b[-1]

            def scale(rate: float, new: float = new, top: float = b[-1]) -> float:
                return float(-np.expm1(-rate * new) / -np.expm1(-rate * top))

            per = _coverage(a_post, b_post, scale(lam), ks)
            acc = per.mean(axis=0)
            boot = np.array([_coverage(a_post[d], b_post[d], scale(lr), ks).mean(axis=0)
                             for d, lr in zip(draws, lams, strict=True)]) if n_boot else np.empty((0, len(ks)))
            q = [(1 - level) / 2, (1 + level) / 2]
            lo, hi = (np.quantile(boot, q, axis=0) if len(boot) else (np.full(len(ks), np.nan),) * 2)
            for i, k in enumerate(ks):
                row = {"config": jmax, "label": f"{label}, budget={int(new)} (what-if)", "k": int(k),
                       "budget": int(new), "accuracy": float(acc[i]), "ci_low": float(lo[i]),
                       "ci_high": float(hi[i]), "extrapolated": True, "method": "sequential_law"}
                for m in cs.metrics:
                    each = cs.each[m][:, jmax].mean() + max(0.0, slope[m]) * (new - b[-1])
                    row[f"cost_{m}"] = float(cs.once[m][:, jmax].mean() + k * each)
                rows.append(row)
    if rows and "kinetics_eflops" in cs.metrics:
        notes.append("what-if budget: eFLOPs beyond the largest budget continue the last two budgets' line, a "
                      "lower bound (the memory term grows faster than the length)")
    return pd.DataFrame(rows), notes
