"""The sweep config: defaults, labels, --help-config, and malformed configs through the CLI.

Every malformed config must give exactly one line on stderr naming the file and the field
(``models[0].model``), exit code 2, and write nothing (the sweep's out folder never appears, nor
``results/`` in the working directory) -- all before any model is loaded or any sample drawn.
"""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from ttscale.cli import main
from ttscale.errors import InputError
from ttscale.orchestration.config import SweepConfig, describe_fields, load_sweep_config
from ttscale.orchestration.sweeps import plan, sweep_root
from ttscale.sampling.backends.transformers_backend import EMBEDDED_DIR

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "embedded.yaml"


@pytest.fixture()
def model_dir(tmp_path) -> str:
    """A folder standing in for a local model: the config check reads only its config.json."""
    folder = tmp_path / "models" / "tiny-llama"
    folder.mkdir(parents=True)
    (folder / "config.json").write_text('{"model_type": "llama"}')
    return str(folder)


def base_config(model: str, out: Path) -> dict:
    return {
        "name": "cfg-test", "out": str(out), "num_samples": 8, "temperatures": [0.6, 1.0],
        "max_tokens": 8,
        "models": [{"model": model}],
        "tasks": [{"name": "arithmetic", "num_problems": 4}],
        "verifiers": [{"name": "exact"}, {"name": "majority"},
                      {"name": "imperfect", "options": {"base": "exact", "fpr": 0.2}}],
        "analysis": {"n_boot": 50},
    }


def write(path: Path, cfg: dict | str) -> Path:
    path.write_text(cfg if isinstance(cfg, str) else yaml.safe_dump(cfg, sort_keys=False))
    return path


# -- valid configs -------------------------------------------------------------------------------
def test_example_config_loads_with_its_values():
    cfg = load_sweep_config(EXAMPLE)
    assert cfg.name == "embedded-think"
    assert (cfg.seed, cfg.num_samples, cfg.temperatures, cfg.max_tokens) == (0, 32, [0.7, 1.0], 8)
    assert cfg.budgets == [4, 8, 16, 32]
    assert [(m.label, m.backend, m.model) for m in cfg.models] == [
        ("think-llama", "transformers", "think-llama"), ("think-llama-small", "transformers", "think-llama-small")]
    assert [(t.name, t.num_problems, t.key) for t in cfg.tasks] == [("long-addition", 40, "long-addition")]
    assert [v.name for v in cfg.verifiers] == ["exact", "majority", "imperfect"]
    assert cfg.verifiers[2].options == {"base": "exact", "fpr": 0.1, "fnr": 0.05}
    assert cfg.analysis.n_boot == 1000
    assert sweep_root(cfg) == Path("results") / "embedded-think"


