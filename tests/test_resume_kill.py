"""A sampling run killed with SIGKILL at random moments resumes to exactly the uninterrupted run.

``python -m ttscale sample`` runs as a subprocess with the embedded model and small batches (many
shards); it is killed several times, at moments drawn from a seeded RNG (some while it starts,
most just after a shard lands, so kills hit the middle of batches and of shard writes), then run
to completion. The result must hold exactly K samples per (problem, temperature), no duplicate
key, every shard readable, and the very samples of a run that was never interrupted.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time

import pandas as pd
import pyarrow.parquet as pq
import pytest

from ttscale.rundir.store import SAMPLE_KEY, RunDir, shard_paths

MODEL = os.environ.get("TTSCALE_TEST_MODEL", "embedded")
# K large enough that sampling outlasts the kills on a fast, idle machine (240 samples did not)
K, PROBLEMS, TEMPS = 120, 5, "0.6,1.0"


def command(out) -> list[str]:
    return [sys.executable, "-m", "ttscale", "sample", "--backend", "transformers", "--model", MODEL,
            "--task", "arithmetic", "--num-problems", str(PROBLEMS), "-k", str(K),
            "--temperatures", TEMPS, "--max-tokens", "8", "--batch-size", "8",
            "--max-n-per-request", "5", "--threads", "1", "--out", str(out), "--quiet"]


def kill_at_random(out, rng: random.Random, wait_for_shard: bool, limit: float = 300.0) -> bool:
    """Start the command and SIGKILL it; True if it was killed before finishing."""
    before = len(shard_paths(out / "samples"))
    proc = subprocess.Popen(command(out), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    start = time.time()
    try:
        if wait_for_shard:  # wait for a new shard, then kill a random moment later
            while proc.poll() is None and len(shard_paths(out / "samples")) <= before:
                if time.time() - start > limit:
                    raise AssertionError("no shard appeared")
                time.sleep(0.01)
            time.sleep(rng.uniform(0.0, 0.3))
        else:  # anywhere in start-up: imports, model load, run.json/problems writes
            time.sleep(rng.uniform(0.5, 4.0))
        if proc.poll() is not None:
            assert proc.returncode == 0, proc.stderr.read().decode()
            return False
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        return True
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.mark.slow
def test_sigkill_at_random_moments_then_resume_gives_the_uninterrupted_samples(tmp_path):
    rng = random.Random(20261123)
    out = tmp_path / "killed"
    kills = 0
    for attempt in range(4):
        kills += kill_at_random(out, rng, wait_for_shard=attempt > 0)
    assert kills >= 2  # the run was really interrupted
    partial = RunDir(out).read_samples() if (out / "samples").is_dir() else pd.DataFrame()
    assert len(partial) < PROBLEMS * 2 * K
    done = subprocess.run(command(out), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr

    from ttscale.sampling.sampler import SampleSettings, run_sampling

    ref_dir = tmp_path / "reference"  # the same settings, uninterrupted, in this process
    run_sampling(SampleSettings(model=MODEL, task="arithmetic", num_problems=PROBLEMS, num_samples=K,
                                temperatures=[0.6, 1.0], max_tokens=8, backend_options={"batch_size": 8, "threads": 1},
                                max_n_per_request=5), ref_dir, progress=False)

    for path in shard_paths(out / "samples"):
        pq.read_table(path)  # every shard readable
    got = RunDir(out).read_samples()
    assert not got.duplicated(SAMPLE_KEY).any()
    sizes = got.groupby(["problem_id", "temperature"]).size()
    assert len(sizes) == PROBLEMS * 2 and (sizes == K).all()
    for _, g in got.groupby(["problem_id", "temperature"]):
        assert sorted(g["sample_index"]) == list(range(K))
    key = ["problem_id", "temperature", "sample_index"]
    a = got.sort_values(key).reset_index(drop=True)
    b = RunDir(ref_dir).read_samples().sort_values(key).reset_index(drop=True)
    pd.testing.assert_frame_equal(a, b)
    # leftover temporary files of killed writes are never read as shards
    assert all(not p.name.startswith(".") for p in shard_paths(out / "samples"))
