"""The what-if engine: coverage and verified accuracy at larger k, other verifiers, other costs.

Problem difficulty (:mod:`ttscale.analysis.forecasting.difficulty`) is a distribution of per-problem pass
rates p, given as support points with weights. It comes from a parametric family (``beta:ALPHA,BETA``, optionally with a share of
never-solved problems ``beta:ALPHA,BETA,zero=0.1``), or from measured counts by empirical Bayes
over problems (:func:`difficulty_from_counts`): a prior fitted to all problems' counts at once (a
Beta with a point mass at p = 0, by maximum likelihood, as the ``beta_zi_eb`` forecast of
:mod:`ttscale.analysis.forecasting.forecast`), then each problem's posterior under it. A problem never solved
in n samples is unsolvable with the posterior probability the fitted point mass gives, and
otherwise has the Beta tail the other problems' counts support -- not a per-problem Jeffreys
posterior, whose prior mass near p ~ 1/n made far extrapolations report the prior (0.993 against
a true 0.984 at K = 10,000 for MATH Llama-3-70B from 100 samples). Coverage beyond the n samples
drawn is a model's extrapolation: ``extrapolated_from_k`` (= the smallest n) marks it in the
outputs and the figure.

For each k the simulator gives:

- ``coverage``: 1 - E[(1 - p)^k], the oracle's pass@k;
- ``accuracy``: what the chosen selection method returns as its one answer:
  ``resample`` (sample until a verifier with the given false-positive and false-negative rates
  accepts, at most k attempts; Inference Scaling fLaws), ``vote`` (majority vote over k samples,
  the wrong answers of a problem spread evenly over ``wrong_answers`` distinct strings; ties
  broken uniformly at random; Monte Carlo with a fixed seed) or ``best-of-n`` (a reward model
  whose scores are N(d, 1) on right and N(0, 1) on wrong samples; exact by quadrature);
- ``utility``: +1 per right answer returned, ``-fp_cost`` per wrong one, minus ``cost_per_sample``
  per sample drawn; for ``resample`` an answer may be withheld (utility 0).

The saturation point (gain in coverage per sample below a threshold) and the optimal k (highest
expected utility) are read off these curves. ``plan_exponent_precision`` answers the planning
question: how many problems and samples per problem estimate the power law's exponent b to a
requested precision (the standard deviation of the fitted b over simulated replicates).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ttscale.analysis.ceilings import ceilings
from ttscale.analysis.forecasting.difficulty import (  # noqa: F401 - the difficulty model, re-exported
    Difficulty,
    best_of_n_accuracy,
    coverage,
    difficulty_from_counts,
    parse_difficulty,
    posterior_support,
    vote_accuracy,
)
from ttscale.analysis.forecasting.optimal_k import best_k, optimal_k_bootstrap, refit_optimal_k  # noqa: F401
from ttscale.analysis.laws.power_law import fit_from_counts
from ttscale.errors import InputError, arg

SELECTIONS = ("resample", "vote", "best-of-n")


def simulate_curves(
    d: Difficulty,
    ks: np.ndarray,
    selection: str = "resample",
    fpr: float = 0.0,
    fnr: float = 0.0,
    fp_cost: float = 0.0,
    cost_per_sample: float = 0.0,
    wrong_answers: int = 4,
    separation: float = 1.0,
    seed: int = 0,
) -> pd.DataFrame:
    """One row per k: coverage, accuracy, false_positive_rate, samples_drawn, utility, and
    ``extrapolated`` (k beyond the samples per problem the difficulty was fitted from)."""
    if selection not in SELECTIONS:
        raise InputError(f"simulate: field 'selection' must be one of {', '.join(SELECTIONS)}")
    ks = np.asarray(ks, dtype=np.int64)
    cov = coverage(d, ks)
    if selection == "resample":
        s, c = 1.0 - fpr, 1.0 - fnr
        acc = ceilings.benchmark_accuracy(d.p, s, c, ks, weights=d.w, source="simulate")
        fp = np.average(ceilings.false_positive_rate_at_k(d.p, s, c, ks, source="simulate"),
                        axis=0, weights=d.w)
        util = ceilings.expected_utility(d.p, s, c, fp_cost, ks, cost_per_sample, weights=d.w,
                                         source="simulate")
        drawn = np.average(ceilings._geometric(1 - d.p * c - (1 - d.p) * (1 - s), ks), axis=0,
                           weights=d.w)
    else:
        if selection == "vote":
            acc = vote_accuracy(d, ks, wrong_answers, seed=seed)
        else:
            acc = best_of_n_accuracy(d, ks, separation)
        fp = 1.0 - acc  # an answer is always returned
        drawn = ks.astype(float)
        util = acc - fp_cost * fp - cost_per_sample * drawn
    extrapolated = ks > d.observed_k if d.observed_k is not None else np.zeros(ks.size, bool)
    return pd.DataFrame({"k": ks, "coverage": cov, "accuracy": acc, "false_positive_rate": fp,
                         "samples_drawn": drawn, "utility": util, "extrapolated": extrapolated})


def summarise(curves: pd.DataFrame, d: Difficulty, selection: str, fpr: float, fnr: float,
              saturation_threshold: float) -> dict[str, object]:
    ks = curves["k"].to_numpy()
    summary: dict[str, object] = {
        "difficulty": d.source,
        "selection": selection,
        "saturation_threshold": saturation_threshold,
        "saturation_k": ceilings.saturation_point(ks, curves["coverage"].to_numpy(), saturation_threshold,
                                                  source="simulate"),
    }
    util = curves["utility"].to_numpy()
    k_opt, best = best_k(ks, util)
    summary["optimal_k"] = k_opt
    summary["optimal_utility"] = float(max(util[best], 0.0))
    summary["optimal_k_is_max_k"] = bool(best == len(ks) - 1)
    if selection == "resample":
        lim = ceilings.accuracy_limit(d.p, 1 - fpr, 1 - fnr, source="simulate")
        summary["accuracy_ceiling"] = float(np.average(lim, weights=d.w))
    summary["extrapolated_from_k"] = d.observed_k
    summary["coverage_at_max_k"] = float(curves["coverage"].iloc[-1])
    summary["accuracy_at_max_k"] = float(curves["accuracy"].iloc[-1])
    return summary


def plan_exponent_precision(
    d: Difficulty,
    precision: float,
    problems: list[int],
    samples: list[int],
    replicates: int = 30,
    seed: int = 0,
) -> pd.DataFrame:
    """Std of the fitted exponent b over simulated replicates, per (problems, samples).

    Each replicate draws pass rates from ``d``, counts from Binomial(n, p), and fits the
    exponentiated power law on k <= n. ``meets`` marks the cells whose std is <= precision.
    """
    if not precision > 0:
        raise InputError("simulate: field 'plan_b_precision' must be > 0")
    rng = np.random.default_rng(seed)
    rows = []
    for num_problems in problems:
        for n in samples:
            bs = []
            for _ in range(replicates):
                p = d.sample(num_problems, rng)
                c = rng.binomial(n, p)
                try:
                    bs.append(fit_from_counts(np.full(num_problems, n), c).params["b"])
                except (InputError, RuntimeError, ValueError):
                    continue
            bs_arr = np.asarray(bs)
            std = float(np.std(bs_arr, ddof=1)) if len(bs_arr) > 2 else float("nan")
            rows.append({"num_problems": num_problems, "samples_per_problem": n,
                         "total_samples": num_problems * n, "b_mean": float(np.mean(bs_arr)) if len(bs_arr) else float("nan"),
                         "b_std": std, "fits": len(bs_arr), "meets": bool(std <= precision)})
    return pd.DataFrame(rows)


# -- a whole simulation: inputs -> (table, summaries) ----------------------------------------
def check_options(*, fpr: float = 0.0, fnr: float = 0.0, selection: str = "resample",
                  k_max: int = 10_000, fp_cost: float = 0.0, cost_per_sample: float = 0.0,
                  replicates: int = 30, plan_problems: list[int] | tuple[int, ...] = (),
                  plan_samples: list[int] | tuple[int, ...] = (), adaptive: list[int] | None = None,
                  min_samples: int = 1, first_round: int = 32, growth: float = 2.0,
                  adaptive_problems: int = 500, ci: float = 0.95, optimal_k_boot: int = 200,
                  **_: object) -> None:
    """Raise InputError for an option ``simulate`` cannot honour, naming it in the caller's words
    (``fpr=0.7`` from Python, ``--fpr 0.7`` from the command line: :func:`ttscale.errors.arg`)."""
    def number(name: str, v: Any, whole: bool = False) -> None:
        ok = isinstance(v, int | float | np.integer | np.floating) and not isinstance(v, bool)
        if not ok or not np.isfinite(v) or (whole and float(v) != int(v)):
            raise InputError(f"simulate: {arg(name, v)}: expected a {'whole number' if whole else 'number'}")

    for name, v in (("fpr", fpr), ("fnr", fnr), ("fp_cost", fp_cost), ("cost_per_sample", cost_per_sample),
                    ("ci", ci)):
        number(name, v)
    for name, v in (("k_max", k_max), ("replicates", replicates), ("optimal_k_boot", optimal_k_boot),
                    ("adaptive_problems", adaptive_problems)):
        number(name, v, whole=True)
    if not 0.0 < ci < 1.0:
        raise InputError(f"simulate: {arg('ci')} must be in (0, 1), got {ci}")
    if optimal_k_boot < 0:
        raise InputError(f"simulate: {arg('optimal_k_boot')} must be >= 0, got {optimal_k_boot}")
    for name, v in (("fpr", fpr), ("fnr", fnr)):
        if not 0 <= v <= 1:
            raise InputError(f"simulate: {arg(name)} must be in [0, 1], got {v}")
    if fpr + fnr >= 1 and selection == "resample":
        raise InputError(f"simulate: {arg('fpr')} + {arg('fnr')} must be below 1 (else the verifier is no "
                         "better than chance)")
    if k_max < 1:
        raise InputError(f"simulate: {arg('k_max')} must be at least 1, got {k_max}")
    if fp_cost < 0 or cost_per_sample < 0:
        raise InputError(f"simulate: {arg('fp_cost')} and {arg('cost_per_sample')} must be >= 0")
    if replicates < 3:
        raise InputError(f"simulate: {arg('replicates')} must be at least 3")
    if any(not isinstance(x, int | np.integer) or x < 1 for x in [*plan_problems, *plan_samples]):
        raise InputError(f"simulate: {arg('plan_problems')} and {arg('plan_samples')} must be whole numbers >= 1")
    if adaptive is not None:
        from ttscale.sampling.stopping import StoppingRule

        if not adaptive:
            raise InputError(f"simulate: {arg('adaptive')} is empty (give r values, e.g. 1,2,4,8)")
        for r in adaptive:  # one line naming the field for r < 1, m > K, growth <= 1
            StoppingRule(r, min_samples, first_round, growth).check(k_max, f"simulate {arg('adaptive')}")
        if adaptive_problems < 1:
            raise InputError(f"simulate: {arg('adaptive_problems')} must be at least 1")


def difficulties_from_counts(counts: pd.DataFrame, group_cols: list[str], verifier: str | None = None,
                             source: str = "counts") -> list[tuple[dict, Difficulty, pd.DataFrame]]:
    """[(group values, Difficulty, the group's counts)] per group of a counts table.

    A run directory's counts carry a ``verifier`` column: only ``verifier``'s (default: the first
    by name) give the difficulty, and the column is dropped from the groups when it is constant.
    """
    if "verifier" in group_cols:
        names = sorted(counts["verifier"].unique())
        chosen = verifier or names[0]
        if chosen not in names:
            raise InputError(f"{source}: {arg('verifier')} {chosen!r} has no oracle verdicts, which give the counts (have: {', '.join(names)})")
        counts = counts[counts["verifier"] == chosen]
    cols = [c for c in group_cols if counts[c].nunique() > 1 or c != "verifier"]
    out = []
    groups = counts.groupby(cols, sort=True, dropna=False) if cols else [((), counts)]
    for key, g in groups:
        key = key if isinstance(key, tuple) else (key,)
        diff = difficulty_from_counts(g["num_samples"].to_numpy(), g["num_correct"].to_numpy())
        out.append((dict(zip(cols, key, strict=True)), diff, g))
    return out


def adaptive_plan(diff: Difficulty, counts: pd.DataFrame | None, adaptive: list[int], *,
                  k_max: int, min_samples: int = 1, first_round: int = 32, growth: float = 2.0,
                  adaptive_ks: list[int] | tuple[int, ...] = (1, 10, 100, 1000, 10000),
                  adaptive_problems: int = 500, replicates: int = 30, seed: int = 0) -> pd.DataFrame:
    """The adaptive-sampling plan table of every r asked (``ttscale.analysis.adaptive.plan``).

    Pass rates are each problem's Jeffreys posterior (drawn afresh per replicate) when ``counts``
    are given, else ``adaptive_problems`` draws from ``diff``.
    """
    from ttscale.analysis.adaptive.plan import plan_adaptive, rates_from_counts
    from ttscale.sampling.stopping import StoppingRule

    if counts is not None:
        draw = rates_from_counts(counts["num_samples"].to_numpy(), counts["num_correct"].to_numpy())
    else:
        def draw(rng: np.random.Generator) -> np.ndarray:
            return diff.sample(adaptive_problems, rng)
    rules = [StoppingRule(r, min_samples, first_round, growth) for r in adaptive]
    return pd.concat([plan_adaptive(draw, rule, k_max, list(adaptive_ks), replicates, seed=seed)
                      for rule in rules], ignore_index=True)


def simulate_groups(
    difficulties: list[tuple], *, k_max: int = 10_000,
    selection: str = "resample", fpr: float = 0.0, fnr: float = 0.0, fp_cost: float = 0.0,
    cost_per_sample: float = 0.0, wrong_answers: int = 4, reward_separation: float = 1.0,
    saturation_threshold: float = 1e-4, plan_b_precision: float | None = None,
    plan_problems: list[int] | tuple[int, ...] = (50, 100, 200, 500),
    plan_samples: list[int] | tuple[int, ...] = (10, 32, 100, 316), replicates: int = 30,
    seed: int = 0, adaptive: list[int] | None = None, min_samples: int = 1, first_round: int = 32,
    growth: float = 2.0, adaptive_ks: list[int] | tuple[int, ...] = (1, 10, 100, 1000, 10000),
    adaptive_problems: int = 500, ci: float = 0.95, optimal_k_boot: int = 200,
    progress: Any = None,
) -> tuple[pd.DataFrame, list[dict], pd.DataFrame | None]:
    """(simulation table, one summary per group, adaptive plan or None) per (group, difficulty[, counts]).

    The table has the group columns, then :func:`simulate_curves`'s columns, one row per k
    (every k up to 100, then about 200 log-spaced k up to ``k_max``). Each summary is
    :func:`summarise`'s dict plus the group values and the verifier's rates and costs, and with
    ``plan_b_precision`` the plan table (``plan``) and its cheapest cell meeting it
    (``plan_recommendation``, None when none does); with ``adaptive`` (r values) the adaptive
    sampling plan of each group (:func:`adaptive_plan`; also in the summary as ``adaptive_plan``).

    Beside ``optimal_k`` each summary has ``optimal_k_ci`` ([low, high]: a percentile interval at
    level ``ci`` from ``optimal_k_boot`` bootstrap replicates over problems, each refitting the
    difficulty; :func:`optimal_k_bootstrap`), ``optimal_k_ci_level``, ``optimal_k_ci_censored``
    (the upper end is the largest k simulated) and ``optimal_k_boot``. The interval is null, with
    ``optimal_k_ci_note`` saying why, for a given ``--difficulty`` (no problems to resample), for
    ``vote`` and ``best-of-n`` (their accuracy is too costly to recompute per replicate) and with
    ``optimal_k_boot=0``.
    """
    from ttscale.analysis.laws.power_law import log_spaced_ks

    check_options(fpr=fpr, fnr=fnr, selection=selection, k_max=k_max, fp_cost=fp_cost,
                  cost_per_sample=cost_per_sample, replicates=replicates,
                  plan_problems=plan_problems, plan_samples=plan_samples, adaptive=adaptive,
                  min_samples=min_samples, first_round=first_round, growth=growth,
                  adaptive_problems=adaptive_problems, ci=ci, optimal_k_boot=optimal_k_boot)
    ks = np.unique(np.concatenate([np.arange(1, min(k_max, 100) + 1), log_spaced_ks(k_max, 200)]))
    frames, summaries, plans = [], [], []
    for i, (group, diff, *rest) in enumerate(difficulties):
        if progress is not None:  # ``progress(done, total)`` per group
            progress(i, len(difficulties))
        curves = simulate_curves(diff, ks, selection, fpr, fnr, fp_cost, cost_per_sample,
                                 wrong_answers, reward_separation, seed)
        summary = {**group, **summarise(curves, diff, selection, fpr, fnr, saturation_threshold),
                   "fpr": fpr, "fnr": fnr, "fp_cost": fp_cost, "cost_per_sample": cost_per_sample}
        summary = _with_interval(summary, diff, ks, selection, fpr=fpr, fnr=fnr, fp_cost=fp_cost,
                                 cost_per_sample=cost_per_sample, n_boot=optimal_k_boot, ci=ci,
                                 seed=seed)
        summary.update(mark_optimal_k(summary, diff, rest[0] if rest else None))
        if plan_b_precision:
            plan = plan_exponent_precision(diff, plan_b_precision, list(plan_problems),
                                           list(plan_samples), replicates, seed)
            ok = plan[plan["meets"]].sort_values(["total_samples", "num_problems"])
            summary["plan"] = plan.to_dict(orient="records")
            summary["plan_recommendation"] = ok.iloc[0].to_dict() if len(ok) else None
        if adaptive:
            aplan = adaptive_plan(diff, rest[0] if rest else None, adaptive, k_max=k_max,
                                  min_samples=min_samples, first_round=first_round, growth=growth,
                                  adaptive_ks=adaptive_ks, adaptive_problems=adaptive_problems,
                                  replicates=replicates, seed=seed)
            summary["adaptive_plan"] = aplan.to_dict(orient="records")
            plans.append(aplan.assign(**group))
        for col, val in group.items():
            curves.insert(0, col, val)
        frames.append(curves)
        summaries.append(summary)
    plan_table = pd.concat(plans, ignore_index=True) if plans else None
    return pd.concat(frames, ignore_index=True), summaries, plan_table


def mark_optimal_k(summary: dict, d: Difficulty, counts: pd.DataFrame | None) -> dict:
    """Is the optimal k an extrapolation from a law that fails the back-test? ``optimal_k_extrapolated``
    (beyond the samples per problem the difficulty was fitted from), ``law_extrapolation``
    (the power law's "safe to extrapolate" verdict on the group's counts,
    :func:`ttscale.analysis.forecasting.law.group_extrapolation`: ``safe``, ``unsafe``,
    ``unchecked``; null without counts or when the optimal k is within the samples) and
    ``optimal_k_warning`` (one line when the verdict is ``unsafe``: the coverage curve the
    optimal k is read from was already wrong one decade out inside the data)."""
    k_opt = int(summary["optimal_k"])
    beyond = d.observed_k is not None and k_opt > d.observed_k
    out: dict = {"optimal_k_extrapolated": bool(beyond), "law_extrapolation": None,
                 "optimal_k_warning": None}
    if not beyond or counts is None:
        return out
    from ttscale.analysis.forecasting.law import group_extrapolation

    verdict = group_extrapolation(counts, "simulate")
    out["law_extrapolation"] = verdict["status"]
    if verdict["status"] == "unsafe":
        out["optimal_k_warning"] = (
            f"optimal k = {k_opt} lies beyond the {d.observed_k} samples per problem, and the "
            "power law fails the extrapolation back-test on these counts (fitted on one decade it "
            "misses the next inside the data): do not trust this optimal k; sample more")
    return out


def _with_interval(summary: dict, d: Difficulty, ks: np.ndarray, selection: str, *,
                   n_boot: int, ci: float, seed: int, **rates: float) -> dict:
    """``summary`` with the optimal k's interval fields after ``optimal_k_is_max_k``."""
    note = None
    if d.pairs is None:
        note = f"the difficulty is given ({arg('difficulty')}): no problems to resample"
    elif selection != "resample":
        note = f"no interval for {selection}: its accuracy is too costly to recompute per replicate"
    elif n_boot == 0:
        note = arg("optimal_k_boot", 0)
    if note is None:
        fields = {**optimal_k_bootstrap(d, ks, int(summary["optimal_k"]), n_boot=n_boot, ci=ci,
                                        seed=seed, **rates), "optimal_k_ci_note": None}
    else:
        fields = {"optimal_k_ci": None, "optimal_k_ci_level": ci, "optimal_k_ci_censored": None,
                  "optimal_k_boot": 0, "optimal_k_ci_note": note}
    out: dict = {}
    for key, val in summary.items():
        out[key] = val
        if key == "optimal_k_is_max_k":
            out.update(fields)
    return out


def write_simulation(table: pd.DataFrame, summaries: list[dict], out: str | os.PathLike,
                     adaptive_plan: pd.DataFrame | None = None) -> None:
    """``out/simulation.parquet``, ``out/summary.json`` (``adaptive_plan.parquet``) and figures."""
    from ttscale.analysis.figures import _pyplot, save_figure, simulation_figure
    from ttscale.rundir.store import atomic_write_json, atomic_write_table

    out = Path(out)
    atomic_write_table(out / "simulation.parquet", table)
    atomic_write_json(out / "summary.json", summaries)
    if adaptive_plan is not None:
        atomic_write_table(out / "adaptive_plan.parquet", adaptive_plan)
    fig = simulation_figure(table, summaries, group_columns_of(table, summaries))
    save_figure(fig, out / "figures" / "simulate")
    _pyplot().close(fig)


def group_columns_of(table: pd.DataFrame, summaries: list[dict]) -> list[str]:
    """The group columns of a simulation table (those its summaries carry too)."""
    return [c for c in summaries[0] if c in table.columns and c != "k"] if summaries else []
