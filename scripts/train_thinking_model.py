"""Train ttscale's embedded thinking model: a ~1 M-parameter Llama that adds long numbers in a think block.

The model reads ``a+b=<think>`` (a, b with 1..6 digits) and writes a scratchpad, one column at a time,
least significant digit first: for each column the two operand digits, the sum digit and the carry out,
then ``,``; then ``</think>``, the sum, ``<eos>``::

    <bos>4057+968=<think>7851,5621,0901,4050,</think>5025<eos>

``<think>`` and ``</think>`` are one token each (added, not special, so they survive decoding).
The prompt ends with ``<think>``: every generated token before ``</think>`` is a thinking token.

Budget forcing (s1): cut the trace after B thinking tokens, append ``</think>`` (no answer cue) and
let the model write the answer. Half of the training traces are cut that way at a uniform random
point (no loss on the forced ``</think>``, loss on the true answer after it), so a forced answer is the
model's best guess from a partial scratchpad: the columns already written give the low digits, the
rest it must add in its head, and its accuracy rises with the budget.

    python scripts/train_thinking_model.py                          # the shipped model
    python scripts/train_thinking_model.py --steps 5 --out /tmp/m   # a smoke run (seconds)
    python scripts/train_thinking_model.py --eval-only --out ttscale/models/think-llama  # the curve
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from train_embedded_model import lr_at, right_padded  # the same schedule and padding as arith-llama
from ttscale._plugins.tasks.long_addition import scratchpad  # the task's own reference trace

THINK, END_THINK = "<think>", "</think>"
VOCAB = ["<pad>", "<bos>", "<eos>", "<unk>", *"0123456789", "+", "*", "-", "=", ",", THINK, END_THINK]
PAD, BOS, EOS = 0, 1, 2
TH, ETH = VOCAB.index(THINK), VOCAB.index(END_THINK)
COMMA = VOCAB.index(",")
MAX_DIGITS = 6
DEFAULT_OUT = Path(__file__).resolve().parents[1] / "ttscale" / "models" / "think-llama"
BUDGETS = (0, 4, 8, 12, 16, 20, 24, 28, 32)
THINKING = {"think_start": THINK, "think_end": END_THINK, "answer_cue": "",
            "prompt_ends_with_think_start": True}


def build_tokenizer():  # -> transformers.PreTrainedTokenizerFast
    """Character-level tokenizer; ``<think>``/``</think>`` one (non-special) token each; ``<bos>`` prepended."""
    from tokenizers import (
        AddedToken,
        Regex,
        Tokenizer,
        decoders,
        models,
        pre_tokenizers,
        processors,
    )
    from transformers import PreTrainedTokenizerFast

    vocab = {tok: i for i, tok in enumerate(VOCAB)}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Split(Regex("."), behavior="isolated")
    tok.decoder = decoders.Fuse()
    tok.add_tokens([AddedToken(THINK, special=False, normalized=False),
                    AddedToken(END_THINK, special=False, normalized=False)])
    tok.post_processor = processors.TemplateProcessing(
        single="<bos> $A", pair="<bos> $A $B", special_tokens=[("<bos>", BOS)]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<bos>", eos_token="<eos>", pad_token="<pad>",
        unk_token="<unk>", padding_side="left",
    )


def build_model(seed: int, hidden: int = 128, layers: int = 4):  # -> transformers.LlamaForCausalLM
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=32, hidden_size=hidden, intermediate_size=4 * hidden, num_hidden_layers=layers,
        num_attention_heads=hidden // 64, num_key_value_heads=hidden // 64, head_dim=64,
        max_position_embeddings=96, tie_word_embeddings=True,
        bos_token_id=BOS, eos_token_id=EOS, pad_token_id=PAD,
    )
    return LlamaForCausalLM(config)


def encode(text: str) -> list[int]:
    """Token ids of a digits-and-operators string (no markers, no ``<bos>``)."""
    return [VOCAB.index(c) for c in text]


def prompt_ids(a: int, b: int) -> list[int]:
    return [BOS, *encode(f"{a}+{b}="), TH]


def draw_operands(rng: np.random.Generator, n: int) -> list[tuple[int, int]]:
    """n pairs, each operand's digit count uniform in 1..MAX_DIGITS, then uniform over those numbers."""
    out = []
    for da, db in rng.integers(1, MAX_DIGITS + 1, size=(n, 2)):
        lo_a, lo_b = (0 if da == 1 else 10 ** (da - 1)), (0 if db == 1 else 10 ** (db - 1))
        out.append((int(rng.integers(lo_a, 10**da)), int(rng.integers(lo_b, 10**db))))
    return out


