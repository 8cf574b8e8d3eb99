"""Math-Verify throughput with and without answer deduplication, side by side in one run.

Workload: ``--problems`` problems x ``--samples`` samples (default 20 x 1,000, like a small
repeated-sampling run). Each problem has a reference fraction and a few dozen distinct
completions: 12 candidate values (the right one and 11 wrong ones, fractions, decimals and
integers) in 3 LaTeX renderings each (``\\boxed{\\frac{a}{b}}``, ``$a/b$`` after "the answer is",
a decimal or ``#### n``), drawn with Zipf-like weights (the s-th most common string has weight
1/s^1.1), so a few answers dominate as they do in real samples.

Both arms run the real ``math`` verifier on this process's main thread (Math-Verify's timeouts
on): ``dedup=true`` parses each distinct text once and verifies each distinct parsed answer
once; ``dedup=false`` (the baseline) parses and verifies every sample. The verdicts of the two
arms are checked to be identical. Prints samples/s of each and the speed-up ratio.

    python benchmarks/bench_math_verify.py [--problems 20] [--samples 1000] [--seed 0]
"""

from __future__ import annotations

import argparse
import time
from fractions import Fraction

import numpy as np
import pandas as pd

from ttscale.plugins import Problem
from ttscale.verification.verify import make_verifier


def renderings(value: Fraction) -> list[str]:
    """Three LaTeX variants of one answer value, as a completion's last line might give it."""
    a, b = value.numerator, value.denominator
    if b == 1:
        return [f"So the result is \\boxed{{{a}}}.", f"The answer is ${a}$.", f"#### {a}"]
    dec = f"{a / b:.6g}" if (b & (b - 1)) == 0 or b % 5 == 0 else None
    third = f"#### {dec}" if dec is not None else f"Final answer: $\\dfrac{{{a}}}{{{b}}}$"
    return [f"So the result is \\boxed{{\\frac{{{a}}}{{{b}}}}}.", f"The answer is ${a}/{b}$.", third]


def workload(problems: int, samples: int, seed: int) -> list[tuple[Problem, pd.DataFrame]]:
    rng = np.random.default_rng(seed)
    out = []
    for i in range(problems):
        num, den = int(rng.integers(1, 30)), int(rng.choice([1, 2, 3, 4, 5, 6, 8]))
        gold = Fraction(num, den)
        values = [gold]
        while len(values) < 12:
            v = Fraction(int(rng.integers(1, 60)), int(rng.choice([1, 2, 3, 4, 5, 8])))
            if v not in values:
                values.append(v)
        texts = [t for v in values for t in renderings(v)]  # 36 distinct strings
        order = rng.permutation(len(texts))
        weights = 1.0 / np.arange(1, len(texts) + 1) ** 1.1
        picks = rng.choice(order, size=samples, p=weights / weights.sum())
        pid = f"bench-{i:03d}"
        ref = f"\\frac{{{gold.numerator}}}{{{gold.denominator}}}" if den != 1 else str(num)
        frame = pd.DataFrame({"problem_id": pid, "temperature": 1.0,
                              "sample_index": np.arange(samples),
                              "text": [f"Let me work it out step by step.\n{texts[j]}" for j in picks]})
        out.append((Problem(pid, "bench", "", {"answer": ref}), frame))
    return out


def run_arm(dedup: bool, work: list[tuple[Problem, pd.DataFrame]]) -> tuple[float, pd.DataFrame]:
    verifier = make_verifier("math", {"dedup": str(dedup).lower()})
    start = time.perf_counter()
    frames = [verifier.verify(p, s) for p, s in work]
    return time.perf_counter() - start, pd.concat(frames, ignore_index=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--problems", type=int, default=20)
    ap.add_argument("--samples", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    work = workload(args.problems, args.samples, args.seed)
    total = args.problems * args.samples
    distinct = sum(s["text"].nunique() for _, s in work)
    make_verifier("math").verify(*workload(1, 5, 99)[0])  # warm-up: imports, grammar, caches
    t_dedup, v_dedup = run_arm(True, work)
    t_base, v_base = run_arm(False, work)
    pd.testing.assert_frame_equal(v_dedup, v_base)  # identical verdicts
    print(f"workload: {args.problems} problems x {args.samples} samples = {total} samples, "
          f"{distinct} distinct completions, pass rate {v_dedup['passed'].mean():.3f}")
    print(f"no dedup (baseline): {t_base:8.2f} s  {total / t_base:10.1f} samples/s")
    print(f"dedup:               {t_dedup:8.2f} s  {total / t_dedup:10.1f} samples/s")
    print(f"speed-up (dedup / no dedup): {t_base / t_dedup:.1f}x; verdicts identical")


if __name__ == "__main__":
    main()
