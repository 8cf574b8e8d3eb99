"""Run-directory integrity: stage locks, duplicate verdicts, stale temporary files, file modes,
and full disks.

Real processes throughout: a lock is held by another Python process, concurrent ``ttscale
verify`` / ``ttscale sweep`` are real subprocesses, the full disk is a real tmpfs (skipped where
mounting is not permitted), the killed writer gets a real SIGKILL.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from ttscale.cli import main
from ttscale.errors import InputError
from ttscale.plugins import Problem, problems_frame
from ttscale.rundir.locks import StageBusy, lock_path, stage_lock
from ttscale.rundir.store import SAMPLE_KEY, RunDir, atomic_write_json, shard_paths
from ttscale.verification.verify import verify_run

REPO = Path(__file__).resolve().parents[1]


def sample_rows(pid: str, texts: list[str]) -> list[dict]:
    return [{"problem_id": pid, "temperature": 0.5, "sample_index": j, "seed": j, "text": t,
             "num_prompt_tokens": 2, "num_output_tokens": 3, "finish_reason": "stop"}
            for j, t in enumerate(texts)]


def answer_run(path: Path, problems: int = 3, k: int = 4) -> RunDir:
    run = RunDir(path)
    run.write_problems(problems_frame(
        [Problem(f"p{i}", "arithmetic", f"{i}+{i}=", {"answer": str(2 * i)}) for i in range(problems)]))
    run.write_samples(pd.DataFrame([r for i in range(problems)
                                    for r in sample_rows(f"p{i}", [str(2 * i + j % 2) for j in range(k)])]))
    return run


class Holder:
    """Another Python process holding a stage lock until told to let go."""

    def __init__(self, run_dir: Path, stage: str):
        code = ("import sys\nfrom ttscale.rundir.locks import stage_lock\n"
                f"with stage_lock({str(run_dir)!r}, {stage!r}):\n"
                "    print('held', flush=True)\n    sys.stdin.read()\n")
        self.proc = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout.readline().strip() == "held"

    def release(self) -> None:
        self.proc.stdin.close()
        assert self.proc.wait(timeout=30) == 0


def test_a_held_stage_refuses_a_second_process_with_one_line(tmp_path: Path, capsys) -> None:
    run = answer_run(tmp_path / "run")
    holder = Holder(run.path, "verify:exact")
    try:
        with pytest.raises(StageBusy, match=rf"stage 'verify:exact' is already running.*pid {holder.proc.pid}"):
            with stage_lock(run.path, "verify:exact"):
                pass
        assert main(["verify", str(run.path), "--verifier", "exact"]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and f"pid {holder.proc.pid}" in err, err
        assert not shard_paths(run.verdicts_dir("exact"))  # nothing written
        with stage_lock(run.path, "verify:math"):  # other stages are free
            pass
        with pytest.raises(StageBusy):  # waiting a bounded time still ends in StageBusy
            with stage_lock(run.path, "verify:exact", wait=0.3):
                pass
    finally:
        holder.release()
    assert main(["verify", str(run.path), "--verifier", "exact"]) == 0
    assert len(run.read_verdicts("exact")) == 12


def test_lock_is_reentrant_within_a_thread_and_released_on_sigkill(tmp_path: Path) -> None:
    with stage_lock(tmp_path, "sampling"):
        with stage_lock(tmp_path, "sampling"):
            pass
    holder = Holder(tmp_path, "sampling")
    holder.proc.kill()
    holder.proc.wait()
    with stage_lock(tmp_path, "sampling"):  # the kernel released the dead holder's lock
        info = json.loads(lock_path(tmp_path, "sampling").read_text())
        assert info["pid"] == os.getpid() and info["stage"] == "sampling"


def test_sampling_lock_is_taken_before_the_backend_is_built(tmp_path: Path) -> None:
    out = tmp_path / "run"
    holder = Holder(out, "sampling")
    try:
        code = ("import sys\nfrom ttscale.cli import main\n"
                f"rc = main(['sample', '--backend', 'transformers', '--model', 'embedded', '--task', "
                f"'arithmetic', '--num-problems', '2', '-k', '2', '--out', {str(out)!r}, '--quiet'])\n"
                "print('torch' in sys.modules, 'vllm' in sys.modules)\nsys.exit(rc)\n")
        p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    finally:
        holder.release()
    assert p.returncode == 2, p.stderr
    assert p.stderr.count("\n") == 1 and "stage 'sampling' is already running" in p.stderr
    assert p.stdout.split() == ["False", "False"]  # no model was loaded (torch never imported)
    assert not (out / "samples").exists() and not (out / "run.json").exists()


def test_two_concurrent_verifies_leave_one_verdict_per_sample(tmp_path: Path) -> None:
    run = answer_run(tmp_path / "run", problems=40, k=50)
    cmd = [sys.executable, "-m", "ttscale", "verify", str(run.path), "--verifier", "math",
           "--workers", "1"]
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    outs = [(p.wait(timeout=600), *p.communicate()) for p in procs]
    codes = sorted(rc for rc, _, _ in outs)
    assert codes in ([0, 0], [0, 2]), outs
    for rc, _, err in outs:
        if rc == 2:
            assert err.count("\n") == 1 and "stage 'verify:math' is already running" in err
    v = run.read_verdicts("math")
    assert len(v) == 2000 and not v.duplicated(SAMPLE_KEY).any()


def test_duplicate_verdicts_are_refused_by_readers_and_repaired_by_verify(tmp_path: Path, capsys) -> None:
    run = answer_run(tmp_path / "run")
    verify_run(run, "exact", workers=0)
    verify_run(run, "exact", workers=0, out_name="exact2")
    shard = shard_paths(run.verdicts_dir("exact"))[0]
    # what two concurrent verifies of an older version left: every verdict twice
    shutil.copy(shard, shard.with_name("part-99999999999999999999-dupe.parquet"))
    with pytest.raises(InputError, match="12 sample\\(s\\) have more than one verdict"):
        run.read_verdicts("exact")
    # compare verifies what is missing first, which repairs the folder: right numbers, not half
    assert main(["compare", str(run.path), "--verifiers", "exact,exact2"]) == 0
    assert len(run.read_verdicts("exact")) == 12
    capsys.readouterr()
    shard = shard_paths(run.verdicts_dir("exact"))[0]
    shutil.copy(shard, shard.with_name("part-99999999999999999999-dupe.parquet"))
    assert main(["verify", str(run.path), "--verifier", "exact"]) == 0
    out, err = capsys.readouterr()
    assert "nothing to verify (12 samples already done)" in out
    assert "removed 12 duplicate verdict(s)" in err
    v = run.read_verdicts("exact")
    assert len(v) == 12 and len(shard_paths(run.verdicts_dir("exact"))) == 1


def test_stale_temporaries_of_killed_writers_go_when_the_next_writer_locks(tmp_path: Path) -> None:
    run = answer_run(tmp_path / "run")
    stale = [run.samples_dir / ".part-1-x.parquet.0123.tmp", run.path / ".run.json.ab12.tmp",
             run.verdicts_dir("exact") / ".part-2-y.parquet.cd34.tmp"]
    for p in stale:
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(b"half a shard")
    (run.path / "analysis" / ".tmp-kill").mkdir(parents=True)
    (run.path / "analysis" / ".tmp-kill" / "curves.parquet").write_bytes(b"x")
    with stage_lock(run.path, "verify:exact"):
        assert not stale[2].exists() and stale[0].exists() and stale[1].exists()
    with stage_lock(run.path, "sampling"):
        assert not stale[0].exists() and not stale[1].exists()
    with stage_lock(run.path / "analysis", "analysis"):
        assert not (run.path / "analysis" / ".tmp-kill").exists()
    assert len(run.read_samples()) == 12  # finished shards untouched


@pytest.mark.parametrize("umask,mode", [(0o022, 0o644), (0o002, 0o664), (0o077, 0o600)])
def test_files_get_the_mode_the_umask_gives(tmp_path: Path, umask: int, mode: int) -> None:
    old = os.umask(umask)
    try:
        run = answer_run(tmp_path / "run")
        verify_run(run, "exact", workers=0)
        atomic_write_json(tmp_path / "x.json", {"a": 1})
    finally:
        os.umask(old)
    files = [run.run_json.parent / "problems.parquet", *shard_paths(run.samples_dir),
             *shard_paths(run.verdicts_dir("exact")), run.verdicts_dir("exact") / "verifier.json",
             tmp_path / "x.json"]
    assert {stat.S_IMODE(f.stat().st_mode) for f in files} == {mode}


SAMPLE_CMD = [sys.executable, "-m", "ttscale", "sample", "--backend", "transformers", "--model",
              "embedded", "--task", "arithmetic", "--num-problems", "6", "-k", "16",
              "--temperatures", "0.6,1.0", "--max-tokens", "8", "--batch-size", "8",
              "--max-n-per-request", "4", "--threads", "1", "--quiet", "--out"]


def _mount_tmpfs(path: Path, size: str) -> None:
    path.mkdir()
    p = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                       capture_output=True, text=True)
    if p.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({p.stderr.strip()})")


@pytest.mark.slow
def test_disk_full_gives_one_line_and_the_run_resumes_to_the_same_samples(tmp_path: Path) -> None:
    from ttscale.sampling.backends.transformers_backend import EMBEDDED_DIR

    if not (EMBEDDED_DIR / "config.json").is_file():
        pytest.skip("the embedded model is not there")
    disk = tmp_path / "disk"
    _mount_tmpfs(disk, "40k")
    try:
        out = disk / "run"
        first = subprocess.run([*SAMPLE_CMD, str(out)], capture_output=True, text=True, timeout=600)
        assert first.returncode == 1, first.stderr
        # (the model's loading messages aside) one line, no traceback, naming the path and cause
        errors = [line for line in first.stderr.splitlines() if line.startswith("ttscale sample:")]
        assert "Traceback" not in first.stderr and len(errors) == 1, first.stderr
        assert "No space left on device" in errors[0] and str(out) in errors[0]
        assert not [p for p in out.rglob("*.tmp")]
        subprocess.run(["mount", "-o", "remount,size=20m", str(disk)], check=True)
        again = subprocess.run([*SAMPLE_CMD, str(out)], capture_output=True, text=True, timeout=600)
        assert again.returncode == 0, again.stderr
        ref = tmp_path / "ref"
        subprocess.run([*SAMPLE_CMD, str(ref)], check=True, capture_output=True, timeout=600)
        a = RunDir(out).read_samples().sort_values(SAMPLE_KEY).reset_index(drop=True)
        b = RunDir(ref).read_samples().sort_values(SAMPLE_KEY).reset_index(drop=True)
        pd.testing.assert_frame_equal(a, b)
    finally:
        subprocess.run(["umount", "-l", str(disk)], capture_output=True)


@pytest.mark.slow
def test_no_temporary_file_survives_a_resume_after_sigkill(tmp_path: Path) -> None:
    from ttscale.sampling.backends.transformers_backend import EMBEDDED_DIR

    if not (EMBEDDED_DIR / "config.json").is_file():
        pytest.skip("the embedded model is not there")
    out = tmp_path / "run"
    proc = subprocess.Popen([*SAMPLE_CMD, str(out)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while proc.poll() is None and len(shard_paths(out / "samples")) < 2 and time.time() < deadline:
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    # a write cut short leaves its temporary file: make sure there is one, as SIGKILL in mid-write would
    (out / "samples" / ".part-00000000000000000001-dead.parquet.0badc0ffee00.tmp").write_bytes(b"PAR1")
    done = subprocess.run([*SAMPLE_CMD, str(out)], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert not [p for p in out.rglob("*") if p.name.endswith(".tmp") or p.name.startswith(".tmp-")]
    assert len(RunDir(out).read_samples()) == 6 * 2 * 16


def test_verify_on_a_full_disk_gives_one_line_then_resumes(tmp_path: Path) -> None:
    disk = tmp_path / "disk"
    _mount_tmpfs(disk, "256k")
    try:
        run = answer_run(disk / "run", problems=20, k=10)
        filler = disk / "filler"
        fd = os.open(filler, os.O_WRONLY | os.O_CREAT)
        try:  # fill the disk to the last byte
            while os.write(fd, b"\0" * 512):
                pass
        except OSError:
            pass
        finally:
            os.close(fd)
        p = subprocess.run([sys.executable, "-m", "ttscale", "verify", str(run.path), "--verifier",
                            "exact"], capture_output=True, text=True, timeout=300)
        assert p.returncode == 1 and p.stderr.count("\n") == 1, p.stderr
        assert p.stderr.startswith("ttscale verify: error: ") and "No space left on device" in p.stderr
        assert not [q for q in run.path.rglob("*") if q.name.endswith(".tmp")]
        filler.unlink()
        assert main(["verify", str(run.path), "--verifier", "exact"]) == 0
        v = run.read_verdicts("exact")
        assert len(v) == 200 and not v.duplicated(SAMPLE_KEY).any()
    finally:
        subprocess.run(["umount", "-l", str(disk)], capture_output=True)


@pytest.mark.slow
def test_two_concurrent_sweeps_leave_one_verdict_per_sample(tmp_path: Path) -> None:
    import yaml

    from ttscale.sampling.backends.transformers_backend import EMBEDDED_DIR

    if not (EMBEDDED_DIR / "config.json").is_file():
        pytest.skip("the embedded model is not there")
    out = tmp_path / "sweep"
    cfg = {"name": "twice", "out": str(out), "seed": 0, "num_samples": 8, "temperatures": [1.0],
           "max_tokens": 8,
           "models": [{"name": "m", "backend": "transformers", "model": "embedded",
                       "options": {"threads": 1, "batch_size": 32}}],
           "tasks": [{"name": "arithmetic", "num_problems": 6}],
           "verifiers": [{"name": "exact"}, {"name": "majority"}],
           "analysis": {"n_boot": 20}, "report": False}
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(cfg))
    cmd = [sys.executable, "-m", "ttscale", "sweep", str(path), "--no-progress"]
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              cwd=tmp_path) for _ in range(2)]
    outs = [(p.wait(timeout=900), *p.communicate()) for p in procs]
    codes = sorted(rc for rc, _, _ in outs)
    assert codes in ([0, 0], [0, 2]), outs
    for rc, _, err in outs:
        if rc == 2:
            assert "stage 'sweep' is already running" in err and "Traceback" not in err, err
    runs = [p.parents[2] for p in out.rglob("verdicts/exact/verifier.json")]
    assert len(runs) == 1
    run = RunDir(runs[0])
    assert len(run.read_samples()) == 6 * 8
    for name in ("exact", "majority"):
        v = run.read_verdicts(name)
        assert len(v) == 6 * 8 and not v.duplicated(SAMPLE_KEY).any()
