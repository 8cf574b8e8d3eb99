"""The run directory: the one place every stage reads from and writes to.

Layout (see README, "Run directory")::

    RUN_DIR/
      run.json                         resolved config, its hash, versions, seeds
      problems.parquet                 problem_id, task, prompt, reference (JSON), ...
      samples/part-*.parquet           one row per sample (SAMPLE_SCHEMA)
      verdicts/<verifier>/part-*.parquet   one row per verified sample (VERDICT_SCHEMA)
      analysis/                        curves.parquet, fits.json, figures/

Shards are written atomically: to a hidden temporary file in the same folder, flushed and
fsynced, then renamed into place. A reader never sees a half-written shard, so a run killed at
any moment (SIGKILL included) holds exactly the shards it finished, and a resumed run computes
what is missing from what is there. Each stage that writes holds its lock
(:mod:`ttscale.rundir.locks`), which also removes the temporary files of killed writers. Files get the
mode the umask gives (0644 by default). A failed write (disk full, read-only) raises
:class:`ttscale.errors.StorageError`: one line with the path and the cause, nothing half-written.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from ttscale.errors import InputError, StorageError
from ttscale.rundir.damage import (
    find_damaged,
    iter_shard_batches,
    open_shard,
    read_shard,
    run_dir_of,
    set_aside,
)

SAMPLE_SCHEMA = pa.schema(
    [
        ("problem_id", pa.string()),
        ("temperature", pa.float64()),
        ("sample_index", pa.int64()),
        ("seed", pa.int64()),
        ("text", pa.string()),
        ("num_prompt_tokens", pa.int64()),
        ("num_output_tokens", pa.int64()),
        ("finish_reason", pa.string()),
        # the budget axis (issue 21): 0 = no budget (generated to max_tokens); B > 0 = at most B
        # thinking tokens, the answer forced after them if the trace had not closed its thinking
        ("budget", pa.int64()),
        ("thinking_tokens", pa.int64()),  # tokens of the think block (its end marker excluded)
        ("answer_tokens", pa.int64()),  # tokens generated after the think block (a forced cue excluded)
        ("forced", pa.bool_()),  # the answer was forced after B thinking tokens
    ]
)

VERDICT_SCHEMA = pa.schema(
    [
        ("problem_id", pa.string()),
        ("temperature", pa.float64()),
        ("sample_index", pa.int64()),
        ("passed", pa.bool_()),
        ("score", pa.float64()),  # reward-model score; NaN where the verifier gives none
        ("answer", pa.string()),  # normalised answer, for voting; null where none was found
        ("status", pa.string()),  # pass | fail | timeout | error
        ("error", pa.string()),  # null unless status is error/timeout
        ("budget", pa.int64()),  # the sample's thinking budget (0: no budget axis)
    ]
)

SAMPLE_KEY = ["problem_id", "temperature", "budget", "sample_index"]
#: columns added after runs were first written, and their value in the shards that lack them
#: (a run directory from before the budget axis reads as budget 0, nothing forced)
LATE_COLUMNS: dict[str, tuple[pa.DataType, object]] = {
    "budget": (pa.int64(), 0), "thinking_tokens": (pa.int64(), 0), "answer_tokens": (pa.int64(), None),
    "forced": (pa.bool_(), False),
}


def with_late_columns(table: pa.Table | pa.RecordBatch, columns: list[str]) -> pa.Table:
    """``table`` with ``columns`` in that order, each late column it lacks filled with its
    default (``answer_tokens`` of an old sample: its ``num_output_tokens`` when read)."""
    if isinstance(table, pa.RecordBatch):
        table = pa.Table.from_batches([table])
    names = table.column_names
    out = []
    for c in columns:
        if c in names:
            out.append(table.column(c))
            continue
        dtype, value = LATE_COLUMNS[c]
        if value is None and "num_output_tokens" in names:
            out.append(table.column("num_output_tokens").cast(dtype))
        else:
            out.append(pa.array([value if value is not None else 0] * table.num_rows, dtype))
    return pa.table(out, names=columns)


def read_parquet(source: str | os.PathLike | pq.ParquetFile, columns: list[str],
                 schema: pa.Schema | None = None) -> pa.Table:
    """Read ``columns`` of one shard, filling late columns that an older shard lacks; a shard
    that cannot be read (path given) is a :class:`ttscale.rundir.damage.DamagedShard`."""
    pf = source if isinstance(source, pq.ParquetFile) else open_shard(Path(source), schema)
    have = set(pf.schema_arrow.names)
    present = [c for c in columns if c in have]
    extra = ["num_output_tokens"] if ("answer_tokens" in columns and "answer_tokens" not in have
                                      and "num_output_tokens" in have
                                      and "num_output_tokens" not in present) else []
    if isinstance(source, pq.ParquetFile):
        return with_late_columns(pf.read(columns=present + extra), columns)
    return with_late_columns(read_shard(Path(source), schema, present + extra), columns)


def iter_batches(path: str | os.PathLike, columns: list[str], batch_size: int,
                 schema: pa.Schema | None = None) -> Iterator[pa.Table]:
    """A shard's ``columns`` batch by batch, late columns filled (see :func:`read_parquet`); a
    shard that cannot be read is a :class:`ttscale.rundir.damage.DamagedShard`."""
    pf = open_shard(Path(path), schema)
    have = set(pf.schema_arrow.names)
    present = [c for c in columns if c in have]
    if "answer_tokens" in columns and "answer_tokens" not in have and "num_output_tokens" not in present:
        present.append("num_output_tokens")
    for batch in iter_shard_batches(pf, Path(path), batch_size=batch_size, columns=present):
        yield with_late_columns(batch, columns)


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` so that readers see the old file or the new one, never half.

    The temporary file (``.<name>.<random>.tmp`` beside it) is created with mode 0666 less the
    umask, as ``open`` would (0644 by default), so a run directory on shared storage stays
    readable to collaborators. An OS error (disk full, read-only, quota) removes the temporary
    file and raises :class:`StorageError`, one line naming ``path`` and the cause.
    """
    path = Path(path)
    tmp = path.parent / f".{path.name}.{uuid.uuid4().hex[:12]}.tmp"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o666)
    except OSError as e:
        raise StorageError.from_os_error(path, e) from e
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        tmp.unlink(missing_ok=True)
        if isinstance(e, OSError):
            raise StorageError.from_os_error(path, e) from e
        raise
    _fsync_dir(path.parent)
    return path


