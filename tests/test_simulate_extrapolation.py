"""``ttscale simulate``'s optimal k is marked when it is drawn from a law unsafe to extrapolate
(issue 20): ``optimal_k_extrapolated``, ``law_extrapolation`` and ``optimal_k_warning`` in the
summary, and one warning line on stderr from the CLI.

Data: 128 problems, 100 samples each. With 20% of the problems unsolvable (p = 0) the power law
fitted on k <= 10 over-predicts coverage at 100 (the extrapolation back-test says ``unsafe``);
drawn from Beta(0.5, 2) alone it says ``safe`` (seeds checked in the tests themselves).
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

import ttscale
from ttscale.analysis.laws.extrapolation import extrapolation_check
from ttscale.cli import main

PROBLEMS, SAMPLES = 128, 100


def counts_of(zero: float, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    p = np.where(rng.random(PROBLEMS) < zero, 0.0, rng.beta(0.5, 2.0, PROBLEMS))
    return pd.DataFrame({"problem": [f"q{i}" for i in range(PROBLEMS)], "num_samples": SAMPLES,
                         "num_correct": rng.binomial(SAMPLES, p)})


def verdict(counts: pd.DataFrame) -> str:
    return extrapolation_check(counts["num_samples"], counts["num_correct"])["status"]


@pytest.fixture(scope="module")
def ceiling() -> pd.DataFrame:
    c = counts_of(0.2, seed=1)
    assert verdict(c) == "unsafe"
    return c


def test_optimal_k_beyond_n_from_an_unsafe_law_is_marked(ceiling):
    # no cost per sample: the utility grows with k, the optimum is the largest k simulated
    s = ttscale.simulate(ceiling, k_max=10_000, optimal_k_boot=0, progress=False).summaries[0]
    assert s["optimal_k"] == 10_000
    assert s["optimal_k_extrapolated"] is True
    assert s["law_extrapolation"] == "unsafe"
    assert "optimal k = 10000 lies beyond the 100 samples" in s["optimal_k_warning"]
    assert "do not trust this optimal k" in s["optimal_k_warning"]


def test_optimal_k_from_a_safe_law_or_within_the_samples_is_not_marked(ceiling):
    safe = counts_of(0.0, seed=0)
    assert verdict(safe) == "safe"
    s = ttscale.simulate(safe, k_max=10_000, optimal_k_boot=0, progress=False).summaries[0]
    assert (s["optimal_k_extrapolated"], s["law_extrapolation"], s["optimal_k_warning"]) == (
        True, "safe", None)
    # a costly sample: the optimum lies within the 100 samples drawn, nothing extrapolated
    s = ttscale.simulate(ceiling, k_max=10_000, cost_per_sample=0.01, optimal_k_boot=0,
                         progress=False).summaries[0]
    assert s["optimal_k"] <= SAMPLES
    assert (s["optimal_k_extrapolated"], s["law_extrapolation"], s["optimal_k_warning"]) == (
        False, None, None)
    # a given difficulty has no counts to back-test: extrapolated, nothing to judge
    s = ttscale.simulate(difficulty="beta:0.5,2", k_max=1000, progress=False).summaries[0]
    assert s["optimal_k_extrapolated"] is False and s["law_extrapolation"] is None


def test_cli_prints_one_warning_line_on_stderr(ceiling, tmp_path, capsys):
    path = tmp_path / "counts.csv"
    ceiling.assign(model="m").to_csv(path, index=False)
    assert main(["simulate", str(path), "--json", "--optimal-k-boot", "0"]) == 0
    out, err = capsys.readouterr()
    summary = json.loads(out[out.index("["):])[0]
    assert summary["law_extrapolation"] == "unsafe"
    lines = [x for x in err.splitlines() if x.startswith("warning:")]
    assert len(lines) == 1 and "do not trust this optimal k" in lines[0]
