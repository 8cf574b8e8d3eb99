"""Driver memory against K: the planner, and verification on Ray against the local path.

Each figure is measured in a fresh Python process (peak resident set, ``ru_maxrss``, minus the
resident set once the imports are done, so both sides of a comparison start from the same
libraries: every process imports ray, pandas and ttscale first).

* Planner: 100 (problem, temperature) pairs (50 problems x 2 temperatures) with K samples each
  to draw; the plan made and every request generated (what the sampler hands a streaming
  backend). ``old`` is the planner before the streaming one (a list of missing indices per pair,
  then a list of all requests), run up to ``--old-max-k`` (it held ~40 bytes a planned sample:
  4 GB at K = 1,000,000).
* Verification: a synthetic run (the real write path, a backend that returns fixed short texts),
  verified with ``exact`` locally (in-process) and with ``executor: ray`` (a local Ray cluster of
  2 CPUs, 2 verifier workers); the driver's peak memory is compared (target: Ray within 10% of
  local).

    python benchmarks/bench_ray_memory.py                     # K = 1e4, 1e5, 1e6; 100k samples
    python benchmarks/bench_ray_memory.py --ks 1000000 --verify-samples 300000
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

PRELUDE = """
import json, resource, sys, time
import pandas, ray  # noqa: F401 - the same libraries on both sides
import ttscale.sampling.sampler, ttscale.verification.verify, ttscale.sampling.executors.ray_sampling
import ttscale.verification.ray_verify  # noqa: F401
def rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
def current_mb():
    with open('/proc/self/statm') as f:
        return int(f.read().split()[1]) * resource.getpagesize() / 2**20
base = current_mb()
t0 = time.perf_counter()
"""

PLAN_NEW = """
from ttscale.sampling.sampler import SampleSettings, load_problems, plan_requests
from ttscale.rundir.store import RunDir, SAMPLE_KEY
s = SampleSettings(task="arithmetic", num_problems=50, num_samples=K, temperatures=[0.7, 1.0])
problems, stop = load_problems(s)
plan = plan_requests(problems, s, RunDir("/nonexistent").read_samples(SAMPLE_KEY), stop)
n = sum(r.n for r in plan)
"""

PLAN_OLD = """
from ttscale.sampling.sampler import SampleSettings, load_problems, missing_indices, contiguous_ranges
from ttscale.sampling.backends.base import Request, seed_base
from ttscale.rundir.store import RunDir, SAMPLE_KEY
s = SampleSettings(task="arithmetic", num_problems=50, num_samples=K, temperatures=[0.7, 1.0])
problems, stop = load_problems(s)
lack = missing_indices(RunDir("/nonexistent").read_samples(SAMPLE_KEY), [p.problem_id for p in problems],
                       s.temperatures, K)
reqs = []
for p in problems:
    for t in s.temperatures:
        b = seed_base(s.seed, p.problem_id, t)
        for lo, hi in contiguous_ranges(lack.get((p.problem_id, float(t)), [])):
            for first in range(lo, hi, s.max_n_per_request):
                reqs.append(Request(p.problem_id, p.prompt, float(t), min(s.max_n_per_request, hi - first),
                                    b + first, first, s.max_tokens, tuple(stop), s.top_p))
n = sum(r.n for r in reqs)
"""

VERIFY = """
from ttscale.verification.verify import verify_run
from ttscale.sampling.executors import parse_executor
spec = None if SIDE == "local" else parse_executor("ray", {"verify_workers": 2, "local_cpus": 2}, "bench")
res = verify_run(RUN, "exact", out_name=SIDE, executor=spec)
n = res.verified
"""

EPILOGUE = """
print(json.dumps({"peak": rss_mb(), "base": base, "seconds": time.perf_counter() - t0, "n": n}))
"""


def measure(body: str, **names: object) -> dict[str, float]:
    code = PRELUDE + "".join(f"{k} = {v!r}\n" for k, v in names.items()) + body + EPILOGUE
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={**os.environ, "PYTHONPATH": ROOT}, timeout=3600)
    if out.returncode != 0:
        raise SystemExit(out.stderr[-2000:])
    return json.loads(out.stdout.strip().splitlines()[-1])


def synthetic_run(path: str, samples: int) -> None:
    """A run of ``samples`` samples (200 problems), written by the sampler's own write path."""
    from ttscale.sampling.backends.base import Backend, Sample
    from ttscale.sampling.sampler import SampleSettings, run_sampling

    class Fixed(Backend):
        name = "fixed"

        def generate(self, requests):
            batch = []
            for r in requests:
                batch += [Sample(r.problem_id, r.temperature, r.first_index + j, r.seed + j,
                                 str((r.seed + j) % 1000), 5, 4, "stop") for j in range(r.n)]
                if len(batch) >= 8192:
                    yield batch
                    batch = []
            if batch:
                yield batch

    run_sampling(SampleSettings(task="arithmetic", num_problems=200, num_samples=samples // 200),
                 path, backend=Fixed(), progress=False)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ks", default="10000,100000,1000000", help="K values for the planner")
    ap.add_argument("--old-max-k", type=int, default=100_000, help="largest K for the old planner")
    ap.add_argument("--verify-samples", type=int, default=100_000, help="samples in the verified run (0: skip)")
    args = ap.parse_args(argv)
    print("planner: 100 (problem, temperature) pairs x K samples, plan made and every request "
          "generated; MB over the process after imports")
    for k in [int(x) for x in args.ks.split(",")]:
        new = measure(PLAN_NEW, K=k)
        line = (f"  K={k:>9,}  new: {new['peak'] - new['base']:7.1f} MB {new['seconds']:6.2f} s "
                f"({new['n']:,} samples)")
        if k <= args.old_max_k:
            old = measure(PLAN_OLD, K=k)
            assert old["n"] == new["n"]
            line += (f"   old: {old['peak'] - old['base']:7.1f} MB {old['seconds']:6.2f} s   "
                     f"old/new memory {(old['peak'] - old['base']) / max(0.1, new['peak'] - new['base']):.1f}x")
        print(line, flush=True)
    if args.verify_samples:
        with tempfile.TemporaryDirectory() as d:
            run = os.path.join(d, "run")
            t = time.perf_counter()
            synthetic_run(run, args.verify_samples)
            print(f"verification: exact over {args.verify_samples:,} samples (200 problems; run written "
                  f"in {time.perf_counter() - t:.1f} s); driver peak MB (over the process after imports)")
            sides = {}
            for side in ("local", "ray"):
                m = measure(VERIFY, SIDE=side, RUN=run)
                sides[side] = m
                print(f"  {side:5s}: peak {m['peak']:7.1f} MB, {m['peak'] - m['base']:7.1f} MB over "
                      f"imports, {m['seconds']:6.1f} s, {m['n']:,} verdicts", flush=True)
            lo, ra = (sides[s]["peak"] - sides[s]["base"] for s in ("local", "ray"))
            print(f"  ray / local, data held by the driver: {ra / max(0.1, lo):.2f}  (target <= 1.10); "
                  f"peak: {sides['ray']['peak'] / sides['local']['peak']:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
