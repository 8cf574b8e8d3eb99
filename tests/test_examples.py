"""examples/notebook.py runs as a script, from a counts table to figures, through the public API only."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]


def test_notebook_example_walks_from_counts_to_figures(tmp_path):
    out = tmp_path / "nb"
    r = subprocess.run([sys.executable, str(ROOT / "examples" / "notebook.py"), str(out)],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    for name in ("counts.csv", "coverage_k.png", "whatif.png", "analysis/curves.parquet",
                 "analysis/fits.json", "whatif/simulation.parquet"):
        assert (out / name).is_file(), name
    figures = sorted(p.name for p in (out / "analysis" / "figures").glob("coverage_k-*.svg"))
    assert figures == ["coverage_k-easy.svg", "coverage_k-hard.svg", "coverage_k-medium.svg"]
    curves = pd.read_parquet(out / "analysis" / "curves.parquet")
    counts = pd.read_csv(out / "counts.csv")
    k1 = curves[(curves["metric"] == "pass@k") & (curves["k"] == 1)].set_index(["benchmark", "model"])
    per = counts.assign(rate=counts["num_correct"] / counts["num_samples"]).groupby(["benchmark", "model"])
    for key, rate in per["rate"].mean().items():  # pass@1 is the mean per-problem pass rate
        assert abs(k1.loc[key, "estimate"] - rate) < 1e-12
    assert "exp_power" in r.stdout and "accuracy_ceiling" in r.stdout
