"""How the analysis reads an adaptive run (or a counts table exported from one).

A counts table is adaptive when it carries the columns of :data:`ADAPTIVE_COLUMNS` besides
``num_samples`` (T, the samples drawn) and ``num_correct`` (S): ``adaptive_prev`` (T', the boundary
checked before T, 0 if none), ``adaptive_successes`` (r), ``adaptive_min_samples`` (m) and
``adaptive_max_samples`` (K). For such rows pass@k is :func:`ttscale.analysis.adaptive.estimators.adaptive_pass_at_k`
(exactly unbiased for every k <= K) and the largest k is K, not the smallest T.

:func:`attach` turns a run directory's counts into that form from ``adaptive/state.parquet``
(the decisions the sampling loop recorded), keeping only the verifier that made the decisions
(another verifier's successes are not what the rule stopped on) and one row per (problem,
temperature); :func:`first_m_selection` gives the answer/score histograms of the first m samples
of each (problem, temperature), a fixed-size sample, so maj@k, best-of-k and weighted vote are
estimated for k <= m only.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from ttscale.analysis.adaptive.estimators import adaptive_pass_at_k
from ttscale.analysis.curves.estimators import pass_at_k
from ttscale.errors import InputError, arg

ADAPTIVE_COLUMNS = ("adaptive_prev", "adaptive_successes", "adaptive_min_samples", "adaptive_max_samples")


def is_adaptive(counts: pd.DataFrame) -> bool:
    present = [c for c in ADAPTIVE_COLUMNS if c in counts.columns]
    if present and len(present) != len(ADAPTIVE_COLUMNS):
        missing = [c for c in ADAPTIVE_COLUMNS if c not in counts.columns]
        raise InputError(f"counts table: has {present[0]!r} but lacks column {missing[0]!r} "
                         f"(an adaptive table needs all of {', '.join(ADAPTIVE_COLUMNS)})")
    return bool(present)


def max_k(counts: pd.DataFrame) -> int:
    """The largest k every row supports: K for adaptive rows, else the smallest num_samples."""
    if is_adaptive(counts):
        return int(counts["adaptive_max_samples"].min())
    return int(counts["num_samples"].min())


def per_problem_pass(counts: pd.DataFrame, ks: np.ndarray) -> np.ndarray:
    """pass@k per row: the stopping-rule estimator for adaptive rows, else the usual one."""
    n = counts["num_samples"].to_numpy(np.int64)
    c = counts["num_correct"].to_numpy(np.int64)
    if not is_adaptive(counts):
        return pass_at_k(n, c, ks)
    return adaptive_pass_at_k(n, c, counts["adaptive_prev"].to_numpy(np.int64), ks,
                              counts["adaptive_successes"].to_numpy(np.int64),
                              counts["adaptive_min_samples"].to_numpy(np.int64))


def selection_max_k(counts: pd.DataFrame) -> int | None:
    """The largest k of maj@k / best-of-k / weighted vote: m for adaptive rows, else None."""
    return int(counts["adaptive_min_samples"].min()) if is_adaptive(counts) else None


def fit_adaptive(counts: pd.DataFrame, max_k_: int | None, ceiling: bool, source: str) -> Any:
    """The power law fitted to the adaptive coverage curve on log-spaced k in [1, max_k]."""
    from ttscale.analysis.laws.power_law import DEFAULT_NUM_POINTS, fit_power_law, log_spaced_ks

    top = max_k(counts) if max_k_ is None else int(max_k_)
    ks = log_spaced_ks(top, DEFAULT_NUM_POINTS)
    cov = per_problem_pass(counts, np.asarray(ks)).mean(axis=0)
    return fit_power_law(ks, cov, ceiling=ceiling, source=source)


def run_rule(run: Any) -> dict[str, Any] | None:
    """The stopping rule and summary an adaptive run recorded in run.json (None if not adaptive)."""
    cfg = run.read_config()
    if not cfg.get("adaptive"):
        return None
    return {"rule": cfg["adaptive"], "num_samples": cfg.get("num_samples"),
            "summary": cfg.get("adaptive_summary", {})}


def attach(run: Any, counts: pd.DataFrame, cols: list[str], verifiers: list[str]) -> pd.DataFrame:
    """Counts of a run directory with the adaptive columns joined (unchanged if not adaptive)."""
    from ttscale.rundir.adaptive_state import read_state
    from ttscale.verification.verify import make_verifier, verdict_name

    info = run_rule(run)
    if info is None:
        return counts
    rule = info["rule"]
    state = read_state(run)
    if state.empty:
        raise InputError(f"{run.path / 'adaptive' / 'state.parquet'}: missing; this adaptive run "
                         "has no decisions yet (run `ttscale sample` on it again)")
    folder = verdict_name(make_verifier(rule["verifier"], dict(rule.get("verifier_options") or {}))) \
        if rule.get("verifier") else info["summary"].get("verifier")
    if folder is None or folder not in verifiers:
        raise InputError(f"{run.path}: adaptive run without the verdicts of its deciding verifier "
                         f"({folder!r})")
    if "temperature" not in cols and state["temperature"].nunique() > 1:
        raise InputError(f"{run.path}: an adaptive run's curves are per temperature (the rule stops "
                         f"each (problem, temperature)); keep 'temperature' in {arg('group_by')}")
    if "verifier" in cols:
        counts = counts[counts["verifier"] == folder]
    st = state.rename(columns={"problem_id": "problem"})
    on = ["problem", "temperature"] if "temperature" in cols else ["problem"]
    merged = counts.drop(columns=["num_samples", "num_correct"]).merge(
        st[[*on, "n", "successes", "prev"]], on=on, how="left")
    if merged["n"].isna().any():
        row = merged[merged["n"].isna()].iloc[0]
        raise InputError(f"{run.path}: problem {row['problem']!r} has verdicts but no decision in "
                         "adaptive/state.parquet (run `ttscale sample` on it again)")
    merged = merged.rename(columns={"n": "num_samples", "successes": "num_correct",
                                    "prev": "adaptive_prev"})
    merged["adaptive_successes"] = int(rule["successes"])
    merged["adaptive_min_samples"] = int(rule["min_samples"])
    merged["adaptive_max_samples"] = int(info["num_samples"])
    out = merged[[*cols, "problem", "num_samples", "num_correct", *ADAPTIVE_COLUMNS]]
    return out.astype({c: np.int64 for c in ("num_samples", "num_correct", *ADAPTIVE_COLUMNS)})


def first_m_selection(run: Any, selection: pd.DataFrame, cols: list[str]) -> pd.DataFrame:
    """Histogram rows (cols, problem_id, answer, score, count, passed) of each verifier's
    verdicts on the first m samples of every (problem, temperature), read from the shards."""
    info = run_rule(run)
    if info is None:
        return selection
    m = int(info["rule"]["min_samples"])
    keep = [*cols, "problem_id", "answer", "score"]
    task_of = None
    if "task" in cols:
        task_of = selection.drop_duplicates("problem_id").set_index("problem_id")["task"]
    parts = []
    for name in run.verifiers():
        v = run.read_verdicts(name, columns=["problem_id", "temperature", "sample_index", "answer",
                                             "score", "passed"])
        v = v[v["sample_index"] < m].copy()
        v["verifier"] = name
        if task_of is not None:
            v["task"] = v["problem_id"].map(task_of).fillna("?").astype(str)
        v["count"] = 1
        v["passed"] = v["passed"].astype(np.int64)
        parts.append(v)
    allv = pd.concat(parts, ignore_index=True)
    allv = allv[allv["verifier"].isin(selection["verifier"].unique())] if "verifier" in cols else allv
    hist = allv.groupby(keep, sort=True, dropna=False)[["count", "passed"]].sum().reset_index()
    return hist[[*keep, "count", "passed"]]


def _decider(run: Any, rule: dict[str, Any], summary: dict[str, Any]) -> str | None:
    from ttscale.verification.verify import make_verifier, verdict_name

    if rule.get("verifier"):
        return verdict_name(make_verifier(rule["verifier"], dict(rule.get("verifier_options") or {})))
    return summary.get("verifier")


class CompareView:
    """What ``compare`` needs of an adaptive run: the deciding verifier (its pass@k by the
    stopping-rule estimator) and, for every other verifier, its verdicts on the first m samples
    of each (problem, temperature), with k <= m."""

    def __init__(self, run: Any, info: dict[str, Any]):
        self.run = run
        self.m = int(info["rule"]["min_samples"])
        self.k_max = int(info["num_samples"])
        self.decider = _decider(run, info["rule"], info["summary"])

    def ks(self, folder: str, ks: np.ndarray) -> np.ndarray:
        return ks if folder == self.decider else ks[ks <= self.m]

    def _first_m(self, folder: str, columns: list[str]) -> pd.DataFrame:
        v = self.run.read_verdicts(folder, columns=["problem_id", "temperature", "sample_index", *columns])
        return v[v["sample_index"] < self.m]

    def hist(self, folder: str) -> pd.DataFrame:
        """Summary-shaped rows (problem_id, temperature, answer, score, count, passed)."""
        v = self._first_m(folder, ["answer", "score", "passed"]).assign(count=1)
        v["passed"] = v["passed"].astype(np.int64)
        keys = ["problem_id", "temperature", "answer", "score"]
        return v.groupby(keys, sort=True, dropna=False)[["count", "passed"]].sum().reset_index()

    def joint(self, folder: str, reference: str) -> pd.DataFrame:
        key = ["problem_id", "temperature", "sample_index"]
        a = self._first_m(folder, ["passed"])
        b = self._first_m(reference, ["passed"]).rename(columns={"passed": "truth"})
        j = a.merge(b, on=key)
        j = j.assign(n=1, passed=j["passed"].astype(np.int64), truth=j["truth"].astype(np.int64))
        j["both"] = j["passed"] * j["truth"]
        return j.groupby(["problem_id", "temperature"], sort=True)[["n", "passed", "truth", "both"]].sum().reset_index()

    def counts(self, folder: str, temperature: float) -> pd.DataFrame:
        """The deciding verifier's adaptive counts at one temperature (problem, num_samples, ...)."""
        from ttscale.rundir.adaptive_state import read_state

        st = read_state(self.run)
        st = st[st["temperature"] == temperature]
        info = run_rule(self.run)
        assert info is not None
        return pd.DataFrame({
            "problem": st["problem_id"].to_numpy(), "num_samples": st["n"].to_numpy(np.int64),
            "num_correct": st["successes"].to_numpy(np.int64), "adaptive_prev": st["prev"].to_numpy(np.int64),
            "adaptive_successes": int(info["rule"]["successes"]), "adaptive_min_samples": self.m,
            "adaptive_max_samples": self.k_max})


