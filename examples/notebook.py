"""From a counts table to figures, in Python: the notebook form of ttscale (no subprocess).

Run it as a script (``python examples/notebook.py OUT``) or cell by cell (the ``# %%`` markers
are cells in VS Code, Jupyter via jupytext, PyCharm). It

1. builds a counts table: 3 benchmarks x 2 models, 200 problems, 100 samples each, pass rates
   drawn from Beta distributions (seeded), or reads ``--counts FILE`` (CSV/Parquet with problem,
   num_samples, num_correct and grouping columns; e.g. Large Language Monkeys' counts);
2. analyses it (``ttscale.analyze``): pass@k curves with bootstrap CIs, fitted laws, figures;
3. back-tests forecasts: coverage at k = 100 forecast from 10 samples per problem against what
   all 100 measured, then forecasts k = 10,000 from all 100 (``ttscale.forecast``);
4. asks what a verifier with 5% false positives would return (``ttscale.simulate``);
5. with ``--run``: samples the embedded model, verifies, compares two verifiers, analyses and
   writes the HTML report (``ttscale.sample`` ... ``ttscale.report``; about a minute on a CPU).
"""

# %%
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

import ttscale

parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
parser.add_argument("out", nargs="?", default="results/notebook", help="output folder")
parser.add_argument("--counts", help="a counts table to use instead of the generated one")
parser.add_argument("--run", action="store_true", help="also sample and verify the embedded model")
args = parser.parse_args()
out = Path(args.out)
out.mkdir(parents=True, exist_ok=True)

# %% [1] a counts table: one row per (benchmark, model, problem)
if args.counts:
    counts = pd.read_csv(args.counts) if args.counts.endswith(".csv") else pd.read_parquet(args.counts)
else:
    rng = np.random.default_rng(0)
    rows = []
    for bench, hardness in [("easy", 1.0), ("medium", 4.0), ("hard", 12.0)]:
        for model, skill in [("small", 1.0), ("large", 2.5)]:
            p = rng.beta(0.3, hardness / skill, size=200)  # many hard problems, a few easy ones
            for i, pi in enumerate(p):
                rows.append((bench, model, f"{bench}-{i:03d}", 100, int(rng.binomial(100, pi))))
    counts = pd.DataFrame(rows, columns=["benchmark", "model", "problem", "num_samples",
                                         "num_correct"])
counts.to_csv(out / "counts.csv", index=False)
groups = [c for c in counts.columns if c not in ("problem", "num_samples", "num_correct")]
print(f"counts: {len(counts)} rows; grouping columns: {groups}")

# %% [2] curves, fits and figures
analysis = ttscale.analyze(counts, out / "analysis", n_boot=300, law_boot=50, progress=False)
at = analysis.curves[(analysis.curves["metric"] == "pass@k") & analysis.curves["k"].isin([1, 10, 100])]
print(at.pivot_table(index=analysis.group_cols, columns="k", values="estimate").round(3))
fits = analysis.fits[[*analysis.group_cols, "law", "a", "b", "rmse", "saturation_k"]]
print(fits.to_string(index=False))
fig = analysis.plot("coverage_k")  # in a notebook this line shows the figure
fig.savefig(out / "coverage_k.png", dpi=100)
print(f"figures: {sorted(p.name for p in (out / 'analysis' / 'figures').glob('*.png'))}")

# %% [3] forecasts: k = 100 from 10 samples per problem (a back-test), then k = 10,000
fc = ttscale.forecast(counts, to=100, from_k=10, method=["power_law", "beta_eb"], seed=1)
measured = at[at["k"] == 100].rename(columns={"estimate": "measured"})
table = fc.merge(measured[[*analysis.group_cols, "measured"]], on=analysis.group_cols)
table["error"] = (table["coverage"] - table["measured"]).round(4)
print(table[[*analysis.group_cols, "method", "coverage", "measured", "error"]].to_string(index=False))
print(ttscale.forecast(counts, to=10_000).round(4).to_string(index=False))

# %% [4] what a verifier with 5% false positives returns when resampling until it accepts
sim = ttscale.simulate(counts, fpr=0.05, k_max=10_000, out=out / "whatif")
print(sim.summary[[*analysis.group_cols, "accuracy_ceiling", "saturation_k"]].to_string(index=False))
sim.plot().savefig(out / "whatif.png", dpi=100)

# %% [5] optional: the whole flow on the embedded model (sample -> verify -> analyze -> compare -> report)
if args.run:
    run_dir = out / "run"
    ttscale.sample("arithmetic", out=run_dir, model="embedded", num_samples=16, num_problems=20,
                   temperatures=[0.6, 1.0], max_tokens=8, progress=False)
    ttscale.verify(run_dir, "exact", workers=0, progress=False)
    # compare verifies what is missing (the imperfect verifier) before comparing
    cmp = ttscale.compare(run_dir, ["exact", "imperfect(base=exact,fpr=0.1,fnr=0.05)"], n_boot=200,
                          workers=0, out=run_dir / "analysis" / "compare", progress=False)
    print(cmp.table[cmp.table["k"] == 16][["verifier", "temperature", "metric", "accuracy"]])
    # analysed after every verifier has judged every sample (else the report refuses: stale)
    ttscale.analyze(run_dir, run_dir / "analysis", n_boot=200, law_boot=20, progress=False)
    run = ttscale.open_run(run_dir)
    print(f"run: {len(run.samples)} samples, verifiers {run.verifiers}")
    print(f"report: {ttscale.report(run_dir)}")
