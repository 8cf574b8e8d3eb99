"""The embedded thinking model (think-llama): its format, its task, its training script, and that
its accuracy really rises with the thinking budget under budget forcing."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))

import train_thinking_model as tt  # noqa: E402

SHIPPED = REPO / "ttscale" / "models" / "think-llama"
SMALL = REPO / "ttscale" / "models" / "think-llama-small"  # the second size (frontier over sizes)


@pytest.fixture(scope="module")
def tok():
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(SHIPPED)


@pytest.fixture(scope="module")
def model():
    import torch

    torch.set_num_threads(1)
    return tt.load(SHIPPED)


def test_thinking_json_is_the_contract_and_each_marker_is_one_token(tok):
    spec = json.loads((SHIPPED / "thinking.json").read_text())
    assert spec == {"think_start": "<think>", "think_end": "</think>", "answer_cue": "",
                    "prompt_ends_with_think_start": True}
    assert tok.convert_tokens_to_ids(["<think>", "</think>"]) == [tt.TH, tt.ETH] == [19, 20]
    ids = tok("4057+968=<think>7851,</think>5025").input_ids
    assert ids[0] == tt.BOS and ids.count(tt.TH) == 1 and ids.count(tt.ETH) == 1
    assert len(ids) == 1 + len("4057+968=") + 1 + len("7851,") + 1 + len("5025")
    # added, not special: they survive the decoding the backends do
    assert tok.decode(ids, skip_special_tokens=True) == "4057+968=<think>7851,</think>5025"
    assert tok("1+2=<think>").input_ids == tt.prompt_ids(1, 2)


@pytest.mark.parametrize(("folder", "params"), [(SHIPPED, 1_053_824), (SMALL, 133_440)])
def test_shipped_folders_are_small_fp16_and_transformers_loads_them(folder, params):
    from safetensors.numpy import load_file
    from transformers import AutoTokenizer

    weights = load_file(folder / "model.safetensors")
    assert {str(w.dtype) for w in weights.values()} == {"float16"}
    assert (folder / "model.safetensors").stat().st_size < 3_000_000
    model = tt.load(folder)
    assert sum(p.numel() for p in model.parameters()) == params
    assert model.config.max_position_embeddings >= len(tt.prompt_ids(999_999, 999_999)) + 30 + 1 + 7 + 1
    card = (folder / "MODEL_CARD.md").read_text()
    assert f"--eval-only --out ttscale/models/{folder.name}`" in card and "| budget B |" in card
    assert json.loads((folder / "thinking.json").read_text()) == tt.THINKING
    tok = AutoTokenizer.from_pretrained(folder)
    assert tok("12+3=<think>").input_ids == tt.prompt_ids(12, 3)


def test_task_prompts_end_with_think_and_exact_verifies_the_answer_after_the_block():
    from ttscale.core.registry import tasks, verifiers

    task = tasks.get("long-addition")()
    spec = json.loads((SHIPPED / "thinking.json").read_text())
    assert (task.think_end, task.answer_cue) == (spec["think_end"], spec["answer_cue"])
    probs = task.problems(50, seed=0)
    assert [p.prompt for p in probs] == [p.prompt for p in task.problems(50, seed=0)]
    assert [p.prompt for p in probs] != [p.prompt for p in task.problems(50, seed=1)]
    for p in probs:
        assert p.prompt.endswith("=<think>")
        a, b = (int(x) for x in p.prompt.removesuffix("=<think>").split("+"))
        assert p.reference["answer"] == str(a + b) and 0 <= a < 10**6 and 0 <= b < 10**6
    p = probs[0]
    a, b = (int(x) for x in p.prompt.removesuffix("=<think>").split("+"))
    pad = tt.scratchpad(a, b)
    texts = [f"{pad}</think>{a + b}", f"{pad}</think>{a + b + 1}", f"{pad}</think>", pad[:7] + "</think>"]
    samples = pd.DataFrame({"problem_id": p.problem_id, "temperature": 1.0,
                            "sample_index": range(len(texts)), "text": texts})
    verdict = verifiers.get("exact")().verify(p, samples)
    assert verdict["passed"].tolist() == [True, False, False, False]
    with pytest.raises(Exception, match="min_digits"):
        tasks.get("long-addition")(min_digits=5, max_digits=2).problems(3)


def test_scratchpad_is_column_by_column_with_carries_and_the_task_agrees():
    from ttscale._plugins.tasks.long_addition import draw_pairs, scratchpad

    assert tt.scratchpad(4057, 968) == "7851,5621,0901,4050,"
    assert tt.scratchpad(999, 1) == "9101,9001,9001,"  # the final carry is the answer's leading 1
    rng = np.random.default_rng(1)
    for a, b in tt.draw_operands(rng, 200):
        pad = tt.scratchpad(a, b)
        assert pad == scratchpad(a, b)
        cols = pad.rstrip(",").split(",")
        digits = "".join(c[2] for c in reversed(cols))
        assert int(cols[-1][3] + digits) == a + b
    assert draw_pairs(5, 3) == [tuple(x) for x in tt.draw_operands(np.random.default_rng(3), 5)]


def test_training_rows_cut_and_forced_have_no_loss_on_the_forced_marker():
    rng = np.random.default_rng(5)
    ids, labels = tt.draw_batch(rng, 200)
    inv = dict(enumerate(tt.VOCAB))
    cut = 0
    for row, lab in zip(ids.tolist(), labels.tolist(), strict=True):
        text = "".join(inv[t] for t in row if t not in (tt.PAD, tt.BOS, tt.EOS))
        expr, rest = text.split("=<think>")
        thinking, answer = rest.split("</think>")
        a, b = (int(x) for x in expr.split("+"))
        assert int(answer) == a + b
        assert tt.scratchpad(a, b).startswith(thinking)
        eth = row.index(tt.ETH)
        if thinking != tt.scratchpad(a, b):
            cut += 1
            assert lab[eth] == -100  # forced: not a prediction
        else:
            assert lab[eth] == tt.ETH
        assert lab[eth + 1:] [: len(answer) + 1] == tt.encode(answer) + [tt.EOS]
        assert all(t == -100 for t in lab[: row.index(tt.TH) + 1])
    assert 70 <= cut <= 130  # about half the rows are cut


@pytest.mark.slow
def test_smoke_training_is_deterministic_and_saves_the_contract(tmp_path):
    from safetensors.numpy import load_file

    args = ["--steps", "2", "--batch-size", "4", "--eval-problems", "0", "--checkpoint-every", "0"]
    assert tt.main([*args, "--out", str(tmp_path / "a")]) == 0
    assert tt.main([*args, "--out", str(tmp_path / "b")]) == 0
    wa, wb = load_file(tmp_path / "a" / "model.safetensors"), load_file(tmp_path / "b" / "model.safetensors")
    assert all(np.array_equal(wa[k], wb[k]) for k in wa)
    assert json.loads((tmp_path / "a" / "thinking.json").read_text())["think_end"] == "</think>"


def test_forced_prefix_shares_the_first_b_thinking_tokens():
    think = tt.encode(tt.scratchpad(4057, 968))
    p = tt.prompt_ids(4057, 968)
    assert tt.forced_prefix(p, think, 7) == [*p, *think[:7], tt.ETH]
    assert tt.forced_prefix(p, think, 100) == [*p, *think, tt.ETH]  # a trace that ended before B: whole


@pytest.mark.slow
def test_the_small_model_rises_with_the_budget_and_stays_below_the_large_one(model):
    small = tt.load(SMALL)
    kw = {"num_problems": 40, "k": 2, "temperature": 1.0, "budgets": (0, 16, 32)}
    acc = {row["budget"]: row["accuracy"] for row in tt.evaluate_budgets(small, **kw)["curve"]}
    big = {row["budget"]: row["accuracy"] for row in tt.evaluate_budgets(model, **kw)["curve"]}
    assert acc[0] < acc[16] < acc[32] and acc[32] > acc[0] + 0.4
    assert acc[32] < big[32] - 0.1 and acc[16] < big[16]  # same traces' seeds, a smaller model


@pytest.mark.slow
def test_accuracy_rises_with_the_thinking_budget(model):
    ev = tt.evaluate_budgets(model, num_problems=40, k=2, temperature=1.0, budgets=(0, 8, 16, 32))
    acc = {row["budget"]: row["accuracy"] for row in ev["curve"]}
    assert acc[32] > acc[0] + 0.4
    assert acc[0] < acc[8] < acc[16] < acc[32]
    assert 0.6 < acc[32] < 1.0  # high, not perfect: K still matters
    assert ev["traces_closed_think_block"] > 0.95


def test_greedy_traces_are_the_reference_scratchpad(model):
    import torch

    pairs = tt.draw_operands(np.random.default_rng(7), 16)
    prompts = [tt.prompt_ids(a, b) for a, b in pairs]
    width = max(map(len, prompts))
    ids = torch.tensor([[tt.PAD] * (width - len(p)) + p for p in prompts])
    with torch.no_grad():
        gen = model.generate(input_ids=ids, attention_mask=(ids != tt.PAD).long(), do_sample=False,
                             max_new_tokens=40, pad_token_id=tt.PAD, eos_token_id=tt.EOS)
    right = 0
    for (a, b), row in zip(pairs, gen[:, width:].tolist(), strict=True):
        thinking, closed = tt.thinking_of(row)
        right += closed and thinking == tt.encode(tt.scratchpad(a, b))
    assert right >= 12
