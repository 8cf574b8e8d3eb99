"""Adaptive sampling (sample until solved): samples saved and what it costs in CI width.

Part 1 (``--part reference``): on the Large Language Monkeys counts in data/reference (shipped
with the repo), each problem's empirical rate c/n is taken as its true rate and adaptive runs are
simulated round by round (``ttscale.analysis.adaptive.estimators.simulate_rule``: boundaries doubling from 32,
K = 10,000, r in {1, 2, 4, 8}); the same draws give the full-K counts. Printed per (benchmark,
model, r): the fraction of samples drawn, and for k = 1, 10, 100, 1,000, 10,000 the ratio of the
95% bootstrap CI width (over problems) of coverage@k, adaptive over full, averaged over
replications, and the sampling noise (standard deviation over replications) of each. The MATH
Llama-3-8B row at r = 4 must draw <= 0.12 of the samples with every width ratio <= 1.15.

Part 2 (``--part live``): the embedded model on arithmetic at K = 1,000 (transformers backend,
one thread), an adaptive run and a full run side by side: samples drawn, wall time, and both
coverage curves with their CIs overlaid in ``results/bench_adaptive/coverage_overlay.png``.

    python benchmarks/bench_adaptive.py                     # both parts
    python benchmarks/bench_adaptive.py --part reference --reps 40
    python benchmarks/bench_adaptive.py --part live --problems 50 -k 1000
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from ttscale.analysis.adaptive.plan import fixed_rates, plan_adaptive
from ttscale.sampling.stopping import StoppingRule

REFERENCE = Path(__file__).resolve().parents[1] / "data" / "reference" / "monkeys_llama3_counts.csv"
KS = np.array([1, 10, 100, 1000, 10000])


def reference(path: Path, reps: int, n_boot: int, seed: int) -> bool:
    if not path.is_file():
        print(f"skipped: {path} absent")
        return True
    counts = pd.read_csv(path)
    k_max = int(counts["num_samples"].max())
    ks = KS[KS <= k_max]
    ok = True
    print(f"reference: {path.name}, K = {k_max}, rounds doubling from 32, {reps} replications, "
          f"{n_boot} bootstrap resamples")
    head = "benchmark  model                  r  drawn  " + "  ".join(f"w@{k:<5d}" for k in ks)
    print(head + "  noise@10 (adaptive/full)")
    for (bench, model), g in counts.groupby(["benchmark", "model"], sort=True):
        rates = (g["num_correct"] / g["num_samples"]).to_numpy()
        for r in (1, 2, 4, 8):
            rule = StoppingRule(successes=r, min_samples=1, first_round=32, growth=2.0)
            plan = plan_adaptive(fixed_rates(rates), rule, k_max, ks, replicates=reps,
                                 n_boot=n_boot, seed=seed)
            ratio = plan["width_ratio"].to_numpy()
            tiny = np.isnan(ratio)  # both intervals (nearly) empty: coverage 1 on every resample
            i10 = int(np.flatnonzero(ks == 10)[0]) if 10 in ks else 0
            frac = float(plan["fraction_drawn"].iloc[0])
            line = (f"{bench:<10} {model:<22} {r}  {frac:.3f}  "
                    + "  ".join("      -" if t else f"{x:7.3f}" for x, t in zip(ratio, tiny, strict=True))
                    + f"  {plan['sd_adaptive'].iloc[i10]:.4f}/{plan['sd_full'].iloc[i10]:.4f}")
            if bench == "MATH" and model.startswith("Llama-3-8B") and r == 4:
                good = frac <= 0.12 and bool((ratio[~tiny] <= 1.15).all())
                ok &= good
                line += "  <- target: drawn <= 0.12, widths <= 1.15x: " + ("met" if good else "NOT MET")
            print(line)
    print("w@k: 95% CI width of coverage@k, adaptive / full (mean over replications; '-': both "
          "under 1e-4); drawn: fraction of the K samples drawn; noise@10: standard deviation of "
          "coverage@10 over replications")
    return ok


def live(problems: int, k: int, r: int, out: Path) -> bool:
    from ttscale.analysis.curves.coverage import coverage_curves, default_ks
    from ttscale.analysis.inputs import load_input
    from ttscale.orchestration.samples import draw
    from ttscale.rundir.adaptive_state import read_state
    from ttscale.rundir.store import RunDir
    from ttscale.sampling.backends import get_backend
    from ttscale.sampling.sampler import SampleSettings
    from ttscale.verification.verify import verify_run

    shutil.rmtree(out, ignore_errors=True)
    base = dict(task="arithmetic", num_problems=problems, num_samples=k, temperatures=[1.0],
                max_tokens=8, backend_options={"threads": 1})
    backend = get_backend("transformers", model="embedded", threads=1)  # one load for both runs
    try:
        t0 = time.time()
        res_full = draw(SampleSettings(**base), out / "full", backend=backend, progress=False)
        verify_run(out / "full", "exact")
        t_full = time.time() - t0
        t0 = time.time()
        res_ad = draw(SampleSettings(**base, adaptive={"successes": r}), out / "adaptive",
                              backend=backend, progress=False)
        t_ad = time.time() - t0
    finally:
        backend.close()
    state = read_state(RunDir(out / "adaptive"))
    ks = np.asarray(default_ks(k))
    # the curves ttscale analyze reports for each run (the stopping-rule estimator for the
    # adaptive one; bootstrap intervals widened to the exact bound at the ceiling)
    cur = {name: coverage_curves(load_input(out / name).counts, ks=ks, seed=0)
           for name in ("adaptive", "full")}
    (ca, la, ha), (cf, lf, hf) = ((cur[n]["estimate"].to_numpy(), cur[n]["ci_low"].to_numpy(),
                                   cur[n]["ci_high"].to_numpy()) for n in ("adaptive", "full"))
    overlap = (la <= hf) & (lf <= ha)
    print(f"live: embedded model, arithmetic, {problems} problems x K = {k}, r = {r} "
          f"(rounds doubling from 32), transformers, 1 thread")
    print(f"  full:     {res_full.written} samples, {t_full:.1f} s (sampling + verifying)")
    print(f"  adaptive: {res_ad.written} samples ({res_ad.written / res_full.written:.3f} of full), "
          f"{t_ad:.1f} s ({t_ad / t_full:.2f}x the time), {int(state['stopped'].sum())} of "
          f"{len(state)} stopped")
    for kk in (1, 10, 100, k):
        i = int(np.flatnonzero(ks == kk)[0]) if kk in ks else None
        if i is not None:
            print(f"  coverage@{kk}: adaptive {ca[i]:.3f} [{la[i]:.3f}, {ha[i]:.3f}]  "
                  f"full {cf[i]:.3f} [{lf[i]:.3f}, {hf[i]:.3f}]")
    print(f"  CIs overlap at {int(overlap.sum())} of {len(ks)} k")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for c, lo, hi, label, col in ((cf, lf, hf, f"full K ({res_full.written} samples)", "C0"),
                                  (ca, la, ha, f"adaptive r={r} ({res_ad.written} samples)", "C3")):
        ax.plot(ks, c, label=label, color=col)
        ax.fill_between(ks, lo, hi, alpha=0.2, color=col)
    ax.set_xscale("log")
    ax.set_xlabel("k")
    ax.set_ylabel("coverage (pass@k)")
    ax.set_title(f"arithmetic, embedded model, {problems} problems")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "coverage_overlay.png", dpi=120)
    print(f"  figure: {out / 'coverage_overlay.png'}")
    return bool(overlap.all())


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--part", choices=["reference", "live", "both"], default="both")
    ap.add_argument("--reps", type=int, default=40)
    ap.add_argument("--n-boot", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--problems", type=int, default=50)
    ap.add_argument("-k", type=int, default=1000)
    ap.add_argument("-r", type=int, default=4)
    ap.add_argument("--out", default="results/bench_adaptive")
    a = ap.parse_args()
    ok = True
    if a.part in ("reference", "both"):
        ok &= reference(REFERENCE, a.reps, a.n_boot, a.seed)
    if a.part in ("live", "both"):
        ok &= live(a.problems, a.k, a.r, Path(a.out))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