def draw_batch(rng: np.random.Generator, batch_size: int, cut_fraction: float = 0.5):
    """(input_ids, labels): full traces and, for ``cut_fraction`` of rows, traces forced at a random cut."""
    seqs, labs = [], []
    cuts = rng.random(batch_size) < cut_fraction
    for (a, b), cut in zip(draw_operands(rng, batch_size), cuts, strict=True):
        p = prompt_ids(a, b)
        think = encode(scratchpad(a, b))
        ans = [*encode(str(a + b)), EOS]
        if cut:
            c = int(rng.integers(0, len(think)))  # 0..len-1 thinking tokens kept
            body, lab = [*think[:c], ETH, *ans], [*think[:c], -100, *ans]
        else:
            body = [*think, ETH, *ans]
            lab = body
        seqs.append(p + body)
        labs.append([-100] * len(p) + lab)
    return right_padded(seqs, labs, PAD)



def save(model, out: Path) -> None:
    """fp16 safetensors, the tokenizer and thinking.json in ``out``."""
    import copy

    out.mkdir(parents=True, exist_ok=True)
    half = copy.deepcopy(model).half()
    half.generation_config.pad_token_id = PAD
    half.save_pretrained(out, safe_serialization=True)
    build_tokenizer().save_pretrained(out)
    (out / "thinking.json").write_text(json.dumps(THINKING, indent=2) + "\n")


def train(args: argparse.Namespace):
    """Train from scratch (deterministic for a seed on one machine); checkpoints to ``args.out``."""
    torch.set_num_threads(args.threads)
    model = build_model(args.seed, args.hidden, args.layers)
    print(f"{sum(p.numel() for p in model.parameters()):,} parameters", flush=True)
    model.train()
    rng = np.random.default_rng(args.seed)
    warmup = min(100, max(1, args.steps // 10))
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.01)
    t0 = time.time()
    loss = float("nan")
    for step in range(args.stop_after or args.steps):
        for g in opt.param_groups:
            g["lr"] = lr_at(step, args.steps, args.lr, warmup)
        ids, labels = draw_batch(rng, args.batch_size)
        out = model(input_ids=ids, attention_mask=(ids != PAD).long(), labels=labels)
        opt.zero_grad(set_to_none=True)
        out.loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        loss = float(out.loss.detach())
        if step % 25 == 0 or step == (args.stop_after or args.steps) - 1:
            rate = (step + 1) / (time.time() - t0)
            print(f"step {step:5d}  loss {loss:.4f}  lr {opt.param_groups[0]['lr']:.2e}  {rate:.2f} steps/s",
                  flush=True)
        if args.checkpoint_every and (step + 1) % args.checkpoint_every == 0 and step + 1 < args.steps:
            model.eval()
            save(model, args.out)
            model.train()
            print(f"checkpoint at step {step + 1} -> {args.out}", flush=True)
    model.eval()
    return model, loss, time.time() - t0


# --- evaluation: sampled traces, forced at each budget, scored exactly -------------------------


@torch.no_grad()
def sample_traces(model, pairs: list[tuple[int, int]], k: int, temperature: float, seed: int,
                  max_new_tokens: int = 48, chunk: int = 16) -> list[list[list[int]]]:
    """k sampled completions (token ids, up to and excluding ``<eos>``) per pair; seeded per chunk."""
    out: list[list[list[int]]] = []
    for start in range(0, len(pairs), chunk):
        part = pairs[start:start + chunk]
        prompts = [prompt_ids(a, b) for a, b in part]
        width = max(len(p) for p in prompts)
        ids = torch.full((len(part), width), PAD, dtype=torch.long)
        for i, p in enumerate(prompts):
            ids[i, width - len(p):] = torch.tensor(p)  # left padding
        torch.manual_seed(seed * 1_000_003 + start)
        gen = model.generate(input_ids=ids, attention_mask=(ids != PAD).long(), do_sample=True,
                             temperature=temperature, top_k=0, top_p=1.0, num_return_sequences=k,
                             max_new_tokens=max_new_tokens, pad_token_id=PAD, eos_token_id=EOS)
        new = gen[:, width:].tolist()
        for i in range(len(part)):
            rows = []
            for row in new[i * k:(i + 1) * k]:
                rows.append(row[:row.index(EOS)] if EOS in row else [t for t in row if t != PAD])
            out.append(rows)
    return out


def thinking_of(completion: list[int]) -> tuple[list[int], bool]:
    """(thinking tokens, whether the trace closed its think block itself)."""
    if ETH in completion:
        return completion[:completion.index(ETH)], True
    return completion, False


@torch.no_grad()
def answer_probs(model, prefixes: list[list[int]], answers: list[list[int]], temperature: float,
                 batch: int = 256) -> np.ndarray:
    """P(the model writes exactly ``answer<eos>`` after ``prefix``) at ``temperature``, per row."""
    probs = np.empty(len(prefixes))
    for start in range(0, len(prefixes), batch):
        pre, ans = prefixes[start:start + batch], answers[start:start + batch]
        seqs = [p + a for p, a in zip(pre, ans, strict=True)]
        width = max(len(s) for s in seqs)
        ids = torch.full((len(seqs), width), PAD, dtype=torch.long)
        for i, s in enumerate(seqs):
            ids[i, :len(s)] = torch.tensor(s)  # right padding: causal, positions from 0
        logp = torch.log_softmax(model(input_ids=ids).logits.float() / temperature, dim=-1)
        for i, (p, a) in enumerate(zip(pre, ans, strict=True)):
            pos = torch.arange(len(p) - 1, len(p) + len(a) - 1)
            probs[start + i] = float(logp[i, pos, torch.tensor(a)].sum().exp())
    return probs


def forced_prefix(prompt: list[int], thinking: list[int], budget: int) -> list[int]:
    """The prompt, the first ``budget`` thinking tokens, then ``</think>`` (no answer cue)."""
    return [*prompt, *thinking[:budget], ETH]


def bootstrap_interval(per_problem: np.ndarray, reps: int = 2000, seed: int = 0) -> tuple[float, float]:
    """95 % percentile bootstrap interval of the mean, resampling problems."""
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(per_problem), size=(reps, len(per_problem)))
    means = per_problem[idx].mean(axis=1)
    return float(np.quantile(means, 0.025)), float(np.quantile(means, 0.975))


