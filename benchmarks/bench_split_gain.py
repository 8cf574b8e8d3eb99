"""Is the temperature view's split-gain interval honest? Coverage of 0 when every temperature has
the same true rate, and power when problems truly prefer different temperatures.

Per setting (temperatures T, problems P, k; n = 20 samples per problem and temperature, rates
Beta(0.5, 2)), ``--reps`` simulated count tables; for each the per-problem cross-fitted gains
``d_p`` of :func:`ttscale.analysis.temperatures.gain.fold_gains` and two 95% intervals of their
mean: the Student t interval the view reports and a percentile bootstrap over problems (the
resampling of the view's other intervals), side by side. Printed: the share of runs whose interval
covers the true gain 0, how many missed on each side (low > 0 is a falsely claimed split), and the
share in which the optimiser's in-sample split was mixed (a noise winner). Then the power case:
half the problems solvable only at the first temperature, half only at the second: the share of
runs in which the view claims the split (``split_better``).

    python benchmarks/bench_split_gain.py            # 300 reps per setting, about 1 minute
    python benchmarks/bench_split_gain.py --reps 100
"""

from __future__ import annotations

import argparse
import json

import numpy as np

from ttscale.analysis.temperatures.gain import fold_gains, gain_interval
from ttscale.analysis.temperatures.view import _logs, budget_splits

N = 20
SETTINGS = [(2, 20), (2, 50), (2, 200), (3, 50)]


def null_coverage(temps: int, problems: int, k: int, reps: int, seed: int) -> dict[str, float]:
    rng = np.random.default_rng(seed)
    miss = {"t": [0, 0], "bootstrap": [0, 0]}
    mixed = 0
    for r in range(reps):
        p = rng.beta(0.5, 2.0, size=(problems, 1))
        n = np.full((problems, temps), N)
        c = rng.binomial(N, np.repeat(p, temps, axis=1))
        d = fold_gains(_logs(n, c), n.min(axis=0), k, seed=r)
        _, lo, hi = gain_interval(d[:, None], 0.95)
        w = rng.multinomial(problems, np.full(problems, 1 / problems), size=1000) / problems
        boot = w @ d
        for name, (a, b) in (("t", (lo[0], hi[0])),
                             ("bootstrap", (np.quantile(boot, 0.025), np.quantile(boot, 0.975)))):
            miss[name][0] += a > 0
            miss[name][1] += b < 0
        found = json.loads(budget_splits(n, c, list(range(temps)), [k], n_splits=1, seed=r)
                           .iloc[0]["split_found"])
        mixed += sum(v > 0 for v in found.values()) > 1
    out = {f"{m}_cover": 1 - (a + b) / reps for m, (a, b) in miss.items()}
    out.update({f"{m}_low_above_0": a for m, (a, _) in miss.items()})
    out.update({f"{m}_high_below_0": b for m, (_, b) in miss.items()})
    out["mixed_in_sample"] = mixed / reps
    return out


def power(temps: int, problems: int, k: int, reps: int, seed: int) -> float:
    rng = np.random.default_rng(seed)
    claimed = 0
    for r in range(reps):
        p = rng.beta(2, 8, size=problems)
        rate = np.zeros((problems, temps))
        rate[: problems // 2, 0] = p[: problems // 2]
        rate[problems // 2:, 1] = p[problems // 2:]
        n = np.full((problems, temps), N)
        c = rng.binomial(N, rate)
        claimed += bool(budget_splits(n, c, list(range(temps)), [k], n_splits=1, seed=r)
                        .iloc[0]["split_better"])
    return claimed / reps


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--reps", type=int, default=300)
    ap.add_argument("--seed", type=int, default=11)
    args = ap.parse_args()
    for temps, problems in SETTINGS:
        for k in (4, 10):
            r = null_coverage(temps, problems, k, args.reps, args.seed)
            print(f"same rate, T={temps} P={problems:3d} k={k:2d}: t covers 0 in {r['t_cover']:.3f} "
                  f"(low>0 {r['t_low_above_0']}, high<0 {r['t_high_below_0']}); bootstrap "
                  f"{r['bootstrap_cover']:.3f} (low>0 {r['bootstrap_low_above_0']}, high<0 "
                  f"{r['bootstrap_high_below_0']}); optimiser's split mixed in {r['mixed_in_sample']:.2f}",
                  flush=True)
    for temps, problems in SETTINGS:
        for k in (4, 10):
            print(f"different temperatures, T={temps} P={problems:3d} k={k:2d}: split claimed in "
                  f"{power(temps, problems, k, max(args.reps // 4, 1), args.seed):.2f}", flush=True)


if __name__ == "__main__":
    main()
