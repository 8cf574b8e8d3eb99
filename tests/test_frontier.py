"""The compute-optimal frontier (ttscale.frontier): brute-force equality, band coverage on synthetic
runs with known per-problem rates, the per-difficulty gain against its closed form, next moves,
FLOPs vs eFLOPs disagreement, and bad input."""

from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from scipy import stats

import ttscale
from ttscale.analysis.frontier.allocation import allocate
from ttscale.analysis.frontier.band import frontier_at, frontier_points
from ttscale.analysis.frontier.configs import build_configurations, k_grid
from ttscale.analysis.frontier.result import compute_frontier
from ttscale.errors import InputError


def counts_from_rates(rates: dict[tuple, np.ndarray], n: int, rng: np.random.Generator,
                      axes: tuple[str, ...] = ("temperature", "budget")) -> pd.DataFrame:
    """A counts table drawing Binomial(n, p) per (configuration, problem) from known rates."""
    frames = []
    for key, p in rates.items():
        df = pd.DataFrame({"problem": [f"q{i}" for i in range(p.size)], "num_samples": n,
                           "num_correct": rng.binomial(n, p)})
        for a, v in reversed(list(zip(axes, key, strict=True))):
            df.insert(0, a, v)
        frames.append(df)
    return pd.concat(frames, ignore_index=True)


def test_k_grid_holds_doublings() -> None:
    g = k_grid(100)
    assert list(g) == [1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 96]
    assert all(2 * k in g for k in g if 2 * k <= 96)


def test_frontier_equals_brute_force_enumeration() -> None:
    rng = np.random.default_rng(1)
    u = rng.uniform(size=12)
    rates = {(t, b): np.clip(u * f, 0, 1) for t, b, f in
             [(0.6, 100, 0.3), (1.0, 100, 0.4), (0.6, 300, 0.7), (1.0, 300, 0.5)]}
    df = counts_from_rates(rates, 9, rng)
    cs = build_configurations(df, ks=[1, 2, 3, 5, 9], prompt_tokens=0)
    cand = cs.candidates()
    # brute force: every (configuration, k), pass@k by math.comb, cost k * budget
    brute = []
    for (t, b), g in df.groupby(["temperature", "budget"]):
        for k in (1, 2, 3, 5, 9):
            acc = np.mean([1 - math.comb(n - c, k) / math.comb(n, k)
                           for n, c in zip(g["num_samples"], g["num_correct"], strict=True)])
            brute.append((k * b, acc, t, b, k))
    for x in sorted({c for c, *_ in brute} | {50.0, 1e9}):
        want = max((a for c, a, *_ in brute if c <= x), default=np.nan)
        got = frontier_at(cand["cost_tokens"].to_numpy(), cand["accuracy"].to_numpy(), [x])[0]
        assert (np.isnan(want) and np.isnan(got)) or got == pytest.approx(want, abs=1e-12)
    # every frontier point is a step up, and nothing cheaper reaches it
    pts = frontier_points(cand["cost_tokens"].to_numpy(), cand["accuracy"].to_numpy())
    for i in pts:
        c, a = cand["cost_tokens"].iloc[i], cand["accuracy"].iloc[i]
        assert not any(bc < c and ba >= a - 1e-12 for bc, ba, *_ in brute)
    f = compute_frontier(cs, n_boot=50, allocation=False)
    table = f.table[f.table["metric"] == "tokens"]
    assert list(table["accuracy"]) == pytest.approx(list(cand["accuracy"].iloc[pts]))
    assert (table["band_low"] <= table["accuracy"]).all() and (table["accuracy"] <= table["band_high"]).all()


