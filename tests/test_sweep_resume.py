"""A sweep killed with SIGKILL in every stage and started again ends as if never interrupted.

``python -m ttscale sweep`` runs as a subprocess (the real model, transformers backend); it is
killed several times at moments drawn from a seeded RNG, each aimed at a stage by polling the
run's progress: start-up (imports, model load), sampling (just after a new sample shard lands),
verifying (just after sampling reports), analysing (while curves, fits and figures are computed)
and reporting. Then it runs to the end. The result must equal an uninterrupted sweep with the
same config: the very samples (text per problem, temperature and sample index), the very
verdicts of each verifier, the same curves, fits and verifier comparison; no duplicate key; every
shard readable; no temporary file taken for a shard.

The transformers backend is deterministic for a seed (each sample owns its generator), so the
two sweeps must agree exactly.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest
import yaml

from ttscale.rundir.store import SAMPLE_KEY, RunDir, shard_paths
from ttscale.sampling.backends.transformers_backend import EMBEDDED_DIR, EMBEDDED_NAMES

MODEL = os.environ.get("TTSCALE_TEST_MODEL", "embedded")
PROBLEMS, K, TEMPS = 5, 16, [0.6, 1.0]
VERIFIERS = ["exact", "majority", "imperfect-exact-fpr0.2-fnr0"]
RUN = Path("m") / "arithmetic"

pytestmark = pytest.mark.skipif(MODEL in EMBEDDED_NAMES and not (EMBEDDED_DIR / "config.json").is_file(),
                                reason="the embedded model is not in ttscale/models/arith-llama")


def write_config(path: Path, out: Path) -> Path:
    cfg = {
        "name": "resume", "out": str(out), "seed": 3, "num_samples": K, "temperatures": TEMPS,
        "max_tokens": 8,
        # one request (problem, temperature) per batch: ten sample shards, kills land between them
        "models": [{"name": "m", "model": MODEL, "options": {"threads": 1, "batch_size": K}}],
        "tasks": [{"name": "arithmetic", "num_problems": PROBLEMS}],
        "verifiers": [{"name": "exact"}, {"name": "majority"},
                      {"name": "imperfect", "options": {"base": "exact", "fpr": 0.2}}],
        "analysis": {"n_boot": 50},
    }
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def command(cfg: Path) -> list[str]:
    return [sys.executable, "-u", "-m", "ttscale", "sweep", str(cfg), "--no-progress"]


def stage_of(log: str) -> str:
    """The stage a sweep is in, from the lines it printed so far."""
    if "sweep done" in log:
        return "done"
    if "analysed" in log:
        return "reporting"
    if log.count(" new verdicts, ") == len(VERIFIERS):
        return "analysing"
    if " new)" in log:
        return "verifying"
    if "sampling ->" in log:
        return "sampling"
    return "starting"


def run_and_kill(cfg: Path, out: Path, target: str, rng: random.Random, log_path: Path,
                 limit: float = 240.0) -> str | None:
    """Start the sweep, SIGKILL it in ``target``; the stage it was killed in (None: it finished)."""
    shards_before = len(shard_paths(out / RUN / "samples"))
    with open(log_path, "w") as log_file:
        proc = subprocess.Popen(command(cfg), stdout=log_file, stderr=subprocess.STDOUT)
    start = time.time()

    def log() -> str:
        return log_path.read_text()

    def wait(cond) -> None:
        while proc.poll() is None and not cond():
            if time.time() - start > limit:
                raise AssertionError(f"no progress towards {target}: {log()[-2000:]}")
            time.sleep(0.01)

    try:
        def new_shard() -> bool:
            return len(shard_paths(out / RUN / "samples")) > shards_before

        if target == "starting":  # 1-6 s in, but never later than the first shard (fast machines)
            deadline = start + rng.uniform(1.0, 6.0)
            wait(lambda: time.time() > deadline or new_shard())
        elif target == "sampling":
            wait(lambda: new_shard() or " new)" in log())
            time.sleep(rng.uniform(0.0, 0.1))
        elif target == "verifying":
            wait(lambda: " new)" in log())
            time.sleep(rng.uniform(0.0, 0.3))
        elif target == "analysing":
            wait(lambda: log().count(" new verdicts, ") == len(VERIFIERS))
            time.sleep(rng.uniform(0.1, 1.0))  # analysis takes seconds: imports, bootstrap, fits, figures
        else:  # reporting: sweep figure and report.html
            wait(lambda: "analysed" in log())
            time.sleep(rng.uniform(0.0, 0.5))
        if proc.poll() is not None:
            assert proc.returncode == 0, log()[-3000:]
            return None
        stage = stage_of(log())
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        return stage
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def read_all(out: Path) -> dict[str, pd.DataFrame | str]:
    run = RunDir(out / RUN)
    got: dict[str, pd.DataFrame | str] = {"samples": run.read_samples()}
    for v in VERIFIERS:
        got[v] = run.read_verdicts(v)
    got["curves"] = pd.read_parquet(out / RUN / "analysis" / "curves.parquet")
    got["compare"] = pd.read_parquet(out / RUN / "analysis" / "compare" / "compare.parquet")
    got["fits"] = (out / RUN / "analysis" / "fits.json").read_text().replace(str(out), "<OUT>")
    return got


def canonical(df: pd.DataFrame) -> pd.DataFrame:
    key = [c for c in df.columns if c not in ("estimate", "ci_low", "ci_high", "accuracy", "fpr", "fnr",
                                              "text", "seed", "num_prompt_tokens", "num_output_tokens",
                                              "finish_reason", "passed", "score", "answer", "status", "error")]
    return df.sort_values(key).reset_index(drop=True)


@pytest.mark.slow
def test_sweep_killed_in_every_stage_resumes_to_the_uninterrupted_results(tmp_path):
    rng = random.Random(20261123)
    killed_out, ref_out = tmp_path / "killed", tmp_path / "reference"
    cfg = write_config(tmp_path / "killed.yaml", killed_out)
    stages = []
    for i, target in enumerate(["starting", "sampling", "sampling", "verifying", "analysing", "reporting"]):
        t0 = time.time()
        stage = run_and_kill(cfg, killed_out, target, rng, tmp_path / f"kill{i}.log")
        print(f"aimed at {target}: killed in {stage or '(finished)'} after {time.time() - t0:.1f} s")
        if stage is not None:
            stages.append(stage)
    # the kills really interrupted the sweep, in several different stages
    assert len(stages) >= 4, stages
    assert {"starting", "sampling"} & set(stages) and "analysing" in stages, stages
    assert len(set(stages)) >= 3, stages

    t0 = time.time()
    done = subprocess.run(command(cfg), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    ref = subprocess.run(command(write_config(tmp_path / "reference.yaml", ref_out)), capture_output=True,
                         text=True, timeout=600)
    assert ref.returncode == 0, ref.stderr[-3000:]
    print(f"resumed and reference runs: {time.time() - t0:.1f} s")

    for folder in [killed_out / RUN / "samples", *[killed_out / RUN / "verdicts" / v for v in VERIFIERS]]:
        paths = shard_paths(folder)
        assert paths and all(not p.name.startswith(".") for p in paths)
        for p in paths:
            pq.read_table(p)  # every shard readable
    got, want = read_all(killed_out), read_all(ref_out)
    samples = got["samples"]
    assert not samples.duplicated(SAMPLE_KEY).any()
    sizes = samples.groupby(["problem_id", "temperature"]).size()
    assert len(sizes) == PROBLEMS * len(TEMPS) and (sizes == K).all()
    for v in VERIFIERS:
        assert not got[v].duplicated(SAMPLE_KEY).any() and len(got[v]) == PROBLEMS * len(TEMPS) * K
    for name in ["samples", *VERIFIERS, "curves", "compare"]:
        pd.testing.assert_frame_equal(canonical(got[name]), canonical(want[name]), obj=name)
    assert got["fits"] == want["fits"]
    assert (killed_out / "report.html").is_file()
