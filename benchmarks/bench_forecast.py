"""Forecast benchmark: every method against the floor, with the 90% intervals' coverage.

Datasets: each reference dataset with many samples per problem (the four Large Language Monkeys
groups, 10,000 samples per problem; MATH-500 Llama-3.2-1B, 5 x 256 = 1,280 pooled), and
synthetic sets of 128 problems whose pass rates come from several difficulty distributions
(power-law left tails, a point mass at 0, bimodal, log-uniform), with the truth known exactly.

For each dataset, n in (32, 100, 300) samples per problem and ``--draws`` draws (a hypergeometric
subsample of the reference counts, or fresh binomial counts of the synthetic pass rates), every
method forecasts coverage at K = 10n, 100n and the full N (K <= N only; N = 10,000 for synthetic
sets). The truth is the unbiased coverage at K from all N samples (synthetic: the exact mean of
1 - (1 - p)^K). Printed per dataset (over its n, K and draws):

* ``MAE``: mean absolute error of each method (points of coverage);
* ``floor``: the mean of sqrt(2/pi) sqrt(m r (1 - r)) / P, with m problems unsolved in the n
  samples and r the share of them solved within K in truth (mean of their true pass@K): the error
  of a forecaster that knows the difficulty distribution but not which unsolved problem is
  solvable (see ttscale.analysis.forecasting.interval);
* ``ratio``: MAE / floor (the goal: <= 1.25 on every dataset);
* ``cover90``: the share of forecasts whose 90% interval (ttscale.analysis.forecasting.interval)
  holds the truth (the goal: 0.85-0.95), for the methods in ``--interval-methods``; the
  intervals' alternatives (power_law, beta_eb, beta_zi_eb) are fitted for every draw even when not
  listed, and a power-law interval of a law unsafe to extrapolate reaches the ceiling law's
  forecast, as ``ttscale forecast`` reports it;
* ``width`` and ``width/MAE``: the interval's mean width (points) and its ratio to the error (about
  4 for a calibrated interval of a normal error: wider is wasted, narrower misses);
* ``auto/best`` and ``auto chose``: ``--method auto``'s error over the best single method's (the
  goal: <= 1.1) and its most frequent choice.

    python benchmarks/bench_forecast.py            # full: 10 draws, every method (~5-10 min on 2 cores)
    python benchmarks/bench_forecast.py --quick    # 3 draws, power_law and beta_eb, fewer boots

Reference data: data/reference/ in the repository (the Monkeys and search-and-learn counts).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.special import gammaln

from ttscale.analysis.forecasting.forecast import (
    AUTO_CANDIDATES,
    DEFAULT_METHOD,
    METHODS,
    choose_method,
    forecast_curve,
)
from ttscale.analysis.forecasting.interval import ALTERNATIVES, forecast_with_interval
from ttscale.analysis.laws.power_law import fit_from_counts
from ttscale.errors import InputError

SYNTH_PROBLEMS = 128
SYNTH_N = 10_000


@dataclass
class Dataset:
    name: str
    full_n: int
    problems: int
    #: (n, rng) -> counts c of n samples per problem
    draw: Callable[[int, np.random.Generator], np.ndarray]
    #: K -> per-problem true pass@K
    truth: Callable[[int], np.ndarray]


def _log_miss(n: np.ndarray, c: np.ndarray, k: int) -> np.ndarray:
    fail = n - c
    ok = fail >= k
    safe = np.where(ok, fail - k, 0)
    val = gammaln(fail + 1) - gammaln(safe + 1) - gammaln(n + 1) + gammaln(n - k + 1)
    return np.where(ok, val, -np.inf)


def _reference(name: str, big_n: np.ndarray, big_c: np.ndarray) -> Dataset:
    return Dataset(name, int(big_n.min()), big_n.size,
                   lambda n, rng: rng.hypergeometric(big_c, big_n - big_c, n),
                   lambda k: 1.0 - np.exp(_log_miss(big_n, big_c, k)))


def _synthetic(name: str, p: np.ndarray) -> Dataset:
    return Dataset(name, SYNTH_N, p.size, lambda n, rng: rng.binomial(n, p),
                   lambda k: 1.0 - np.exp(k * np.log1p(-np.minimum(p, 1 - 1e-16))))


def datasets(ref_dir: Path) -> list[Dataset]:
    out = []
    monkeys = ref_dir / "monkeys_llama3_counts.csv"
    if monkeys.is_file():
        df = pd.read_csv(monkeys)
        for (bench, model), g in df.groupby(["benchmark", "model"], sort=True):
            out.append(_reference(f"{bench} {model.replace('-Instruct', '')}",
                                  g["num_samples"].to_numpy(np.int64), g["num_correct"].to_numpy(np.int64)))
    sal = ref_dir / "search_and_learn_llama32_1b_math500_counts.csv.gz"
    if sal.is_file():
        g = pd.read_csv(sal).groupby("problem")[["num_samples", "num_correct"]].sum()
        out.append(_reference("MATH-500 Llama-3.2-1B", g["num_samples"].to_numpy(np.int64),
                              g["num_correct"].to_numpy(np.int64)))
    rng = np.random.default_rng(2024)
    size = SYNTH_PROBLEMS
    zero = rng.random(size) < 0.3
    bimodal = np.where(rng.random(size) < 0.5, rng.beta(0.2, 8.0, size), rng.beta(4.0, 1.0, size))
    # a weak model: most problems unsolved in 100 samples (60% with p in 1e-4..1e-2), the rest hard
    weak = np.where(rng.random(size) < 0.6, 10 ** rng.uniform(-4, -2, size), rng.beta(0.3, 3.0, size))
    out += [
        _synthetic("synth weak model", weak),
        _synthetic("synth Beta(0.5,2) tail", rng.beta(0.5, 2.0, size)),
        _synthetic("synth Beta(0.15,1.5) tail", rng.beta(0.15, 1.5, size)),
        _synthetic("synth 30% p=0 + Beta(0.4,1.5)", np.where(zero, 0.0, rng.beta(0.4, 1.5, size))),
        _synthetic("synth bimodal", bimodal),
        _synthetic("synth log-uniform 1e-5..1", 10 ** rng.uniform(-5, 0, size)),
    ]
    return out


def run(data: list[Dataset], methods: list[str], interval_methods: list[str], ns: list[int],
        draws: int, n_boot: int) -> pd.DataFrame:
    rows = []
    for ds in data:
        rng = np.random.default_rng(0)
        for n in ns:
            if n >= ds.full_n:
                continue
            ks = sorted({k for k in (n, 10 * n, 100 * n, ds.full_n) if k <= ds.full_n})
            truth = {k: ds.truth(k) for k in ks}
            for d in range(draws):
                c = ds.draw(n, rng)
                if not (c > 0).any():
                    continue
                nn = np.full(c.size, n)
                unsolved = c == 0
                m = int(unsolved.sum())
                known, secs_of = {}, {}
                singles = [m for m in methods if m != "auto"]
                extra = AUTO_CANDIDATES if "auto" in methods else ()
                for m_name in dict.fromkeys([*singles, *ALTERNATIVES, *extra]):
                    t0 = time.perf_counter()
                    known[m_name] = forecast_curve(nn, c, ks, m_name)
                    secs_of[m_name] = time.perf_counter() - t0
                for m_name in methods:
                    chosen = m_name
                    secs = 0.0
                    if m_name == "auto":
                        t0 = time.perf_counter()
                        choice = choose_method(nn, c, max(ks), seed=d)
                        chosen = choice["method"]
                        secs = time.perf_counter() - t0
                    point = known[chosen]
                    secs += secs_of[chosen]
                    low = high = np.full(len(ks), np.nan)
                    if m_name in interval_methods:
                        t0 = time.perf_counter()
                        f = forecast_with_interval(nn, c, ks, chosen, 0.9, n_boot, seed=d, known=known)
                        low, high = f.low, f.high
                        if chosen == "power_law" and f.law_extrapolation == "unsafe":
                            # as ttscale forecast reports it (law.widen_to_ceiling): the interval
                            # of a law unsafe to extrapolate reaches the ceiling law's forecast
                            try:
                                ceil = np.clip(fit_from_counts(nn, c, ceiling=True).predict(
                                    np.asarray(ks, dtype=float)), 0, 1)
                                beyond = np.asarray(ks) > n
                                low = np.where(beyond, np.minimum(low, ceil), low)
                                high = np.where(beyond, np.maximum(high, ceil), high)
                            except InputError:
                                pass
                        secs += time.perf_counter() - t0
                    for j, k in enumerate(ks):
                        true = float(truth[k].mean())
                        r = float(truth[k][unsolved].mean()) if m else 0.0
                        rows.append({"dataset": ds.name, "n": n, "K": k, "draw": d, "method": m_name,
                                     "chosen": chosen, "width": high[j] - low[j],
                                     "error": point[j] - true, "truth": true,
                                     "floor": np.sqrt(2 / np.pi) * np.sqrt(m * r * (1 - r)) / ds.problems,
                                     "covered": (low[j] <= true <= high[j]) if np.isfinite(low[j]) else np.nan,
                                     "seconds": secs / len(ks)})
    return pd.DataFrame(rows)


def summarise(res: pd.DataFrame, methods: list[str]) -> pd.DataFrame:
    """Per dataset, over its n, K > n and draws: each method's MAE, MAE / floor, cover90, mean
    width; auto's most frequent choice and its MAE over the best single method's."""
    res = res[res["K"] > res["n"]].assign(abs_error=lambda r: r["error"].abs())
    per = res.groupby(["dataset", "method"], sort=False).agg(
        MAE=("abs_error", "mean"), floor=("floor", "mean"), cover90=("covered", "mean"),
        width=("width", "mean"))
    per["ratio"] = per["MAE"] / per["floor"]
    wide = per.unstack("method")
    out = pd.DataFrame(index=wide.index)
    out["floor"] = 100 * wide[("floor", methods[0])]
    for m in methods:
        out[f"{m} MAE"] = 100 * wide[("MAE", m)]
        out[f"{m} ratio"] = wide[("ratio", m)]
        if wide[("cover90", m)].notna().any():
            out[f"{m} cover90"] = wide[("cover90", m)]
            out[f"{m} width"] = 100 * wide[("width", m)]
            out[f"{m} width/MAE"] = wide[("width", m)] / wide[("MAE", m)]
    singles = [m for m in methods if m != "auto"]
    if "auto" in methods and singles:
        best = wide["MAE"][singles].min(axis=1)
        out["auto/best"] = wide[("MAE", "auto")] / best
        picks = res[res["method"] == "auto"].groupby("dataset")["chosen"].agg(
            lambda x: x.value_counts().index[0] + f" {x.value_counts().iloc[0] / len(x):.0%}")
        out["auto chose"] = picks
    return out.loc[list(dict.fromkeys(res["dataset"]))]


def at_n(res: pd.DataFrame) -> pd.DataFrame:
    """K = n: share of 90% intervals holding the truth and mean width, per dataset and method."""
    sub = res[(res["K"] == res["n"]) & res["covered"].notna()]
    return sub.groupby(["dataset", "method"], sort=False).agg(
        cover90=("covered", "mean"), width=("width", lambda w: 100 * w.mean())).unstack("method")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true",
                    help="3 draws, power_law, beta_eb, beta_zi_eb and auto, 40 bootstrap refits")
    ap.add_argument("--draws", type=int, default=None, help="draws per (dataset, n) (default 10)")
    ap.add_argument("--ns", default="32,100,300", help="samples per problem to forecast from")
    ap.add_argument("--methods", default=None, help="comma-separated (default: every method)")
    ap.add_argument("--interval-methods", default=None,
                    help=f"methods whose 90%% interval is checked (default: {DEFAULT_METHOD})")
    ap.add_argument("--n-boot", type=int, default=None, help="bootstrap refits per interval (default 100)")
    ap.add_argument("--datasets", default=None, help="only datasets whose name contains this")
    ap.add_argument("--csv", help="also write every forecast's row here")
    args = ap.parse_args(argv)
    methods = (args.methods.split(",") if args.methods
               else ([DEFAULT_METHOD, "beta_eb", "beta_zi_eb", "auto"] if args.quick
                     else [*METHODS, "auto"]))
    unknown = [m for m in methods if m not in METHODS and m != "auto"]
    if unknown:
        print(f"unknown method {unknown[0]!r} (known: {', '.join(METHODS)})", file=sys.stderr)
        return 2
    interval = (args.interval_methods.split(",") if args.interval_methods
                else [DEFAULT_METHOD, "auto"])
    draws = args.draws or (3 if args.quick else 10)
    n_boot = args.n_boot or (40 if args.quick else 100)
    ref = Path(__file__).resolve().parents[1] / "data" / "reference"
    data = datasets(ref)
    if args.datasets:
        data = [d for d in data if args.datasets.lower() in d.name.lower()]
    if not any(not d.name.startswith("synth") for d in data):
        print(f"note: no reference data under {ref}: synthetic datasets only")
    t0 = time.perf_counter()
    res = run(data, methods, [m for m in interval if m in methods], [int(x) for x in args.ns.split(",")],
              draws, n_boot)
    table = summarise(res, methods)
    print(f"coverage forecasts at K = 10n, 100n, N from n = {args.ns} samples per problem, {draws} draws; "
          "MAE, floor and width in points of coverage, ratio = MAE / floor (goal <= 1.25), "
          "cover90 = share of 90% intervals holding the truth (goal 0.85-0.95), width = mean "
          "width of the 90% interval (width/MAE: about 4 for a calibrated normal error), auto/best = auto's MAE over the best single method's "
          "(goal <= 1.1)")
    with pd.option_context("display.width", 250, "display.max_columns", 50):
        print(table.to_string(float_format=lambda x: f"{x:.2f}"))
    print("\nK = n (the unbiased estimate with the curve's own interval): cover90 and width")
    with pd.option_context("display.width", 250, "display.max_columns", 50):
        print(at_n(res).to_string(float_format=lambda x: f"{x:.2f}"))
    print("\nmean ratio over datasets (lower is better) and time per forecast:")
    for m in methods:
        sub = res[res["method"] == m]
        print(f"  {m:14s} ratio {table[f'{m} ratio'].mean():5.2f}  worst {table[f'{m} ratio'].max():5.2f}  "
              f"{1000 * sub['seconds'].mean():7.1f} ms")
    print(f"({time.perf_counter() - t0:.0f} s)")
    if args.csv:
        res.to_csv(args.csv, index=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