@pytest.mark.skipif(not (EMBEDDED_DIR / "config.json").is_file(), reason="the embedded model is not shipped here")
def test_example_config_dry_run_plans_its_grid(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    code, stdout, err = _run_cli(["sweep", str(EXAMPLE), "--dry-run", "--json"], capsys)
    assert code == 0, err
    rows = json.loads(stdout)
    assert [r["model"] for r in rows] == ["think-llama", "think-llama-small"]
    row = rows[0]
    assert {k: row[k] for k in ("model", "task", "problems", "temperatures", "k", "samples", "done", "to_sample")} == {
        "model": "think-llama", "task": "long-addition", "problems": 40, "temperatures": 2, "k": 32,
        "samples": 10_240, "done": 0, "to_sample": 10_240}
    assert row["verifiers"] == "exact,majority,imperfect-exact-fpr0.1-fnr0.05"
    assert row["est_flops"] > rows[1]["est_flops"] > 0  # the shipped models' shapes are known
    assert list(tmp_path.iterdir()) == []  # results/ is not created by a dry run


def test_defaults_are_filled_in(tmp_path, model_dir):
    path = write(tmp_path / "min.yaml", {"name": "m", "num_samples": 3, "temperatures": [1],
                                         "models": [{"model": model_dir}],
                                         "tasks": [{"name": "arithmetic"}],
                                         "verifiers": [{"name": "exact"}]})
    cfg = load_sweep_config(path)
    assert (cfg.seed, cfg.max_tokens, cfg.top_p, cfg.report, cfg.out) == (0, 256, 1.0, True, None)
    assert cfg.temperatures == [1.0] and isinstance(cfg.temperatures[0], float)
    m = cfg.models[0]
    assert (m.backend, m.name, m.label, m.options) == ("transformers", None, "tiny-llama", {})
    t = cfg.tasks[0]
    assert (t.num_problems, t.prompt_format, t.verifiers, t.key) == (None, "plain", None, "arithmetic")
    a = cfg.analysis
    assert (a.n_boot, a.ci, a.ceiling, a.saturation_threshold, a.forecast_to) == (1000, 0.95, False, 1e-4, [])


@pytest.mark.parametrize(("model", "name", "label"), [
    ("/some/where/smoke_model_lead/", None, "smoke_model_lead"),
    ("meta-llama/Llama 3.1 8B", None, "Llama_3.1_8B"),
    ("Qwen/Qwen2.5-0.5B", "qwen-small", "qwen-small"),
    ("embedded", None, "embedded"),
])
def test_model_label_is_derived_from_the_model(model, name, label):
    spec = SweepConfig.model_validate({"name": "x", "num_samples": 1, "temperatures": [1.0],
                                       "models": [{"model": model, "name": name}],
                                       "tasks": [{"name": "arithmetic"}],
                                       "verifiers": [{"name": "exact"}]}).models[0]
    assert spec.label == label


def test_plan_gives_one_cell_per_model_and_task_and_writes_nothing(tmp_path, model_dir):
    other = tmp_path / "models" / "other"
    other.mkdir()
    (other / "config.json").write_text('{"model_type": "llama"}')
    raw = base_config(model_dir, tmp_path / "out")
    raw["models"].append({"model": str(other), "name": "second"})
    raw["tasks"].append({"name": "arithmetic", "label": "arith-small", "num_problems": 2,
                         "verifiers": ["exact", "imperfect-exact-fpr0.2-fnr0"]})
    cfg = load_sweep_config(write(tmp_path / "grid.yaml", raw))
    cells = plan(cfg, "grid.yaml")
    got = [(c.model.label, c.task.key, [v.name for v in c.verifiers], c.run_dir) for c in cells]
    out = tmp_path / "out"
    assert got == [
        ("tiny-llama", "arithmetic", ["exact", "majority", "imperfect"], out / "tiny-llama" / "arithmetic"),
        ("second", "arithmetic", ["exact", "majority", "imperfect"], out / "second" / "arithmetic"),
        ("tiny-llama", "arith-small", ["exact", "imperfect"], out / "tiny-llama" / "arith-small"),
        ("second", "arith-small", ["exact", "imperfect"], out / "second" / "arith-small"),
    ]
    assert not out.exists()


def test_help_config_lists_every_field_once(capsys):
    assert main(["sweep", "--help-config"]) == 0
    lines = capsys.readouterr().out.splitlines()
    names = [line.split(":", 1)[0] for line in lines]
    assert len(names) == len(set(names)) == len(describe_fields())
    for field in ("name", "num_samples", "temperatures", "models[].backend", "models[].model",
                  "tasks[].name", "tasks[].verifiers", "verifiers[].options", "analysis.n_boot",
                  "analysis.ci", "report"):
        assert field in names, field
    assert "num_samples: K: samples per problem and temperature. (required)" in lines
    assert "analysis.n_boot: Bootstrap resamples over problems for the confidence intervals (0: none). (default 1000)" in lines


# -- malformed configs ---------------------------------------------------------------------------
def _set(cfg: dict, dotted: str, value) -> dict:
    cfg = copy.deepcopy(cfg)
    node, parts = cfg, dotted.split(".")
    for p in parts[:-1]:
        node = node[int(p)] if p.isdigit() else node[p]
    last = parts[-1]
    if value is _DELETE:
        del node[last]
    elif last.isdigit():
        node[int(last)] = value
    else:
        node[last] = value
    return cfg


_DELETE = object()

# (id, dotted path to change, new value, the start of the message after "FILE: ")
BAD = [
    ("unknown-key", "models.0.modle", "x", "models[0].modle: unknown key"),
    ("unknown-top-key", "temperature", 0.7, "temperature: unknown key"),
    ("wrong-type-int", "num_samples", "many", "num_samples: Input should be a valid integer"),
    ("wrong-type-bool", "num_samples", True, "num_samples: Input should be a valid integer"),
    ("wrong-type-list", "temperatures", "hot", "temperatures: Input should be a valid list"),
    ("wrong-type-nested", "analysis.n_boot", 2.5, "analysis.n_boot: Input should be a valid integer"),
    ("negative-k", "num_samples", -3, "num_samples: Input should be greater than 0"),
    ("zero-k", "num_samples", 0, "num_samples: Input should be greater than 0"),
    ("empty-temperatures", "temperatures", [], "temperatures: List should have at least 1 item"),
    ("negative-temperature", "temperatures", [0.6, -1.0], "temperatures: temperature -1.0 is negative"),
    ("repeated-temperature", "temperatures", [0.6, 0.6], "temperatures: temperatures repeat"),
    ("missing-k", "num_samples", _DELETE, "num_samples: missing required field"),
    ("bad-backend", "models.0.backend", "tensorrt", "models[0].backend: Input should be"),
    ("bad-name", "name", "a b/c", "name: 'a b/c' names a folder: ASCII letters"),
    ("zero-problems", "tasks.0.num_problems", 0, "tasks[0].num_problems: Input should be greater than 0"),
    ("bad-ci", "analysis.ci", 1.5, "analysis.ci: Input should be less than 1"),
    ("bad-forecast-k", "analysis.forecast_to", [100, 0], "analysis.forecast_to[1]: Input should be greater than 0"),
    ("unknown-task", "tasks.0.name", "chess", "tasks[0].name: "),
    ("unknown-verifier", "verifiers.1.name", "oracle9000", "verifiers[1].name: "),
    ("verifier-does-not-fit", "verifiers.0.name", "unit_tests", "verifiers[0]: 'unit_tests' does not fit task 'arithmetic'"),
    ("imperfect-base-does-not-fit", "verifiers.2.options.base", "unit_tests", "verifiers[2]: 'imperfect' does not fit task 'arithmetic'"),
    ("bad-verifier-option", "verifiers.2.options.fpr", 2.0, "verifiers[2].options: "),
    ("unknown-verifier-option", "verifiers.2.options.bogus", 1, "verifiers[2].options: "),
    ("task-verifier-not-in-sweep", "tasks.0.verifiers", ["exact", "math"], "tasks[0].verifiers: 'math' is not in the sweep's verifiers"),
    ("model-not-a-folder", "models.0.model", "./no/such/folder", "models[0].model: './no/such/folder' is not a folder"),
]


def _run_cli(argv: list[str], capsys) -> tuple[int, str, str]:
    code = main(argv)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _assert_one_line_error(code: int, out: str, err: str, path: Path, expected: str) -> None:
    assert code == 2
    assert out == ""
    lines = err.splitlines()
    assert len(lines) == 1, err
    prefix = f"ttscale sweep: error: {path}: "
    assert lines[0].startswith(prefix), lines[0]
    assert lines[0][len(prefix):].startswith(expected), lines[0]


@pytest.mark.parametrize(("field", "value", "expected"), [b[1:] for b in BAD], ids=[b[0] for b in BAD])
@pytest.mark.parametrize("dry_run", [False, True], ids=["run", "dry-run"])
def test_malformed_config_is_one_line_exit_2_and_writes_nothing(
    tmp_path, model_dir, monkeypatch, capsys, field, value, expected, dry_run
):
    monkeypatch.chdir(tmp_path)  # a default out folder (results/) would land here
    out = tmp_path / "sweep-out"
    path = write(tmp_path / "bad.yaml", _set(base_config(model_dir, out), field, value))
    code, stdout, err = _run_cli(["sweep", str(path), "--no-progress", *(["--dry-run"] if dry_run else [])], capsys)
    _assert_one_line_error(code, stdout, err, path, expected)
    assert not out.exists()
    assert not (tmp_path / "results").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.yaml", "models"]


@pytest.mark.parametrize(("text", "expected"), [
    ("name: x\nnum_samples: [1, 2\n", "not valid YAML (line 3)"),
    ("name: x\n  num_samples: 3\n", "not valid YAML (line 2)"),
    ("- just\n- a list\n", "expected a mapping of fields at the top level"),
    ("", "expected a mapping of fields at the top level"),
])
def test_invalid_yaml_is_one_line_exit_2(tmp_path, monkeypatch, capsys, text, expected):
    monkeypatch.chdir(tmp_path)
    path = write(tmp_path / "bad.yaml", text)
    code, stdout, err = _run_cli(["sweep", str(path)], capsys)
    _assert_one_line_error(code, stdout, err, path, expected)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.yaml"]


def test_model_folder_without_config_json_is_rejected(tmp_path, model_dir, capsys):
    empty = tmp_path / "models" / "empty"
    empty.mkdir()
    out = tmp_path / "sweep-out"
    path = write(tmp_path / "bad.yaml", _set(base_config(model_dir, out), "models.0.model", str(empty)))
    code, stdout, err = _run_cli(["sweep", str(path)], capsys)
    _assert_one_line_error(code, stdout, err, path, f"models[0].model: '{empty}' has no config.json")
    assert not out.exists()


def test_missing_config_file_and_no_config(tmp_path, capsys):
    code, _, err = _run_cli(["sweep", str(tmp_path / "nope.yaml")], capsys)
    assert code == 2 and err == f"ttscale sweep: error: {tmp_path / 'nope.yaml'}: no such file\n"
    code, _, err = _run_cli(["sweep"], capsys)
    assert code == 2 and err == "ttscale sweep: error: give the sweep YAML file (or --help-config)\n"


def test_duplicate_labels_are_rejected(tmp_path, model_dir):
    raw = base_config(model_dir, tmp_path / "out")
    raw["models"].append({"model": model_dir})
    with pytest.raises(InputError, match=r"models: label 'tiny-llama' used twice"):
        load_sweep_config(write(tmp_path / "dup.yaml", raw))


def test_valid_config_dry_run_writes_nothing(tmp_path, model_dir, capsys):
    out = tmp_path / "sweep-out"
    path = write(tmp_path / "ok.yaml", base_config(model_dir, out))
    code, stdout, err = _run_cli(["sweep", str(path), "--dry-run"], capsys)
    assert code == 0, err
    assert stdout.splitlines()[-1] == "1 cells, 64 samples, 0 done, 64 to draw"
    assert not out.exists()


@pytest.mark.parametrize(("field", "value", "expected"), [
    ("models.0.model", "./no/such/folder", "models[0].model: './no/such/folder' is not a folder"),
    ("verifiers.0.name", "unit_tests", "verifiers[0]: 'unit_tests' does not fit task 'arithmetic'"),
])
def test_malformed_config_in_a_real_process(tmp_path, model_dir, field, value, expected):
    out = tmp_path / "sweep-out"
    path = write(tmp_path / "bad.yaml", _set(base_config(model_dir, out), field, value))
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    proc = subprocess.run([sys.executable, "-m", "ttscale", "sweep", str(path)], capture_output=True,
                          text=True, cwd=tmp_path, env=env, timeout=120)
    _assert_one_line_error(proc.returncode, proc.stdout, proc.stderr, path, expected)
    assert not out.exists() and not (tmp_path / "results").exists()