def evaluate_budgets(model, num_problems: int = 200, k: int = 8, temperature: float = 1.0,
                     budgets: tuple[int, ...] = BUDGETS, seed: int = 0) -> dict:
    """Accuracy at each thinking budget under budget forcing, with 95 % bootstrap intervals.

    For each problem of the ``long-addition`` task (seed 0), ``k`` traces are sampled at
    ``temperature``; at budget B each trace is cut after B thinking tokens (a trace that closed its
    think block within B is kept whole), ``</think>`` is appended and the probability that the model
    then writes the right answer is computed exactly. A problem's rate at B is the mean over its
    traces (an unbiased estimate of its success rate with forcing at B); accuracy is the mean over
    problems, its interval a bootstrap over problems.
    """
    from ttscale._plugins.tasks.long_addition import LongAddition

    problems = LongAddition().problems(num_problems, seed=seed)
    pairs = [tuple(int(x) for x in pr.prompt.removesuffix(THINK).removesuffix("=").split("+"))
             for pr in problems]
    traces = sample_traces(model, pairs, k, temperature, seed)
    prefixes, answers, index = [], [], []
    think_len = np.zeros((len(pairs), k))
    closed = np.zeros((len(pairs), k), dtype=bool)
    for i, ((a, b), rows) in enumerate(zip(pairs, traces, strict=True)):
        ans = [*encode(str(a + b)), EOS]
        for j, row in enumerate(rows):
            thinking, ok = thinking_of(row)
            think_len[i, j], closed[i, j] = len(thinking), ok
            for budget in budgets:
                prefixes.append(forced_prefix(prompt_ids(a, b), thinking, budget))
                answers.append(ans)
                index.append((i, j, budget))
    probs = answer_probs(model, prefixes, answers, temperature)
    rate = np.zeros((len(budgets), len(pairs), k))
    pos = {b: n for n, b in enumerate(budgets)}
    for (i, j, budget), p in zip(index, probs, strict=True):
        rate[pos[budget], i, j] = p
    per_problem = rate.mean(axis=2)
    rows = []
    for n, budget in enumerate(budgets):
        lo, hi = bootstrap_interval(per_problem[n])
        used = np.minimum(think_len, budget)
        rows.append({"budget": budget, "accuracy": round(float(per_problem[n].mean()), 4),
                     "ci95": [round(lo, 4), round(hi, 4)],
                     "mean_thinking_tokens": round(float(used.mean()), 2),
                     "forced_fraction": round(float(((think_len > budget) | ~closed).mean()), 4)})
    top = per_problem[-1]
    return {"task": "long-addition", "num_problems": len(pairs), "traces_per_problem": k,
            "temperature": temperature, "seed": seed, "curve": rows,
            "trace_thinking_tokens_mean": round(float(think_len.mean()), 2),
            "traces_closed_think_block": round(float(closed.mean()), 4),
            "top_budget_rates": {"below_0.05": int((top < 0.05).sum()),
                                 "0.05_to_0.95": int(((top >= 0.05) & (top <= 0.95)).sum()),
                                 "above_0.95": int((top > 0.95).sum())}}


