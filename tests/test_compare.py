"""``ttscale compare`` on a hand-built run directory with exact expected accuracies."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ttscale.cli import main
from ttscale.plugins import Problem, problems_frame
from ttscale.rundir.store import RunDir

# four problems, four samples each; "R" = the right answer, other letters wrong ones
PLAN = {
    "p0": ["R", "R", "R", "R"],  # c = 4, maj right
    "p1": ["R", "B", "B", "C"],  # c = 1, maj wrong (B has 2 votes)
    "p2": ["R", "R", "B", "C"],  # c = 2, maj right
    "p3": ["B", "B", "B", "B"],  # c = 0
}
ANSWERS = {"p0": 10, "p1": 20, "p2": 30, "p3": 40}
WRONG = {"B": 1, "C": 2}
# reward scores: p1's right sample scores highest, p2's top score is a wrong sample
SCORES = {"p0": [0.1, 0.2, 0.3, 0.4], "p1": [0.9, 0.1, 0.2, 0.3],
          "p2": [0.5, 0.6, 0.8, 0.1], "p3": [0.0, 0.0, 0.0, 0.0]}


def build_run(path: Path) -> RunDir:
    run = RunDir(path)
    problems = [Problem(pid, "arithmetic", f"{pid}=", {"answer": str(a)}) for pid, a in ANSWERS.items()]
    run.write_problems(problems_frame(problems))
    rows = []
    for pid, plan in PLAN.items():
        for j, tag in enumerate(plan):
            value = ANSWERS[pid] if tag == "R" else ANSWERS[pid] + WRONG[tag]
            rows.append({"problem_id": pid, "temperature": 1.0, "sample_index": j, "seed": j,
                         "text": f"so #### {value}", "num_prompt_tokens": 3,
                         "num_output_tokens": 4, "finish_reason": "stop"})
    run.write_samples(pd.DataFrame(rows))
    scores = pd.DataFrame(rows)[["problem_id", "temperature", "sample_index"]]
    scores["rm"] = [s for pid in PLAN for s in SCORES[pid]]
    scores.to_parquet(path / "scores.parquet")
    return run


def curve(table: pd.DataFrame, verifier: str) -> pd.Series:
    return table[table["verifier"] == verifier].set_index("k")["accuracy"]


def test_compare_exact_numbers(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    run = build_run(tmp_path / "run")
    out = tmp_path / "cmp"
    specs = ("exact,majority,reward(scores={s},column=rm,oracle=exact),"
             "imperfect(fpr=1),imperfect(fnr=1),imperfect(fpr=0.3,fnr=0.2,seed=5)"
             ).format(s=tmp_path / "run" / "scores.parquet")
    code = main(["compare", str(run.path), "--verifiers", specs, "--out", str(out),
                 "--n-boot", "200", "--workers", "0"])
    assert code == 0, capsys.readouterr().err
    table = pd.read_parquet(out / "compare.parquet")
    assert list(table.columns) == ["verifier", "kind", "temperature", "metric", "k", "accuracy",
                                   "ci_low", "ci_high", "fpr", "fnr"]
    for f in ("compare.csv", "compare.png", "compare.svg"):
        assert (out / f).stat().st_size > 0
    # oracle coverage: pass@1 = 7/16; pass@4 = 3/4; pass@2 = mean(1, 1/2, 5/6, 0)
    exact = curve(table, "exact")
    assert exact[1] == pytest.approx(7 / 16) and exact[4] == pytest.approx(0.75)
    assert exact[2] == pytest.approx((1 + 0.5 + 5 / 6 + 0) / 4)
    # majority: maj@1 = pass@1, maj@4 = (1 + 0 + 1 + 0) / 4
    maj = curve(table, "majority")
    assert maj[1] == pytest.approx(7 / 16) and maj[4] == pytest.approx(0.5)
    # best-of-4 picks the top score: right on p0 and p1, wrong on p2 and p3
    best = curve(table, "reward-scores-scores")
    assert best[1] == pytest.approx(7 / 16) and best[4] == pytest.approx(0.5)
    # an imperfect verifier that accepts everything returns the first sample: pass@1 at every k
    assert np.allclose(curve(table, "imperfect-exact-fpr1-fnr0"), 7 / 16)
    # one that accepts nothing never answers
    assert np.allclose(curve(table, "imperfect-exact-fpr0-fnr1"), 0.0)
    rates = table.groupby("verifier")[["fpr", "fnr"]].first()
    assert rates.loc["exact"].tolist() == [0.0, 0.0]
    # a selector picks an answer, it does not judge samples: no error rates to report
    assert rates.loc["majority"].isna().all()
    assert table.loc[table["kind"] == "selector", ["fpr", "fnr"]].isna().all().all()
    assert rates.loc["imperfect-exact-fpr1-fnr0"].tolist() == [1.0, 0.0]
    assert rates.loc["imperfect-exact-fpr0-fnr1"].tolist() == [0.0, 1.0]
    kinds = table.groupby("verifier")["kind"].first()
    assert kinds["exact"] == "oracle" and kinds["reward-scores-scores"] == "selector"
    # the random imperfect verifier: its rates and its accept@k curve by brute force
    name = "imperfect-exact-fpr0.3-fnr0.2-seed5"
    v = run.read_verdicts(name).merge(run.read_verdicts("exact")[
        ["problem_id", "sample_index", "passed"]].rename(columns={"passed": "truth"}),
        on=["problem_id", "sample_index"])
    assert rates.loc[name, "fpr"] == pytest.approx(v.loc[~v["truth"], "passed"].mean())
    assert rates.loc[name, "fnr"] == pytest.approx(1 - v.loc[v["truth"], "passed"].mean())
    got = curve(table, name)
    for k in range(1, 5):
        per_problem = []
        for _, g in v.groupby("problem_id"):
            acc, truth = g["passed"].tolist(), g["truth"].tolist()
            wins = []
            for order in itertools.permutations(range(4)):  # draw order, first k drawn
                first = next((i for i in order[:k] if acc[i]), None)
                wins.append(first is not None and truth[first])
            per_problem.append(np.mean(wins))
        assert got[k] == pytest.approx(np.mean(per_problem))
    # CI bands bracket the estimate
    assert (table["ci_low"] <= table["accuracy"] + 1e-12).all()
    assert (table["ci_high"] >= table["accuracy"] - 1e-12).all()


def test_compare_reuses_existing_verdict_folders(tmp_path: Path) -> None:
    run = build_run(tmp_path / "run")
    assert main(["verify", str(run.path), "--verifier", "imperfect", "--verifier-option",
                 "fpr=1", "--workers", "0"]) == 0
    shards = sorted((run.path / "verdicts" / "imperfect-exact-fpr1-fnr0").glob("part-*"))
    assert main(["compare", str(run.path), "--verifiers", "imperfect-exact-fpr1-fnr0",
                 "--ks", "1,4", "--n-boot", "0", "--workers", "0"]) == 0
    table = pd.read_parquet(run.path / "analysis" / "compare" / "compare.parquet")
    # the oracle (the imperfect verifier's base) was added on top; nothing was re-verified
    assert sorted(table["verifier"].unique()) == ["exact", "imperfect-exact-fpr1-fnr0"]
    assert table["k"].tolist() == [1, 4, 1, 4]
    assert shards == sorted((run.path / "verdicts" / "imperfect-exact-fpr1-fnr0").glob("part-*"))


@pytest.mark.parametrize("args, message", [
    (["--verifiers", "exact,nope"], "unknown verifier 'nope'"),
    (["--verifiers", "imperfect(fpr=2)"], "option 'fpr'"),
    (["--verifiers", "exact", "--ks", "1,5"], "k=5 exceeds the samples available"),
    (["--verifiers", "exact,exact"], "repeats"),
    (["--verifiers", "exact(", ], "unbalanced"),
])
def test_compare_bad_input_one_line_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture,
                                           args: list[str], message: str) -> None:
    run = build_run(tmp_path / "run")
    code = main(["compare", str(run.path), *args, "--workers", "0"])
    err = capsys.readouterr().err
    assert code == 2 and message in err and err.count("\n") == 1
    assert not (run.path / "analysis").exists() and not (run.path / "verdicts").exists()


def test_compare_takes_a_custom_label_folder_before_the_registry_name(tmp_path: Path) -> None:
    run = build_run(tmp_path / "run")
    # a folder called "majority" holding majority votes with the math normaliser
    assert main(["verify", str(run.path), "--verifier", "majority", "--verifier-option",
                 "normalizer=math", "--name", "majority", "--workers", "0"]) == 0
    assert main(["compare", str(run.path), "--verifiers", "exact,majority", "--ks", "4",
                 "--n-boot", "0", "--workers", "0"]) == 0
    table = pd.read_parquet(run.path / "analysis" / "compare" / "compare.parquet")
    assert curve(table, "majority")[4] == pytest.approx(0.5)
