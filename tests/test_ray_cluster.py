"""executor: ray against faults of a real two-node Ray cluster (``ray.cluster_utils.Cluster``:
a head and worker nodes, each a real raylet, started once for the module).

A worker node removed mid-sampling: the run finishes on the other node with the samples of the
single-process run; the only node removed: one line with the resume command, the samples written
kept, and the resume completes; a node removed mid-verify: no verdict that was not computed,
verdicts equal to local; an address with nothing (or no Ray) behind it: one line; SIGINT while
connecting and while placing: the process ends; a replica no node can hold: one line naming what
the largest node has. Skipped when the ``ray`` extra is not installed.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time

import pandas as pd
import pytest

import ttscale
from ttscale.errors import InputError
from ttscale.rundir.store import SAMPLE_KEY, RunDir
from ttscale.sampling.backends.base import Backend
from ttscale.sampling.sampler import SampleSettings, run_sampling

ray = pytest.importorskip("ray")
cluster_utils = pytest.importorskip("ray.cluster_utils")
pytestmark = [pytest.mark.ray, pytest.mark.slow]

BASE = dict(model="embedded", task="arithmetic", num_problems=6, num_samples=8, temperatures=[1.0],
            max_tokens=8, seed=0, backend_options={"threads": 1, "batch_size": 4})
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def cluster():
    """A head node with 1 CPU; tests add (and remove) 1-CPU worker nodes."""
    if ray.is_initialized():
        ray.shutdown()
    c = cluster_utils.Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    ray.init(address=c.address, logging_level="ERROR", log_to_driver=False)
    yield c
    ray.shutdown()
    c.shutdown()


def wait_cpus(n: float, timeout: float = 120) -> None:
    """Until the cluster has ``n`` CPUs free (the last test's actors are gone)."""
    end = time.time() + timeout
    while time.time() < end and ray.available_resources().get("CPU", 0) < n:
        time.sleep(0.2)
    assert ray.available_resources().get("CPU", 0) >= n


@pytest.fixture(scope="module")
def local_run(tmp_path_factory) -> pd.DataFrame:
    out = tmp_path_factory.mktemp("local") / "run"
    run_sampling(SampleSettings(**BASE), out, progress=False)
    return sorted_samples(out)


def sorted_samples(path) -> pd.DataFrame:
    return RunDir(path).read_samples().sort_values(SAMPLE_KEY).reset_index(drop=True)


def ray_settings(**opts) -> SampleSettings:
    return SampleSettings(**BASE, executor="ray", executor_options={"batch_samples": 4, "in_flight": 1,
                                                                     "place_timeout": 3, **opts})


class RemoveNodeAfterFirstChunk(Backend):
    """The Ray backend, with ``node`` removed from the cluster once the first chunk is back."""

    name = "remove-node"

    def __init__(self, inner, cluster, node):
        self.inner, self.cluster, self.node = inner, cluster, node

    def info(self):
        return self.inner.info()

    def fault_counts(self):
        return self.inner.fault_counts()

    def generate(self, requests):
        for i, batch in enumerate(self.inner.generate(requests)):
            if i == 0:
                self.cluster.remove_node(self.node)
            yield batch


def test_a_node_lost_mid_sampling_the_run_finishes_on_the_other(cluster, local_run, tmp_path, capfd):
    from ttscale.sampling.executors import executor_of
    from ttscale.sampling.executors.ray_sampling import RayBackend

    wait_cpus(1)
    node = cluster.add_node(num_cpus=1)  # replica r0 or r1 lands there, the other on the head
    # the replacement's placement bound: 1 ms, far below what the survivor needs to redo the lost
    # chunk (a model call and two Ray round trips), so work always remains when the bound passes
    # and the replacement is always dropped (with 0.5 s the survivor could finish the whole run
    # first on a loaded machine, and nothing was left to drop it for)
    s = ray_settings(replicas=2, place_timeout=0.001)
    backend = RayBackend(s, executor_of(s).ray)
    try:
        res = run_sampling(s, tmp_path / "run", progress=False,
                           backend=RemoveNodeAfterFirstChunk(backend, cluster, node))
    finally:
        backend.close()
    assert res.written == 48
    pd.testing.assert_frame_equal(sorted_samples(tmp_path / "run"), local_run)
    # the lost replica's replacement has no node to go to: dropped, its work done by the other
    faults = backend.stats.faults()
    assert faults == {"replica_deaths": 1, "restarts": 1, "dropped": 1, "lost_chunks": backend.stats.lost_chunks}
    assert backend.stats.lost_chunks >= 1
    assert RunDir(tmp_path / "run").read_config()["executor_faults"]["dropped"] == 1
    err = capfd.readouterr().err
    assert err.count("executor ray: replica r") == 1 and "died" in err  # one line per fault
    assert err.count("could not be placed within 0.001 s") == 1 and "freest node has CPU 0 free" in err
    assert "the largest node" not in err
    assert backend.progress_note().startswith("| 1/2 live |") and "dropped" in backend.progress_note()


def test_the_only_node_lost_ends_with_the_resume_command_and_the_resume_finishes(
        cluster, local_run, tmp_path):
    wait_cpus(1)
    blocker = ray.remote(num_cpus=1)(type("Blocker", (), {"ping": lambda self: 1})).remote()
    ray.get(blocker.ping.remote())  # holds the head's CPU: the replica goes to the worker node
    node = cluster.add_node(num_cpus=1)
    out = tmp_path / "run"
    shards = []

    def remove_when_written():  # as soon as the first shard is on disk
        while not shards:
            if (out / "samples").is_dir() and any((out / "samples").iterdir()):
                shards.append(1)
                cluster.remove_node(node)
            time.sleep(0.02)

    t = threading.Thread(target=remove_when_written, daemon=True)
    t.start()
    s = ray_settings(replicas=1, batch_samples=2)
    with pytest.raises(InputError) as e:
        ttscale.sample(**{k: v for k, v in s.model_dump().items() if v is not None and k != "adaptive"},
                       out=out, progress=False)
    t.join(5)
    assert e.value.exit_code == 3
    assert str(e.value).endswith(f"resume with: ttscale sample {out}")
    kept = RunDir(out).read_samples()
    assert 0 < len(kept) < 48 and not kept.duplicated(SAMPLE_KEY).any()
    assert RunDir(out).read_config()["executor_faults"] == {
        "dropped": 1, "lost_chunks": RunDir(out).read_config()["executor_faults"]["lost_chunks"],
        "replica_deaths": 1, "restarts": 1}
    ray.kill(blocker)
    wait_cpus(1)
    ttscale.sample(run_dir=out, progress=False)  # the command the line gave
    pd.testing.assert_frame_equal(sorted_samples(out), local_run)


def test_a_node_lost_mid_verify_records_no_verdict_it_did_not_compute(cluster, tmp_path):
    from ttscale.sampling.executors import parse_executor
    from ttscale.verification.verify import verify_run

    out = tmp_path / "run"
    run_sampling(SampleSettings(**{**BASE, "num_problems": 40, "num_samples": 2}), out, progress=False)
    local = verify_run(out, "exact", out_name="local")
    wait_cpus(1)
    node = cluster.add_node(num_cpus=1)
    spec = parse_executor("ray", {"verify_workers": 2, "place_timeout": 3}, "test")
    removed = []

    def progress(done, total):
        if not removed:
            removed.append(done)
            cluster.remove_node(node)

    # a time limit shorter than the wait for the lost node: the old driver timed its tasks out
    res = verify_run(out, "exact", out_name="ray", executor=spec, progress=progress, time_limit=2,
                     time_limit_per_sample=0)
    assert removed and res.verified == 80 and res.errors == 0 and res.passed == local.passed
    a = RunDir(out).read_verdicts("local").sort_values(SAMPLE_KEY).reset_index(drop=True)
    b = RunDir(out).read_verdicts("ray").sort_values(SAMPLE_KEY).reset_index(drop=True)
    pd.testing.assert_frame_equal(a, b)
    assert set(b["status"]) <= {"pass", "fail"}  # no timeout, no error: every verdict computed
    again = verify_run(out, "exact", out_name="ray", executor=spec)
    assert (again.verified, again.skipped) == (0, 80)


def test_the_only_verifier_node_lost_leaves_the_rest_pending_for_the_next_verify(cluster, tmp_path):
    from ttscale.sampling.executors import parse_executor
    from ttscale.sampling.executors.cluster import ClusterLost
    from ttscale.verification.verify import verify_run

    out = tmp_path / "run"
    run_sampling(SampleSettings(**{**BASE, "num_problems": 20, "num_samples": 2}), out, progress=False)
    verify_run(out, "exact", out_name="local")
    wait_cpus(1)
    blocker = ray.remote(num_cpus=1)(type("Blocker", (), {"ping": lambda self: 1})).remote()
    ray.get(blocker.ping.remote())  # the head is full: the only worker goes to the node removed
    node = cluster.add_node(num_cpus=1)
    spec = parse_executor("ray", {"verify_workers": 1, "place_timeout": 1}, "test")

    def progress(done, total):
        if node in cluster.worker_nodes:
            cluster.remove_node(node)

    try:
        with pytest.raises(ClusterLost, match="the other samples stay pending: run verify again"):
            verify_run(out, "exact", out_name="ray", executor=spec, progress=progress, time_limit=1,
                       time_limit_per_sample=0)
        kept = RunDir(out).read_verdicts("ray")
        assert 0 < len(kept) < 40 and set(kept["status"]) <= {"pass", "fail"}  # only computed ones
    finally:
        ray.kill(blocker)
    wait_cpus(1)
    again = verify_run(out, "exact", out_name="ray", executor=spec)
    assert again.verified == 40 - len(kept) and again.errors == 0
    a = RunDir(out).read_verdicts("local").sort_values(SAMPLE_KEY).reset_index(drop=True)
    b = RunDir(out).read_verdicts("ray").sort_values(SAMPLE_KEY).reset_index(drop=True)
    pd.testing.assert_frame_equal(a, b)


def test_a_replica_no_node_can_hold_is_one_line_naming_the_largest_node(cluster, tmp_path):
    wait_cpus(1)
    node = cluster.add_node(num_cpus=1)  # 2 CPUs in all, 1 per node
    try:
        with pytest.raises(InputError, match=r"one replica needs CPU 1.5 on one node; the largest "
                                             r"of the cluster's 2 node\(s\) has CPU 1"):
            run_sampling(ray_settings(num_cpus=1.5, replicas=1), tmp_path / "run", progress=False)
        from ttscale.sampling.executors.cluster import fitting

        assert fitting({"CPU": 1.0}, 3, "replica", fit=True) == 2  # a resume fits, one line
        with pytest.raises(InputError, match="3 replicas need CPU 3; the cluster holds 2"):
            fitting({"CPU": 1.0}, 3, "replica")
    finally:
        cluster.remove_node(node)
    assert not (tmp_path / "run").exists()


def _cli(tmp_path, env: dict[str, str], *extra: str) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "ttscale", "sample", "--task", "arithmetic", "-k", "4",
           "--num-problems", "2", "--max-tokens", "4", "--out", str(tmp_path / "run"),
           "--executor", "ray", *extra]
    return subprocess.Popen(cmd, env={**os.environ, "PYTHONPATH": ROOT, **env},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def silent_http2_server() -> int:
    """A port that answers an HTTP/2 preface (as Ray's GCS does) and then never again: Ray's
    client blocks in its C++ code for ~35 s there."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)

    def serve():
        while True:
            conn, _ = sock.accept()
            conn.recv(1024)
            conn.sendall(bytes([0, 0, 0, 4, 0, 0, 0, 0, 0]))
            threading.Thread(target=lambda c=conn: time.sleep(3600), daemon=True).start()

    threading.Thread(target=serve, daemon=True).start()
    return sock.getsockname()[1]


def test_an_address_with_nothing_behind_it_is_one_line(tmp_path):
    refused = socket.socket()
    refused.bind(("127.0.0.1", 0))
    port = refused.getsockname()[1]  # bound, not listening: connection refused
    proc = _cli(tmp_path, {"RAY_ADDRESS": f"127.0.0.1:{port}"})
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 2
    assert err.strip().splitlines() == [
        f"ttscale sample: error: executor ray: no Ray cluster answers at 127.0.0.1:{port} (Connection "
        "refused within 5 s); start a cluster with `ray start --head` or set RAY_ADDRESS / "
        "executor_options.address to its address"]
    assert not (tmp_path / "run").exists()


def test_sigint_while_connecting_ends_the_process(tmp_path):
    proc = _cli(tmp_path, {"RAY_ADDRESS": f"127.0.0.1:{silent_http2_server()}"})
    from ttscale.sampling.executors.cluster import GRACE

    time.sleep(6)  # importing, then blocked in Ray's client (it waits ~35 s there)
    assert proc.poll() is None
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=GRACE + 30)
    assert proc.returncode in (2, 130), err
    assert len(err.strip().splitlines()) == 1, err


def test_sigint_while_placing_ends_the_process(cluster, tmp_path):
    wait_cpus(1)
    blocker = ray.remote(num_cpus=1)(type("Blocker", (), {"ping": lambda self: 1})).remote()
    ray.get(blocker.ping.remote())  # the only CPU is taken: the replica waits to be placed
    try:
        proc = _cli(tmp_path, {"RAY_ADDRESS": cluster.address}, "--replicas", "1")
        from ray._private.state import state

        end = time.time() + 120
        while time.time() < end and not any(
                a.get("State") == "PENDING_CREATION" and a.get("ActorClassName") == "Replica"
                for a in state.actor_table(None).values()):
            time.sleep(0.2)
        assert proc.poll() is None
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
        assert proc.returncode == 130, err
        assert err.strip().splitlines()[-1] == "ttscale sample: interrupted"
    finally:
        ray.kill(blocker)
    wait_cpus(1)  # the pending replica went with the driver
