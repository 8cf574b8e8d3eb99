"""Bad inputs a newcomer types, through the real CLI: exit code 2, one line naming the field,
nothing written (issue 14: NaN/inf, runs fixed before their first sample, unwritable or foreign
output folders, reserved column names, non-UTF-8 YAML, numpy reprs, argparse usage noise)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import ttscale
from ttscale.cli import main
from ttscale.errors import InputError

COUNTS = "problem,num_samples,num_correct\n" + "".join(f"{i},10,{i % 11}\n" for i in range(8))


def _snapshot(folder: Path) -> dict[str, bytes] | None:
    if not folder.exists():
        return None
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def bad(capsys, argv: list[str], *needles: str, untouched: Path | None = None) -> str:
    """Run ``ttscale ARGV``: exit 2, one line on stderr holding every needle, nothing on stdout."""
    before = _snapshot(untouched) if untouched is not None else None
    try:
        code = main(argv)
    except SystemExit as e:  # argparse's own errors
        code = e.code
    cap = capsys.readouterr()
    assert code == 2, cap
    lines = cap.err.strip().splitlines()
    assert len(lines) == 1, cap.err
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    assert cap.out == ""
    if untouched is not None:
        assert _snapshot(untouched) == before
    return lines[0]


# -- item 1: NaN and infinity are no temperature ----------------------------------------------
@pytest.mark.parametrize("temps", ["nan", "inf", "0.6,-inf", "NaN"])
def test_sample_nan_inf_temperature_is_refused(tmp_path, capsys, temps):
    out = tmp_path / "run"
    bad(capsys, ["sample", "--task", "arithmetic", "-k", "2", "--temperatures", temps, "--out", str(out)],
        "--temperatures", "not a finite number")
    assert not out.exists()


@pytest.mark.parametrize("value", ["[.nan]", "[0.6, .inf]", "[.NaN]"])
def test_sweep_yaml_nan_temperature_is_refused(tmp_path, capsys, value):
    cfg = tmp_path / "s.yaml"
    cfg.write_text(f"name: s\nout: {tmp_path / 'res'}\nnum_samples: 2\ntemperatures: {value}\n"
                   "models: [{model: embedded}]\ntasks: [{name: arithmetic}]\nverifiers: [{name: exact}]\n")
    bad(capsys, ["sweep", str(cfg), "--dry-run"], "s.yaml", "temperatures", "finite")
    assert not (tmp_path / "res").exists()


def test_sample_config_nan_temperature_and_top_p(tmp_path, capsys):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("task: arithmetic\nk: 2\ntemperatures: [.nan]\n")
    bad(capsys, ["sample", "--config", str(cfg), "--out", str(tmp_path / "r")], "temperatures", "finite")
    bad(capsys, ["sample", "--task", "arithmetic", "-k", "2", "--top-p", "nan", "--out", str(tmp_path / "r")],
        "--top-p", "not a finite number")
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("argv,needle", [
    (["simulate", "--difficulty", "beta:1,2", "--fpr", "nan"], "--fpr"),
    (["simulate", "--difficulty", "beta:1,2", "--saturation-threshold", "inf"], "--saturation-threshold"),
    (["verify", "RUN", "--verifier", "exact", "--time-limit", "nan"], "--time-limit"),
])
def test_float_flags_refuse_nan_inf(capsys, argv, needle):
    bad(capsys, argv, needle, "not a finite number")


def test_analyze_ci_nan(tmp_path, capsys):
    counts = tmp_path / "c.csv"
    counts.write_text(COUNTS)
    bad(capsys, ["analyze", str(counts), "--out", str(tmp_path / "o"), "--ci", "nan"], "--ci", "finite")
    assert not (tmp_path / "o").exists()


# -- item 3: nothing is fixed in a run until its first samples exist --------------------------
def test_failed_first_call_leaves_nothing_and_corrected_command_runs(tmp_path, capsys):
    out = tmp_path / "run"
    # the model does not exist: the first call fails before drawing anything
    bad(capsys, ["sample", "--model", str(tmp_path / "no-such-model"), "--task", "arithmetic",
                 "--num-problems", "2", "-k", "2", "--out", str(out), "--quiet"], "no-such-model")
    assert not out.exists()
    assert main(["sample", "--model", "embedded", "--task", "arithmetic", "--num-problems", "2",
                 "-k", "2", "--max-tokens", "6", "--out", str(out), "--quiet"]) == 0
    cfg = json.loads((out / "run.json").read_text())
    assert cfg["model"] == "embedded"


def test_run_json_without_samples_does_not_fix_the_settings(tmp_path, capsys):
    """A run.json left by an earlier call that drew nothing (killed, or from an older version)."""
    from ttscale.rundir.store import RunDir
    from ttscale.sampling.sampler import parse_settings, run_record

    out = tmp_path / "run"
    old = parse_settings({"model": "no-such-model", "task": "arithmetic", "num_samples": 2}, "test")
    RunDir(out).write_config(run_record(old, {}, None, 2))
    assert main(["sample", "--model", "embedded", "--task", "arithmetic", "--num-problems", "2",
                 "-k", "2", "--max-tokens", "6", "--out", str(out), "--quiet"]) == 0
    assert json.loads((out / "run.json").read_text())["identity"]["model"] == "embedded"
    capsys.readouterr()
    # once samples exist, the model is fixed
    bad(capsys, ["sample", "--model", "other", "--task", "arithmetic", "--num-problems", "2",
                 "-k", "2", "--max-tokens", "6", "--out", str(out)], "field 'model'", untouched=out)


# -- item 6: unwritable outputs, folders that are not run directories -------------------------
def test_sample_into_foreign_nonempty_folder_is_refused(tmp_path, capsys):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "thesis.tex").write_text("precious")
    bad(capsys, ["sample", "--task", "arithmetic", "-k", "2", "--out", str(out)],
        "not a run directory", "thesis.tex", untouched=out)
    assert sorted(p.name for p in out.iterdir()) == ["thesis.tex"]


def test_outputs_under_a_file_are_one_line(tmp_path, capsys):
    f = tmp_path / "afile"
    f.write_text("x")
    counts = tmp_path / "c.csv"
    counts.write_text(COUNTS)
    bad(capsys, ["sample", "--task", "arithmetic", "-k", "2", "--out", str(f / "run")], "--out", "not a folder")
    bad(capsys, ["analyze", str(counts), "--out", str(f / "o")], "--out", "not a folder")
    bad(capsys, ["simulate", str(counts), "--out", str(f / "o"), "--k-max", "10"], "--out", "not a folder")
    bad(capsys, ["analyze", str(counts), "--out", str(f)], "--out", "not a folder")
    assert f.read_text() == "x"


@pytest.fixture(scope="module")
def embedded_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("emb") / "run"
    assert main(["sample", "--task", "arithmetic", "--num-problems", "4", "-k", "4", "--max-tokens", "6",
                 "--out", str(out), "--quiet"]) == 0
    assert main(["verify", str(out), "--verifier", "exact", "--workers", "0"]) == 0
    return out


def test_report_and_compare_under_a_file(tmp_path, capsys, embedded_run):
    f = tmp_path / "afile"
    f.write_text("x")
    bad(capsys, ["report", str(embedded_run), "--out", str(f / "r.html")], "--out", "not a folder")
    bad(capsys, ["report", str(embedded_run), "--out", str(tmp_path)], "--out", "is a folder")
    bad(capsys, ["compare", str(embedded_run), "--verifiers", "exact", "--out", str(f / "c")],
        "--out", "not a folder")
    assert not (embedded_run / "analysis" / "compare").exists()


def _can_mount_read_only() -> bool:
    if shutil.which("unshare") is None or os.geteuid() != 0:
        return False
    r = subprocess.run(["unshare", "-m", "sh", "-c", "mount -t tmpfs -o ro tmpfs /mnt"],
                       capture_output=True)
    return r.returncode == 0


@pytest.mark.skipif(not _can_mount_read_only(), reason="needs root and mount namespaces")
def test_read_only_filesystem_is_one_line(tmp_path):
    counts = tmp_path / "c.csv"
    counts.write_text(COUNTS)
    ro = tmp_path / "ro"
    ro.mkdir()
    script = (f"mount -t tmpfs -o ro tmpfs {ro} && "
              f"{sys.executable} -m ttscale analyze {counts} --out {ro}/o; echo rc=$?; "
              f"{sys.executable} -m ttscale sample --task arithmetic -k 2 --out {ro}/run; echo rc=$?")
    r = subprocess.run(["unshare", "-m", "sh", "-c", script], capture_output=True, text=True, timeout=120)
    assert r.stdout.split() == ["rc=2", "rc=2"], r
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 2, r.stderr
    assert all("read-only filesystem" in line for line in lines), lines


# -- item 7: reserved column names, non-UTF-8 YAML --------------------------------------------
@pytest.mark.parametrize("col", ["k", "metric", "estimate", "coverage"])
def test_counts_grouping_column_with_an_output_name(tmp_path, capsys, col):
    counts = tmp_path / "c.csv"
    counts.write_text(f"problem,{col},num_samples,num_correct\n0,a,10,3\n1,a,10,4\n0,b,10,5\n1,b,10,6\n")
    for cmd in (["analyze", str(counts), "--out", str(tmp_path / "o")],
                ["simulate", str(counts), "--k-max", "10"]):
        bad(capsys, cmd, f"column '{col}'", "rename it")
    assert not (tmp_path / "o").exists()


def test_non_utf8_yaml(tmp_path, capsys):
    cfg = tmp_path / "s.yaml"
    cfg.write_bytes("name: caf\xe9\n".encode("latin-1"))
    bad(capsys, ["sweep", str(cfg)], "s.yaml", "not UTF-8", "line 1")
    bad(capsys, ["sample", "--config", str(cfg), "--out", str(tmp_path / "r")], "not UTF-8")


# -- item 13: messages ------------------------------------------------------------------------
def test_counts_messages_have_no_numpy_reprs(tmp_path, capsys):
    counts = tmp_path / "c.csv"
    counts.write_text("problem,num_samples,num_correct\n0,10,3\n1,nan,4\n")
    line = bad(capsys, ["analyze", str(counts), "--out", str(tmp_path / "o")], "row 2", "nan is not a whole number")
    assert "np." not in line
    counts.write_text("problem,num_samples,num_correct\n0,10,3\n0,10,4\n")
    line = bad(capsys, ["analyze", str(counts), "--out", str(tmp_path / "o")], "problem 0 appears twice")
    assert "np." not in line
    counts.write_text("problem,num_samples,num_correct\n0,1e20,3\n")
    bad(capsys, ["analyze", str(counts), "--out", str(tmp_path / "o")], "1e+20", "too large")


def test_yaml_1e9_reads_as_a_number(tmp_path, capsys):
    cfg = tmp_path / "s.yaml"
    body = ("name: s\nnum_samples: {}\ntemperatures: [1.0]\nmodels: [{{model: embedded}}]\n"
            "tasks: [{{name: arithmetic}}]\nverifiers: [{{name: exact}}]\n")
    msgs = []
    for k in ("1e9", "1.0e+9"):
        cfg.write_text(body.format(k))
        msgs.append(bad(capsys, ["sweep", str(cfg), "--dry-run"], "num_samples"))
    assert msgs[0] == msgs[1]  # the same verdict for the same number, however it is spelled


def test_folder_given_for_a_file(tmp_path, capsys):
    bad(capsys, ["sweep", str(tmp_path)], "is a folder")
    bad(capsys, ["sample", "--config", str(tmp_path), "--out", str(tmp_path / "r")], "is a folder")


def test_unknown_backend_is_one_line(capsys):
    line = bad(capsys, ["sample", "--backend", "nope", "--task", "arithmetic", "-k", "1", "--out", "x"],
               "--backend", "invalid choice", "--help")
    assert "usage" not in line


def test_verify_and_analyze_on_a_sweep_folder_list_its_runs(tmp_path, capsys, embedded_run):
    sweep = tmp_path / "sweep"
    shutil.copytree(embedded_run, sweep / "m" / "arithmetic")
    lines = [bad(capsys, ["verify", str(sweep), "--verifier", "exact"], "not a run directory", "m/arithmetic"),
             bad(capsys, ["analyze", str(sweep)], "not a run directory", "m/arithmetic")]
    assert lines[0].split(": ", 1)[1] == lines[1].split(": ", 1)[1]  # the same words after the command


# -- item 17: dry run -------------------------------------------------------------------------
def test_dry_run_of_a_finished_cell_estimates_nothing(tmp_path, capsys):
    cfg = tmp_path / "s.yaml"
    cfg.write_text(f"name: s\nout: {tmp_path / 'res'}\nnum_samples: 2\ntemperatures: [1.0]\nmax_tokens: 6\n"
                   "models: [{name: m, model: embedded}]\ntasks: [{name: arithmetic, num_problems: 3}]\n"
                   "verifiers: [{name: exact}]\nanalysis: {n_boot: 10}\n")
    assert main(["sweep", str(cfg), "--dry-run", "--json"]) == 0
    before = json.loads(capsys.readouterr().out)[0]
    assert before["to_sample"] == 6 and before["est_flops"] > 0 and before["est_prompt_tokens"] > 0
    assert main(["sweep", str(cfg), "--no-progress"]) == 0
    capsys.readouterr()
    assert main(["sweep", str(cfg), "--dry-run", "--json"]) == 0
    after = json.loads(capsys.readouterr().out)[0]
    assert (after["done"], after["to_sample"]) == (6, 0)
    assert after["est_output_tokens"] == after["est_prompt_tokens"] == 0
    assert after["est_flops"] == 0.0


def test_dry_run_offline_plans_without_the_model(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    cfg = tmp_path / "s.yaml"
    cfg.write_text("name: s\nnum_samples: 1000\ntemperatures: [1.0]\n"
                   "models: [{name: big, backend: vllm, model: some-org/some-model-not-cached}]\n"
                   "tasks: [{name: arithmetic, num_problems: 5}]\nverifiers: [{name: exact}]\n")
    assert main(["sweep", str(cfg), "--dry-run", "--json"]) == 0
    row = json.loads(capsys.readouterr().out)[0]
    assert row["to_sample"] == 5000 and row["est_flops"] is None
    assert "not checked" in row["note"] and "FLOPs from analysis.model_shape" in row["note"]
    # running it for real still refuses the unknown model, before anything is written
    bad(capsys, ["sweep", str(cfg)], "models[0].model", "some-org/some-model-not-cached")


# -- item 18: resume options, --workers ----------------------------------------------------------
def test_resume_backend_options_hold_for_that_call_only(tmp_path, capsys):
    out = tmp_path / "run"
    common = ["--task", "arithmetic", "--num-problems", "2", "--max-tokens", "6", "--quiet"]
    assert main(["sample", *common, "-k", "2", "--batch-size", "8", "--out", str(out)]) == 0
    assert main(["sample", str(out), "-k", "3", "--batch-size", "2", "--backend-option", "threads=1"]) == 0
    cfg = json.loads((out / "run.json").read_text())
    assert cfg["backend_options"] == {"batch_size": 8}
    assert cfg["last_call"]["backend_options"] == {"batch_size": 2, "threads": 1}
    assert cfg["num_samples"] == 3


def test_negative_workers_refused_even_with_nothing_to_do(capsys, embedded_run):
    before = _snapshot(embedded_run)
    for cmd in (["verify", str(embedded_run), "--verifier", "exact", "--workers", "-1"],
                ["compare", str(embedded_run), "--verifiers", "exact", "--workers", "-1"]):
        bad(capsys, cmd, "--workers", "negative")
    assert _snapshot(embedded_run) == before


# -- item 14: help ------------------------------------------------------------------------------
def _subparsers():
    import argparse

    from ttscale.cli import build_parser

    parser = build_parser()
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return action.choices


def test_every_flag_has_help_and_shows_its_default():
    for name, sub in _subparsers().items():
        text = sub.format_help()
        assert "``" not in text and ":func:" not in text and ":mod:" not in text, name
        for action in sub._actions:
            if action.option_strings and action.dest != "help":
                assert action.help, (name, action.option_strings)
    compare = _subparsers()["compare"].format_help()
    assert "(default: 1000)" in " ".join(compare.split())  # --n-boot
    simulate = " ".join(_subparsers()["simulate"].format_help().split())
    assert "(default: 50,100,200,500)" in simulate and "(default: 30)" in simulate


def test_help_config_prints_no_reprs(capsys):
    assert main(["sweep", "--help-config"]) == 0
    out = capsys.readouterr().out
    assert "AnalysisSpec(" not in out and "analysis.n_boot" in out


# -- item 7: a prompt longer than the model's context -------------------------------------------
def test_prompt_too_long_for_the_context_is_refused_before_loading(tmp_path, capsys):
    data = tmp_path / "long.jsonl"
    data.write_text(json.dumps({"id": "short", "prompt": "1+1=", "answer": "2"}) + "\n"
                    + json.dumps({"id": "huge", "prompt": "1+" * 500_000 + "1=", "answer": "500001"}) + "\n")
    out = tmp_path / "run"
    line = bad(capsys, ["sample", "--task", "jsonl", "--task-option", f"path={data}", "-k", "2", "--out", str(out)],
               "problem 'huge'", "1,000,002 characters", "64-token context")
    assert "embedded" in line
    assert not out.exists()
    from ttscale.sampling.prompt_check import check_prompt_lengths, model_context

    assert model_context("transformers", "embedded") == 64
    assert model_context("openai", "embedded") is None  # a served model: the server decides
    check_prompt_lengths([], "transformers", "embedded")


def test_output_piped_into_a_reader_that_left_says_nothing():
    """`ttscale list verifiers | head -1`: the reader is gone before ttscale writes."""
    proc = subprocess.Popen([sys.executable, "-m", "ttscale", "list", "backends"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    proc.stdout.close()  # closed before the interpreter has even imported ttscale
    err = proc.stderr.read()
    assert proc.wait(timeout=120) == 0 and err == ""


# == issue 23 ===================================================================================
# -- item 1: a damaged shard is named in one line, and --repair redraws or rejudges it ----------
def _damaged_copy(src: Path, dst: Path, folder: str) -> Path:
    """Copy run ``src`` to ``dst`` and cut its second shard of ``folder`` to 100 bytes."""
    shutil.copytree(src, dst)
    shard = sorted((dst / folder).glob("part-*.parquet"))[1]
    with open(shard, "r+b") as f:
        f.truncate(100)
    return shard


def _sorted(df):
    return df.sort_values(["problem_id", "temperature", "sample_index"]).reset_index(drop=True)


@pytest.fixture(scope="module")
def sharded_run(tmp_path_factory):
    """A small embedded run whose samples and verdicts lie in several shards, analysed."""
    out = tmp_path_factory.mktemp("shards") / "run"
    assert main(["sample", "--task", "arithmetic", "--num-problems", "4", "-k", "8", "--max-tokens", "6",
                 "--max-n-per-request", "4", "--batch-size", "4", "--threads", "1", "--out", str(out),
                 "--quiet"]) == 0
    from ttscale.api import verify

    verify(out, "exact", workers=0, progress=False, batch_problems=1)
    assert len(list((out / "samples").glob("part-*"))) >= 2
    assert len(list((out / "verdicts" / "exact").glob("part-*"))) >= 2
    assert main(["analyze", str(out), "--n-boot", "20"]) == 0
    return out


@pytest.mark.slow  # the shared fixture samples, verifies and analyses (about 60 s on 2 busy cores)
def test_damaged_sample_shard_is_named_by_every_reader_and_repaired_identically(tmp_path, capsys,
                                                                                sharded_run):
    from ttscale.rundir.store import RunDir

    run = tmp_path / "run"
    shard = _damaged_copy(sharded_run, run, "samples")
    capsys.readouterr()
    for argv in (["verify", str(run), "--verifier", "exact", "--name", "e2"], ["sample", str(run)],
                 ["analyze", str(run)], ["report", str(run)],
                 ["compare", str(run), "--verifiers", "exact"]):
        line = bad(capsys, argv, str(shard), "damaged shard", "Parquet magic bytes not found",
                   f"ttscale sample {run} --repair")
        assert line.count(str(shard)) == 1
    assert not (run / "verdicts" / "e2").exists()  # verify refused before writing verifier.json
    assert main(["sample", str(run), "--repair", "--quiet"]) == 0
    err = capsys.readouterr().err
    assert f"damaged shard set aside to {run / 'damaged' / 'samples' / shard.name}" in err
    assert (run / "damaged" / "samples" / shard.name).stat().st_size == 100
    assert json.loads((run / "run.json").read_text())["damaged_shards_set_aside"] == {"samples": 1}
    pd.testing.assert_frame_equal(_sorted(RunDir(run).read_samples()),
                                  _sorted(RunDir(sharded_run).read_samples()))
    assert main(["analyze", str(run), "--n-boot", "20"]) == 0  # the old verdicts fit the new samples


@pytest.mark.slow
def test_damaged_verdict_shard_is_named_and_verify_repair_rejudges_it(tmp_path, capsys, sharded_run):
    from ttscale.rundir.store import RunDir

    run = tmp_path / "run"
    shard = _damaged_copy(sharded_run, run, "verdicts/exact")
    capsys.readouterr()
    for argv in (["verify", str(run), "--verifier", "exact"], ["analyze", str(run)],
                 ["compare", str(run), "--verifiers", "exact"]):
        bad(capsys, argv, str(shard), "damaged shard",
            f"ttscale verify {run} --verifier exact --name exact --repair")
    with pytest.raises(InputError, match="damaged shard"):
        ttscale.open_run(run).verdicts  # noqa: B018 - the API's reader checks too
    assert main(["verify", str(run), "--verifier", "exact", "--repair"]) == 0
    cap = capsys.readouterr()
    assert "damaged shard set aside" in cap.err and "(0 already done)" not in cap.out
    pd.testing.assert_frame_equal(_sorted(RunDir(run).read_verdicts("exact")),
                                  _sorted(RunDir(sharded_run).read_verdicts("exact")))
    assert json.loads((run / "run.json").read_text())["damaged_shards_set_aside"] == {"verdicts/exact": 1}


@pytest.mark.slow
def test_repair_of_a_whole_run_sets_nothing_aside(tmp_path, capsys, sharded_run):
    run = tmp_path / "run"
    shutil.copytree(sharded_run, run)
    res = ttscale.verify(run, "exact", repair=True, progress=False)
    assert res.set_aside == [] and res.verified == 0
    assert not (run / "damaged").exists()


# -- item 3: a missing extra and a bad backend option are one line each ---------------------------
def test_openai_backend_without_httpx_names_the_extra(tmp_path):
    out = tmp_path / "r"
    code = ("import sys; sys.modules['httpx'] = None\nfrom ttscale.cli import main\n"
            f"sys.exit(main(['sample', '--task', 'arithmetic', '-k', '2', '--backend', 'openai', "
            f"'--backend-option', 'base_url=http://127.0.0.1:9/v1', '--out', {str(out)!r}]))")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                       env=dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1])))
    assert p.returncode == 2, p.stderr
    assert p.stderr.strip().splitlines() == [
        "ttscale sample: error: --backend openai: needs the package 'httpx' (pip install 'ttscale[openai]')"]
    assert not out.exists()


@pytest.mark.parametrize("backend,option,needle", [
    ("openai", "concurrency=abc", "concurrency='abc': must be an integer"),
    ("openai", "rate_limit=0", "rate_limit=0: must be > 0"),
    ("openai", "endpoint=chatty", "must be one of completions, chat"),
    ("openai", "logprobs=maybe", "logprobs='maybe': must be true or false"),
    ("openai", "extra_body=5", "must be a mapping"),
    ("transformers", "threads=0", "threads=0: must be >= 1"),
    ("transformers", "batch_size=2.5", "batch_size=2.5: must be an integer"),
    ("vllm", "gpu_memory_utilization=0", "must be > 0"),
])
def test_backend_options_are_checked_up_front(tmp_path, capsys, backend, option, needle):
    out = tmp_path / "r"
    argv = ["sample", "--task", "arithmetic", "-k", "2", "--backend", backend, "--backend-option", option,
            "--out", str(out)]
    if backend == "openai":
        argv += ["--backend-option", "base_url=http://127.0.0.1:9/v1"]
    bad(capsys, argv, "backend option", needle, f"({backend} backend:")
    assert not out.exists()


def test_backend_options_typed_through_the_api():
    from ttscale.sampling.backends import get_backend

    with pytest.raises(InputError, match="concurrency='x': must be an integer"):
        get_backend("openai", model="m", base_url="http://127.0.0.1:9/v1", concurrency="x")


# -- item 7: every API verb refuses a bad argument with an InputError in its own words ---------------
def _counts_df():
    import pandas as pd

    return pd.read_csv(Path(__file__).parent / "fixtures" / "embedded_arith_counts.csv")


@pytest.mark.parametrize("call,needle", [
    (lambda df: ttscale.analyze(42), "analyze: source=42 (int): expected"),
    (lambda df: ttscale.analyze(None), "analyze: source=None"),
    (lambda df: ttscale.forecast(df, to="abc"), "to='abc': expected a whole number"),
    (lambda df: ttscale.forecast(df, to=10**30), "must be between 1 and 1e15"),
    (lambda df: ttscale.forecast(df, to=100, level=2), "level=2: must be a number in (0, 1)"),
    (lambda df: ttscale.pass_at_k(10, 3, [20]), "k=20 is more than the n=10 samples of problem 0"),
    (lambda df: ttscale.coverage([10, 30], [3, 4], [20]), "n=10 samples of problem 0"),
    (lambda df: ttscale.compare(42, "exact"), "compare: source=42"),
    (lambda df: ttscale.simulate(3.5), "simulate: source=3.5"),
    (lambda df: ttscale.verify(None, "exact"), "verify: source=None"),
    (lambda df: ttscale.report(7), "report: source=7"),
    (lambda df: ttscale.list_plugins("nope"), "what='nope'"),
    (lambda df: ttscale.temperatures(df, n_boot=-1), "n_boot=-1"),
])
def test_api_bad_arguments_are_input_errors_in_the_apis_words(call, needle):
    with pytest.raises(InputError) as e:
        call(_counts_df())
    assert needle in str(e.value)
    assert "--" not in str(e.value) and "command line" not in str(e.value)


BETA = ["--difficulty", "beta:1,2"]


@pytest.mark.parametrize("kwargs,api_needle,argv,cli_needle", [
    (dict(difficulty="beta:1,2", fpr=0.6, fnr=0.5), "simulate: fpr + fnr must be below 1",
     ["simulate", *BETA, "--fpr", "0.6", "--fnr", "0.5"], "--fpr + --fnr must be below 1"),
    (dict(difficulty="beta:1,2", fpr=1.5), "fpr must be in [0, 1], got 1.5",
     ["simulate", *BETA, "--fpr", "1.5"], "--fpr must be in [0, 1], got 1.5"),
    (dict(difficulty="beta:1,2", k_max=0), "k_max must be at least 1, got 0",
     ["simulate", *BETA, "--k-max", "0"], "--k-max must be at least 1, got 0"),
    (dict(difficulty="beta:1,2", replicates=2), "replicates must be at least 3",
     ["simulate", *BETA, "--replicates", "2"], "--replicates must be at least 3"),
    (dict(), "give exactly one of source or difficulty",
     ["simulate"], "give exactly one of INPUT or --difficulty"),
    (dict(difficulty="beta:x"), "difficulty 'beta:x': expected beta:ALPHA,BETA",
     ["simulate", "--difficulty", "beta:x"], "--difficulty 'beta:x': expected beta:ALPHA,BETA"),
])
def test_simulate_names_python_arguments_from_python_and_flags_from_the_cli(capsys, kwargs, api_needle,
                                                                            argv, cli_needle):
    with pytest.raises(InputError) as e:
        ttscale.simulate(progress=False, **kwargs)
    assert api_needle in str(e.value) and "--" not in str(e.value), str(e.value)
    assert "--" in bad(capsys, argv, cli_needle)


def test_simulate_refuses_a_rate_that_is_not_a_number():
    with pytest.raises(InputError, match=r"simulate: fpr='abc': expected a number"):
        ttscale.simulate(difficulty="beta:1,2", fpr="abc", progress=False)


@pytest.mark.parametrize("verb,kwargs,api_needle,flags,cli_needle", [
    ("analyze", dict(n_boot=-1), "n_boot must be >= 0, got -1", ["--n-boot", "-1"], "--n-boot must be >= 0, got -1"),
    ("analyze", dict(ci=2.0), "ci must be in (0, 1), got 2.0", ["--ci", "2"], "--ci must be in (0, 1), got 2.0"),
    ("analyze", dict(ks=[20]), "ks k=20 exceeds the samples", ["--ks", "20"], "--ks k=20 exceeds the samples"),
    ("analyze", dict(group_by=["nope"]), "group_by column 'nope'", ["--group-by", "nope"], "--group-by column 'nope'"),
    ("analyze", dict(law_boot=-2), "law_boot must be >= 0, got -2", ["--law-boot", "-2"], "--law-boot must be >= 0, got -2"),
    ("frontier", dict(bins=0), "bins must be at least 1, got 0", ["--bins", "0"], "--bins must be at least 1, got 0"),
    ("frontier", dict(prices=(1, -1)), "prices *: prices must be >= 0", ["--price", "1,-1"],
     "--price *: prices must be >= 0"),
    ("forecast", dict(to=100, method="nope"), "method 'nope' is not a forecast method",
     ["--to", "100", "--method", "nope"], "--method 'nope' is not a forecast method"),
])
def test_analysis_verbs_name_python_arguments_from_python_and_flags_from_the_cli(
        tmp_path, capsys, verb, kwargs, api_needle, flags, cli_needle):
    src = tmp_path / "c.csv"
    src.write_text(COUNTS)
    with pytest.raises(InputError) as e:
        getattr(ttscale, verb)(str(src), **kwargs)
    assert api_needle in str(e.value) and "--" not in str(e.value), str(e.value)
    out = ["--out", str(tmp_path / "o")] if verb == "analyze" else []
    bad(capsys, [verb, str(src), *flags, *out], cli_needle)
    assert not (tmp_path / "o").exists()


def test_api_temperatures_takes_a_dataframe_and_lists_backends():
    view = ttscale.temperatures(_counts_df(), n_boot=20, ks=[1, 4])
    assert set(view.best["k"]) == {1, 4}
    names = [name for name, kind, _ in ttscale.list_plugins("backends")]
    assert names == ["import", "openai", "transformers", "vllm"]


def test_public_pass_at_k_keeps_exact_values():
    got = ttscale.pass_at_k([4, 4], [0, 2], [1, 2])
    np.testing.assert_allclose(got, [[0.0, 0.0], [0.5, 5 / 6]], rtol=1e-15)  # 1 - C(2,2)/C(4,2)


def test_cli_to_beyond_any_forecast_is_one_line(capsys):
    src = str(Path(__file__).parent / "fixtures" / "embedded_arith_counts.csv")
    line = bad(capsys, ["forecast", src, "--to", str(10**30)], "--to 1000000000000000000000000000000",
               "must be between 1 and 1e15")
    assert line.count("forecast") == 1


# -- item 8: run directories and the files given for them -------------------------------------------
def _hand_made_run(path: Path) -> Path:
    from ttscale.plugins import Problem, problems_frame
    from ttscale.rundir.store import RunDir

    run = RunDir(path)
    run.write_problems(problems_frame([Problem("p0", "arithmetic", "1+1=", {"answer": "2"})]))
    run.write_samples(pd.DataFrame([{"problem_id": "p0", "temperature": 0.5, "sample_index": j, "seed": j,
                                     "text": "2", "num_prompt_tokens": 2, "num_output_tokens": 1,
                                     "finish_reason": "stop"} for j in range(3)]))
    return path


@pytest.mark.parametrize("content,needle", [("garbage", "not valid JSON"), ("[1, 2]", "expected a JSON object")])
def test_verify_refuses_a_damaged_run_json(tmp_path, capsys, content, needle):
    run = _hand_made_run(tmp_path / "run")
    (run / "run.json").write_text(content)
    bad(capsys, ["verify", str(run), "--verifier", "exact"], str(run / "run.json"), needle)
    assert not (run / "verdicts").exists()


def test_verify_given_a_file_says_it_is_a_file(tmp_path, capsys):
    f = tmp_path / "counts.csv"
    f.write_text(COUNTS)
    bad(capsys, ["verify", str(f), "--verifier", "exact"], "a file, not a run directory")


def test_analyze_an_empty_folder_is_not_a_run(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    bad(capsys, ["analyze", str(tmp_path / "empty"), "--out", str(tmp_path / "o")], "not a run directory")


@pytest.mark.parametrize("name,text", [("c.json", '{"a": 1}'), ("c.csv", '[{"problem": 1}]')])
def test_counts_file_that_is_json_is_named_so(tmp_path, capsys, name, text):
    (tmp_path / name).write_text(text)
    bad(capsys, ["analyze", str(tmp_path / name), "--out", str(tmp_path / "o")], "is JSON", "CSV or Parquet")
    assert not (tmp_path / "o").exists()


def test_import_with_unknown_problem_ids_leaves_nothing(tmp_path, capsys):
    src = tmp_path / "s.jsonl"
    src.write_text('{"problem_id": "zzz", "text": "4", "sample_index": 0, "temperature": 0.6}\n')
    out = tmp_path / "imp"
    line = bad(capsys, ["sample", "--backend", "import", "--from", str(src), "--task", "arithmetic",
                        "--out", str(out)], "problem id 'zzz' is not a problem of task 'arithmetic'")
    assert "''" not in line
    assert not out.exists()
    assert [p.name for p in tmp_path.iterdir()] == ["s.jsonl"]  # no staging folder either


@pytest.mark.parametrize("yaml_text,needle", [
    ("num_sample: 2\n", "num_sample: unknown key (did you mean 'num_samples'?)"),
    ("num_samples: 2\nmodels: [{model: embedded, bakend: x}]\n", "models[0].bakend: unknown key (did you mean 'backend'?)"),
])
def test_sweep_key_typos_are_named(tmp_path, capsys, yaml_text, needle):
    cfg = tmp_path / "s.yaml"
    base = f"name: s\nout: {tmp_path / 'res'}\ntasks: [{{name: arithmetic}}]\nverifiers: [{{name: exact}}]\n"
    if "models" not in yaml_text:
        base += "models: [{model: embedded}]\n"
    cfg.write_text(base + yaml_text)
    bad(capsys, ["sweep", str(cfg), "--dry-run"], needle)


def test_unbalanced_verifier_form_is_named(tmp_path, capsys):
    run = _hand_made_run(tmp_path / "run")
    bad(capsys, ["verify", str(run), "--verifier", "imperfect(base=exact,fpr=0.1"], "unbalanced parentheses")


@pytest.mark.slow
def test_changing_a_runs_task_is_refused_before_the_task_loads(tmp_path, capsys, sharded_run):
    run = tmp_path / "run"
    shutil.copytree(sharded_run, run)
    bad(capsys, ["sample", str(run), "--task", "gsm8k"], "field 'task' is 'arithmetic' in this run, not 'gsm8k'")


# -- item 4: the temperature view on ties and on temperatures that are none ---------------------------
def _tie_counts(tmp_path: Path, temps=("0.6", "1.0")) -> Path:
    src = tmp_path / "tie.csv"
    rows = [f"{i},{t},10,{10 if i % 2 else 3}" for i in range(20) for t in temps]
    src.write_text("problem,temperature,num_samples,num_correct\n" + "\n".join(rows) + "\n")
    return src


def test_identical_counts_at_two_temperatures_read_as_a_tie(tmp_path):
    view = ttscale.temperatures(_tie_counts(tmp_path), n_boot=200, ks=[1, 4, 10])
    best = view.best
    assert (best["p_best"] == 0.5).all()  # each resample a tie, shared between the two
    assert (best["gap"] == 0).all()
    assert ((best["gap_ci_low"] <= 0) & (best["gap_ci_high"] >= 0)).all()
    assert (best["tied"] == "0.6,1").all()


def test_identical_counts_never_yield_a_claimed_split(tmp_path, capsys):
    src = _tie_counts(tmp_path)
    best = ttscale.temperatures(src, n_boot=50, ks=[1, 4, 10]).best
    for row in best.itertuples():  # all k samples on the best temperature, and no gain claimed
        assert json.loads(row.split) == {"0.6": row.k, "1.0": 0} == json.loads(row.split_found)
        assert row.split_gain == 0 and row.split_gain_ci_low == 0 and row.split_gain_ci_high == 0
        assert not row.split_better
        assert row.split_verdict == "no split is better than T=0.6 alone: the data do not choose"
    assert main(["temperatures", str(src), "--ks", "1,4,10", "--n-boot", "50"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[-1] == "split, k=1,4,10: no split is better than T=0.6 alone: the data do not choose"
    # three temperatures, random counts, the same at each: never a split
    rng = np.random.default_rng(0)
    for seed in range(5):
        c = rng.integers(0, 9, size=12)
        df = pd.DataFrame([(i, t, 8, int(c[i])) for i in range(12) for t in (0.2, 0.7, 1.1)],
                          columns=["problem", "temperature", "num_samples", "num_correct"])
        got = ttscale.temperatures(df, n_boot=20, ks=[2, 5, 8], seed=seed).best
        assert not got["split_better"].any() and (got["split_gain"] == 0).all()
        assert all(json.loads(s)["0.2"] == k for s, k in zip(got["split"], got["k"], strict=True))


def test_a_clear_winner_is_not_a_tie(tmp_path):
    src = tmp_path / "c.csv"
    rows = [f"{i},0.6,10,{5 + i % 5}\n{i},1.0,10,{i % 3}" for i in range(30)]
    src.write_text("problem,temperature,num_samples,num_correct\n" + "\n".join(rows) + "\n")
    best = ttscale.temperatures(src, n_boot=200, ks=[1]).best.iloc[0]
    assert best["best_temperature"] == 0.6 and best["tied"] == "" and best["p_best"] == 1.0


@pytest.mark.parametrize("temp,needle", [("abc", "'abc' is not a temperature"), ("-1", "-1"), ("inf", "inf")])
def test_counts_with_a_temperature_that_is_none_are_refused(tmp_path, capsys, temp, needle):
    src = _tie_counts(tmp_path, ("0.6", temp))
    bad(capsys, ["temperatures", str(src)], str(src), "field 'temperature'", needle, "finite number >= 0")


# -- item 10: messages that say each thing once -------------------------------------------------------
def test_output_paths_are_named_once(tmp_path, capsys):
    src = tmp_path / "good.csv"
    src.write_text(COUNTS)
    line = bad(capsys, ["analyze", str(src), "--out", str(src)], "exists and is not a folder")
    assert line.count(str(src)) == 1
    with pytest.raises(InputError) as e:
        ttscale.analyze(str(src), out=str(src))
    assert str(e.value).count(str(src)) == 1 and str(e.value).startswith("out=")


def test_api_verb_prefix_is_not_repeated_by_the_cli(capsys):
    line = bad(capsys, ["simulate"], "exactly one of")
    assert line.count("simulate") == 1


def test_simulate_summary_is_rounded_wrapped_and_has_no_none(capsys):
    assert main(["simulate", "--difficulty", "beta:1,2", "--k-max", "1000"]) == 0
    out = capsys.readouterr().out
    assert "None" not in out and "0.99984398" not in out
    assert max(len(line) for line in out.splitlines()) <= 100
    assert "optimal_k=" in out and "saturation_k=" in out


def test_lock_holder_message_keeps_the_whole_command(tmp_path):
    from ttscale.rundir.locks import _describe_holder

    lock = tmp_path / "l"
    command = "ttscale sample --task arithmetic " + " ".join(f"--task-option k{i}=v{i}" for i in range(8))
    lock.write_text(json.dumps({"pid": 1, "host": "h", "since": "now", "command": command}))
    assert _describe_holder(lock).endswith(command)


def test_a_non_ascii_sweep_name_says_why(tmp_path, capsys):
    cfg = tmp_path / "s.yaml"
    cfg.write_text(f"name: über\nout: {tmp_path / 'res'}\nnum_samples: 2\nmodels: [{{model: embedded}}]\n"
                   "tasks: [{name: arithmetic}]\nverifiers: [{name: exact}]\n")
    bad(capsys, ["sweep", str(cfg), "--dry-run"], "names a folder: ASCII letters")


def test_a_full_disk_at_the_lock_names_the_lock_file(tmp_path, monkeypatch):
    from ttscale.errors import StorageError
    from ttscale.rundir import locks

    def full(fd, data, offset):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(locks.os, "pwrite", full)
    with pytest.raises(StorageError) as e, locks.stage_lock(tmp_path / "run", "sampling"):
        pass
    assert str(e.value) == f"cannot write {locks.lock_path(tmp_path / 'run', 'sampling')}: No space left on device"


# -- item 11: the dry run's FLOPs come from analysis.model_shape ---------------------------------------
def test_dry_run_flops_from_the_analysis_model_shape(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    cfg = tmp_path / "g.yaml"
    cfg.write_text(f"name: g\nout: {tmp_path / 'g'}\nnum_samples: 10\ntemperatures: [0.6]\nmax_tokens: 100\n"
                   "models: [{model: Org/Some-Unknown-Model, backend: vllm}]\n"
                   "tasks: [{name: arithmetic, num_problems: 5}]\nverifiers: [{name: exact}]\n"
                   "analysis: {model_shape: qwen2.5-7b}\n")
    assert main(["sweep", str(cfg), "--dry-run"]) == 0
    from ttscale.analysis.costs.model_shape import find_shape

    row = capsys.readouterr().out.splitlines()[1].split()
    tokens = int(row[row.index("50") + 3])  # est_output_tokens after samples, done, to_sample
    assert tokens == 5000
    flops = float(row[-2])
    assert flops == pytest.approx(2 * find_shape("qwen2.5-7b")[0].num_params * tokens, rel=0.01)


# -- item 9: the report's tables scroll, legend labels stay distinct, CJK names draw quietly ------------
def test_fit_intervals_table_scrolls_like_the_others():
    from ttscale.reporting.fits import fit_section

    rec = {"metric": "pass@k", "law": "power_law", "fit_status": "ok", "a": -1.0, "b": -0.4}
    html = fit_section([rec], [])
    assert '<div class="scroll"><table>' in html and html.count("<table>") == html.count('<div class="scroll"><table>')


def test_legend_labels_of_long_names_stay_distinct():
    from ttscale.reporting.svg import Series, legend_labels, line_chart

    names = [f"pass@k (exact) task=arithmetic temperature={t}" for t in ("0.6", "1.0")]
    labels = legend_labels(names)
    assert len(set(labels)) == 2 and all(len(x) <= 30 for x in labels)
    svg = line_chart([Series(n, [1, 10], [0.1, 0.5]) for n in names], "k", "coverage")
    assert all(f"<title>{n} (click to hide or show)</title>" in svg for n in names)


def test_cjk_group_names_draw_without_glyph_warnings(tmp_path):
    code = ("import warnings, pandas as pd, ttscale\nwarnings.simplefilter('default')\n"
            "df = pd.DataFrame({'benchmark': ['数学'] * 6 + ['代码'] * 6, 'problem': list(range(12)),"
            " 'num_samples': 8, 'num_correct': [i % 9 for i in range(12)]})\n"
            f"ttscale.analyze(df, out={str(tmp_path / 'o')!r}, n_boot=10, progress=False)\n")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                       env=dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1])))
    assert p.returncode == 0, p.stderr
    assert "Glyph" not in p.stderr and "missing from font" not in p.stderr, p.stderr
    assert any((tmp_path / "o" / "figures").iterdir())


def test_temperature_legend_sits_outside_the_plot(tmp_path):
    from ttscale.analysis.temperatures.view import temperature_view, view_figure

    view = temperature_view(pd.read_csv(_tie_counts(tmp_path)), ["temperature"], ks=[1, 4], n_boot=10)
    fig = view_figure(view)
    ax = fig.axes[-1]
    fig.canvas.draw()
    legend = ax.get_legend().get_window_extent()
    assert legend.x0 >= ax.get_window_extent().x1  # right of the axes, not over the lines


# -- item 5: one BLAS thread inside the analysis verbs ------------------------------------------------
def test_analysis_verbs_run_with_one_blas_thread(monkeypatch):
    from threadpoolctl import threadpool_info

    import ttscale.analysis.inputs as inputs
    from ttscale.core.threads import analysis_threads

    seen = []

    original = inputs.input_from_counts

    def spy(*args, **kwargs):
        seen.append([d["num_threads"] for d in threadpool_info() if d["user_api"] == "blas"])
        return original(*args, **kwargs)

    monkeypatch.setattr(inputs, "input_from_counts", spy)
    ttscale.analyze(_counts_df(), n_boot=0, ks=[1], progress=False)
    ttscale.forecast(_counts_df(), to=20, n_boot=0, progress=False)
    assert seen and all(t == 1 for threads in seen for t in threads)  # every BLAS loaded (numpy's, scipy's)
    monkeypatch.setenv("TTSCALE_BLAS_THREADS", "0")
    with analysis_threads():  # 0: numpy's own default, untouched
        default = [d["num_threads"] for d in threadpool_info() if d["user_api"] == "blas"]
    assert default == [d["num_threads"] for d in threadpool_info() if d["user_api"] == "blas"]
