"""Verifiers on hand cases: answer extraction, exact, Math-Verify (equivalences, dedup, timeouts,
threads), majority votes, imperfect flip rates, reward scores against a direct forward pass."""

from __future__ import annotations

import threading

import numpy as np
import pandas as pd
import pytest

from ttscale.errors import InputError
from ttscale.plugins import Problem
from ttscale.verification.answers import extract_final_answer, normalize_answer
from ttscale.verification.verify import make_verifier


def frame(texts: list[str], pid: str = "p0", temperature: float = 1.0) -> pd.DataFrame:
    n = len(texts)
    return pd.DataFrame({"problem_id": [pid] * n, "temperature": [temperature] * n,
                         "sample_index": np.arange(n), "seed": np.arange(n), "text": texts,
                         "num_prompt_tokens": [3] * n, "num_output_tokens": [2] * n,
                         "finish_reason": ["stop"] * n})


def problem(answer: str, pid: str = "p0") -> Problem:
    return Problem(problem_id=pid, task="jsonl", prompt="Q: ", reference={"answer": answer})


@pytest.mark.parametrize("text, raw, norm", [
    ("so 3 * 4 = 12\n#### 12", "12", "12"),
    ("He pays $1,000.", "1,000", "1000"),
    ("thus \\boxed{\\frac{1}{2}} done", "\\frac{1}{2}", "0.5"),
    ("The answer is 42 apples.", "42", "42"),
    ("<answer> 7 </answer>", "7", "7"),
    ("123+456=579", "579", "579"),
    ("\\boxed{x^2 + 1}", "x^2 + 1", "x^2+1"),
    ("no digits at all", None, None),
    ("cut off \\boxed{12", "12", "12"),  # unbalanced box: falls back to the last number
])
def test_extract_and_normalize_hand_cases(text: str, raw: str | None, norm: str | None) -> None:
    assert extract_final_answer(text) == raw
    assert normalize_answer(raw) == norm


@pytest.mark.parametrize("a, b", [("0.50", "1/2"), ("1000.0", "1,000"), ("\\frac{2}{4}", "0.5"),
                                  ("$18", "18"), ("-0.125", "-1/8"), ("007", "7")])
def test_normalize_equal_numbers(a: str, b: str) -> None:
    assert normalize_answer(a) == normalize_answer(b)


def test_normalize_keeps_distinct_numbers_apart() -> None:
    assert normalize_answer("1/3") == "1/3"
    assert normalize_answer("0.333") != normalize_answer("1/3")
    assert normalize_answer("12") != normalize_answer("21")


def test_exact_verifier_hand_cases() -> None:
    v = make_verifier("exact")
    texts = ["#### 72", "72.0", "the answer is 72", "\\boxed{72}", "71", "", "7 2"]
    out = v.verify(problem("72"), frame(texts))
    assert out["passed"].tolist() == [True, True, True, True, False, False, False]
    assert out["answer"].tolist() == ["72", "72", "72", "72", "71", None, "2"]
    assert out["status"].tolist() == ["pass"] * 4 + ["fail"] * 3
    # a GSM8K-style reference ("... #### 2,520") is extracted and normalised too
    out = v.verify(problem("so 630*4 = 2520\n#### 2,520"), frame(["2520", "2,520", "252"]))
    assert out["passed"].tolist() == [True, True, False]


def test_math_verify_equivalences() -> None:
    v = make_verifier("math")
    out = v.verify(problem("\\frac{1}{2}"), frame(["0.5", "\\boxed{1/2}", "$\\dfrac{1}{2}$",
                                                    "0.25", "nothing"]))
    assert out["passed"].tolist() == [True, True, True, False, False]
    assert out["answer"].tolist()[:4] == ["0.5", "0.5", "0.5", "0.25"]
    assert out["answer"].iloc[4] is None
    out = v.verify(problem("72"), frame(["#### 72", "72", "the total is 73"]))
    assert out["passed"].tolist() == [True, True, False]
    out = v.verify(problem("0.5"), frame(["\\boxed{1/2}"]))
    assert out["passed"].tolist() == [True]


