"""The import backend: JSONL samples and Large Language Monkeys files into a run directory."""

from __future__ import annotations

import json
import subprocess
import sys

import pandas as pd
import pytest
import yaml

from ttscale.errors import InputError
from ttscale.rundir.store import RunDir
from ttscale.sampling.backends.importer import gsm8k_answer, import_samples
from ttscale.sampling.sampler import SampleSettings


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def imp(src, out, **kw):
    return import_samples(SampleSettings(backend="import", model=kw.pop("model", "someone/model"),
                                         from_file=str(src), **kw), out, progress=False)


def test_jsonl_import_numbers_samples_per_problem_and_keeps_references(tmp_path):
    src = write_jsonl(tmp_path / "s.jsonl", [
        {"problem_id": "a", "text": "3", "prompt": "1+2=", "answer": "3"},
        {"problem_id": "b", "text": "5", "prompt": "2+2=", "reference": {"answer": "4"}},
        {"problem_id": "a", "text": "4"},
        {"problem_id": "a", "text": "3", "temperature": 0.5, "seed": 11, "num_output_tokens": 2,
         "finish_reason": "stop"},
    ])
    res = imp(src, tmp_path / "run")
    assert (res.written, res.total, res.num_problems) == (4, 4, 2)
    run = RunDir(tmp_path / "run")
    df = run.read_samples().sort_values(["problem_id", "temperature", "sample_index"]).reset_index(drop=True)
    assert df[["problem_id", "temperature", "sample_index", "text"]].values.tolist() == [
        ["a", 0.5, 0, "3"], ["a", 1.0, 0, "3"], ["a", 1.0, 1, "4"], ["b", 1.0, 0, "5"]]
    assert df.loc[0, ["seed", "num_output_tokens", "finish_reason"]].tolist() == [11, 2, "stop"]
    assert df.loc[1, ["seed", "num_output_tokens", "finish_reason"]].tolist() == [-1, -1, "unknown"]
    probs = run.read_problems().set_index("problem_id")
    assert json.loads(probs.loc["a", "reference"]) == {"answer": "3"}
    assert json.loads(probs.loc["b", "reference"]) == {"answer": "4"}
    assert probs.loc["a", "prompt"] == "1+2=" and probs.loc["a", "task"] == "imported"
    cfg = json.loads((tmp_path / "run" / "run.json").read_text())
    assert cfg["backend"] == "import" and cfg["num_samples"] == 2 and cfg["temperatures"] == [0.5, 1.0]


def test_importing_again_adds_nothing_and_a_grown_file_adds_only_new_rows(tmp_path):
    rows = [{"problem_id": "p", "text": str(i), "sample_index": i} for i in range(3)]
    src = write_jsonl(tmp_path / "s.jsonl", rows)
    assert imp(src, tmp_path / "run").written == 3
    assert imp(src, tmp_path / "run").written == 0
    write_jsonl(src, rows + [{"problem_id": "p", "text": "x", "sample_index": 7}])
    again = imp(src, tmp_path / "run")
    assert (again.written, again.total) == (1, 4)
    df = RunDir(tmp_path / "run").read_samples()
    assert sorted(df.sample_index) == [0, 1, 2, 7] and not df.duplicated(["problem_id", "sample_index"]).any()


@pytest.mark.parametrize("line, message", [
    ("not json", "line 2: not valid JSON"),
    ('{"text": "1"}', "line 2: field 'problem_id' is missing"),
    ('{"problem_id": "a", "text": 5}', "line 2: field 'text': expected a string"),
    ('{"problem_id": "a", "text": "1", "temperature": -1}', "line 2: field 'temperature'"),
    ('{"problem_id": "a", "text": "1", "sample_index": 0}', "line 2: field 'sample_index': 0 repeats"),
    ('{"problem_id": "a", "text": "1", "sample_index": "x"}', "line 2: field 'sample_index': expected an integer"),
])
def test_bad_jsonl_lines_name_the_line_and_field_and_write_nothing(tmp_path, line, message):
    src = tmp_path / "s.jsonl"
    src.write_text(json.dumps({"problem_id": "a", "text": "1", "sample_index": 0}) + "\n" + line + "\n")
    with pytest.raises(InputError, match=message):
        imp(src, tmp_path / "run")
    assert not (tmp_path / "run").exists()


