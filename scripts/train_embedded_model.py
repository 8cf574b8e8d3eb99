"""Train ttscale's embedded model: a 1.05 M-parameter Llama that does 3-digit sums and 2-digit products.

The recipe (see ttscale/models/arith-llama/MODEL_CARD.md and /work/shared/NOTES.md):

- ``LlamaConfig(vocab_size=32, hidden_size=128, intermediate_size=512, num_hidden_layers=4,
  num_attention_heads=2, num_key_value_heads=2, head_dim=64, max_position_embeddings=64,
  tie_word_embeddings=True)``;
- a character-level ``tokenizers`` WordLevel vocabulary (``<pad> <bos> <eos> <unk>``, digits,
  ``+ * - =``), ``<bos>`` prepended by a template processor, saved as a PreTrainedTokenizerFast;
- data drawn fresh each step: half ``a+b=`` with a, b in 0..999, half ``a*b=`` with a, b in 0..99;
  target = answer + ``<eos>``, loss on the target only;
- AdamW lr 3e-3, 100 warm-up steps, cosine decay to 10 %, batch 256, 2 threads, seed 0,
  2,000 steps.

After training it computes each evaluation problem's exact success probability at T = 1 (one
forward pass: the product of the probabilities of the answer's tokens and ``<eos>``), from which
the expected pass@k follows exactly, and writes the model card.

    python scripts/train_embedded_model.py                       # the shipped model (~15-30 min)
    python scripts/train_embedded_model.py --steps 5 --out /tmp/m  # a smoke run (seconds)
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np
import torch

VOCAB = ["<pad>", "<bos>", "<eos>", "<unk>", *"0123456789", "+", "*", "-", "="]
PAD, BOS, EOS = 0, 1, 2
DEFAULT_OUT = Path(__file__).resolve().parents[1] / "ttscale" / "models" / "arith-llama"


def build_tokenizer():  # -> transformers.PreTrainedTokenizerFast
    """The character-level tokenizer: every character a token, ``<bos>`` prepended, fused on decode."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = {tok: i for i, tok in enumerate(VOCAB)}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Split(Regex("."), behavior="isolated")
    tok.decoder = decoders.Fuse()
    tok.post_processor = processors.TemplateProcessing(
        single="<bos> $A", pair="<bos> $A $B", special_tokens=[("<bos>", BOS)]
    )
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<bos>",
        eos_token="<eos>",
        pad_token="<pad>",
        unk_token="<unk>",
        padding_side="left",
    )
    return fast


def build_model(seed: int):  # -> transformers.LlamaForCausalLM
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=32,  # 18 symbols used; room for later ones
        hidden_size=128,
        intermediate_size=512,
        num_hidden_layers=4,
        num_attention_heads=2,
        num_key_value_heads=2,
        head_dim=64,
        max_position_embeddings=64,
        tie_word_embeddings=True,
        bos_token_id=BOS,
        eos_token_id=EOS,
        pad_token_id=PAD,
    )
    return LlamaForCausalLM(config)


def encode(text: str) -> list[int]:
    """Token ids of a plain string (no ``<bos>``), by the same map as the tokenizer."""
    return [VOCAB.index(c) for c in text]


def draw_batch(rng: np.random.Generator, batch_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(input_ids, labels): ``<bos> a op b = answer <eos>`` right-padded; labels -100 but on the answer."""
    half = batch_size // 2
    rows = []
    add = rng.integers(0, 1000, size=(half, 2))
    mul = rng.integers(0, 100, size=(batch_size - half, 2))
    for a, b in add:
        rows.append((f"{a}+{b}=", str(int(a) + int(b))))
    for a, b in mul:
        rows.append((f"{a}*{b}=", str(int(a) * int(b))))
    seqs, labs = [], []
    for prompt, answer in rows:
        p = [BOS, *encode(prompt)]
        t = [*encode(answer), EOS]
        seqs.append(p + t)
        labs.append([-100] * len(p) + t)
    return right_padded(seqs, labs, PAD)


def right_padded(seqs: list[list[int]], labs: list[list[int]], pad: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Token rows right-padded with ``pad`` into (input_ids, labels), labels padded with -100
    (also used by scripts/train_thinking_model.py)."""
    width = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), width), pad, dtype=torch.long)
    labels = torch.full((len(seqs), width), -100, dtype=torch.long)
    for i, (s, lab) in enumerate(zip(seqs, labs, strict=True)):
        ids[i, : len(s)] = torch.tensor(s)
        labels[i, : len(lab)] = torch.tensor(lab)
    return ids, labels