MIXED = (["The answer is $\\boxed{\\frac{1}{2}}$."] * 5 + ["\\boxed{0.5}"] * 3 + ["so 1/2"] * 2
         + ["\\boxed{\\frac{1}{3}}"] * 4 + ["x = 2"] * 3 + ["\\boxed{(0,1]}"] + ["no idea"] * 2)


def test_math_dedup_gives_identical_verdicts_to_no_dedup() -> None:
    fast = make_verifier("math").verify(problem("1/2"), frame(MIXED))
    slow = make_verifier("math", {"dedup": "false"}).verify(problem("1/2"), frame(MIXED))
    pd.testing.assert_frame_equal(fast, slow)
    assert int(fast["passed"].sum()) == 10
    assert fast["answer"].nunique() == 4  # 0.5, 1/3, 2 and the interval; "no idea" is null


def test_math_off_the_main_thread_runs_without_crashing() -> None:
    v = make_verifier("math")
    result: dict[str, pd.DataFrame] = {}
    errors: list[BaseException] = []

    def work() -> None:
        try:
            result["out"] = v.verify(problem("1/2"), frame(MIXED))
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    t = threading.Thread(target=work)
    t.start()
    t.join(60)
    assert not errors and "out" in result
    expected = make_verifier("math").verify(problem("1/2"), frame(MIXED))
    pd.testing.assert_frame_equal(result["out"], expected)


def test_math_timeout_on_the_main_thread_is_recorded_as_timeout() -> None:
    v = make_verifier("math", {"verify_timeout": "1"})
    # comparing 2^(2^30) with 3 makes SymPy build a billion-bit integer: interrupted after 1 s
    out = v.verify(problem("3"), frame(["\\boxed{2^{2^{30}}}", "\\boxed{3}"]))
    assert out["status"].tolist() == ["timeout", "pass"]
    assert out["passed"].tolist() == [False, True]
    assert "over 1 s" in out["error"].iloc[0]


def test_majority_rows_and_tie_rule() -> None:
    from ttscale._plugins.verifiers.majority import majority_vote

    v = make_verifier("majority")
    out = v.verify(problem("5"), frame(["#### 5", "5.0", "#### 6", "six", "#### 6"]))
    assert out["answer"].tolist() == ["5", "5", "6", None, "6"]  # "six" gives no number
    assert out["passed"].tolist() == [True, True, False, False, False]
    assert majority_vote(out["answer"], out["passed"]) == 0.5  # 5 and 6 tie with two votes
    assert majority_vote(["5", "6", "6"], [True, False, False]) == 0.0
    assert majority_vote(["5", None, None], [True, False, False]) == 1.0  # nulls do not vote
    assert majority_vote([None, None], [False, False]) == 0.0
    # with Math-Verify normalisation 0.5 and \frac{1}{2} vote together
    m = make_verifier("majority", {"normalizer": "math"})
    out = m.verify(problem("1/2"), frame(["0.5", "\\boxed{\\frac{1}{2}}", "1/3"]))
    assert out["answer"].tolist() == ["0.5", "0.5", "1/3"]
    with pytest.raises(InputError, match="normalizer"):
        make_verifier("majority", {"normalizer": "fuzzy"})


