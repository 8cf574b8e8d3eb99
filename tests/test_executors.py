"""Executor choice without a cluster: option checking, the local executor, one-line errors.

(Runs on a real Ray cluster are in test_ray_executor.py, skipped without the ray extra.)
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from ttscale.errors import InputError
from ttscale.sampling.executors import ExecutorSpec, parse_executor


def test_local_is_the_default_and_takes_no_options():
    assert parse_executor(None, None, "x").is_local
    with pytest.raises(InputError, match=r"^cfg.yaml: executor_options: 'replicas' is only for executor: ray$"):
        parse_executor("local", {"replicas": 2}, "cfg.yaml")


def test_ray_options_are_checked_naming_the_key():
    spec = parse_executor("ray", {"replicas": 4, "num_gpus": 1, "address": "10.0.0.1:6379"}, "c")
    assert isinstance(spec, ExecutorSpec) and spec.ray.replicas == 4 and spec.ray.num_gpus == 1
    with pytest.raises(InputError, match=r"^c: executor_options.replicas: Input should be greater than 0$"):
        parse_executor("ray", {"replicas": 0}, "c")
    with pytest.raises(InputError, match=r"^c: executor_options.gpus: unknown key$"):
        parse_executor("ray", {"gpus": 1}, "c")
    with pytest.raises(InputError, match=r"^c: executor: 'dask' is not one of local, ray$"):
        parse_executor("dask", {}, "c")


def test_sweep_config_names_the_bad_executor_option(tmp_path):
    import yaml

    from ttscale.orchestration.config import load_sweep_config
    from ttscale.orchestration.sweeps import plan

    cfg = {"name": "s", "num_samples": 2, "temperatures": [1.0], "models": [{"model": "embedded"}],
           "tasks": [{"name": "arithmetic"}], "verifiers": [{"name": "exact"}],
           "executor": "ray", "executor_options": {"replica": 2}}
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(cfg))
    with pytest.raises(InputError, match=r"s.yaml: executor_options.replica: unknown key"):
        plan(load_sweep_config(path), str(path))
    path.write_text(yaml.safe_dump({**cfg, "executor": "spark"}))
    with pytest.raises(InputError, match=r"s.yaml: executor: "):
        load_sweep_config(path)


def test_cli_ray_flags_without_the_ray_executor_are_one_line_and_exit_2(tmp_path):
    out = tmp_path / "run"
    proc = subprocess.run([sys.executable, "-m", "ttscale", "sample", "--task", "arithmetic", "-k", "2",
                           "--replicas", "2", "--out", str(out)], capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1].endswith(
        "executor_options: 'replicas' is only for executor: ray")
    assert not out.exists()
