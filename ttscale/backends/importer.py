"""The ``import`` backend: samples drawn elsewhere, written into a run directory.

Two formats, detected from the file:

- **JSONL**, one sample a line: ``{"problem_id", "text"}`` and optionally ``temperature``
  (default: the first of ``--temperatures``, 1.0 unless given), ``sample_index`` (default: the
  order of the lines, per problem and temperature), ``seed``, ``num_prompt_tokens``,
  ``num_output_tokens``, ``finish_reason``, and per problem ``prompt`` and ``answer`` (or a
  ``reference`` object), which go to problems.parquet.
- **Large Language Monkeys** (``monkey_business`` and the ``llmonk`` scripts): one object per
  problem, in a ``.yaml``/``.yml`` file (llmonk writes one per problem), a ``.json`` file holding
  one object or a list of them, or a folder of such files. Fields used: ``samples`` (list of
  texts, required), ``prompt`` and ``question``, ``gt_answer`` (the reference: for GSM8K the text
  after ``####``, the whole text kept as ``gt_answer``), ``is_corrects`` (list of bools, the
  dataset's own verdicts, written as verifier ``imported``), and an id from ``id``,
  ``orig_dset_idx`` or the file name. All its samples get the first of ``--temperatures``.

With ``--task NAME`` the problems come from that task and every problem id in the file must be
one of its ids; without, problems.parquet is built from the file (task ``imported``). Importing
again adds only the (problem, temperature, sample_index) rows not already in the run directory.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import pandas as pd

from ttscale.errors import InputError
from ttscale.jsonl import iter_json_objects
from ttscale.plugins import Problem, problems_frame
from ttscale.store import SAMPLE_KEY, SAMPLE_SCHEMA, RunDir

SHARD_ROWS = 50_000


def file_digest(path: Path) -> str:
    h = hashlib.sha256()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for p in files:
        h.update(p.name.encode())
        with open(p, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()[:16]


def _int(obj: dict, key: str, where: str, default: int | None) -> int | None:
    v = obj.get(key, default)
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, int):
        raise InputError(f"{where}: field '{key}': expected an integer, got {v!r}")
    return v


def read_jsonl_samples(path: Path, default_temperature: float):
    """(sample rows, problems by id) from a JSONL of samples; InputError naming line and field."""
    rows, problems, next_index = [], {}, defaultdict(int)
    explicit: set[tuple[str, float, int]] = set()
    for lineno, obj in iter_json_objects(path):
        where = f"{path}: line {lineno}"
        for key in ("problem_id", "text"):
            if key not in obj:
                raise InputError(f"{where}: field '{key}' is missing")
        if not isinstance(obj["text"], str):
            raise InputError(f"{where}: field 'text': expected a string")
        pid = str(obj["problem_id"])
        t = obj.get("temperature", default_temperature)
        if isinstance(t, bool) or not isinstance(t, int | float) or t < 0:
            raise InputError(f"{where}: field 'temperature': expected a number >= 0, got {t!r}")
        t = float(t)
        idx = _int(obj, "sample_index", where, None)
        if idx is None:
            idx = next_index[(pid, t)]
        elif idx < 0:
            raise InputError(f"{where}: field 'sample_index': must be >= 0, got {idx}")
        if (pid, t, idx) in explicit:
            raise InputError(f"{where}: field 'sample_index': {idx} repeats for problem {pid!r} at temperature {t}")
        explicit.add((pid, t, idx))
        next_index[(pid, t)] = max(next_index[(pid, t)], idx + 1)
        rows.append((pid, t, idx, _int(obj, "seed", where, -1), obj["text"],
                     _int(obj, "num_prompt_tokens", where, -1), _int(obj, "num_output_tokens", where, -1),
                     str(obj.get("finish_reason", "unknown"))))
        ref = obj.get("reference")
        if ref is None and "answer" in obj:
            ref = {"answer": str(obj["answer"])}
        if ref is not None and not isinstance(ref, dict):
            raise InputError(f"{where}: field 'reference': expected an object")
        if pid not in problems or (ref and not problems[pid].reference):
            problems[pid] = Problem(pid, "imported", str(obj.get("prompt", "")), ref or {})
    if not rows:
        raise InputError(f"{path}: no samples in the file")
    return rows, problems, {}


def _monkey_records(path: Path) -> list[tuple[str, str, dict]]:
    """(where, default id, record) for every problem object in a Monkeys file or folder."""
    import yaml

    files = sorted(p for p in path.iterdir() if p.suffix in (".yaml", ".yml", ".json")) if path.is_dir() else [path]
    if not files:
        raise InputError(f"{path}: no .yaml, .yml or .json files in the folder")
    out = []
    for f in files:
        try:
            data = json.loads(f.read_text()) if f.suffix == ".json" else yaml.safe_load(f.read_text())
        except (json.JSONDecodeError, yaml.YAMLError) as e:
            raise InputError(f"{f}: not valid {'JSON' if f.suffix == '.json' else 'YAML'} ({e})") from None
        records = data if isinstance(data, list) else [data]
        for i, rec in enumerate(records):
            where = f"{f}: record {i}" if isinstance(data, list) else str(f)
            if not isinstance(rec, dict):
                raise InputError(f"{where}: expected an object with a 'samples' list")
            default_id = f"{f.stem}-{i}" if isinstance(data, list) and len(files) > 1 else (str(i) if isinstance(data, list) else f.stem)
            out.append((where, default_id, rec))
    return out


def gsm8k_answer(gt: str) -> str:
    """GSM8K keeps its final answer after ``####``; other references are taken whole."""
    if "####" in gt:
        return gt.rsplit("####", 1)[1].strip().replace(",", "")
    return gt.strip()