def test_imperfect_flips_at_requested_rates_deterministically() -> None:
    n = 4000
    texts = ["#### 1"] * (n // 2) + ["#### 2"] * (n // 2)  # half right, half wrong
    samples = frame(texts)
    v = make_verifier("imperfect", {"base": "exact", "fpr": "0.1", "fnr": "0.25", "seed": "3"})
    out = v.verify(problem("1"), samples)
    right, wrong = out["passed"][: n // 2], out["passed"][n // 2:]
    fnr, fpr = 1 - right.mean(), wrong.mean()
    # binomial tolerance: 4 standard deviations of a rate over 2,000 samples
    assert abs(fpr - 0.1) < 4 * np.sqrt(0.1 * 0.9 / (n // 2))
    assert abs(fnr - 0.25) < 4 * np.sqrt(0.25 * 0.75 / (n // 2))
    assert out["answer"].tolist() == ["1"] * (n // 2) + ["2"] * (n // 2)
    # deterministic: same verdicts again, and for any split of the samples
    again = make_verifier("imperfect", {"base": "exact", "fpr": "0.1", "fnr": "0.25", "seed": "3"})
    split = pd.concat([again.verify(problem("1"), samples.iloc[:777]),
                       again.verify(problem("1"), samples.iloc[777:])], ignore_index=True)
    pd.testing.assert_frame_equal(out, split)
    # another seed gives other flips; zero rates give the oracle back
    other = make_verifier("imperfect", {"fpr": "0.1", "fnr": "0.25", "seed": "4"})
    assert (other.verify(problem("1"), samples)["passed"] != out["passed"]).sum() > 100
    exact = make_verifier("imperfect", {}).verify(problem("1"), samples)
    assert exact["passed"].tolist() == [True] * (n // 2) + [False] * (n // 2)
    assert v.dir_name() == "imperfect-exact-fpr0.1-fnr0.25-seed3"


@pytest.mark.parametrize("options, message", [
    ({"fpr": "1.5"}, "option 'fpr'"),
    ({"fnr": "abc"}, "option 'fnr'"),
    ({"base": "majority"}, "not an oracle"),
    ({"base": "nope"}, "unknown verifier 'nope'"),
    ({"colour": "red"}, "unknown option 'colour'"),
])
def test_imperfect_bad_options(options: dict[str, str], message: str) -> None:
    with pytest.raises(InputError, match=message):
        make_verifier("imperfect", options)


def test_unknown_verifier_lists_known_ones() -> None:
    with pytest.raises(InputError, match=r"unknown verifier 'nope' \(known: .*exact.*math"):
        make_verifier("nope")


def _tiny_reward_model(path: str) -> None:
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForSequenceClassification, PreTrainedTokenizerFast

    chars = list("0123456789+-*=#QA: ")
    vocab = {"<pad>": 0, "<unk>": 1, **{c: i + 2 for i, c in enumerate(chars)}}
    tk = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tk.pre_tokenizer = pre_tokenizers.Split("", "isolated")
    tok = PreTrainedTokenizerFast(tokenizer_object=tk, pad_token="<pad>", unk_token="<unk>")
    import torch

    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=len(vocab), hidden_size=32, intermediate_size=64,
                      num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=2,
                      max_position_embeddings=64, num_labels=2, pad_token_id=0)
    LlamaForSequenceClassification(cfg).eval().save_pretrained(path)
    tok.save_pretrained(path)


def test_reward_model_scores_equal_a_direct_forward_pass(tmp_path) -> None:
    torch = pytest.importorskip("torch")
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    path = str(tmp_path / "rm")
    _tiny_reward_model(path)
    texts = ["#### 12", "1+1=2 #### 3", "#### 12", "99", "4*3=12\n#### 12"]
    v = make_verifier("reward", {"model": path, "oracle": "exact", "batch_size": "2"})
    out = v.verify(problem("12"), frame(texts))
    tok = AutoTokenizer.from_pretrained(path)
    model = AutoModelForSequenceClassification.from_pretrained(path).eval()
    direct = []
    for t in texts:  # one at a time: no padding at all
        with torch.no_grad():
            direct.append(float(model(**tok("Q: " + t, return_tensors="pt")).logits[0, 1]))
    np.testing.assert_allclose(out["score"].to_numpy(), direct, rtol=1e-5, atol=1e-5)
    assert len(set(np.round(direct, 6))) == 4  # distinct inputs score differently
    assert out["passed"].tolist() == [True, False, True, False, True]
    assert v.dir_name() == "reward-model-rm"


def score_by_length(prompts: list[str], completions: list[str]) -> list[float]:
    """A reward callable for the tests: longer completions score higher."""
    return [float(len(c)) for c in completions]


def test_reward_callable_and_score_file(tmp_path) -> None:
    samples = frame(["#### 12", "#### 13 because", "#### 12"])
    v = make_verifier("reward", {"callable": "test_verifiers:score_by_length", "oracle": "exact"})
    out = v.verify(problem("12"), samples)
    assert out["score"].tolist() == [7.0, 15.0, 7.0]
    scores = samples[["problem_id", "temperature", "sample_index"]].assign(rm=[0.1, 0.9, 0.4])
    scores.to_parquet(tmp_path / "scores.parquet")
    f = make_verifier("reward", {"scores": str(tmp_path / "scores.parquet"), "column": "rm",
                                 "oracle": "exact"})
    out = f.verify(problem("12"), samples)
    assert out["score"].tolist() == [0.1, 0.9, 0.4]
    assert out["passed"].tolist() == [True, False, True]
    with pytest.raises(InputError, match="exactly one of"):
        make_verifier("reward", {"oracle": "exact"})
    with pytest.raises(InputError, match="field 'nope' missing"):
        make_verifier("reward", {"scores": str(tmp_path / "scores.parquet"), "column": "nope",
                                 "oracle": "exact"}).check_run([], samples)


def test_reward_command_scorer() -> None:
    import sys

    cmd = (f"{sys.executable} -c \"import sys, json; "
           "[print(len(json.loads(l)['completion'])) for l in sys.stdin]\"")
    v = make_verifier("reward", {"command": cmd, "oracle": "exact"})
    out = v.verify(problem("1"), frame(["#### 1", "#### 22"]))
    assert out["score"].tolist() == [6.0, 7.0]


@pytest.mark.gpu
def test_reward_model_on_gpu_matches_cpu(tmp_path) -> None:
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("no CUDA GPU")
    path = str(tmp_path / "rm")
    _tiny_reward_model(path)
    texts = ["#### 12", "1+1=2 #### 3", "99", "4*3=12\n#### 12"] * 8
    opts = {"model": path, "oracle": "exact", "batch_size": 8}
    gpu = make_verifier("reward", {**opts, "device": "cuda"}).verify(problem("12"), frame(texts))
    cpu = make_verifier("reward", {**opts, "device": "cpu"}).verify(problem("12"), frame(texts))
    np.testing.assert_allclose(gpu["score"], cpu["score"], rtol=1e-3, atol=1e-3)


def test_last_hashes_equals_the_last_findall_match() -> None:
    """The fast path (scan from the line of the last ####) gives findall's last match on
    random texts built from hashes, whitespace and newlines (the cases where matches chain)."""
    import random

    from ttscale.verification.answers import _HASHES, _last_hashes

    rng = random.Random(0)
    parts = ["#", "##", "####", "#####", " ", "\n", "\t", "42", "x", "\n\n", "  \n", "3.5"]
    for _ in range(40_000):
        t = "".join(rng.choice(parts) for _ in range(rng.randint(0, 14)))
        found = _HASHES.findall(t)
        assert _last_hashes(t) == (found[-1] if found else None), repr(t)
    assert _last_hashes("a\n#### 7\nb #### \n\n 9 x\n") == "9 x"
    assert _last_hashes("no answer here") is None


def test_extract_final_answer_fast_paths_equal_the_plain_rules() -> None:
    """The scans that skip most of a completion (last ####, last number, no "answer") give what
    the plain rules give: findall over the whole text, first rule that yields an answer."""
    import random

    from ttscale.verification import answers as A

    def plain(text: str) -> str | None:
        if not text:
            return None
        hashes = A._HASHES.findall(text)
        if hashes and hashes[-1].strip():
            return hashes[-1].strip()
        boxed = A.last_boxed(text)
        if boxed is not None and boxed.strip():
            return boxed.strip()
        tags = A._ANSWER_TAG.findall(text)
        if tags and tags[-1].strip():
            return tags[-1].strip()
        phrase = A._ANSWER_IS.findall(text)
        if phrase:
            cand = phrase[-1].strip()
            nums = A._NUMBER.findall(cand)
            return nums[0] if nums else cand.rstrip(". ")
        nums = A._NUMBER.findall(text)
        return nums[-1] if nums else None

    rng = random.Random(1)
    parts = ["1", "23", "1,234", ",", ".", "/", "-", "-.5", " ", "\n", "x", "answer", "ANſWER",
             "Answer:", "the answer is", "<answer>", "</answer>", "final answer:", "####",
             "\\boxed{", "}", "7", "*"]
    for _ in range(40_000):
        t = "".join(rng.choice(parts) for _ in range(rng.randint(0, 12)))
        assert A.extract_final_answer(t) == plain(t), repr(t)
