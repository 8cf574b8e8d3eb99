"""The embedded model's training script: smoke training, tokenizer, recipe, the shipped folder."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))

import train_embedded_model as tm  # noqa: E402

SHIPPED = REPO / "ttscale" / "models" / "arith-llama"


@pytest.fixture(scope="module")
def smoke_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("smoke")
    assert tm.main(["--steps", "3", "--batch-size", "16", "--out", str(out), "--eval-problems", "4"]) == 0
    return out


def test_smoke_training_makes_a_folder_transformers_loads(smoke_dir):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    names = {p.name for p in smoke_dir.iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json", "MODEL_CARD.md"} <= names
    model = AutoModelForCausalLM.from_pretrained(smoke_dir)
    tok = AutoTokenizer.from_pretrained(smoke_dir)
    assert sum(p.numel() for p in model.parameters()) == 1_053_824
    assert model.config.num_hidden_layers == 4 and model.config.tie_word_embeddings
    assert tok("12+3=").input_ids == [1, 5, 6, 14, 7, 17]  # <bos> then one token a character
    assert tok.decode([5, 6, 15, 7, 2], skip_special_tokens=True) == "12*3"
    assert tok.padding_side == "left" and tok.pad_token_id == 0 and tok.eos_token_id == 2
    card = (smoke_dir / "MODEL_CARD.md").read_text()
    assert "3 steps" in card and "| 1.0 | 4 |" in card


def test_same_seed_gives_identical_weights(tmp_path, smoke_dir):
    from safetensors.numpy import load_file

    tm.main(["--steps", "3", "--batch-size", "16", "--out", str(tmp_path), "--eval-problems", "0"])
    a, b = load_file(smoke_dir / "model.safetensors"), load_file(tmp_path / "model.safetensors")
    assert a.keys() == b.keys()
    assert all(np.array_equal(a[k], b[k]) for k in a)


def test_batches_hold_correct_answers_and_loss_only_on_them():
    rng = np.random.default_rng(3)
    ids, labels = tm.draw_batch(rng, 64)
    inv = {i: c for i, c in enumerate(tm.VOCAB)}
    for row, lab in zip(ids.tolist(), labels.tolist(), strict=True):
        text = "".join(inv[t] for t in row if t not in (tm.PAD, tm.BOS, tm.EOS))
        expr, answer = text.split("=")
        a, op, b = (expr.partition("+") if "+" in expr else expr.partition("*"))
        assert int(answer) == (int(a) + int(b) if op == "+" else int(a) * int(b))
        target = [t for t in lab if t != -100]
        assert target == tm.encode(answer) + [tm.EOS]
        assert row[0] == tm.BOS
    add = sum("+" in "".join(inv[t] for t in r) for r in ids.tolist())
    assert add == 32  # half additions, half products


def test_learning_rate_schedule():
    assert tm.lr_at(0, 2000, 3e-3, 100) == pytest.approx(3e-5)
    assert tm.lr_at(99, 2000, 3e-3, 100) == pytest.approx(3e-3)
    assert tm.lr_at(100 + 950, 2000, 3e-3, 100) == pytest.approx(3e-3 * 0.55)
    assert tm.lr_at(2000, 2000, 3e-3, 100) == pytest.approx(3e-4)


def test_expected_pass_at_k_is_exact():
    p = np.array([0.0, 0.5, 1.0])
    assert tm.expected_pass_at_k(p, 1) == pytest.approx(0.5)
    assert tm.expected_pass_at_k(p, 3) == pytest.approx((0 + 0.875 + 1) / 3)


def test_exact_success_probability_is_a_product_of_token_probabilities(smoke_dir):
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(smoke_dir).eval()
    got = tm.exact_success_probs(model, ["12+3="], ["15"], temperature=0.7)[0]
    seq = [tm.BOS, *tm.encode("12+3=")]
    want = 1.0
    for t in [*tm.encode("15"), tm.EOS]:
        with torch.no_grad():
            probs = torch.softmax(model(torch.tensor([seq])).logits[0, -1].double() / 0.7, -1)
        want *= float(probs[t])
        seq.append(t)
    assert got == pytest.approx(want, rel=1e-4)


def test_shipped_model_folder_is_complete():
    from transformers import AutoModelForCausalLM

    if not (SHIPPED / "config.json").is_file():
        pytest.fail(f"{SHIPPED}: the shipped model is missing")
    cfg = json.loads((SHIPPED / "config.json").read_text())
    assert (cfg["vocab_size"], cfg["hidden_size"], cfg["num_hidden_layers"]) == (32, 128, 4)
    size = (SHIPPED / "model.safetensors").stat().st_size
    assert math.isclose(size, 4.2e6, rel_tol=0.02)  # fp32
    model = AutoModelForCausalLM.from_pretrained(SHIPPED)
    assert str(model.dtype) == "torch.float32"
    card = (SHIPPED / "MODEL_CARD.md").read_text()
    assert "seed 0" in card and "pass@10" in card