def _true_accuracy(mapping, ks: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """Population accuracy E_u[1 - (1 - p(u))^k] by quadrature over the latent difficulty u."""
    p = mapping(grid)
    return (1 - (1 - p[:, None]) ** ks[None, :]).mean(axis=0)


@pytest.mark.slow
def test_band_covers_true_frontier_at_least_90_percent() -> None:
    # problems have a latent difficulty u ~ U(0, 1); each configuration maps it to a known rate
    maps = {(0.6, 100): lambda u: stats.beta.ppf(u, 0.3, 2.0),
            (1.0, 100): lambda u: stats.beta.ppf(u, 0.4, 2.5),
            (0.6, 200): lambda u: stats.beta.ppf(u, 0.5, 1.5),
            (1.0, 200): lambda u: stats.beta.ppf(u, 0.6, 1.2)}
    grid = (np.arange(20_000) + 0.5) / 20_000
    ks = np.array([1, 2, 4, 8, 16])
    truth = {key: _true_accuracy(m, ks, grid) for key, m in maps.items()}
    true_cost = np.concatenate([key[1] * ks for key in maps])
    true_acc = np.concatenate([truth[key] for key in maps])
    covered, reps = 0, 60
    rng = np.random.default_rng(7)
    for rep in range(reps):
        u = rng.uniform(size=150)
        df = counts_from_rates({key: m(u) for key, m in maps.items()}, 16, rng)
        cs = build_configurations(df, ks=list(ks), prompt_tokens=0)
        f = compute_frontier(cs, n_boot=300, seed=rep, metrics=["tokens"], allocation=False)
        b = f.band
        want = frontier_at(true_cost, true_acc, b["cost"].to_numpy())
        covered += bool(((b["band_low"] <= want + 1e-12) & (want <= b["band_high"] + 1e-12)).all())
    assert covered / reps >= 0.90


def test_allocation_gain_matches_closed_form() -> None:
    # half the problems easy (p = 0.8), half hard (p = 0.02); one sample costs one token
    rng = np.random.default_rng(3)
    p = np.r_[np.full(200, 0.8), np.full(200, 0.02)]
    df = counts_from_rates({(1.0,): p}, 128, rng, axes=("temperature",))
    cs = build_configurations(df, ks=list(range(1, 65)), prompt_tokens=0, tokens_per_sample=1)
    res = allocate(cs, "tokens", bins=2, targets=np.array([8.0, 32.0]), n_boot=400, seed=0)

    def acc(ke: int, kh: int) -> float:
        return 0.5 * (1 - 0.2 ** ke) + 0.5 * (1 - 0.98 ** kh)

    for x, row in zip((8, 32), res.itertuples(), strict=True):
        best = max(acc(ke, kh) for ke in range(1, 65) for kh in range(1, 65) if (ke + kh) / 2 <= x)
        closed = best - acc(x, x)
        assert closed > 0.03
        assert row.gain == pytest.approx(closed, abs=0.02)
        assert row.ci_low - 0.005 <= closed <= row.ci_high + 0.005
        assert row.allocation_cost <= x + 1e-9 and row.uniform_cost == pytest.approx(x)


def test_allocation_gain_is_not_positive_when_difficulty_does_not_matter() -> None:
    # every problem has the same rate: no allocation beats uniform (an uneven one chosen on noise
    # loses, by concavity); cross-fitting must not report a gain
    rng = np.random.default_rng(4)
    df = counts_from_rates({(1.0,): np.full(300, 0.1)}, 64, rng, axes=("temperature",))
    cs = build_configurations(df, ks=list(range(1, 33)), prompt_tokens=0, tokens_per_sample=1)
    res = allocate(cs, "tokens", bins=4, targets=np.array([4.0, 16.0]), n_boot=400)
    assert (res["ci_low"] <= 0).all()
    assert (res["gain"] <= 0.005).all()


def test_next_move_double_k_and_budget() -> None:
    rng = np.random.default_rng(5)
    u = rng.uniform(size=80)
    df = counts_from_rates({(1.0, 100): 0.3 * u, (1.0, 200): 0.6 * u, (0.6, 100): 0.25 * u}, 16, rng)
    f = ttscale.frontier(df, at=[({"temperature": 1.0, "budget": 100}, 4)], n_boot=300,
                         prompt_tokens=0, allocation=False)
    m = f.moves.set_index("move")
    assert set(m.index) == {"double k", "double budget", "temperature=0.6"}
    g = df[(df.temperature == 1.0) & (df.budget == 100)]
    want = np.mean([(1 - math.comb(16 - c, 8) / math.comb(16, 8)) - (1 - math.comb(16 - c, 4) / math.comb(16, 4))
                    for c in g["num_correct"]])
    assert m.loc["double k", "delta_accuracy"] == pytest.approx(want)
    assert m.loc["double k", "ci_low"] < want < m.loc["double k", "ci_high"]
    assert m.loc["double k", "delta_cost_tokens"] == pytest.approx(400.0)
    assert m.loc["double budget", "delta_cost_tokens"] == pytest.approx(400.0)
    assert m.loc["double budget", "delta_accuracy"] > 0
    assert bool(m.loc["temperature=0.6", "cheaper_tokens"])
    assert m.loc["double k", "gain_per_cost_tokens"] == pytest.approx(want / 400 * 1e3)


def test_flops_and_eflops_disagree_when_memory_dominates() -> None:
    # same accuracy; the small model writes 4x longer outputs: cheaper in FLOPs, not in eFLOPs
    rng = np.random.default_rng(6)
    p = rng.uniform(0, 0.5, 60)
    df = counts_from_rates({("Llama-3.2-1B",): p, ("Llama-3-8B",): p}, 8, rng, axes=("model",))
    df["mean_output_tokens"] = np.where(df["model"] == "Llama-3.2-1B", 16000.0, 4000.0)
    f = ttscale.frontier(df, n_boot=50, prompt_tokens=200, allocation=False)
    assert set(f.metrics) == {"tokens", "flops", "kinetics_eflops"}
    assert len(f.disagreements) > 0
    row = f.disagreements.iloc[0]
    assert row["flops_choice"] == "model=Llama-3.2-1B" and row["kinetics_eflops_choice"] == "model=Llama-3-8B"
    assert row["cost_ratio_kinetics_eflops"] > 2
    assert any("FLOPs and Kinetics eFLOPs pick different" in n for n in f.notes)


def test_token_source_notes_and_dollars(tmp_path) -> None:
    rng = np.random.default_rng(8)
    df = counts_from_rates({(1.0, 0): rng.uniform(size=20), (1.0, 512): rng.uniform(size=20)}, 4, rng)
    f = ttscale.frontier(df, n_boot=50, prices=(1.0, 2.0), allocation=False, out=tmp_path / "fr")
    by = f.configs.set_index("budget")["tokens_from"]
    assert by[0] == "assumed" and by[512] == "budget"
    assert any("256 assumed" in n for n in f.notes) and any("upper bound" in n for n in f.notes)
    one = f.candidates[(f.candidates["k"] == 2) & (f.candidates["label"] == "temperature=1.0, budget=512")]
    assert one["cost_dollars"].iloc[0] == pytest.approx((512 * 1.0 + 2 * 512 * 2.0) / 1e6)
    assert (tmp_path / "fr" / "frontier.parquet").is_file()
    assert (tmp_path / "fr" / "figures" / "frontier.png").is_file()


@pytest.mark.parametrize("mutate, expect", [
    (lambda d: d.drop(columns=["num_correct"]), "missing column 'num_correct'"),
    (lambda d: d.assign(budget=d["budget"] - 150), "column 'budget' row 1"),
    (lambda d: d.assign(mean_output_tokens="many"), "column 'mean_output_tokens' row 1"),
    (lambda d: d.assign(problem=d["problem"] + d["budget"].astype(str)), "share no problem"),
])
def test_bad_counts_tables_are_one_line_input_errors(mutate, expect) -> None:
    rng = np.random.default_rng(9)
    df = counts_from_rates({(1.0, 100): np.full(5, 0.5), (1.0, 200): np.full(5, 0.5)}, 4, rng)
    with pytest.raises(InputError, match=expect):
        ttscale.frontier(mutate(df), n_boot=50, allocation=False)


def test_bad_options_are_input_errors() -> None:
    rng = np.random.default_rng(10)
    df = counts_from_rates({(1.0, 100): np.full(5, 0.5), (1.0, 200): np.full(5, 0.5)}, 4, rng)
    with pytest.raises(InputError, match="metrics 'flops' is not available"):
        ttscale.frontier(df, metrics=["flops"], n_boot=50)
    with pytest.raises(InputError, match="at column 'model'"):
        ttscale.frontier(df, at=[({"model": "x"}, 1)], n_boot=50)
    with pytest.raises(InputError, match="matches 2 configurations"):
        ttscale.frontier(df, at=[({"temperature": 1.0}, 1)], n_boot=50)
    with pytest.raises(InputError, match="ks 8 exceeds"):
        ttscale.frontier(df, ks=[8], n_boot=50)
    with pytest.raises(InputError, match="n_boot must be at least 20 for a band, got 5"):
        ttscale.frontier(df, n_boot=5)
    df2 = df.assign(model=np.where(df["budget"] == 100, "Llama-3-8B", "Llama-3-70B"))
    with pytest.raises(InputError, match="no price for model 'Llama-3-8B'"):
        ttscale.frontier(df2, prices={"Llama-3-70B": (1, 2)}, n_boot=50)


def test_cli_frontier_prints_and_refuses_bad_input(tmp_path) -> None:
    rng = np.random.default_rng(11)
    df = counts_from_rates({(1.0, 100): rng.uniform(size=30), (0.6, 200): rng.uniform(size=30)}, 8, rng)
    path = tmp_path / "c.csv"
    df.to_csv(path, index=False)
    ok = subprocess.run([sys.executable, "-m", "ttscale", "frontier", str(path), "--n-boot", "50",
                         "--at", "temperature=1.0,budget=100@2", "--bins", "2"],
                        capture_output=True, text=True, timeout=120)
    assert ok.returncode == 0, ok.stderr
    assert "frontier by tokens" in ok.stdout and "double k" in ok.stdout
    assert "per-difficulty allocation" in ok.stdout
    bad = subprocess.run([sys.executable, "-m", "ttscale", "frontier", str(path), "--at", "temperature=1.0"],
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2
    assert bad.stderr.strip().count("\n") == 0 and "--at 'temperature=1.0'" in bad.stderr


@pytest.mark.slow
def test_sweep_frontier_run_directory_and_report(tmp_path) -> None:
    """A real sweep (the embedded model, two temperatures) with analysis.frontier: the sweep writes
    the frontier; the run directory gives the same configurations through ttscale.frontier, with
    the run's measured tokens and model shape; the report shows it."""
    cfg = {"name": "fr", "out": str(tmp_path / "sw"), "num_samples": 8, "temperatures": [0.6, 1.0],
           "max_tokens": 8, "models": [{"name": "m", "backend": "transformers", "model": "embedded"}],
           "tasks": [{"name": "arithmetic", "num_problems": 12}], "verifiers": [{"name": "exact"}],
           "analysis": {"n_boot": 50, "frontier": True}, "report": True}
    root = ttscale.sweep(cfg, progress=False, log=lambda _: None)
    folder = root / "frontier" / "arithmetic"
    table = pd.read_parquet(folder / "frontier.parquet")
    assert set(table["metric"]) == {"tokens", "flops", "kinetics_eflops"}
    assert "Compute-optimal frontier: arithmetic" in (root / "report.html").read_text()
    run = root / "m" / "arithmetic"
    f = ttscale.frontier(run, n_boot=50, out=run / "analysis" / "frontier", bins=2)
    base = "model=embedded, verifier=exact, temperature="
    assert list(f.configs["label"]) == [f"{base}0.6, selection=coverage", f"{base}1.0, selection=coverage",
                                        f"{base}0.6, selection=maj@k", f"{base}1.0, selection=maj@k"]
    assert set(f.configs["tokens_from"]) == {"measured"} and set(f.configs["model_shape"]) == {"embedded"}
    assert not any("prompt tokens" in n for n in f.notes)  # measured from the run
    samples = ttscale.open_run(run).samples
    mean_out = samples.groupby("temperature")["num_output_tokens"].mean().to_numpy()
    assert f.configs["output_tokens"].to_numpy() == pytest.approx(np.r_[mean_out, mean_out])
    assert "Compute-optimal frontier" in ttscale.report(run, tmp_path / "r.html").read_text()


def test_selection_configurations_equal_brute_force_majority_vote() -> None:
    """A run's answer histogram adds maj@k configurations; their accuracy is the exact mean over
    every k-subset of the majority answer's correctness (ties split uniformly)."""
    from itertools import combinations

    answers = {"a": ["1", "1", "2", "3", "1", "2"], "b": ["4", "5", "5", "4", "6", "5"],
               "c": ["7", "8", "9", "7", "8", "7"]}
    correct = {"a": "1", "b": "4", "c": "9"}
    rows = []
    for pid, ans in answers.items():
        for a in sorted(set(ans)):
            rows.append({"verifier": "exact", "problem_id": pid, "answer": a, "score": np.nan,
                         "count": ans.count(a), "passed": ans.count(a) * (a == correct[pid])})
    hist = pd.DataFrame(rows)
    counts = hist.groupby(["verifier", "problem_id"])[["count", "passed"]].sum().reset_index()
    counts = counts.rename(columns={"problem_id": "problem", "count": "num_samples", "passed": "num_correct"})
    cs = build_configurations(counts, ks=[1, 2, 3, 6], selection=hist, tokens_per_sample=10, prompt_tokens=0)
    assert list(cs.configs["label"]) == ["verifier=exact, selection=coverage", "verifier=exact, selection=maj@k"]

    def brute(ans: list[str], good: str, k: int) -> float:
        total = 0.0
        subsets = list(combinations(ans, k))
        for sub in subsets:
            top = max(sub.count(a) for a in set(sub))
            winners = [a for a in set(sub) if sub.count(a) == top]
            total += (good in winners) / len(winners)
        return total / len(subsets)

    got = cs.per_problem(1, [1, 2, 3, 6])
    want = np.array([[brute(answers[p], correct[p], k) for k in (1, 2, 3, 6)] for p in ("a", "b", "c")])
    assert got == pytest.approx(want)
    assert cs.has_k(1, 6) and not cs.has_k(1, 4)
    f = compute_frontier(cs, n_boot=50, allocation=False)
    assert "selection=coverage" in set(f.moves["move"]) or "selection=maj@k" in set(f.moves["move"])


@pytest.mark.slow
def test_whatif_k_forecasts_beyond_the_run_and_marks_it_extrapolated() -> None:
    rng = np.random.default_rng(12)
    p = rng.beta(0.3, 2.0, 300)
    df = counts_from_rates({(1.0, 100): p, (0.6, 100): np.clip(p * 0.7, 0, 1)}, 16, rng)
    f = ttscale.frontier(df, whatif_k=[4], n_boot=50, prompt_tokens=0, allocation=False)
    ex = f.extrapolated.set_index("label")
    row = ex.loc["temperature=1.0, budget=100"]
    assert row["k"] == 64 and row["cost_tokens"] == pytest.approx(6400.0) and bool(row["extrapolated"])
    truth = float(np.mean(1 - (1 - p) ** 64))
    assert row["accuracy"] == pytest.approx(truth, abs=0.05)
    w = f.whatif[f.whatif["metric"] == "tokens"]
    assert w["extrapolated"].iloc[-1] and not w["extrapolated"].iloc[0]
    assert w["cost"].max() == pytest.approx(6400.0)
    assert any("extrapolated" in n for n in f.notes)
    with pytest.raises(InputError, match=r"whatif_k factors must be whole numbers >= 2, got \[1\]"):
        ttscale.frontier(df, whatif_k=[1], n_boot=50)


def test_one_configuration_with_single_sample_problems_skips_allocation_with_a_note() -> None:
    df = pd.DataFrame({"problem": range(10), "num_samples": [1] * 5 + [4] * 5,
                       "num_correct": [0, 1, 0, 1, 0, 2, 3, 4, 0, 1]})
    f = ttscale.frontier(df, n_boot=50)
    assert list(f.table["k"]) == [1] and f.table["accuracy"].iloc[0] == pytest.approx(0.45)
    assert list(f.configs["label"]) == ["all"] and len(f.moves) == 0 and len(f.allocation) == 0
    assert any(n.startswith("per-difficulty allocation skipped") for n in f.notes)
    assert any(n.startswith("FLOPs and eFLOPs left out") for n in f.notes)
