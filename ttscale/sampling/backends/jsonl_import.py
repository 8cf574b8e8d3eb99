"""Streaming import of a JSON Lines file of samples (plain or gzipped) into a run directory.

:func:`stage_jsonl` reads the file line by line, checks every line (one clear error naming the
line and field), numbers the samples of each (problem, temperature) and writes them in shards of
``SHARD_ROWS`` rows to a staging folder beside the run directory. Only the keys of the samples
(24 bytes each) stay in memory, for the duplicate check done once the file is read. Nothing
reaches the run directory until :meth:`Staged.commit` moves the shards into ``samples/`` (each
move atomic; samples already in the run are filtered out, so a re-import adds only what is
missing and an interrupted commit is finished by importing again).

Rows without a ``temperature`` get the first of ``--temperatures``: how many did is printed and
recorded (``assumed``), and whether they joined rows that gave that temperature explicitly.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from ttscale.core.jsonl import iter_json_objects
from ttscale.errors import InputError
from ttscale.plugins import Problem
from ttscale.rundir.store import (
    LATE_COLUMNS,
    SAMPLE_KEY,
    SAMPLE_SCHEMA,
    RunDir,
    shard_paths,
    with_late_columns,
    write_shard,
)

SHARD_ROWS = 50_000


def _int(obj: dict, key: str, where: str, default: int | None) -> int | None:
    v = obj.get(key, default)
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, int):
        raise InputError(f"{where}: field '{key}': expected an integer, got {v!r}")
    return v


@dataclass
class Staged:
    """A checked file's samples, in shards waiting beside the run directory."""

    run: RunDir
    folder: Path
    shards: list[Path]
    rows: int
    problems: dict[str, Problem]
    problem_ids: set[str]
    temperatures: set[float]
    k_max: int
    assumed: dict[str, Any] | None = None
    committed: int = field(default=0)

    def commit(self) -> int:
        """Move the shards into ``samples/``; the number of samples added."""
        from ttscale.rundir.store import _fsync_dir

        self.run.samples_dir.mkdir(parents=True, exist_ok=True)
        have = None
        if shard_paths(self.run.samples_dir):
            keys = self.run.read_samples(SAMPLE_KEY)
            have = pd.MultiIndex.from_frame(keys) if len(keys) else None
        for path in self.shards:
            if have is None:
                dst = self.run.samples_dir / f"part-{time.time_ns():020d}-{uuid.uuid4().hex[:8]}.parquet"
                os.replace(path, dst)
                self.committed += pq.read_metadata(dst).num_rows
                continue
            table = pq.read_table(path)
            idx = pd.MultiIndex.from_frame(table.select(SAMPLE_KEY).to_pandas())
            keep = ~idx.isin(have)
            if keep.any():
                write_shard(self.run.samples_dir, table.filter(pa.array(keep)))
                self.committed += int(keep.sum())
        _fsync_dir(self.run.samples_dir)
        return self.committed

    def discard(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)


def stage_jsonl(path: Path, settings: Any, run: RunDir, progress: bool = False) -> Staged:
    """Check and stage every sample of a JSON Lines file (see the module doc)."""
    default_t = float(settings.temperatures[0])
    parent = run.path.parent
    parent.mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix=f".{run.path.name}.import-", dir=parent))
    try:
        return _stage(path, default_t, run, folder, progress)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise


