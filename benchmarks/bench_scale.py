"""A Monkeys-size run on one machine: CPU seconds and peak memory of every stage.

Builds synthetic runs (500 problems, 2 temperatures, texts of about 1 KB ending in ``#### x``,
per-problem pass rates spread from 0 to 1 and several wrong answers per problem) of 1M and 10M
samples (K = 1,000 and 10,000), then runs each stage as its own process (the real CLI) and
prints its CPU seconds (user + system, children included) and peak RSS, and the ratio of its CPU
seconds to reading the samples' Parquet once with pyarrow (every shard, every column, one at a
time) measured in the same run:

    import (JSONL), verify exact, verify exact again (nothing to do), verify majority, verify
    majority again, analyze, analyze again, compare (exact, majority), compare again, forecast
    (the default method, power_law, with its interval), forecast --method all (five methods, the
    Beta ones refitted by maximum likelihood in every bootstrap replicate),
    report

Targets (issue 11): peak RSS under 4 GB in every stage at 10M; verify at most 4x the Parquet
read; a verify with nothing to do under 0.5x; analyze, compare and forecast under 60 CPU s at
10M and under 0.2x the read; CPU growth from 1M to 10M at most linear (the last column: CPU at
this size / CPU at the previous size / size ratio, <= 1 is linear or better).

    python benchmarks/bench_scale.py                       # 1M and 10M (10M: ~25 GB of disk)
    python benchmarks/bench_scale.py --sizes 100000,1000000
    python benchmarks/bench_scale.py --sizes 1000000 --stages import,verify-exact,read

The data lives under ``--workdir`` (default /tmp/ttscale_bench_scale) and is deleted afterwards
unless ``--keep``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

PROBLEMS = 500
TEMPERATURES = (0.6, 1.0)
STAGES = ["import", "read", "verify-exact", "verify-exact-again", "verify-majority",
          "verify-majority-again", "analyze", "analyze-again", "compare", "compare-again",
          "forecast", "forecast-all", "report"]
WORDS = ("the of and to a in is that for it as with was on be by this are we step so then "
         "total number each more than less add subtract multiply divide first second left right "
         "answer value equals therefore").split()


def generate(path: Path, n: int, seed: int = 0, text_bytes: int = 1000) -> None:
    """A JSONL file of ``n`` samples (see the module doc); written in blocks, not timed."""
    rng = np.random.default_rng(seed)
    k = n // (PROBLEMS * len(TEMPERATURES))
    fillers = []
    for _ in range(997):
        words = rng.choice(WORDS, size=text_bytes // 4)
        text = " ".join(words)[: text_bytes - 12]
        fillers.append(text)
    with open(path, "w", buffering=1 << 22) as f:
        for p in range(PROBLEMS):
            gold = 1000 + p
            base = rng.beta(0.6, 0.8)  # pass rate, bimodal as real ones are
            n_wrong = int(rng.integers(2, 8))
            weights = rng.dirichlet(np.ones(n_wrong))
            for ti, t in enumerate(TEMPERATURES):
                rate = float(np.clip(base * (1.0 - 0.15 * ti), 0.0, 1.0))
                right = rng.random(k) < rate
                wrong = rng.choice(n_wrong, size=k, p=weights)
                nul = rng.random(k) < 0.03
                fill = rng.integers(0, len(fillers), size=k)
                lines = []
                for i in range(k):
                    if nul[i]:
                        tail = "no idea"
                    else:
                        tail = f"#### {gold if right[i] else gold + 1 + int(wrong[i])}"
                    lines.append(f'{{"problem_id": "p{p:04d}", "temperature": {t}, "text": '
                                 f'"{fillers[fill[i]]} {tail}", "answer": "{gold}"}}\n')
                f.write("".join(lines))


def _stage_command(stage: str, run: Path, src: Path, k: int) -> list[str]:
    py = [sys.executable, "-m", "ttscale"]
    base = stage.removesuffix("-again")
    if base == "import":
        return [*py, "sample", "--backend", "import", "--from", str(src), "--model", "synthetic",
                "--out", str(run), "--quiet"]
    if base == "read":
        return [sys.executable, __file__, "--read", str(run)]
    if base.startswith("verify-"):
        return [*py, "verify", str(run), "--verifier", base.split("-", 1)[1], "--workers", "0",
                "--quiet"]
    if base == "analyze":
        return [*py, "analyze", str(run), "--quiet"]
    if base == "compare":
        return [*py, "compare", str(run), "--verifiers", "exact,majority", "--quiet"]
    if base == "forecast":
        return [*py, "forecast", str(run), "--to", str(10 * k)]
    if base == "forecast-all":
        return [*py, "forecast", str(run), "--to", str(10 * k), "--method", "all"]
    if base == "report":
        return [*py, "report", str(run)]
    raise ValueError(stage)


def measure(cmd: list[str]) -> dict[str, float]:
    """Run ``cmd``; its CPU seconds (children included), peak RSS and wall time."""
    t0 = time.monotonic()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _, status, usage = os.wait4(proc.pid, 0)
    out, err = proc.stdout.read(), proc.stderr.read()
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{err[-2000:]}")
    return {"cpu_s": usage.ru_utime + usage.ru_stime, "rss_mb": usage.ru_maxrss / 1024,
            "wall_s": time.monotonic() - t0, "tail": (out.strip().splitlines() or [""])[-1]}


def read_all(run: Path) -> None:
    """The baseline: every sample shard read whole with pyarrow, one at a time."""
    import pyarrow.parquet as pq

    rows = 0
    for p in sorted((run / "samples").glob("part-*.parquet")):
        rows += pq.read_table(p).num_rows
    print(f"read {rows} samples")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="1000000,10000000", help="comma-separated sample counts")
    ap.add_argument("--stages", default=",".join(STAGES), help="comma-separated, in this order")
    ap.add_argument("--workdir", default="/tmp/ttscale_bench_scale")
    ap.add_argument("--keep", action="store_true", help="keep the generated data")
    ap.add_argument("--json", default=None, help="also write the results to this JSON file")
    ap.add_argument("--read", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.read:
        read_all(Path(args.read))
        return 0
    sizes = [int(float(x)) for x in args.sizes.split(",")]
    stages = [s for s in args.stages.split(",") if s]
    work = Path(args.workdir)
    results: dict[int, dict[str, dict]] = {}
    print(f"{'samples':>9} {'stage':<22} {'CPU s':>8} {'peak RSS MB':>11} {'x read':>7} "
          f"{'growth':>7}  output", flush=True)
    prev: int | None = None
    for n in sizes:
        k = n // (PROBLEMS * len(TEMPERATURES))
        root = work / f"n{n}"
        shutil.rmtree(root, ignore_errors=True)
        root.mkdir(parents=True)
        src, run = root / "samples.jsonl", root / "run"
        if "import" in stages:
            generate(src, n)
        results[n] = {}
        for stage in stages:
            r = measure(_stage_command(stage, run, src, k))
            results[n][stage] = r
            if stage == "import":
                src.unlink()  # the source is not needed any more: free the disk
            read = results[n].get("read", {}).get("cpu_s")
            ratio = f"{r['cpu_s'] / read:.2f}" if read else "-"
            growth = "-"
            if prev is not None and stage in results[prev] and results[prev][stage]["cpu_s"] > 0.5:
                growth = f"{r['cpu_s'] / results[prev][stage]['cpu_s'] / (n / prev):.2f}"
            print(f"{n:>9} {stage:<22} {r['cpu_s']:>8.1f} {r['rss_mb']:>11.0f} {ratio:>7} "
                  f"{growth:>7}  {r['tail'][:60]}", flush=True)
        prev = n
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
    if args.json:
        Path(args.json).write_text(json.dumps({str(n): v for n, v in results.items()}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