def read_monkey_samples(path: Path, temperature: float):
    """(sample rows, problems by id, is_corrects by (id, index)) from Large Language Monkeys files."""
    rows, problems, verdicts = [], {}, {}
    for where, default_id, rec in _monkey_records(path):
        samples = rec.get("samples")
        if not isinstance(samples, list) or not all(isinstance(s, str) for s in samples):
            raise InputError(f"{where}: field 'samples': expected a list of texts")
        pid = next((str(rec[k]) for k in ("id", "problem_id", "orig_dset_idx") if rec.get(k) is not None), default_id)
        if pid in problems:
            raise InputError(f"{where}: problem id {pid!r} repeats (field 'id' / 'orig_dset_idx')")
        corrects = rec.get("is_corrects")
        if corrects is not None:
            if not isinstance(corrects, list) or len(corrects) != len(samples):
                raise InputError(f"{where}: field 'is_corrects': expected {len(samples)} booleans, one per sample")
            for i, c in enumerate(corrects):
                verdicts[(pid, i)] = bool(c)
        ref: dict[str, Any] = {}
        if rec.get("gt_answer") is not None:
            gt = str(rec["gt_answer"])
            ref = {"answer": gsm8k_answer(gt), "gt_answer": gt}
        prompt = rec.get("prompt", rec.get("question", ""))
        problems[pid] = Problem(pid, "imported", str(prompt), ref)
        for i, text in enumerate(samples):
            rows.append((pid, float(temperature), i, -1, text, -1, -1, "unknown"))
    if not rows:
        raise InputError(f"{path}: no samples in the file")
    return rows, problems, verdicts


def read_samples_file(path: str | os.PathLike, temperature: float):
    """Detect the format of ``path`` and read it: (rows, problems by id, verdicts)."""
    p = Path(path)
    if not p.exists():
        raise InputError(f"--from {path}: no such file or folder")
    if p.is_file() and p.suffix in (".jsonl", ".ndjson"):
        return read_jsonl_samples(p, temperature)
    if p.is_dir() or p.suffix in (".yaml", ".yml", ".json"):
        return read_monkey_samples(p, temperature)
    raise InputError(f"--from {path}: unknown format (use .jsonl, or Monkeys .yaml/.json files or a folder)")


def import_samples(settings: Any, out: str | os.PathLike, progress: bool = True) -> Any:
    """Write the samples of ``settings.from_file`` into run directory ``out`` (see the module doc)."""
    from ttscale.sampling import SamplingResult, check_resume, load_problems, locked, run_record

    t0 = time.time()
    src = Path(str(settings.from_file))
    rows, file_problems, verdicts = read_samples_file(src, settings.temperatures[0])
    if settings.task:
        task_problems, _ = load_problems(settings)
        known = {p.problem_id for p in task_problems}
        unknown = sorted({r[0] for r in rows} - known)
        if unknown:
            raise InputError(f"--from {src}: problem id {unknown[0]!r} is not one of task "
                             f"{settings.task!r}'s {len(known)} problems")
        problems = task_problems
    else:
        problems = list(file_problems.values())
    frame = problems_frame(problems)
    samples = pd.DataFrame(rows, columns=[f.name for f in SAMPLE_SCHEMA])
    run = RunDir(out)
    if run.path.exists() and not run.path.is_dir():
        raise InputError(f"--out {run.path}: exists and is not a directory")
    with locked(run):
        if run.problems_path.is_file() and not settings.task:
            frame = _merge_problems(run.read_problems(), frame)
        old = check_resume(run, settings, frame)
        k = int(samples.groupby(["problem_id", "temperature"]).size().max())
        temps = sorted(set(samples["temperature"]) | set(map(float, old.get("temperatures", []))))
        fresh = _absent(samples, run.read_samples(SAMPLE_KEY))
        run.write_problems(frame)
        settings = settings.model_copy(update={"temperatures": temps,
                                               "num_samples": max(k, old.get("num_samples") or 0)})
        info = {"name": "import", "model": settings.model, "versions": {},
                "extra": {"from_file": str(src), "sha256": file_digest(src)}}
        run.write_config(run_record(settings, old, info, len(frame)))
        for start in range(0, len(fresh), SHARD_ROWS):
            run.write_samples(fresh.iloc[start : start + SHARD_ROWS])
        if verdicts:
            v = samples[SAMPLE_KEY].copy()
            v["passed"] = [verdicts.get((p, i), False) for p, i in zip(v["problem_id"], v["sample_index"], strict=True)]
            v["score"] = float("nan")
            v["answer"] = None
            v["status"] = ["pass" if x else "fail" for x in v["passed"]]
            v["error"] = None
            v = _absent(v, run.read_verdicts("imported", SAMPLE_KEY))
            for start in range(0, len(v), SHARD_ROWS):
                run.write_verdicts("imported", v.iloc[start : start + SHARD_ROWS])
    total = len(run.read_samples(["sample_index"]))
    return SamplingResult(run.path, len(frame), len(samples), len(fresh), total, time.time() - t0, 0)


def _absent(rows: pd.DataFrame, existing: pd.DataFrame) -> pd.DataFrame:
    """The rows of ``rows`` whose (problem, temperature, sample_index) ``existing`` lacks."""
    if not len(existing):
        return rows
    have = pd.MultiIndex.from_frame(existing[SAMPLE_KEY])
    return rows[~pd.MultiIndex.from_frame(rows[SAMPLE_KEY]).isin(have)]


def _merge_problems(stored: pd.DataFrame, new: pd.DataFrame) -> pd.DataFrame:
    """Stored problems first (unchanged), then those the file adds."""
    extra = new[~new["problem_id"].isin(stored["problem_id"])]
    return pd.concat([stored, extra], ignore_index=True)
