"""CPU time and peak memory of a compute-optimal frontier (``ttscale.frontier``) at scale.

A synthetic counts table: ``--problems`` problems x ``--configs`` configurations (temperatures x
budgets, one model shape) x ``--samples`` samples per problem and configuration, rates from a
latent difficulty per problem. Timed in one process, side by side:

* baseline: every configuration's coverage curve with its bootstrap CI over problems (the existing
  estimator, ``ttscale.analysis.curves.estimators.pass_at_k`` + ``bootstrap_ci``), the least any
  tool must do to compare configurations;
* frontier: ``ttscale.frontier`` with tokens, FLOPs and Kinetics eFLOPs (band, not-significantly-
  worse sets, FLOPs/eFLOPs disagreements, next moves at every frontier point, cross-fitted
  per-difficulty allocation and saturation).

Printed: CPU seconds of each, their ratio, the frontier's peak traced memory (tracemalloc: numpy
and Python allocations) and the process's peak RSS. Target: < 60 CPU s at 10M samples and 100
configurations (the full size below).

    python benchmarks/bench_frontier.py            # --quick: 500 problems x 20 configs x 64 samples
    python benchmarks/bench_frontier.py --full     # 1,000 problems x 100 configs x 100 samples = 10M
    python benchmarks/bench_frontier.py --coverage 200   # the band's coverage of the true frontier

``--coverage R`` instead draws R synthetic runs (150 problems, 4 configurations whose per-problem
rates are known Beta quantiles of a latent difficulty, 16 samples each; cost = k x budget) and
prints how often the 95% band covers the whole true (population) frontier, with its binomial
standard error (tests/test_frontier.py asserts >= 90% on 60 runs), then R / 5 runs (at least 20)
of a population with a known per-difficulty optimum: the cross-fitted gain's mean against the
closed form, and how often its interval covers it.
"""

from __future__ import annotations

import argparse
import resource
import time
import tracemalloc

import numpy as np
import pandas as pd


