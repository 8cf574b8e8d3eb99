"""Sampling throughput on CPU: ttscale's sampling against raw ``transformers`` ``generate``.

Both sides use one loaded model (load time excluded), the same prompts (the ``arithmetic``
task), temperature, ``max_tokens`` and number of samples per prompt. The baseline is what NOTES
measured as the fastest here: ``model.generate(do_sample=True, top_k=0, num_return_sequences=K)``
over ``--prompts-per-call`` left-padded prompts a call, texts decoded. ttscale's side is the whole
path a user runs: ``ttscale.sampling.sampler.run_sampling`` with the transformers backend, planning the
requests, drawing per-sample seeded tokens, and writing every batch as an atomic Parquet shard
into a fresh run directory. The two alternate ``--repeats`` times (the CPU is shared, so the
median of each is compared), and the ratio ttscale / generate is printed.

    python benchmarks/bench_sampling_cpu.py                    # 20 problems x K=100, T=1.0
    python benchmarks/bench_sampling_cpu.py --num-problems 50 --repeats 3
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time


def bench_generate(lm, tok, prompts: list[str], k: int, temperature: float, max_tokens: int,
                   per_call: int) -> tuple[int, int, float]:
    """(samples, new tokens, seconds) of plain transformers generate."""
    import torch

    samples = tokens = 0
    t0 = time.perf_counter()
    with torch.inference_mode():
        for i in range(0, len(prompts), per_call):
            enc = tok(prompts[i : i + per_call], return_tensors="pt", padding=True)
            out = lm.generate(**enc, do_sample=True, top_k=0, temperature=temperature,
                              num_return_sequences=k, max_new_tokens=max_tokens,
                              pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id)
            new = out[:, enc.input_ids.shape[1]:]
            texts = tok.batch_decode(new, skip_special_tokens=True)
            samples += len(texts)
            tokens += int((new != tok.pad_token_id).sum())
    return samples, tokens, time.perf_counter() - t0


def bench_ttscale(backend, settings) -> tuple[int, int, float]:
    """(samples, new tokens, seconds) of run_sampling into a fresh run directory."""
    from ttscale.sampling.sampler import run_sampling

    with tempfile.TemporaryDirectory() as d:
        t0 = time.perf_counter()
        res = run_sampling(settings, d, backend=backend, progress=False)
        return res.written, res.output_tokens, time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="embedded")
    ap.add_argument("--num-problems", type=int, default=20)
    ap.add_argument("-k", type=int, default=100)
    ap.add_argument("--temperature", type=float, default=1.0)
    ap.add_argument("--max-tokens", type=int, default=8)
    ap.add_argument("--prompts-per-call", type=int, default=10, help="generate: prompts a call")
    ap.add_argument("--batch-size", type=int, default=None,
                    help="ttscale: rows decoded together (default: prompts-per-call x K, as generate)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    args = ap.parse_args(argv)

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    from ttscale._plugins.tasks.arithmetic import Arithmetic

    from ttscale.sampling.backends.transformers_backend import TransformersBackend
    from ttscale.sampling.sampler import SampleSettings

    batch = args.batch_size or args.prompts_per_call * args.k
    backend = TransformersBackend(args.model, device="cpu", batch_size=batch)
    lm, tok = backend.lm, backend.tokenizer
    tok.padding_side = "left"
    prompts = [p.prompt for p in Arithmetic().problems(args.num_problems)]
    settings = SampleSettings(model=args.model, task="arithmetic", num_problems=args.num_problems,
                              num_samples=args.k, temperatures=[args.temperature],
                              max_tokens=args.max_tokens, max_n_per_request=args.k)
    bench_generate(lm, tok, prompts[:2], 4, args.temperature, 2, 2)  # warm-up
    print(f"{args.num_problems} prompts x K={args.k}, T={args.temperature}, max_tokens={args.max_tokens}, "
          f"{torch.get_num_threads()} threads; generate: {args.prompts_per_call} prompts a call; "
          f"ttscale: batch {batch} rows, one shard per batch")
    rates: dict[str, list[float]] = {"generate": [], "ttscale": []}
    for rep in range(args.repeats):
        order = [("generate", lambda: bench_generate(lm, tok, prompts, args.k, args.temperature,
                                                     args.max_tokens, args.prompts_per_call)),
                 ("ttscale", lambda: bench_ttscale(backend, settings))]
        if rep % 2:
            order.reverse()
        for name, fn in order:
            n, toks, secs = fn()
            rates[name].append(n / secs)
            print(f"  repeat {rep}  {name:8s} {n:6d} samples {toks:7d} tokens {secs:7.2f} s "
                  f"{n / secs:8.0f} samples/s {toks / secs:8.0f} tokens/s", flush=True)
    g, t = statistics.median(rates["generate"]), statistics.median(rates["ttscale"])
    print(f"median samples/s: generate {g:.0f}, ttscale {t:.0f}; ratio ttscale/generate = {t / g:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
