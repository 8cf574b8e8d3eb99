"""How far the sequential law can be trusted: its fit check and the what-if beyond the budgets.

Prints, on synthetic runs with known per-problem rates:

* the fit check's false alarms where the law ``F(B) = F_max (1 - exp(-rate B))`` holds (independent
  binomial counts per budget, the check's own assumption, and problems whose rates move together
  across budgets), and its power against a straight line (the embedded think-llama's shape);
* the what-if forecast at twice the largest budget (``ttscale frontier --what-if-budget 2``): how
  often its 90% interval covers the true coverage at k = 1, 4, 16, and how often the back-test
  refuses a run where the law holds.

    python benchmarks/bench_sequential_law.py [--runs 400] [--whatif-runs 20]
"""

from __future__ import annotations

import argparse

import numpy as np
import pandas as pd

from ttscale.analysis.frontier.configs import build_configurations
from ttscale.analysis.frontier.whatif_budget import extrapolate_budget
from ttscale.analysis.laws.sequential import budget_curve, sequential_record

BUDGETS = np.array([100, 200, 400, 800, 1600])


def check_rates(runs: int, kind: str, problems: int, n: int, rng: np.random.Generator) -> float:
    """Share of runs whose law the fit check rejects."""
    rejected = 0
    for s in range(runs):
        if kind == "line":
            truth = np.linspace(0.1, 0.95, len(BUDGETS))
        else:
            truth = budget_curve(BUDGETS, 0.7, 0.003)
        if kind == "together":  # each problem's rate a multiple of the law, the same at every budget
            p = np.clip(truth[None, :] * rng.beta(1, 1, (problems, 1)) * 2, 0, 1)
        else:
            p = np.broadcast_to(truth, (problems, len(BUDGETS)))
        c = rng.binomial(n, p)
        rec = sequential_record(BUDGETS, c, np.full_like(c, n), 1e-4, n_boot=2, seed=s)
        rejected += rec["sequential_fit_status"] == "rejected"
    return rejected / runs


def whatif(runs: int, problems: int = 200, n: int = 16) -> tuple[int, int, int]:
    """(intervals covering the truth, intervals, runs refused by the back-test)."""
    budgets = [64, 128, 256, 512]
    hits = total = refused = 0
    for seed in range(runs):
        rng = np.random.default_rng(seed)
        d = rng.beta(1, 1, problems) * 1.25
        law = {b: float(budget_curve(np.array([b]), 0.8, 0.004)[0]) for b in [*budgets, 1024]}
        rows = []
        for b in budgets:
            c = rng.binomial(n, np.clip(d * law[b], 0, 1))
            rows += [{"problem": i, "budget": b, "num_samples": n, "num_correct": int(c[i]),
                      "mean_output_tokens": 0.8 * b} for i in range(problems)]
        ex, _ = extrapolate_budget(build_configurations(pd.DataFrame(rows)), [2], level=0.9, n_boot=100, seed=seed)
        if not len(ex):
            refused += 1
            continue
        p = np.clip(d * law[1024], 0, 1)
        for k in (1, 4, 16):
            r = ex[ex["k"] == k].iloc[0]
            hits += bool(r["ci_low"] <= (1 - (1 - p) ** k).mean() <= r["ci_high"])
            total += 1
    return hits, total, refused


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=400)
    ap.add_argument("--whatif-runs", type=int, default=20)
    a = ap.parse_args()
    rng = np.random.default_rng(0)
    print(f"fit check, {a.runs} runs each, 5 budgets:")
    print(f"  false alarms, law holds, independent counts (400 problems x 50): "
          f"{check_rates(a.runs, 'law', 400, 50, rng):.3f}")
    print(f"  false alarms, law holds, rates move together (40 problems x 32): "
          f"{check_rates(a.runs, 'together', 40, 32, rng):.3f}")
    print(f"  power against a straight line (40 problems x 32): {check_rates(a.runs, 'line', 40, 32, rng):.3f}")
    hits, total, refused = whatif(a.whatif_runs)
    print(f"what-if at 2x the largest budget, {a.whatif_runs} runs (200 problems x 16, 4 budgets): "
          f"90% intervals covered {hits}/{total} ({hits / max(total, 1):.3f}); back-test refused {refused} runs")


if __name__ == "__main__":
    main()