def monkey_record(question, answer, samples, corrects=None, **extra):
    rec = {"prompt": f"Question: {question}\nAnswer:", "question": question, "samples": samples,
           "gt_answer": f"Some reasoning.\n#### {answer}", **extra}
    if corrects is not None:
        rec["is_corrects"] = corrects
    return rec


def test_monkeys_yaml_folder_one_file_per_problem_with_verdicts(tmp_path):
    folder = tmp_path / "gsm8k_samples"
    folder.mkdir()
    (folder / "17.yaml").write_text(yaml.safe_dump(monkey_record(
        "How many?", "1,200", ["... #### 1200", "#### 3"], [True, False])))
    (folder / "4.yaml").write_text(yaml.safe_dump(monkey_record("Cost?", "7", ["#### 7", "#### 7", "x"], [1, 1, 0])))
    res = imp(folder, tmp_path / "run", temperatures=[0.6])
    assert (res.written, res.num_problems) == (5, 2)
    run = RunDir(tmp_path / "run")
    probs = run.read_problems().set_index("problem_id")
    assert sorted(probs.index) == ["17", "4"]
    assert json.loads(probs.loc["17", "reference"]) == {"answer": "1200", "gt_answer": "Some reasoning.\n#### 1,200"}
    assert probs.loc["4", "prompt"] == "Question: Cost?\nAnswer:"
    df = run.read_samples()
    assert set(df.temperature) == {0.6}
    assert df[df.problem_id == "4"].sort_values("sample_index")["text"].tolist() == ["#### 7", "#### 7", "x"]
    v = run.read_verdicts("imported").sort_values(["problem_id", "sample_index"])
    assert v[["problem_id", "sample_index", "passed", "status"]].values.tolist() == [
        ["17", 0, True, "pass"], ["17", 1, False, "fail"],
        ["4", 0, True, "pass"], ["4", 1, True, "pass"], ["4", 2, False, "fail"]]
    assert "imported" in run.verifiers()


def test_monkeys_json_list_with_dataset_indices(tmp_path):
    src = tmp_path / "GSM8K_Llama-3-8B-Instruct.json"
    src.write_text(json.dumps([
        monkey_record("a", "1", ["#### 1"], [True], orig_dset_split="test", orig_dset_idx=811),
        monkey_record("b", "2", ["#### 3", "#### 2"], [False, True], orig_dset_split="test", orig_dset_idx=12),
    ]))
    res = imp(src, tmp_path / "run")
    assert (res.written, res.num_problems) == (3, 2)
    probs = RunDir(tmp_path / "run").read_problems()
    assert probs["problem_id"].tolist() == ["811", "12"]
    counts = RunDir(tmp_path / "run").read_verdicts("imported").groupby("problem_id")["passed"].sum()
    assert counts.to_dict() == {"12": 1, "811": 1}


