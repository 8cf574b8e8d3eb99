"""Thinking budgets: one trace cut at every budget, against drawing each budget from scratch.

Three ways to get K samples per problem at each of several budgets, in the same process:

- ttscale: ``budgets=[B_1, ..., B_m]`` in one run: each trace is generated once (to the largest
  budget), and only the answers forced at smaller budgets are generated on top (transformers: from
  KV-cache snapshots; vllm: prefix-cached requests);
- scratch: one run per budget (``budgets=[B]``), as a user without the budget axis would;
- ideal: the largest budget's traces plus the forced answers alone, i.e. the tokens of the
  ttscale run that no scheme can avoid: each trace's tokens at the largest budget, plus the
  answer tokens of every forced sample at a smaller budget. Its time is the largest budget's own
  scratch run plus those answer tokens at that run's tokens per second.

Printed: tokens generated and wall time of each, and the ratios ttscale / ideal and
scratch / ttscale. The model is by default a random-weight Llama with a 200-token vocabulary whose
``</think>`` is one token, so a trace closes its thinking with probability about 1/200 a token
(most traces pass the budgets; some close before), built in a temporary folder; ``--model`` takes
a real thinking model (with ``--task``, its accuracy at each budget is printed with intervals).

    python benchmarks/bench_budgets.py                           # transformers, budgets 16,32,64,128
    python benchmarks/bench_budgets.py --budgets 32,64,96,128    # evenly spaced
    /work/venv-vllm/bin/python benchmarks/bench_budgets.py --backend vllm
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

VOCAB_SIZE = 200


def random_thinking_model(folder: Path) -> Path:
    """A random-weight Llama with a character tokenizer, ``</think>`` one of its 200 tokens."""
    import torch
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, processors
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    chars = list("0123456789+-*=abcdefghijklmnopqrstuvwxyz ")
    vocab_list = ["<pad>", "<bos>", "<eos>", "<unk>", "</think>", *chars]
    vocab_list += [f"<t{i}>" for i in range(VOCAB_SIZE - len(vocab_list))]
    vocab = {t: i for i, t in enumerate(vocab_list)}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Split(Regex(r"</think>|<t\d+>|."), behavior="isolated")
    tok.decoder = decoders.Fuse()
    tok.post_processor = processors.TemplateProcessing(single="<bos> $A", special_tokens=[("<bos>", 1)])
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<bos>", eos_token="<eos>",
                                   pad_token="<pad>", unk_token="<unk>", padding_side="left")
    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=VOCAB_SIZE, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                      num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=2048,
                      bos_token_id=1, eos_token_id=2, pad_token_id=0, tie_word_embeddings=True)
    lm = LlamaForCausalLM(cfg)
    lm.save_pretrained(folder, safe_serialization=True)
    fast.save_pretrained(folder)
    return folder


def run(settings, out: Path, backend) -> tuple[int, float]:
    from ttscale.sampling.sampler import run_sampling

    before = backend.decoded_tokens
    t0 = time.perf_counter()
    run_sampling(settings, out, backend=backend, progress=False)
    return backend.decoded_tokens - before, time.perf_counter() - t0


def ideal_tokens(out: Path, budgets: list[int]) -> tuple[int, int]:
    """(tokens of the largest budget's samples, answer tokens of the forced samples below it)."""
    from ttscale.rundir.store import RunDir

    df = RunDir(out).read_samples()
    top = df[df["budget"] == max(budgets)]
    # a forced answer's cue is prefilled, not generated
    trace = int((top["num_output_tokens"] - (top["num_output_tokens"] - top["thinking_tokens"]
                                              - top["answer_tokens"]) * top["forced"]).sum())
    below = df[(df["budget"] < max(budgets)) & df["forced"]]
    return trace, int(below["answer_tokens"].sum())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--backend", choices=["transformers", "vllm"], default="transformers")
    ap.add_argument("--model", help="a thinking model (default: a random-weight one, built here)")
    ap.add_argument("--task", default="arithmetic", help="task whose prompts are used (and verified with --verifier)")
    ap.add_argument("--verifier", help="with a real --model: verify and print accuracy per budget")
    ap.add_argument("--budgets", default="16,32,64,128")
    ap.add_argument("--think-end", default="</think>")
    ap.add_argument("--answer-cue", default="")
    ap.add_argument("-k", type=int, default=8)
    ap.add_argument("--num-problems", type=int, default=4)
    ap.add_argument("--max-tokens", type=int, default=16, help="answer tokens at most")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    budgets = [int(b) for b in args.budgets.split(",")]

    from ttscale.sampling.executors import make_backend
    from ttscale.sampling.sampler import SampleSettings

    with tempfile.TemporaryDirectory() as d:
        d = Path(d)
        model = args.model or str(random_thinking_model(d / "model"))
        opts = {"threads": args.threads} if args.backend == "transformers" else {}
        base = dict(backend=args.backend, model=model, task=args.task, num_problems=args.num_problems,
                    num_samples=args.k, max_tokens=args.max_tokens, think_end=args.think_end,
                    answer_cue=args.answer_cue, backend_options=opts)
        backend = make_backend(SampleSettings(**base, budgets=budgets))
        try:
            run(SampleSettings(**{**base, "num_problems": 1, "num_samples": 1}, budgets=[budgets[0]]),
                d / "warm", backend)  # warm-up (kernels, caches)
            ours_tok, ours_s = run(SampleSettings(**base, budgets=budgets), d / "ours", backend)
            scratch = {b: run(SampleSettings(**base, budgets=[b]), d / f"scratch-{b}", backend)
                       for b in budgets}
        finally:
            backend.close()
        trace_tok, answer_tok = ideal_tokens(d / "ours", budgets)
        top_tok, top_s = scratch[max(budgets)]
        ideal_tok = trace_tok + answer_tok
        ideal_s = top_s + answer_tok * top_s / max(top_tok, 1)
        scratch_tok = sum(t for t, _ in scratch.values())
        scratch_s = sum(s for _, s in scratch.values())
        print(f"backend {args.backend}, model {args.model or 'random-weight 200-token Llama'}, budgets {budgets}, "
              f"{args.num_problems} problems x K={args.k}, answers <= {args.max_tokens} tokens")
        print(f"{'':10s} {'tokens':>9s} {'seconds':>9s}")
        for name, tok, sec in (("ttscale", ours_tok, ours_s), ("ideal", ideal_tok, ideal_s),
                               ("scratch", scratch_tok, scratch_s)):
            print(f"{name:10s} {tok:9d} {sec:9.2f}")
        print(f"ttscale / ideal: tokens {ours_tok / ideal_tok:.3f}x, time {ours_s / ideal_s:.2f}x")
        print(f"scratch / ttscale: tokens {scratch_tok / ours_tok:.2f}x, time {scratch_s / ours_s:.2f}x")
        if args.verifier:
            import ttscale

            ttscale.verify(d / "ours", verifier=args.verifier, progress=False)
            res = ttscale.analyze(d / "ours", n_boot=1000, law_boot=0, progress=False)
            c = res.curves[(res.curves["metric"] == "pass@k") & (res.curves["k"] == 1)]
            for r in c.sort_values("budget").itertuples():
                print(f"budget {r.budget:6d}: pass@1 {r.estimate:.3f} [{r.ci_low:.3f}, {r.ci_high:.3f}]")


if __name__ == "__main__":
    main()