def load(out: Path):  # -> transformers.LlamaForCausalLM
    """The saved model (fp16 on disk) in fp32, in eval mode."""
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(out, dtype=torch.float32).eval()


def write_model_card(out: Path, training: dict, evals: list[dict]) -> None:
    """MODEL_CARD.md from training.json's figures and the measured curves."""
    t = training
    done = t.get("stop_after", t["steps"])
    schedule = (f"{t['steps']} steps" if done == t["steps"]
                else f"the first {done} steps of a {t['steps']}-step schedule (its checkpoint)")
    n_params = sum(p.numel() for p in load(out).parameters())
    lines = [
        f"# {out.name}: ttscale's embedded model that thinks",
        "",
        f"A {n_params / 1e6:.2f} M-parameter Llama trained from scratch to add two numbers of 1 to 6 digits",
        "by writing a scratchpad in a think block first. Under budget forcing (cut the thinking after",
        "B tokens, close the block, let it answer) its accuracy rises with B: the columns it has",
        "written give the low digits, the rest it must add in its head. Imperfect on purpose even at",
        "the full budget, so repeated sampling (K) matters too: ttscale's second axis on a CPU.",
        "",
        "## Thinking format (thinking.json)",
        "```",
        "<bos>4057+968=<think>7851,5621,0901,4050,</think>5025<eos>",
        "```",
        "- The prompt ends with `<think>` (`prompt_ends_with_think_start: true`); every generated",
        "  token before `</think>` is a thinking token. `<think>` and `</think>` are one token each",
        "  (ids 19 and 20; added, not special, so `decode(skip_special_tokens=True)` keeps them).",
        "- Scratchpad: one column per operand digit, least significant first, 5 tokens a column:",
        "  digit of a, digit of b, sum digit, carry out, `,` (at most 30 thinking tokens).",
        "- Budget forcing: the first B thinking tokens, then `</think>`, no answer cue",
        "  (`answer_cue: \"\"`); the model writes the answer and `<eos>`.",
        "- Task plugin: `long-addition` (tasks/long_addition.py), verified by `exact` (the last",
        "  number of the completion is the one after `</think>`).",
        "",
        "## Recipe (scripts/train_thinking_model.py)",
        f"- LlamaConfig(vocab_size=32, hidden_size={t['hidden']}, intermediate_size={4 * t['hidden']},",
        f"  num_hidden_layers={t['layers']}, num_attention_heads={t['hidden'] // 64}, head_dim=64,",
        "  max_position_embeddings=96, tie_word_embeddings=True); weights saved in fp16 safetensors.",
        "- Tokenizer: character-level WordLevel (`<pad> <bos> <eos> <unk>`, digits, `+ * - = ,`) plus",
        "  the two think markers as added tokens; `<bos>` prepended; left padding.",
        "- Data: fresh random pairs each step (each operand's digit count uniform in 1..6). Half the",
        "  rows are whole traces (loss on scratchpad, `</think>`, answer, `<eos>`); half are cut after",
        "  a uniform random number of thinking tokens and forced with `</think>` (loss on the kept",
        "  thinking and on the true answer, none on the forced marker), so that a forced answer is the",
        "  model's best guess from a partial scratchpad.",
        f"- AdamW (weight decay 0.01) lr {t['lr']}, warm-up min(100, steps/10), cosine to 10 %,",
        f"  batch {t['batch_size']}, gradient clipping 1.0, {t['threads']} torch thread, seed {t['seed']},",
        f"  {schedule}: {t['minutes']} min on 2 shared CPU cores; final batch loss",
        f"  {t['final_batch_loss']}.",
        "",
        "## Accuracy over the thinking budget",
        "Problems: the `long-addition` task, seed 0 (data seed 10,000, apart from the training",
        "stream; the problem space is large, so few if any were seen in training). For each problem,",
        "K traces are sampled at temperature T (seeded); at budget B each trace is cut after B",
        "thinking tokens (one that closed its block within B is kept whole), `</think>` appended,",
        "and the probability that the model then writes the right answer and `<eos>` is computed",
        "exactly (one forward pass, tempered probabilities). Accuracy = mean over problems of the",
        "mean over its traces (an unbiased estimate of pass@1 with forcing at B); 95 % intervals:",
        "percentile bootstrap over problems (2,000 resamples).",
        "",
    ]
    for ev in evals:
        r = ev["top_budget_rates"]
        lines += [
            f"T = {ev['temperature']}, {ev['num_problems']} problems x {ev['traces_per_problem']} traces;"
            f" traces think {ev['trace_thinking_tokens_mean']} tokens on average,"
            f" {ev['traces_closed_think_block'] * 100:.1f} % close their block within 48 tokens.",
            "",
            "| budget B | accuracy | 95 % interval | thinking tokens used | traces forced |",
            "|---|---|---|---|---|",
        ]
        for row in ev["curve"]:
            lines.append(f"| {row['budget']} | {row['accuracy']:.4f} | {row['ci95'][0]:.4f}-{row['ci95'][1]:.4f} |"
                         f" {row['mean_thinking_tokens']} | {row['forced_fraction'] * 100:.1f} % |")
        lines += ["", f"Per-problem rates at B = {ev['curve'][-1]['budget']}: {r['below_0.05']} below 0.05,"
                  f" {r['0.05_to_0.95']} in 0.05-0.95, {r['above_0.95']} above 0.95.", ""]
    lines += [
        "Reproduce the curve (writes budget_curve.json and this card):",
        f"`python scripts/train_thinking_model.py --eval-only --out ttscale/models/{out.name}`.",
        "Retrain: `python scripts/train_thinking_model.py "
        + ("" if (t["hidden"], t["layers"]) == (128, 4) else f"--hidden {t['hidden']} --layers {t['layers']} ")
        + f"--steps {t['steps']} --stop-after {done} --batch-size {t['batch_size']} --threads {t['threads']}"
        f" --seed {t['seed']}"
        " --out DIR` (same weights on the same machine and torch version).",
        "",
    ]
    (out / "MODEL_CARD.md").write_text("\n".join(lines))