@pytest.mark.parametrize("record, message", [
    ({"samples": "abc"}, "field 'samples': expected a list of texts"),
    ({"samples": ["a", "b"], "is_corrects": [True]}, "field 'is_corrects': expected 2 booleans"),
])
def test_bad_monkeys_records_name_the_field(tmp_path, record, message):
    src = tmp_path / "p.yaml"
    src.write_text(yaml.safe_dump(record))
    with pytest.raises(InputError, match=message):
        imp(src, tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_import_against_a_known_task_checks_problem_ids(tmp_path):
    src = write_jsonl(tmp_path / "s.jsonl", [{"problem_id": "arith-00001", "text": "12"},
                                              {"problem_id": "arith-00000", "text": "7"}])
    res = imp(src, tmp_path / "run", task="arithmetic", num_problems=3)
    probs = RunDir(tmp_path / "run").read_problems()
    # the task's 3 problems are stored, but only the 2 the file holds were imported (issue 14/15)
    assert res.num_problems == 2 and len(probs) == 3 and probs["task"].eq("arithmetic").all()
    bad = write_jsonl(tmp_path / "bad.jsonl", [{"problem_id": "arith-00009", "text": "1"}])
    with pytest.raises(InputError, match=r"problem id 'arith-00009' is not a problem of task 'arithmetic'"):
        imp(bad, tmp_path / "run2", task="arithmetic", num_problems=3)
    assert not (tmp_path / "run2").exists()  # no folder or lock left (issue 23)


def test_gsm8k_answer_extraction():
    assert gsm8k_answer("so 3 + 4 = 7\n#### 7") == "7"
    assert gsm8k_answer("#### 1,234") == "1234"
    assert gsm8k_answer(r"\boxed{\frac{1}{2}}") == r"\boxed{\frac{1}{2}}"


def test_cli_import_then_verify_runs_on_the_result(tmp_path):
    src = write_jsonl(tmp_path / "s.jsonl", [
        {"problem_id": "a", "text": "3", "prompt": "1+2=", "answer": "3"},
        {"problem_id": "a", "text": "4"},
    ])
    r = subprocess.run([sys.executable, "-m", "ttscale", "sample", "--backend", "import", "--from", str(src),
                        "--out", str(tmp_path / "run")], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "wrote 2 samples" in r.stdout
    v = subprocess.run([sys.executable, "-m", "ttscale", "verify", str(tmp_path / "run"), "--verifier", "exact",
                        "--workers", "0"], capture_output=True, text=True, timeout=300)
    assert v.returncode == 0, v.stderr
    verdicts = RunDir(tmp_path / "run").read_verdicts("exact").sort_values("sample_index")
    assert isinstance(verdicts, pd.DataFrame) and verdicts["passed"].tolist() == [True, False]


def test_gzipped_jsonl_streams_in_shards_and_says_what_temperature_it_assumed(tmp_path, capsys,
                                                                              monkeypatch):
    import gzip

    import ttscale.sampling.backends.jsonl_import as ji

    monkeypatch.setattr(ji, "SHARD_ROWS", 7)  # several shards from a small file
    rows = [{"problem_id": f"p{i % 4}", "text": f"#### {i}", "answer": "3"} for i in range(30)]
    rows += [{"problem_id": "p0", "text": "x", "temperature": 1.0},
             {"problem_id": "p1", "text": "y", "temperature": 0.5}]
    src = tmp_path / "s.jsonl.gz"
    with gzip.open(src, "wt") as f:
        f.write("".join(json.dumps(r) + "\n" for r in rows))
    res = imp(src, tmp_path / "run")
    assert (res.written, res.total, res.num_problems) == (32, 32, 4)
    err = capsys.readouterr().err
    assert "30 of 32 rows give no temperature: imported at T = 1" in err
    assert "gives T = 1 explicitly, so both are one group" in err
    run = RunDir(tmp_path / "run")
    assert len(list(run.samples_dir.glob("part-*.parquet"))) == 5
    df = run.read_samples()
    assert not df.duplicated(["problem_id", "temperature", "sample_index"]).any()
    # p0 at T=1: lines 0,4,...,28 (8 rows) numbered 0..7, then the explicit-temperature row 8
    p0 = df[(df.problem_id == "p0") & (df.temperature == 1.0)].sort_values("sample_index")
    assert p0["sample_index"].tolist() == list(range(9)) and p0["text"].iloc[-1] == "x"
    cfg = json.loads((tmp_path / "run" / "run.json").read_text())
    assert cfg["backend_info"]["extra"]["assumed_temperature"] == {
        "rows": 30, "of": 32, "temperature": 1.0, "merged_with_explicit": True}
    # importing again adds nothing; a bad line anywhere leaves the run as it was
    assert imp(src, tmp_path / "run").written == 0
    bad = tmp_path / "bad.jsonl.gz"
    with gzip.open(bad, "wt") as f:
        f.write("".join(json.dumps(r) + "\n" for r in rows[:20]) + "{oops\n")
    with pytest.raises(InputError, match="line 21: not valid JSON"):
        imp(bad, tmp_path / "run2")
    assert not (tmp_path / "run2").exists()
    assert not list(tmp_path.glob(".run2.import-*"))  # no staging left behind
