"""Sampling on Ray: samples/s with 1 and 2 replicas against the single-process path.

The embedded model, the transformers backend with one thread per process, the ``arithmetic``
task. Three sides, each the whole path a user runs (``run_sampling``: planning, sampling, one
atomic Parquet shard per finished chunk into a fresh run directory), with model loading left out
of the timing (each side's backend, or replicas, are loaded once before the first repeat):

* ``single``: one TransformersBackend in this process (``executor: local``);
* ``ray x1``: ``executor: ray`` with 1 replica (1 CPU, 1 thread) on a local Ray cluster;
* ``ray x2``: the same with 2 replicas.

Ray starts its workers at nice 15 by default; the replicas here run at this script's niceness
(``--worker-niceness 0``) so that the three sides compete for the shared CPUs on equal terms.
The sides alternate ``--repeats`` times and the median of each is compared (the machine is
shared, so their ratios, measured side by side, are the figures to read): ``x2 / x1`` (target
>= 1.6 with 2 free cores; it cannot exceed the cores the replicas actually get) and ``x1 / single`` (the overhead of going through Ray; target >= 0.9).
Every side must draw the same samples: the script checks it.

    python benchmarks/bench_ray.py                       # 20 problems x K=100, 3 repeats
    python benchmarks/bench_ray.py --num-problems 60 --repeats 5
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time


def timed(settings, backend) -> tuple[float, object, float | None, float]:
    """(samples/s, the samples, share of the wall time the replicas spent generating, CPU
    seconds per 1,000 samples: this process's plus the replicas')."""
    from ttscale.rundir.store import SAMPLE_KEY, RunDir
    from ttscale.sampling.sampler import run_sampling

    slots = getattr(backend, "slots", None) or []
    busy0, cpu0 = sum(s.busy for s in slots), sum(s.cpu for s in slots)
    with tempfile.TemporaryDirectory() as d:
        t0, c0 = time.perf_counter(), time.process_time()
        res = run_sampling(settings, d, backend=backend, progress=False)
        secs, cpu = time.perf_counter() - t0, time.process_time() - c0
        df = RunDir(d).read_samples().sort_values(SAMPLE_KEY).reset_index(drop=True)
    busy = (sum(s.busy for s in slots) - busy0) / (len(slots) * secs) if slots else None
    cpu += sum(s.cpu for s in slots) - cpu0
    return res.written / secs, df, busy, 1000 * cpu / res.written


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="embedded")
    ap.add_argument("--num-problems", type=int, default=20)
    ap.add_argument("-k", type=int, default=100)
    ap.add_argument("--max-tokens", type=int, default=8)
    ap.add_argument("--batch-size", type=int, default=256, help="samples per batch (and per Ray chunk)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--worker-niceness", type=int, default=0,
                    help="nice value of Ray's workers (Ray's default is 15, which on a shared machine "
                    "makes the replicas yield to every other process; 0 = this script's)")
    args = ap.parse_args(argv)

    import os

    os.environ["RAY_worker_niceness"] = str(args.worker_niceness)  # read by the raylet at start
    import ray

    from ttscale.sampling.backends.transformers_backend import TransformersBackend
    from ttscale.sampling.executors import executor_of
    from ttscale.sampling.executors.ray_sampling import RayBackend
    from ttscale.sampling.sampler import SampleSettings

    base = dict(model=args.model, task="arithmetic", num_problems=args.num_problems,
                num_samples=args.k, temperatures=[1.0], max_tokens=args.max_tokens, seed=0,
                backend_options={"threads": 1, "batch_size": args.batch_size})
    # 3 logical CPUs: both Ray sides (1 + 2 replicas of 1 CPU) stay loaded between repeats; only
    # one side samples at a time, on the machine's cores
    ray.init(num_cpus=3, include_dashboard=False, logging_level="ERROR")
    sides = {"single": (SampleSettings(**base), TransformersBackend(args.model, device="cpu", threads=1,
                                                                    batch_size=args.batch_size))}
    for n in (1, 2):
        s = SampleSettings(**base, executor="ray", executor_options={"replicas": n})
        sides[f"ray x{n}"] = (s, RayBackend(s, executor_of(s).ray))
    rates: dict[str, list[float]] = {k: [] for k in sides}
    busy: dict[str, list[float]] = {k: [] for k in sides}
    cpus: dict[str, list[float]] = {k: [] for k in sides}
    reference = None
    try:
        timed(*sides["single"])  # warm-up: first-call allocations in every process
        for name in ("ray x1", "ray x2"):
            timed(*sides[name])
        for _ in range(args.repeats):
            for name, (s, backend) in sides.items():
                rate, df, share, cpu = timed(s, backend)
                rates[name].append(rate)
                cpus[name].append(cpu)
                if share is not None:
                    busy[name].append(share)
                print(f"  {name}: {rate:.0f} samples/s", flush=True)
                if reference is None:
                    reference = df
                elif not df.equals(reference):
                    raise SystemExit(f"{name}: drew other samples than the single-process run")
    finally:
        for _, backend in sides.values():
            backend.close()
        ray.shutdown()
    med = {k: statistics.median(v) for k, v in rates.items()}
    n = args.num_problems * args.k
    print(f"{n} samples a run ({args.num_problems} problems x K={args.k}, max_tokens={args.max_tokens}, "
          f"batch {args.batch_size}), median of {args.repeats}, local Ray cluster, "
          f"workers at nice {args.worker_niceness}")
    for k, v in rates.items():
        note = (f"; replicas generating {statistics.median(busy[k]):.0%} of the wall time"
                if busy[k] else "")
        print(f"  {k:7s} {med[k]:8.0f} samples/s   (runs: {', '.join(f'{x:.0f}' for x in v)}{note})")
    cpu = {k: statistics.median(v) for k, v in cpus.items()}
    print("CPU seconds per 1,000 samples (this process + replicas; Ray's own daemons not counted): "
          + ", ".join(f"{k} {v:.2f}" for k, v in cpu.items()))
    print(f"ray x2 / ray x1 = {med['ray x2'] / med['ray x1']:.2f}   (target >= 1.6)")
    print(f"ray x1 / single = {med['ray x1'] / med['single']:.2f}   (target >= 0.9); "
          f"in CPU time per sample: {cpu['single'] / cpu['ray x1']:.2f}")
    print("every side drew the same samples, byte for byte")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
