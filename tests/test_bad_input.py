"""Bad input to ``ttscale analyze`` / ``ttscale forecast``: one line on stderr, exit 2, no output.

Each case names the file (or flag) and what is wrong; the output directory is neither created
nor changed.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from ttscale.cli import main

GOOD = "benchmark,model,problem,num_samples,num_correct\n" + "".join(
    f"B,m,{i},10,{i % 11}\n" for i in range(8)
)


def _write(tmp_path: Path, text: str, name: str = "counts.csv") -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


def _snapshot(folder: Path) -> dict[str, bytes] | None:
    if not folder.exists():
        return None
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def _run_bad(capsys, argv: list[str], out: Path | None, *needles: str) -> str:
    before = _snapshot(out) if out is not None else None
    code = main(argv)
    captured = capsys.readouterr()
    assert code == 2, captured
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    assert captured.out == ""
    if out is not None:
        assert _snapshot(out) == before
    return lines[0]


CASES = {
    "missing_column": (
        "benchmark,problem,num_samples\nB,0,10\n",
        ["missing column 'num_correct'"],
    ),
    "correct_above_samples": (
        "problem,num_samples,num_correct\n0,10,3\n1,10,11\n",
        ["row 2", "num_correct 11 > num_samples 10"],
    ),
    "negative_count": (
        "problem,num_samples,num_correct\n0,10,3\n1,10,-1\n",
        ["column 'num_correct' row 2", "negative count -1"],
    ),
    "empty_file": ("", ["file is empty"]),
    "header_only": ("problem,num_samples,num_correct\n", ["no rows"]),
    "not_a_number": (
        "problem,num_samples,num_correct\n0,ten,3\n",
        ["column 'num_samples' row 1", "not a whole number"],
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_analyze_bad_counts_table_one_line_exit_2_nothing_created(tmp_path, capsys, case):
    text, needles = CASES[case]
    src = _write(tmp_path, text)
    out = tmp_path / "out"
    _run_bad(capsys, ["analyze", str(src), "--out", str(out)], out, str(src), *needles)
    assert not out.exists()


@pytest.mark.parametrize("case", ["missing_column", "correct_above_samples", "empty_file"])
def test_forecast_bad_counts_table_one_line_exit_2(tmp_path, capsys, case):
    text, needles = CASES[case]
    src = _write(tmp_path, text)
    _run_bad(capsys, ["forecast", str(src), "--to", "100", "--json"], None, str(src), *needles)


def test_analyze_existing_out_dir_left_unchanged_on_bad_input(tmp_path, capsys):
    src = _write(tmp_path, CASES["correct_above_samples"][0])
    out = tmp_path / "out"
    (out / "figures").mkdir(parents=True)
    (out / "fits.json").write_text("[]\n")
    (out / "figures" / "old.png").write_bytes(b"old")
    _run_bad(capsys, ["analyze", str(src), "--out", str(out)], out, str(src))
    assert sorted(p.name for p in out.rglob("*")) == ["figures", "fits.json", "old.png"]


def test_analyze_parquet_with_missing_column(tmp_path, capsys):
    import pandas as pd

    src = tmp_path / "counts.parquet"
    pd.DataFrame({"problem": [0, 1], "num_samples": [4, 4]}).to_parquet(src)
    out = tmp_path / "out"
    _run_bad(capsys, ["analyze", str(src), "--out", str(out)], out, str(src),
             "missing column 'num_correct'")
    assert not out.exists()


def test_analyze_k_above_n(tmp_path, capsys):
    src = _write(tmp_path, GOOD)
    out = tmp_path / "out"
    _run_bad(capsys, ["analyze", str(src), "--out", str(out), "--ks", "1,20000"], out,
             str(src), "k=20000", "smallest num_samples is 10")
    _run_bad(capsys, ["analyze", str(src), "--out", str(out), "--max-k", "11"], out,
             str(src), "--max-k=11")
    assert not out.exists()


@pytest.mark.parametrize(
    ("flags", "needle"),
    [
        (["--ks", "1,x"], "--ks"),
        (["--ks", "0"], "k=0 must be at least 1"),
        (["--group-by", "seed"], "--group-by column 'seed'"),
        (["--ci", "1.5"], "--ci"),
        (["--n-boot", "-3"], "--n-boot"),
        (["--saturation-threshold", "0"], "--saturation-threshold"),
        (["--prompt-tokens", "100"], "--output-tokens"),
    ],
)
def test_analyze_bad_options(tmp_path, capsys, flags, needle):
    src = _write(tmp_path, GOOD)
    out = tmp_path / "out"
    _run_bad(capsys, ["analyze", str(src), "--out", str(out), *flags], out, needle)
    assert not out.exists()


def test_analyze_unknown_model_shape_names_the_flag(tmp_path, capsys):
    src = _write(tmp_path, GOOD)
    out = tmp_path / "out"
    _run_bad(capsys, ["analyze", str(src), "--out", str(out), "--model-shape", "no-such-model",
                      "--prompt-tokens", "10", "--output-tokens", "10"],
             out, str(src), "--model-shape 'no-such-model'")
    assert not out.exists()


def test_model_shape_auto_needs_known_models(tmp_path, capsys):
    src = _write(tmp_path, GOOD)  # model column holds "m": no such preset
    out = tmp_path / "out"
    _run_bad(capsys, ["analyze", str(src), "--out", str(out), "--model-shape", "auto",
                      "--prompt-tokens", "10", "--output-tokens", "10"],
             out, str(src), "--model-shape 'm'")
    no_model = _write(tmp_path, "problem,num_samples,num_correct\n0,10,3\n", "plain.csv")
    _run_bad(capsys, ["analyze", str(no_model), "--out", str(out), "--model-shape", "auto",
                      "--prompt-tokens", "10", "--output-tokens", "10"],
             out, str(no_model), "needs a 'model' grouping column")
    assert not out.exists()


def test_nonexistent_input(tmp_path, capsys):
    missing = tmp_path / "nope.csv"
    out = tmp_path / "out"
    _run_bad(capsys, ["analyze", str(missing), "--out", str(out)], out, str(missing), "no such file")
    _run_bad(capsys, ["forecast", str(missing), "--to", "10"], None, str(missing), "no such file")
    assert not out.exists()


def test_counts_table_needs_out(tmp_path, capsys):
    src = _write(tmp_path, GOOD)
    _run_bad(capsys, ["analyze", str(src)], None, str(src), "--out is required")


def test_directory_that_is_not_a_run(tmp_path, capsys):
    folder = tmp_path / "empty_dir"
    folder.mkdir()
    _run_bad(capsys, ["analyze", str(folder), "--out", str(tmp_path / "o")], None, str(folder),
             "not a run directory")
    assert not (tmp_path / "o").exists()


def test_forecast_from_k_above_n(tmp_path, capsys):
    src = _write(tmp_path, GOOD)
    _run_bad(capsys, ["forecast", str(src), "--to", "100", "--from-k", "11"], None, str(src),
             "--from-k=11", "smallest num_samples is 10")


def test_forecast_bad_method_and_bad_to(tmp_path, capsys):
    src = _write(tmp_path, GOOD)
    _run_bad(capsys, ["forecast", str(src), "--to", "100", "--method", "astrology"], None,
             str(src), "--method 'astrology'")
    _run_bad(capsys, ["forecast", str(src), "--to", "0"], None, str(src), "--to 0")


def test_subprocess_bad_input_prints_one_line_and_exits_2(tmp_path):
    src = _write(tmp_path, CASES["negative_count"][0])
    out = tmp_path / "out"
    proc = subprocess.run(
        [sys.executable, "-m", "ttscale", "analyze", str(src), "--out", str(out)],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert proc.stderr.splitlines() == [
        f"ttscale analyze: error: {src}: column 'num_correct' row 2: negative count -1"
    ]
    assert not out.exists()
