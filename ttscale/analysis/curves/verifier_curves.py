"""The curves of ``compare`` (one per verifier and temperature) from the run's summaries only.

``compare`` verifies what is missing and then calls :func:`verifier_table`, which reads the
verifiers' summaries (:mod:`ttscale.rundir.summaries`), never the per-sample tables:

- oracle: pass@k from the verifier's counts;
- selector: maj@k (answers) or best-of-k (every sample scored) from its histogram, computed by
  :func:`ttscale.analysis.curves.vote_curves.selection_matrix` and cached in ``summaries/cache`` (the
  same computation ``analyze`` uses, so it is done once);
- imperfect: accept@k from the joint counts against the reference oracle
  (:func:`ttscale.rundir.summaries.joint_summary`);
- fpr and fnr of every verifier against the reference, from the same joint counts.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from ttscale.rundir.store import RunDir

TABLE_COLUMNS = ["verifier", "kind", "temperature", "metric", "k", "accuracy", "ci_low", "ci_high",
                 "fpr", "fnr"]


def min_samples(run: RunDir) -> int:
    """The fewest samples any (problem, temperature) of the run has."""
    from ttscale.rundir.summaries import samples_summary

    return int(np.min(samples_summary(run).table["n"].to_numpy()))


def rates(joint: pd.DataFrame) -> tuple[float, float]:
    """(fpr, fnr) from joint counts: passed among truly wrong, failed among truly right."""
    n, p, t, b = (float(joint[c].sum()) for c in ("n", "passed", "truth", "both"))
    wrong, right = n - t, t
    fpr = (p - b) / wrong if wrong > 0 else float("nan")
    fnr = (t - b) / right if right > 0 else float("nan")
    return fpr, fnr


def accept_curve(joint: pd.DataFrame, ks: Any, n_boot: int, seed: int) -> pd.DataFrame:
    """accept@k per problem (see ``ttscale compare``) with a bootstrap CI over problems."""
    from ttscale.analysis.curves.estimators import bootstrap_ci, pass_at_k

    g = joint.groupby("problem_id", sort=True)[["n", "passed", "both"]].sum()
    n = g["n"].to_numpy(np.int64)
    acc = g["passed"].to_numpy(np.int64)
    right = g["both"].to_numpy(np.int64)
    kk = np.asarray(ks, dtype=np.int64)
    share = np.divide(right, acc, out=np.zeros(len(n)), where=acc > 0)
    per = share[:, None] * pass_at_k(n, acc, kk)
    low, high = bootstrap_ci(per, n_boot=n_boot, seed=seed)
    return pd.DataFrame({"metric": "accept@k", "k": kk, "estimate": per.mean(axis=0),
                         "ci_low": low, "ci_high": high})


def verifier_table(run: RunDir, entries: list[tuple[str, str]], ref_folder: str, ks: Any,
                   n_boot: int = 1000, seed: int = 0, progress: Any = None) -> pd.DataFrame:
    """The comparison table (TABLE_COLUMNS) of ``entries`` = [(verdict folder, kind), ...]
    against the reference oracle's folder, on the grid ``ks``. ``progress(done, total)`` is
    called after each verifier."""
    from ttscale.analysis.adaptive.run import compare_view
    from ttscale.analysis.curves.coverage import coverage_curves, selection_curve_from_summary
    from ttscale.rundir.summaries import joint_summary, verdict_summary

    kk_all = np.asarray(ks, dtype=np.int64)
    cache = run.path / "summaries" / "cache"
    view = compare_view(run)  # an adaptive run: the decider's estimator, the others' first m samples
    tables = []
    for i, (folder, kind) in enumerate(entries):
        hist = verdict_summary(run, folder).table.to_pandas()
        joint = joint_summary(run, folder, ref_folder).to_pandas()
        # the verifier's rates over all of its samples; a selector picks, it does not judge
        fpr, fnr = rates(joint) if kind != "selector" else (float("nan"), float("nan"))
        kk = kk_all
        if view is not None:
            kk = view.ks(folder, kk_all)
            if folder != view.decider:
                hist, joint = view.hist(folder), view.joint(folder, ref_folder)
        for temp, sub in hist.groupby("temperature", sort=True) if len(kk) else []:
            if kind == "imperfect":
                curve = accept_curve(joint[joint["temperature"] == temp], kk, n_boot, seed)
            elif kind == "selector":
                metric = "best-of-k" if sub["score"].notna().all() else "maj@k"
                curve, _ = selection_curve_from_summary(sub, (), [], metric, kk, n_boot=n_boot,
                                                        seed=seed, cache_dir=cache)
            else:
                c = sub.groupby("problem_id", sort=True)[["count", "passed"]].sum().reset_index()
                c = c.rename(columns={"problem_id": "problem", "count": "num_samples",
                                      "passed": "num_correct"})
                if view is not None and folder == view.decider:
                    c = view.counts(folder, float(temp))
                curve = coverage_curves(c, ks=kk, n_boot=n_boot, seed=seed,
                                        source=str(run.verdicts_dir(folder)))
            curve = curve.rename(columns={"estimate": "accuracy"})
            curve.insert(0, "temperature", float(temp))
            curve.insert(0, "kind", kind)
            curve.insert(0, "verifier", folder)
            tables.append(curve.assign(fpr=fpr, fnr=fnr))
        if progress is not None:
            progress(i + 1, len(entries))
    table = pd.concat(tables, ignore_index=True)[TABLE_COLUMNS]
    table["k"] = table["k"].astype(np.int64)
    return table