def atomic_write_json(path: str | os.PathLike, obj: Any) -> Path:
    text = json.dumps(obj, indent=2, sort_keys=False, default=_json_default) + "\n"
    return atomic_write_bytes(path, text.encode())


def atomic_write_table(path: str | os.PathLike, table: pa.Table | pd.DataFrame) -> Path:
    """Write a Parquet file atomically (temporary file, fsync, rename)."""
    if isinstance(table, pd.DataFrame):
        table = pa.Table.from_pandas(table, preserve_index=False)
    buf = pa.BufferOutputStream()
    pq.write_table(table, buf)
    return atomic_write_bytes(path, buf.getvalue().to_pybytes())


def _json_default(o: Any) -> Any:
    if hasattr(o, "item"):  # numpy scalars
        return o.item()
    if hasattr(o, "tolist"):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def config_hash(config: Any) -> str:
    """A stable short hash of a JSON-serialisable config."""
    blob = json.dumps(config, sort_keys=True, default=_json_default).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def _coerce(df: pd.DataFrame, schema: pa.Schema, what: str) -> pa.Table:
    df = df.copy() if any(c in LATE_COLUMNS and c not in df.columns for c in schema.names) else df
    for c in schema.names:  # rows made by code that predates the budget axis: budget 0
        if c in LATE_COLUMNS and c not in df.columns:
            value = LATE_COLUMNS[c][1]
            df[c] = df["num_output_tokens"] if value is None and "num_output_tokens" in df else (value or 0)
    missing = [f.name for f in schema if f.name not in df.columns]
    if missing:
        raise ValueError(f"{what} rows lack columns {missing}")
    return pa.Table.from_pandas(df[[f.name for f in schema]], schema=schema, preserve_index=False)