def compare_view(run: Any) -> CompareView | None:
    """A :class:`CompareView` of an adaptive run, None for any other run."""
    info = run_rule(run)
    return CompareView(run, info) if info is not None else None


REPORT_NOTE = ("Sampled until solved: each (problem, temperature) stopped at the first round boundary "
               "where the oracle verifier had passed at least r of its samples (and at least m were "
               "drawn), or at K. pass@k is the stopping rule's exactly unbiased estimator for every "
               "k <= K (the plain estimator would be biased here); maj@k, best-of-k and weighted "
               "vote use the first m samples only, for k <= m.")


def report_table(cfg: dict[str, Any]) -> pd.DataFrame | None:
    """One row for the report: the rule and the samples saved (None for a non-adaptive run)."""
    rule = cfg.get("adaptive")
    if not rule:
        return None
    s = cfg.get("adaptive_summary", {})
    drawn, full = s.get("samples_drawn"), s.get("samples_full")
    return pd.DataFrame([{
        "r (successes)": rule.get("successes"), "m (min_samples)": rule.get("min_samples"),
        "first_round": rule.get("first_round"), "growth": rule.get("growth"),
        "K": cfg.get("num_samples"), "verifier": s.get("verifier"),
        "boundaries": ",".join(str(b) for b in s.get("boundaries", [])),
        "stopped": f"{s.get('stopped')} of {s.get('groups')}",
        "samples drawn": drawn, "full K would draw": full,
        "fraction drawn": round(drawn / full, 4) if drawn and full else None,
        "samples saved": (full - drawn) if drawn is not None and full else None}])


def subset_trials_for(counts: pd.DataFrame, ks: np.ndarray) -> np.ndarray:
    """``sum_i n_i / k`` (:func:`ttscale.analysis.ceilings.interval.subset_trials`), where a row
    that stopped (S >= r) counts as K samples for k > T: its pass@k there is exactly 1, as
    certain as a full run's row at that k; for k <= T it counts its own T samples."""
    from ttscale.analysis.ceilings.interval import subset_trials

    n = counts["num_samples"].to_numpy(np.int64)
    if not is_adaptive(counts):
        return subset_trials(n, ks)
    kk = np.asarray(ks, dtype=np.int64).ravel()
    stopped = counts["num_correct"].to_numpy(np.int64) >= counts["adaptive_successes"].to_numpy(np.int64)
    big = counts["adaptive_max_samples"].to_numpy(np.int64)
    kf = np.maximum(kk[None, :], 1).astype(float)
    beyond = stopped[:, None] & (kk[None, :] > n[:, None])
    per = np.where(beyond, big[:, None] / kf, n[:, None] / kf)
    return per.sum(axis=0)