def _stage(path: Path, default_t: float, run: RunDir, folder: Path, progress: bool) -> Staged:
    # imported samples have no budget axis: the late columns (budget 0, ...) are filled on flush
    cols: dict[str, list] = {f.name: [] for f in SAMPLE_SCHEMA if f.name not in LATE_COLUMNS}
    problems: dict[str, Problem] = {}
    codes: dict[str, int] = {}
    next_index: dict[tuple[int, float], int] = {}
    count: dict[tuple[int, float], int] = {}
    key_parts: list[np.ndarray] = []
    kc, kt, ki, kl = [], [], [], []
    shards: list[Path] = []
    rows = assumed = 0
    explicit_t: set[float] = set()

    def flush() -> None:
        if cols["problem_id"]:
            plain = pa.schema([f for f in SAMPLE_SCHEMA if f.name not in LATE_COLUMNS])
            table = with_late_columns(pa.table({k: v for k, v in cols.items()}, schema=plain),
                                      SAMPLE_SCHEMA.names).cast(SAMPLE_SCHEMA)
            shards.append(folder / f"part-{len(shards):08d}.parquet")
            pq.write_table(table, shards[-1])
            for v in cols.values():
                v.clear()
        if kc:
            key_parts.append(np.array([kc, kt, ki, kl], dtype=np.float64))
            for v in (kc, kt, ki, kl):
                v.clear()

    for lineno, obj in iter_json_objects(path):
        where = f"{path}: line {lineno}"
        for key in ("problem_id", "text"):
            if key not in obj:
                raise InputError(f"{where}: field '{key}' is missing")
        if not isinstance(obj["text"], str):
            raise InputError(f"{where}: field 'text': expected a string")
        pid = str(obj["problem_id"])
        t = obj.get("temperature")
        if t is None:
            t, assumed = default_t, assumed + 1
        elif isinstance(t, bool) or not isinstance(t, int | float) or not 0 <= t < float("inf"):
            raise InputError(f"{where}: field 'temperature': expected a number >= 0, got {t!r}")
        else:
            t = float(t)
            explicit_t.add(t)
        code = codes.setdefault(pid, len(codes))
        idx = _int(obj, "sample_index", where, None)
        pair = (code, t)
        if idx is None:
            idx = next_index.get(pair, 0)
        elif idx < 0:
            raise InputError(f"{where}: field 'sample_index': must be >= 0, got {idx}")
        next_index[pair] = max(next_index.get(pair, 0), idx + 1)
        count[pair] = count.get(pair, 0) + 1
        for name, value in (("problem_id", pid), ("temperature", t), ("sample_index", idx),
                            ("seed", _int(obj, "seed", where, -1)), ("text", obj["text"]),
                            ("num_prompt_tokens", _int(obj, "num_prompt_tokens", where, -1)),
                            ("num_output_tokens", _int(obj, "num_output_tokens", where, -1)),
                            ("finish_reason", str(obj.get("finish_reason", "unknown")))):
            cols[name].append(value)
        kc.append(code)
        kt.append(t)
        ki.append(idx)
        kl.append(lineno)
        rows += 1
        ref = obj.get("reference")
        if ref is None and "answer" in obj:
            ref = {"answer": str(obj["answer"])}
        if ref is not None and not isinstance(ref, dict):
            raise InputError(f"{where}: field 'reference': expected an object")
        if pid not in problems or (ref and not problems[pid].reference):
            problems[pid] = Problem(pid, "imported", str(obj.get("prompt", "")), ref or {})
        if len(cols["problem_id"]) >= SHARD_ROWS:
            flush()
            if progress:
                print(f"\rimport: {rows:,} samples read", end="", file=sys.stderr, flush=True)
    flush()
    if progress and rows >= SHARD_ROWS:
        print(file=sys.stderr)
    if not rows:
        raise InputError(f"{path}: no samples in the file")
    _check_duplicates(path, np.concatenate(key_parts, axis=1), list(codes))
    note = None
    if assumed:
        note = {"rows": assumed, "of": rows, "temperature": default_t,
                "merged_with_explicit": default_t in explicit_t}
        merged = (f"; the file also gives T = {default_t:g} explicitly, so both are one group"
                  if note["merged_with_explicit"] else "")
        print(f"ttscale import: {path}: {assumed:,} of {rows:,} rows give no temperature: imported "
              f"at T = {default_t:g} (the first of --temperatures){merged}", file=sys.stderr)
    return Staged(run, folder, shards, rows, problems, set(codes),
                  {t for _, t in count}, max(count.values()), note)


def _check_duplicates(path: Path, keys: np.ndarray, ids: list[str]) -> None:
    """InputError naming the first line (in file order) whose key repeats an earlier one."""
    code, t, idx, line = keys
    order = np.lexsort((line, idx, t, code))
    c, tt, ii = code[order], t[order], idx[order]
    same = (c[1:] == c[:-1]) & (tt[1:] == tt[:-1]) & (ii[1:] == ii[:-1])
    if not same.any():
        return
    later = order[1:][same]
    first = later[np.argmin(line[later])]
    raise InputError(f"{path}: line {int(line[first])}: field 'sample_index': {int(idx[first])} "
                     f"repeats for problem {ids[int(code[first])]!r} at temperature {t[first]}")
