"""numpy's BLAS at one thread vs its default, for the analysis verbs: CPU seconds and wall time.

Runs the same analysis in fresh processes with ``TTSCALE_BLAS_THREADS=0`` (numpy's default: a
thread per core) and ``=1`` (ttscale's default, :mod:`ttscale.core.threads`), alternating
``--repeats`` times, and prints each side's median CPU seconds (user + system, from ``wait4``)
and wall seconds, and the ratios one thread / default. ``--workload analyze``: ``ttscale analyze``
of the Monkeys counts shipped in ``data/reference/`` (``--n-boot`` resamples) and ``ttscale
forecast --method beta_eb`` of the same counts. ``--workload notebook``: ``examples/notebook.py``
(analyze, forecasts, a what-if), where the difference shows.

    python benchmarks/bench_blas_threads.py [--workload notebook] [--repeats 3] [--n-boot 200]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
COUNTS = REPO / "data" / "reference" / "monkeys_llama3_counts.csv"


def run_once(threads: int, n_boot: int, workload: str = "analyze") -> tuple[float, float]:
    """(CPU seconds, wall seconds) of the workload in child processes."""
    env = dict(os.environ, TTSCALE_BLAS_THREADS=str(threads), PYTHONPATH=str(REPO))
    cpu = wall = 0.0
    with tempfile.TemporaryDirectory() as tmp:
        if workload == "notebook":
            commands = [[str(REPO / "examples" / "notebook.py"), f"{tmp}/nb"]]
        else:
            commands = [["-m", "ttscale", "analyze", str(COUNTS), "--out", f"{tmp}/a", "--n-boot", str(n_boot)],
                        ["-m", "ttscale", "forecast", str(COUNTS), "--to", "10000", "--from-k", "100",
                         "--method", "beta_eb"]]
        for argv in commands:
            t0 = time.perf_counter()
            proc = subprocess.Popen([sys.executable, *argv], env=env,
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            _, status, usage = os.wait4(proc.pid, 0)
            wall += time.perf_counter() - t0
            cpu += usage.ru_utime + usage.ru_stime
            if os.waitstatus_to_exitcode(status) != 0:
                raise SystemExit(f"{' '.join(argv)} failed")
    return cpu, wall


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--n-boot", type=int, default=200)
    ap.add_argument("--workload", choices=["analyze", "notebook"], default="analyze")
    args = ap.parse_args()
    res: dict[int, list[tuple[float, float]]] = {0: [], 1: []}
    for _ in range(args.repeats):
        for threads in (0, 1):
            res[threads].append(run_once(threads, args.n_boot, args.workload))
    med = {t: (statistics.median(c for c, _ in r), statistics.median(w for _, w in r)) for t, r in res.items()}
    what = ("examples/notebook.py" if args.workload == "notebook"
            else f"analyze (n_boot {args.n_boot}) + forecast beta_eb of the Monkeys counts")
    print(f"{os.cpu_count()} cores; {what}, median of {args.repeats}")
    print(f"  BLAS default threads: {med[0][0]:.1f} CPU s, {med[0][1]:.1f} s wall")
    print(f"  BLAS one thread:      {med[1][0]:.1f} CPU s, {med[1][1]:.1f} s wall")
    print(f"  one / default: CPU {med[1][0] / med[0][0]:.2f}x, wall {med[1][1] / med[0][1]:.2f}x")


if __name__ == "__main__":
    main()
