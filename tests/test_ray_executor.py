"""executor: ray on a real local Ray cluster (2 CPUs, started once for the module, stopped after).

The embedded model sampled by 2 replicas equals the single-process run byte for byte; a replica
killed mid-run changes nothing in the final samples (its chunks are re-planned); verification on
Ray equals local verification; a sweep with ``executor: ray`` whose driver is SIGKILLed resumes
and completes with the same samples. Skipped when the ``ray`` extra is not installed.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest
import yaml

from ttscale.errors import InputError
from ttscale.rundir.store import SAMPLE_KEY, RunDir, shard_paths
from ttscale.sampling.backends.base import Backend
from ttscale.sampling.sampler import SampleSettings, load_problems, plan_requests, run_sampling

ray = pytest.importorskip("ray")
pytestmark = pytest.mark.ray

MODEL = os.environ.get("TTSCALE_TEST_MODEL", "embedded")
BASE = dict(model=MODEL, task="arithmetic", num_problems=6, num_samples=8, temperatures=[1.0],
            max_tokens=8, seed=0, backend_options={"threads": 1, "batch_size": 8})


@pytest.fixture(scope="module")
def cluster():
    if ray.is_initialized():
        ray.shutdown()
    ctx = ray.init(address="local", num_cpus=2, include_dashboard=False, logging_level="ERROR")
    yield ctx.address_info["gcs_address"]
    ray.shutdown()


@pytest.fixture(scope="module")
def local_run(tmp_path_factory) -> pd.DataFrame:
    """The single-process run every Ray run must equal."""
    out = tmp_path_factory.mktemp("local") / "run"
    run_sampling(SampleSettings(**BASE), out, progress=False)
    return sorted_samples(out)


def sorted_samples(path) -> pd.DataFrame:
    return RunDir(path).read_samples().sort_values(SAMPLE_KEY).reset_index(drop=True)


def ray_settings(**opts) -> SampleSettings:
    return SampleSettings(**BASE, executor="ray", executor_options={"replicas": 2, **opts})


def test_two_replicas_equal_the_single_process_run(cluster, local_run, tmp_path):
    res = run_sampling(ray_settings(), tmp_path / "run", progress=False)
    assert res.written == 48
    got = sorted_samples(tmp_path / "run")
    pd.testing.assert_frame_equal(got, local_run)  # texts, seeds, token counts, finish reasons
    info = RunDir(tmp_path / "run").read_config()["backend_info"]
    assert info["name"] == "transformers" and info["extra"]["executor"]["replicas"] == 2
    assert len(shard_paths(tmp_path / "run" / "samples")) == 6  # one shard per chunk of 8


class KillOneReplica(Backend):
    """The Ray backend, with replica 0 killed (``ray.kill``) as soon as the first chunk is back."""

    name = "kill-one"

    def __init__(self, inner):
        self.inner = inner

    def info(self):
        return self.inner.info()

    def fault_counts(self):
        return self.inner.fault_counts()

    def generate(self, requests):
        for i, batch in enumerate(self.inner.generate(requests)):
            if i == 0:
                ray.kill(self.inner.slots[0].handle)
            yield batch


def test_a_replica_killed_mid_run_changes_nothing(cluster, local_run, tmp_path):
    from ttscale.sampling.executors import executor_of
    from ttscale.sampling.executors.ray_sampling import RayBackend

    s = ray_settings(batch_samples=4, in_flight=2)
    backend = RayBackend(s, executor_of(s).ray)
    try:
        res = run_sampling(s, tmp_path / "run", backend=KillOneReplica(backend), progress=False)
        note = backend.progress_note()  # the terminal's per-replica figures
    finally:
        backend.close()
    assert backend.stats.replica_deaths == 1 and backend.stats.restarts == 1
    assert backend.stats.lost_chunks >= 1  # its queued chunks were lost and sampled again
    # the replacement gets chunks once loaded: live, or still loading when the other one finished
    assert note.startswith(("| 2/2 live | r0 ", "| 1/2 live | r0 placing")), note
    assert " | r1 " in note and "dropped" not in note, note
    assert backend.fault_counts()["replica_deaths"] == 1
    assert RunDir(tmp_path / "run").read_config()["executor_faults"]["replica_deaths"] == 1
    assert sum(r["samples"] for r in backend.stats.per_replica) == 48  # each sample came back once
    assert res.written == 48
    got = sorted_samples(tmp_path / "run")
    assert not got.duplicated(SAMPLE_KEY).any()
    pd.testing.assert_frame_equal(got, local_run)


def test_replicas_beyond_the_cluster_are_one_clear_error(cluster, tmp_path):
    with pytest.raises(InputError, match="replicas: 3 replicas need CPU 3; the cluster holds 2"):
        run_sampling(ray_settings(replicas=3), tmp_path / "run", progress=False)
    assert not (tmp_path / "run" / "samples").exists()
    with pytest.raises(InputError, match="executor_options.replica: unknown key"):
        from ttscale.sampling.sampler import parse_settings

        parse_settings({**BASE, "executor": "ray", "executor_options": {"replica": 2}}, "cfg.yaml")


def test_a_model_the_replicas_cannot_load_is_one_line_and_frees_the_cluster(cluster, tmp_path):
    s = SampleSettings(**{**BASE, "model": str(tmp_path / "no-model")}, executor="ray",
                       executor_options={"replicas": 2})
    with pytest.raises(InputError, match=r"^model='.*no-model': cannot load it"):
        run_sampling(s, tmp_path / "run", progress=False)
    assert not (tmp_path / "run").exists()
    deadline = time.time() + 30
    while time.time() < deadline and ray.available_resources().get("CPU", 0) < 2:
        time.sleep(0.1)
    assert ray.available_resources().get("CPU", 0) == 2  # the failed replicas were stopped


def test_verification_on_ray_equals_local(cluster, tmp_path, local_run):
    from ttscale.sampling.executors import parse_executor
    from ttscale.verification.verify import verify_run

    out = tmp_path / "run"
    run_sampling(SampleSettings(**BASE), out, progress=False)
    spec = parse_executor("ray", {"verify_workers": 2}, "test")
    for name in ("exact", "majority"):
        local = verify_run(out, name, out_name=f"{name}-local")
        remote = verify_run(out, name, out_name=f"{name}-ray", executor=spec)
        assert (remote.verified, remote.passed, remote.errors) == (local.verified, local.passed, 0)
        a = RunDir(out).read_verdicts(f"{name}-local").sort_values(SAMPLE_KEY).reset_index(drop=True)
        b = RunDir(out).read_verdicts(f"{name}-ray").sort_values(SAMPLE_KEY).reset_index(drop=True)
        pd.testing.assert_frame_equal(a, b)
        again = verify_run(out, name, out_name=f"{name}-ray", executor=spec)  # resumable: all done
        assert (again.verified, again.skipped) == (0, 48)


def test_verification_on_ray_keeps_the_time_limit(cluster, tmp_path):
    from ttscale.sampling.executors import parse_executor
    from ttscale.verification.verify import verify_run

    out = tmp_path / "run"
    run_sampling(SampleSettings(**{**BASE, "num_problems": 3, "num_samples": 2}), out, progress=False)
    spec = parse_executor("ray", {"verify_workers": 1, "max_restarts": 0}, "test")
    res = verify_run(out, "exact", executor=spec, time_limit=1e-6, time_limit_per_sample=0)
    assert (res.verified, res.errors, res.passed) == (6, 6, 0)  # each worker killed, replaced
    verdicts = RunDir(out).read_verdicts("exact")
    assert set(verdicts["status"]) == {"timeout"} and verdicts["error"].str.contains("took over").all()


def test_a_sweep_on_ray_resumes_after_sigkill_of_its_driver(cluster, tmp_path, local_run):
    cfg = {"name": "ray-sweep", "out": str(tmp_path / "sweep"), "seed": 0, "num_samples": 8,
           "temperatures": [1.0], "max_tokens": 8, "report": False,
           "models": [{"name": "m", "model": MODEL, "options": {"threads": 1, "batch_size": 8}}],
           "tasks": [{"name": "arithmetic", "num_problems": 6}],
           "verifiers": [{"name": "exact"}], "analysis": {"n_boot": 20},
           # one sample per chunk and one chunk at a time: 48 shards, so the kill lands mid-sampling
           "executor": "ray", "executor_options": {"replicas": 1, "in_flight": 1, "batch_samples": 1}}
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(cfg))
    env = {**os.environ, "RAY_ADDRESS": cluster}
    cmd = [sys.executable, "-u", "-m", "ttscale", "sweep", str(path), "--no-progress"]
    samples = tmp_path / "sweep" / "m" / "arithmetic" / "samples"
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 240
    while time.time() < deadline and not shard_paths(samples) and proc.poll() is None:
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    first = len(shard_paths(samples))
    assert 1 <= first < 48, "the driver was not killed mid-sampling"
    while time.time() < deadline and ray.available_resources().get("CPU", 0) < 2:
        time.sleep(0.1)  # the dead driver's replica goes with it: no CPU stays held
    assert ray.available_resources().get("CPU", 0) == 2
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    run = tmp_path / "sweep" / "m" / "arithmetic"
    pd.testing.assert_frame_equal(sorted_samples(run), local_run)
    assert len(RunDir(run).read_verdicts("exact")) == 48
    assert (run / "analysis" / "curves.parquet").is_file()


def test_a_local_run_never_imports_ray(tmp_path):
    code = ("import sys\n"
            "from ttscale.sampling.sampler import SampleSettings, run_sampling\n"
            f"run_sampling(SampleSettings(**{BASE!r}), {str(tmp_path / 'run')!r}, progress=False)\n"
            "import ttscale.sampling.executors, ttscale.verification.verify, ttscale.orchestration.sweeps\n"
            "assert 'ray' not in sys.modules, 'ray was imported'\n")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=300)
    assert len(RunDir(tmp_path / "run").read_samples()) == 48


def test_chunks_keep_every_sample_and_its_seed():
    from ttscale.sampling.executors.ray_sampling import split_requests

    s = SampleSettings(**{**BASE, "num_samples": 10})
    problems, stop = load_problems(s)
    reqs = plan_requests(problems, s, RunDir("/nonexistent").read_samples(SAMPLE_KEY), stop)
    chunks = split_requests(reqs, 7)
    assert [sum(r.n for r in c) for c in chunks] == [7] * 8 + [4]
    flat = [(r.problem_id, r.first_index + j, r.seed + j) for c in chunks for r in c for j in range(r.n)]
    want = [(r.problem_id, r.first_index + j, r.seed + j) for r in reqs for j in range(r.n)]
    assert flat == want