def synthetic_counts(problems: int, configs: int, samples: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    temps = np.linspace(0.2, 1.2, max(1, configs // 10)) if configs >= 10 else np.array([1.0])
    budgets = 256 * 2 ** np.arange(int(np.ceil(configs / temps.size)))
    u = rng.beta(0.6, 1.4, problems)
    frames = []
    for i, (t, b) in enumerate([(t, b) for t in temps for b in budgets][:configs]):
        p = np.clip(u * (0.6 + 0.1 * np.log2(b / 256)) * (1.1 - 0.3 * abs(t - 0.7)), 0, 1)
        frames.append(pd.DataFrame({
            "temperature": round(float(t), 3), "budget": int(b), "problem": np.arange(problems),
            "num_samples": samples, "num_correct": rng.binomial(samples, p),
            "mean_output_tokens": b * rng.uniform(0.5, 1.0, problems)}))
        del i
    return pd.concat(frames, ignore_index=True)


def band_coverage(reps: int, n_boot: int, level: float = 0.95) -> None:
    from scipy import stats

    import ttscale
    from ttscale.analysis.frontier.band import frontier_at

    maps = {(0.6, 100): (0.3, 2.0), (1.0, 100): (0.4, 2.5), (0.6, 200): (0.5, 1.5), (1.0, 200): (0.6, 1.2)}
    ks = np.array([1, 2, 4, 8, 16])
    grid = (np.arange(20_000) + 0.5) / 20_000
    true_cost = np.concatenate([b * ks for (_, b) in maps])
    true_acc = np.concatenate([(1 - (1 - stats.beta.ppf(grid, *ab)[:, None]) ** ks).mean(axis=0)
                               for ab in maps.values()])
    rng = np.random.default_rng(7)
    hits, widths = 0, []
    t0 = cpu()
    for rep in range(reps):
        u = rng.uniform(size=150)
        frames = [pd.DataFrame({"temperature": t, "budget": b, "problem": np.arange(150), "num_samples": 16,
                                "num_correct": rng.binomial(16, stats.beta.ppf(u, *ab))})
                  for (t, b), ab in maps.items()]
        f = ttscale.frontier(pd.concat(frames), ks=list(ks), prompt_tokens=0, n_boot=n_boot, level=level,
                             seed=rep, metrics=["tokens"], allocation=False)
        want = frontier_at(true_cost, true_acc, f.band["cost"].to_numpy())
        hits += bool(((f.band["band_low"] <= want + 1e-12) & (want <= f.band["band_high"] + 1e-12)).all())
        widths.append(float((f.band["band_high"] - f.band["band_low"]).mean()))
    cov = hits / reps
    print(f"band coverage of the whole true frontier at {level:.0%}: {cov:.3f} (+/- {np.sqrt(cov * (1 - cov) / reps):.3f}) "
          f"over {reps} synthetic runs; mean band width {np.mean(widths):.3f}; {cpu() - t0:.1f} CPU s")


def allocation_coverage(reps: int) -> None:
    """The cross-fitted per-difficulty gain against its closed form: 100 easy (p = 0.8) and 100 hard
    (p = 0.02) problems, 128 samples each, one sample = one token, 2 bins, mean cost 8 and 32."""
    from ttscale.analysis.frontier.allocation import allocate
    from ttscale.analysis.frontier.configs import build_configurations

    def acc(ke: int, kh: int) -> float:
        return 0.5 * (1 - 0.2 ** ke) + 0.5 * (1 - 0.98 ** kh)

    targets = (8, 32)
    closed = {x: max(acc(a, b) for a in range(1, 65) for b in range(1, 65) if (a + b) / 2 <= x) - acc(x, x)
              for x in targets}
    rng = np.random.default_rng(0)
    hits = dict.fromkeys(targets, 0)
    est: dict[int, list[float]] = {x: [] for x in targets}
    p = np.r_[np.full(100, 0.8), np.full(100, 0.02)]
    for r in range(reps):
        df = pd.DataFrame({"temperature": 1.0, "problem": np.arange(200), "num_samples": 128,
                           "num_correct": rng.binomial(128, p)})
        cs = build_configurations(df, ks=list(range(1, 65)), prompt_tokens=0, tokens_per_sample=1)
        res = allocate(cs, "tokens", bins=2, targets=np.array(targets, float), n_boot=400, seed=r)
        for x, row in zip(targets, res.itertuples(), strict=True):
            hits[x] += bool(row.ci_low <= closed[x] <= row.ci_high)
            est[x].append(row.gain)
    for x in targets:
        print(f"per-difficulty gain at mean cost {x}: closed form {closed[x]:.4f}, cross-fitted mean "
              f"{np.mean(est[x]):.4f} (sd {np.std(est[x]):.4f}); 95% interval covered it in {hits[x]}/{reps} runs")


def cpu() -> float:
    return time.process_time()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--full", action="store_true", help="10M samples: 1,000 problems x 100 configs x 100")
    ap.add_argument("--quick", action="store_true", help="the default: 500 problems x 20 configs x 64")
    ap.add_argument("--n-boot", type=int, default=1000)
    ap.add_argument("--coverage", type=int, metavar="R", help="band coverage over R synthetic runs instead")
    args = ap.parse_args()
    if args.coverage:
        band_coverage(args.coverage, min(args.n_boot, 300) if args.n_boot == 1000 else args.n_boot)
        allocation_coverage(max(20, args.coverage // 5))
        return
    problems, configs, samples = (1000, 100, 100) if args.full else (500, 20, 64)
    counts = synthetic_counts(problems, configs, samples)
    total = int(counts["num_samples"].sum())
    print(f"{problems} problems x {configs} configurations x {samples} samples = {total:,} samples; "
          f"n_boot={args.n_boot}")

    from ttscale.analysis.curves.estimators import bootstrap_ci, pass_at_k
    from ttscale.analysis.frontier.configs import k_grid

    ks = k_grid(samples)
    t0 = cpu()
    for _, g in counts.groupby(["temperature", "budget"]):
        x = pass_at_k(g["num_samples"].to_numpy(), g["num_correct"].to_numpy(), ks)
        bootstrap_ci(x, n_boot=args.n_boot)
    base = cpu() - t0
    print(f"baseline (coverage curves + bootstrap CI per configuration): {base:.2f} CPU s")

    import ttscale

    tracemalloc.start()
    t0 = cpu()
    f = ttscale.frontier(counts, n_boot=args.n_boot, model_shape="Qwen2.5-7B", prompt_tokens=300)
    took = cpu() - t0
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"frontier: {took:.2f} CPU s ({took / base:.1f}x the baseline); peak traced memory "
          f"{peak / 2**20:.0f} MiB; process peak RSS {rss:.0f} MiB")
    print(f"  {f.settings['candidates']} candidates, {len(f.table)} frontier points over "
          f"{len(f.metrics)} metrics, {len(f.moves)} next moves, {len(f.allocation)} allocation targets, "
          f"{len(f.disagreements)} FLOPs/eFLOPs disagreements")
    if args.full:
        print(f"target < 60 CPU s: {'met' if took < 60 else 'NOT met'}")


if __name__ == "__main__":
    main()