def run_eval(out: Path, num_problems: int, k: int, temperatures: list[float]) -> list[dict]:
    model = load(out)
    evals = [evaluate_budgets(model, num_problems, k, t) for t in temperatures]
    (out / "budget_curve.json").write_text(json.dumps(evals, indent=1) + "\n")
    for ev in evals:
        print(json.dumps(ev), flush=True)
    return evals


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=1500)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--hidden", type=int, default=128)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--threads", type=int, default=1, help="torch threads (1: two ran slower here)")
    ap.add_argument("--checkpoint-every", type=int, default=250)
    ap.add_argument("--stop-after", type=int, default=0,
                    help="stop after this many steps of the --steps schedule (a checkpoint's weights)")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    ap.add_argument("--eval-only", action="store_true", help="evaluate the model in --out, write its card")
    ap.add_argument("--eval-problems", type=int, default=200, help="problems for the curve (0: skip)")
    ap.add_argument("--eval-k", type=int, default=4, help="traces per problem for the curve")
    ap.add_argument("--eval-temperatures", default="1.0")
    args = ap.parse_args(argv)
    if args.steps < 1 or not 0 <= args.stop_after <= args.steps:
        ap.error("--steps must be at least 1 and --stop-after in 0..steps")
    if not args.eval_only:
        model, loss, seconds = train(args)
        save(model, args.out)
        (args.out / "training.json").write_text(json.dumps(
            {"steps": args.steps, "stop_after": args.stop_after or args.steps, "seed": args.seed,
             "batch_size": args.batch_size, "lr": args.lr,
             "hidden": args.hidden, "layers": args.layers, "threads": args.threads,
             "final_batch_loss": round(loss, 4), "minutes": round(seconds / 60, 1)}, indent=2) + "\n")
        print(f"saved to {args.out} after {seconds:.0f} s", flush=True)
    torch.set_num_threads(args.threads)
    evals = []
    if args.eval_problems > 0:
        temps = [float(x) for x in args.eval_temperatures.split(",")]
        evals = run_eval(args.out, args.eval_problems, args.eval_k, temps)
    write_model_card(args.out, json.loads((args.out / "training.json").read_text()), evals)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