class RunDir:
    """A run directory. Cheap to construct; touches the disk only when asked."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)

    # -- paths ---------------------------------------------------------------------------
    @property
    def run_json(self) -> Path:
        return self.path / "run.json"

    @property
    def problems_path(self) -> Path:
        return self.path / "problems.parquet"

    @property
    def samples_dir(self) -> Path:
        return self.path / "samples"

    def verdicts_dir(self, verifier: str) -> Path:
        return self.path / "verdicts" / verifier

    @property
    def analysis_dir(self) -> Path:
        return self.path / "analysis"

    def exists(self) -> bool:
        return self.path.is_dir()

    def has_samples(self) -> bool:
        return bool(shard_paths(self.samples_dir))

    # -- run.json ------------------------------------------------------------------------
    def read_config(self) -> dict[str, Any]:
        if not self.run_json.is_file():
            return {}
        try:
            rec = json.loads(self.run_json.read_text())
        except json.JSONDecodeError as e:
            raise InputError(f"{self.run_json}: not valid JSON ({e.msg}, line {e.lineno})") from e
        except UnicodeDecodeError as e:
            raise InputError(f"{self.run_json}: not UTF-8 text") from e
        if not isinstance(rec, dict):
            raise InputError(f"{self.run_json}: expected a JSON object, got {type(rec).__name__}")
        return rec

    def write_config(self, config: dict[str, Any]) -> None:
        atomic_write_json(self.run_json, config)

    # -- problems ------------------------------------------------------------------------
    def write_problems(self, problems: pd.DataFrame) -> None:
        atomic_write_table(self.problems_path, problems)

    def read_problems(self) -> pd.DataFrame:
        if not self.problems_path.is_file():
            from ttscale.rundir.outputs import not_a_run

            raise not_a_run(self.path)
        return pd.read_parquet(self.problems_path)

    # -- samples and verdicts ------------------------------------------------------------
    def write_samples(self, rows: pd.DataFrame) -> Path:
        return write_shard(self.samples_dir, _coerce(rows, SAMPLE_SCHEMA, "sample"))

    def read_samples(self, columns: list[str] | None = None) -> pd.DataFrame:
        df = read_shards(self.samples_dir, SAMPLE_SCHEMA, columns)
        return df

    def require_samples(self, columns: list[str] | None = None) -> pd.DataFrame:
        if not self.exists():
            raise InputError(f"{self.path}: run directory does not exist")
        if not self.has_samples():
            if not self.run_json.is_file() and not self.problems_path.is_file():
                from ttscale.rundir.outputs import not_a_run

                raise not_a_run(self.path)
            raise InputError(f"{self.samples_dir}: no samples in this run directory")
        return self.read_samples(columns)

    def write_verdicts(self, verifier: str, rows: pd.DataFrame) -> Path:
        return write_shard(self.verdicts_dir(verifier), _coerce(rows, VERDICT_SCHEMA, "verdict"))

    def read_verdicts(self, verifier: str, columns: list[str] | None = None,
                      unique: bool = True) -> pd.DataFrame:
        """The verdicts of one verifier folder.

        With ``unique`` (the default) a folder holding two verdicts for one sample (left by two
        concurrent verifies of versions before stage locks) is refused with one line, never half
        read: ``ttscale verify`` repairs it (see :func:`dedupe_verdicts`).
        """
        df = read_shards(self.verdicts_dir(verifier), VERDICT_SCHEMA, columns)
        if unique and set(SAMPLE_KEY) <= set(df.columns):
            dup = int(df.duplicated(SAMPLE_KEY).sum())
            if dup:
                raise InputError(
                    f"{self.verdicts_dir(verifier)}: {dup} sample(s) have more than one verdict "
                    f"(concurrent verifies of an older version); run `ttscale verify {self.path} "
                    f"--name {verifier} ...` with the same verifier to repair it")
        return df

    def dedupe_verdicts(self, verifier: str) -> int:
        """Keep the first verdict of each sample in a verifier folder; returns how many went.

        Call under the folder's stage lock. The kept rows go to one new shard, written before
        the old shards are removed: a crash in between leaves duplicates again (repaired by the
        next call), never a lost verdict.
        """
        folder = self.verdicts_dir(verifier)
        old = shard_paths(folder)
        df = read_shards(folder, VERDICT_SCHEMA)
        keep = ~df.duplicated(SAMPLE_KEY)
        dropped = int((~keep).sum())
        if not dropped:
            return 0
        write_shard(folder, _coerce(df[keep].reset_index(drop=True), VERDICT_SCHEMA, "verdict"))
        for p in old:
            p.unlink(missing_ok=True)
        _fsync_dir(folder)
        return dropped

    def verifiers(self) -> list[str]:
        root = self.path / "verdicts"
        if not root.is_dir():
            return []
        return sorted(p.name for p in root.iterdir() if p.is_dir() and shard_paths(p))


def shard_paths(folder: Path) -> list[Path]:
    """Finished shards of a folder, in the order they were written (temporary files excluded)."""
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.glob("part-*.parquet") if not p.name.startswith("."))


def write_shard(folder: Path, table: pa.Table) -> Path:
    """Write one shard atomically. Names sort by creation time, then a random suffix."""
    name = f"part-{time.time_ns():020d}-{uuid.uuid4().hex[:8]}.parquet"
    return atomic_write_table(folder / name, table)


def read_shards(
    folder: Path, schema: pa.Schema, columns: list[str] | None = None
) -> pd.DataFrame:
    """Concatenate a folder's shards (an empty frame with the schema's columns if none); a
    shard that cannot be read raises :class:`ttscale.rundir.damage.DamagedShard`."""
    paths = shard_paths(folder)
    cols = columns or [f.name for f in schema]
    if not paths:
        return schema.empty_table().select(cols).to_pandas()
    tables = [read_parquet(p, cols, schema) for p in paths]
    return pa.concat_tables(tables).to_pandas()



def repair_folder(folder: Path, schema: pa.Schema) -> list[Path]:
    """Set aside every damaged shard of ``folder`` (samples/ or verdicts/<name>/, see
    :mod:`ttscale.rundir.damage`) and count them in run.json's ``damaged_shards_set_aside``;
    their new paths. Call under the folder's stage lock."""
    damaged = find_damaged(shard_paths(folder), schema)
    if not damaged:
        return []
    run_dir = run_dir_of(folder)
    moved = set_aside(run_dir, damaged)
    try:
        rec = json.loads((run_dir / "run.json").read_text())
    except (OSError, ValueError):
        return moved  # no record to count in (an imported or hand-made run)
    if isinstance(rec, dict):
        key = str(folder.relative_to(run_dir))
        total = dict(rec.get("damaged_shards_set_aside") or {})
        total[key] = int(total.get(key, 0)) + len(moved)
        rec["damaged_shards_set_aside"] = total
        atomic_write_json(run_dir / "run.json", rec)
    return moved
