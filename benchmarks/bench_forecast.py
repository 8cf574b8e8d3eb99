"""Forecast accuracy: coverage at K = 10,000 from 100 samples per problem, every method.

For each (benchmark, model) group of the reference counts (10,000 samples per problem), draw 100
samples per problem without replacement (a hypergeometric draw of successes), forecast coverage
at K = 10,000 with every method in ``ttscale.analysis.forecast.METHODS``, and compare with the
true coverage at 10,000 from all samples. Prints the mean absolute error (points of coverage) per
method side by side, with its ratio to the power-law baseline, and the mean time per forecast.

    python benchmarks/bench_forecast.py [--seeds 10] [--n 100] [--K 10000]

Skips cleanly when the reference folder is absent (TTSCALE_REFERENCE_DIR, default
../shared/reference next to the repository).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from ttscale.analysis.forecast import METHODS, forecast_coverage

BASELINE = "power_law"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--n", type=int, default=100, help="samples per problem to forecast from")
    ap.add_argument("--K", type=int, default=10_000, help="the K to forecast")
    ap.add_argument("--methods", nargs="*", default=list(METHODS))
    args = ap.parse_args(argv)
    ref = Path(os.environ.get("TTSCALE_REFERENCE_DIR", Path(__file__).resolve().parents[2] / "shared" / "reference"))
    path = ref / "monkeys_llama3_counts.csv"
    if not path.exists():
        print(f"skipped: {path} not found")
        return 0
    df = pd.read_csv(path)
    methods = [m for m in args.methods if m in METHODS]
    rows, all_err = [], {m: [] for m in methods}
    seconds = {m: 0.0 for m in methods}
    for (bench, model), g in df.groupby(["benchmark", "model"], sort=True):
        big_n, big_c = g["num_samples"].to_numpy(), g["num_correct"].to_numpy()
        if big_n.min() < args.K:
            continue
        truth = float(np.mean(1 - np.exp(_log_miss(big_n, big_c, args.K))))
        rng = np.random.default_rng(0)
        err = {m: [] for m in methods}
        observed = []
        for _ in range(args.seeds):
            c = rng.hypergeometric(big_c, big_n - big_c, args.n)
            n = np.full(c.size, args.n)
            observed.append(float(np.mean(c > 0)))
            for m in methods:
                t0 = time.perf_counter()
                err[m].append(forecast_coverage(n, c, args.K, m) - truth)
                seconds[m] += time.perf_counter() - t0
        row = {"group": f"{bench} {model}", "true": 100 * truth, f"seen@{args.n}": 100 * np.mean(observed)}
        for m in methods:
            row[m] = 100 * np.mean(np.abs(err[m]))
            all_err[m] += err[m]
        rows.append(row)
    if not rows:
        print(f"skipped: no group has {args.K} samples per problem")
        return 0
    overall = {"group": "ALL (mean over groups)", "true": np.nan, f"seen@{args.n}": np.nan}
    overall.update({m: 100 * np.mean(np.abs(all_err[m])) for m in methods})
    table = pd.DataFrame([*rows, overall])
    print(f"coverage at K={args.K} forecast from n={args.n} samples per problem, {args.seeds} seeds;")
    print("mean absolute error in points of coverage (true and seen in %):")
    print(table.to_string(index=False, float_format=lambda x: f"{x:.2f}"))
    if BASELINE in methods:
        base = overall[BASELINE]
        print(f"\nratio of MAE to the {BASELINE} baseline (lower is better):")
        for m in methods:
            print(f"  {m:14s} {overall[m] / base if base > 0 else float('nan'):6.2f}   "
                  f"{1000 * seconds[m] / (len(rows) * args.seeds):8.1f} ms per forecast")
    return 0


def _log_miss(n: np.ndarray, c: np.ndarray, k: int) -> np.ndarray:
    from scipy.special import gammaln

    fail = n - c
    ok = fail >= k
    safe = np.where(ok, fail - k, 0)
    val = gammaln(fail + 1) - gammaln(safe + 1) - gammaln(n + 1) + gammaln(n - k + 1)
    return np.where(ok, val, -np.inf)


if __name__ == "__main__":
    sys.exit(main())
