"""The ``import`` backend: samples drawn elsewhere, written into a run directory.

Two formats, detected from the file:

- **JSONL** (plain, or gzipped as ``.jsonl.gz``), one sample a line: ``{"problem_id", "text"}``
  and optionally ``temperature`` (default: the first of ``--temperatures``, 1.0 unless given;
  how many rows took it is printed and recorded in run.json as ``assumed_temperature``), ``sample_index`` (default: the
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
from pathlib import Path
from typing import Any

import pandas as pd

from ttscale.errors import InputError, arg
from ttscale.plugins import Problem, problems_frame
from ttscale.rundir.store import LATE_COLUMNS, SAMPLE_KEY, SAMPLE_SCHEMA, RunDir

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
    """Detect the format of ``path``: ("jsonl", None) for JSON Lines (plain or ``.gz``, read in a
    stream by :mod:`ttscale.sampling.backends.jsonl_import`), else ("monkeys", (rows, problems, verdicts))."""
    p = Path(path)
    if not p.exists():
        raise InputError(f"{arg('from_file', path, flag='--from')}: no such file or folder")
    if p.is_dir() and not any(p.iterdir()):
        raise InputError(f"{arg('from_file', path, flag='--from')}: the folder is empty")
    if p.is_file() and (p.suffix in (".jsonl", ".ndjson")
                        or (p.suffix == ".gz" and Path(p.stem).suffix in (".jsonl", ".ndjson", ".json"))):
        return "jsonl", None
    if p.is_dir() or p.suffix in (".yaml", ".yml", ".json"):
        return "monkeys", read_monkey_samples(p, temperature)
    raise InputError(f"{arg('from_file', path, flag='--from')}: unknown format (use .jsonl or .jsonl.gz, or Monkeys "
                     ".yaml/.json files or a folder)")


def import_samples(settings: Any, out: str | os.PathLike, progress: bool = True) -> Any:
    """Write the samples of ``settings.from_file`` into run directory ``out`` (see the module doc).

    JSON Lines are read in a stream and written in shards of SHARD_ROWS rows to a staging folder
    beside the run directory, moved into ``samples/`` only once the whole file has been checked
    (bad input: nothing is added). Memory holds one batch of texts plus 24 bytes per sample
    (the keys, for the duplicate check)."""
    from ttscale.sampling.backends.jsonl_import import stage_jsonl
    from ttscale.sampling.sampler import SamplingResult, check_resume, locked, run_record

    t0 = time.time()
    src = Path(str(settings.from_file))
    kind, monkeys = read_samples_file(src, settings.temperatures[0])
    run = RunDir(out)
    if run.path.exists() and not run.path.is_dir():
        raise InputError(f"{arg('out', run.path)}: exists and is not a directory")
    from ttscale.rundir.outputs import undo_if_nothing_drawn

    created = not run.path.exists()
    staged = stage_jsonl(src, settings, run, progress) if kind == "jsonl" else None
    with undo_if_nothing_drawn(run.path, created), locked(run):
        try:
            if staged is not None:
                file_problems, verdicts = staged.problems, {}
                used, k_max, temps_in = staged.problem_ids, staged.k_max, staged.temperatures
                n_rows = staged.rows
            else:
                rows, file_problems, verdicts = monkeys
                # imported samples have no budget axis: budget 0
                samples = pd.DataFrame(rows, columns=[f.name for f in SAMPLE_SCHEMA
                                                      if f.name not in LATE_COLUMNS])
                samples = samples.assign(budget=0, thinking_tokens=0, forced=False,
                                         answer_tokens=samples["num_output_tokens"])
                used = set(samples["problem_id"])
                k_max = int(samples.groupby(["problem_id", "temperature"]).size().max())
                temps_in = set(samples["temperature"])
                n_rows = len(samples)
            problems = _problems_for(settings, src, file_problems, used)
            frame = problems_frame(problems)
            if run.problems_path.is_file() and not settings.task:
                frame = _merge_problems(run.read_problems(), frame)
            # the run's temperatures are those of its files: a re-import keeps every one of them
            before = set(map(float, run.read_config().get("temperatures", [])))
            temps = sorted(set(temps_in) | before)
            old = check_resume(run, settings.model_copy(update={"temperatures": temps}), frame)
            run.write_problems(frame)
            settings = settings.model_copy(update={"temperatures": temps,
                                                   "num_samples": max(k_max, old.get("num_samples") or 0)})
            extra = {"from_file": str(src), "sha256": file_digest(src)}
            if staged is not None and staged.assumed:
                extra["assumed_temperature"] = staged.assumed
            info = {"name": "import", "model": settings.model, "versions": {}, "extra": extra}
            run.write_config(run_record(settings, old, info, len(frame)))
            if staged is not None:
                fresh = staged.commit()
            else:
                fresh_rows = _absent(samples, run.read_samples(SAMPLE_KEY)) if run.has_samples() else samples
                for start in range(0, len(fresh_rows), SHARD_ROWS):
                    run.write_samples(fresh_rows.iloc[start : start + SHARD_ROWS])
                fresh = len(fresh_rows)
                if verdicts:
                    _write_imported_verdicts(run, samples, verdicts)
        finally:
            if staged is not None:
                staged.discard()
    from ttscale.rundir.summaries import samples_summary

    total = int(pc_sum(samples_summary(run).table["n"]))
    return SamplingResult(run.path, len(used), n_rows, fresh, total, time.time() - t0, 0)


def pc_sum(col: Any) -> int:
    import pyarrow.compute as pc

    return int(pc.sum(col).as_py() or 0)


def _problems_for(settings: Any, src: Path, file_problems: dict[str, Problem],
                  used: set[str]) -> list[Problem]:
    """The problems to store: the task's (every id in the file must be one of them) or the file's."""
    if not settings.task:
        return list(file_problems.values())
    from ttscale.sampling.sampler import load_problems

    task_problems, _ = load_problems(settings)
    known = {p.problem_id for p in task_problems}
    unknown = sorted(used - known)
    if unknown:
        raise InputError(f"{arg('from_file', src, flag='--from')}: problem id {unknown[0]!r} is not a problem of task "
                         f"{settings.task!r} (it has {len(known)})")
    return task_problems


def _write_imported_verdicts(run: RunDir, samples: pd.DataFrame, verdicts: dict) -> None:
    v = samples[SAMPLE_KEY].copy()
    v["passed"] = [verdicts.get((p, i), False) for p, i in zip(v["problem_id"], v["sample_index"], strict=True)]
    v["score"] = float("nan")
    v["answer"] = None
    v["status"] = ["pass" if x else "fail" for x in v["passed"]]
    v["error"] = None
    v = _absent(v, run.read_verdicts("imported", SAMPLE_KEY))
    for start in range(0, len(v), SHARD_ROWS):
        run.write_verdicts("imported", v.iloc[start : start + SHARD_ROWS])


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