def lr_at(step: int, steps: int, peak: float, warmup: int) -> float:
    """Linear warm-up to ``peak``, then cosine decay to 10 % of it at the last step."""
    if step < warmup:
        return peak * (step + 1) / warmup
    progress = (step - warmup) / max(1, steps - warmup)
    return peak * (0.1 + 0.9 * 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress))))


def train(steps: int, seed: int, batch_size: int = 256, lr: float = 3e-3, log_every: int = 50,
          threads: int = 2):
    """Train from scratch; returns (model, losses). Deterministic for a seed on one machine."""
    torch.set_num_threads(threads)
    model = build_model(seed)
    model.train()
    rng = np.random.default_rng(seed)
    warmup = min(100, max(1, steps // 10))
    opt = torch.optim.AdamW(model.parameters(), lr=lr)
    losses = []
    t0 = time.time()
    for step in range(steps):
        for g in opt.param_groups:
            g["lr"] = lr_at(step, steps, lr, warmup)
        ids, labels = draw_batch(rng, batch_size)
        attn = (ids != PAD).long()
        out = model(input_ids=ids, attention_mask=attn, labels=labels)
        opt.zero_grad(set_to_none=True)
        out.loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        losses.append(float(out.loss.detach()))
        if log_every and (step % log_every == 0 or step == steps - 1):
            rate = (step + 1) / (time.time() - t0)
            print(f"step {step:5d}  loss {losses[-1]:.4f}  lr {opt.param_groups[0]['lr']:.2e}"
                  f"  {rate:.2f} steps/s", flush=True)
    model.eval()
    return model, losses


@torch.no_grad()
def exact_success_probs(model, prompts: list[str], answers: list[str], temperature: float = 1.0) -> np.ndarray:
    """P(the model samples exactly ``answer<eos>`` after ``prompt``) at ``temperature``, per problem."""
    probs = []
    for prompt, answer in zip(prompts, answers, strict=True):
        p = [BOS, *encode(prompt)]
        t = [*encode(answer), EOS]
        ids = torch.tensor([p + t])
        logits = model(input_ids=ids).logits[0].float()
        logp = torch.log_softmax(logits / temperature, dim=-1)
        pos = torch.arange(len(p) - 1, len(p) + len(t) - 1)
        probs.append(float(logp[pos, torch.tensor(t)].sum().exp()))
    return np.array(probs)


def expected_pass_at_k(p: np.ndarray, k: int) -> float:
    """Mean over problems of 1 - (1 - p)^k: the exact expected coverage with k samples."""
    return float(np.mean(1.0 - (1.0 - p) ** k))


def evaluate(model, num_problems: int = 200, temperature: float = 1.0) -> dict:
    from ttscale._plugins.tasks.arithmetic import Arithmetic

    problems = Arithmetic().problems(num_problems, seed=0)
    prompts = [pr.prompt for pr in problems]
    answers = [pr.reference["answer"] for pr in problems]
    p = exact_success_probs(model, prompts, answers, temperature)
    return {
        "num_problems": num_problems,
        "temperature": temperature,
        "pass@k": {k: round(expected_pass_at_k(p, k), 4) for k in (1, 10, 100, 1000)},
        "rates_below_0.05": int((p < 0.05).sum()),
        "rates_0.05_to_0.95": int(((p >= 0.05) & (p <= 0.95)).sum()),
        "rates_above_0.95": int((p > 0.95).sum()),
    }


def write_model_card(out: Path, args: argparse.Namespace, seconds: float, final_loss: float,
                     evals: list[dict]) -> None:
    lines = [
        "# arith-llama: ttscale's embedded model",
        "",
        "A 1.05 M-parameter Llama trained from scratch to do `a+b=` (a, b in 0..999) and `a*b=`",
        "(a, b in 0..99). Small and imperfect on purpose: its per-problem success rates spread",
        "from near 0 to near 1, so repeated sampling shows real inference scaling curves on a CPU.",
        "",
        "## Recipe (scripts/train_embedded_model.py)",
        "- LlamaConfig(vocab_size=32, hidden_size=128, intermediate_size=512, num_hidden_layers=4,",
        "  num_attention_heads=2, num_key_value_heads=2, head_dim=64, max_position_embeddings=64,",
        "  tie_word_embeddings=True); weights in fp32 safetensors.",
        "- Tokenizer: character-level WordLevel (`<pad> <bos> <eos> <unk>`, digits, `+ * - =`),",
        "  `<bos>` prepended by a template processor; left padding.",
        "- Data: fresh random draws each step, half additions, half multiplications; target =",
        "  answer + `<eos>`, loss on the target only.",
        f"- AdamW lr {args.lr}, warm-up min(100, steps/10), cosine to 10 %, batch {args.batch_size},",
        f"  gradient clipping 1.0, {torch.get_num_threads()} torch thread(s), seed {args.seed},",
        f"  {args.steps} steps.",
        f"- Trained in {seconds / 60:.1f} min on 2 shared CPU cores; final batch loss {final_loss:.4f}.",
        "",
        "## Evaluation",
        "Problems: the `arithmetic` task with seed 0 (data seed 10,000), i.e. drawn independently of",
        "the training stream. Training draws random problems from the same small space, so some",
        "evaluation problems were seen in training; that is expected and fine for this purpose.",
        "Expected pass@k below is exact (not sampled): each problem's success probability is the",
        "product of the tempered probabilities of its answer's tokens and `<eos>` (one forward pass),",
        "and pass@k = mean over problems of 1 - (1 - p)^k.",
        "",
        "| T | problems | pass@1 | pass@10 | pass@100 | pass@1000 | p<0.05 | 0.05-0.95 | p>0.95 |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for ev in evals:
        pk = ev["pass@k"]
        lines.append(
            f"| {ev['temperature']} | {ev['num_problems']} | {pk[1]} | {pk[10]} | {pk[100]} |"
            f" {pk[1000]} | {ev['rates_below_0.05']} | {ev['rates_0.05_to_0.95']} |"
            f" {ev['rates_above_0.95']} |"
        )
    lines += ["", f"Reproduce: `python scripts/train_embedded_model.py --steps {args.steps} --threads "
              f"{args.threads} --seed {args.seed} --out DIR` (same weights on the same machine and torch "
              "version).", ""]
    (out / "MODEL_CARD.md").write_text("\n".join(lines))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--threads", type=int, default=2, help="torch threads (the recipe: 2)")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    ap.add_argument("--eval-problems", type=int, default=200,
                    help="problems for the exact pass@k in the model card (0: skip)")
    args = ap.parse_args(argv)
    if args.steps < 1:
        ap.error("--steps must be at least 1")

    t0 = time.time()
    model, losses = train(args.steps, args.seed, args.batch_size, args.lr, threads=args.threads)
    seconds = time.time() - t0
    args.out.mkdir(parents=True, exist_ok=True)
    model.generation_config.pad_token_id = PAD
    model.save_pretrained(args.out, safe_serialization=True)
    build_tokenizer().save_pretrained(args.out)
    evals = []
    if args.eval_problems > 0:
        evals = [evaluate(model, args.eval_problems, t) for t in (1.0, 0.6)]
        for ev in evals:
            print(json.dumps(ev), flush=True)
    write_model_card(args.out, args, seconds, losses[-1], evals)
    print(f"saved to {args.out} after {seconds:.0f} s", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
