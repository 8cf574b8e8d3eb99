"""Damaged shards: every reader checks what it opens, and ``--repair`` sets damaged ones aside.

Shards are written atomically (:mod:`ttscale.rundir.store`), so a damaged one comes from outside
ttscale: a copy cut short, a failing disk, ``truncate``, a sync tool that gave up half-way. Every
reader of ``samples/`` and ``verdicts/<name>/`` opens shards through :func:`open_shard`,
:func:`read_shard` or :func:`iter_shard_batches`, which turn any failure (no Parquet footer, a
corrupt page, a missing column) into :class:`DamagedShard`: one line with the shard's path, what
is wrong with it and the command that repairs the run (exit code 2).

Repairing (``ttscale sample RUN --repair``, ``ttscale verify RUN ... --repair``; the API's
``repair=True``; :func:`ttscale.rundir.store.repair_folder`) reads every shard of the folder in
full (:func:`find_damaged`) and moves the damaged ones to ``RUN_DIR/damaged/<folder>/``
(:func:`set_aside`), kept for inspection and out of every reader's way; ``run.json``'s
``damaged_shards_set_aside`` counts them per folder. The
same call then draws (or judges) the rows they held again: sample j of a (problem, temperature)
has the seed ``seed_base + j`` whatever the batch, so the redrawn samples are the lost ones, and
a deterministic verifier gives the same verdicts.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from ttscale.errors import InputError

#: what a read of a damaged Parquet file raises (pyarrow's errors are OSError or ArrowException)
READ_ERRORS = (OSError, ValueError, pa.ArrowException)


def _cause(e: BaseException) -> str:
    """pyarrow's message, one short clause: no repeated path, no advice about corruption."""
    text = " ".join(str(e).split()) or type(e).__name__
    text = re.sub(r"^Could not open Parquet input source '[^']*': ", "", text)
    text = text.split(". Either the file", 1)[0]
    return text.rstrip(".")


def _folder_of(path: Path) -> tuple[Path, str] | None:
    """(run directory, what the folder holds) for a shard of samples/ or verdicts/<name>/."""
    folder = path.parent
    if folder.name == "samples":
        return folder.parent, "samples"
    if folder.parent.name == "verdicts":
        return folder.parent.parent, f"verdicts/{folder.name}"
    return None


def repair_hint(path: Path) -> str:
    """The command that sets a damaged shard aside and redoes its rows."""
    where = _folder_of(path)
    if where is None:
        return "move it away and run the stage that wrote it again"
    run, what = where
    if what == "samples":
        return (f"`ttscale sample {run} --repair` sets it aside and draws its samples again "
                "(same seeds, same samples)")
    name = what.split("/", 1)[1]
    return (f"`ttscale verify {run} {_verifier_flags(path.parent)} --name {name} --repair` sets "
            "it aside and judges its samples again")


def _verifier_flags(folder: Path) -> str:
    """``--verifier NAME --verifier-option K=V ...`` from the folder's verifier.json."""
    try:
        meta = json.loads((folder / "verifier.json").read_text())
        flags = [f"--verifier {meta['name']}"]
        flags += [f"--verifier-option {k}={json.dumps(v) if not isinstance(v, str) else v}"
                  for k, v in (meta.get("options") or {}).items()]
        return " ".join(flags)
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return "--verifier ..."


#: columns that shards written before the thinking-budget axis lack (filled when read, see
#: :func:`ttscale.rundir.store.with_late_columns`): never a sign of damage
LATE_COLUMN_NAMES = frozenset({"budget", "thinking_tokens", "answer_tokens", "forced"})


class DamagedShard(InputError):
    """A shard that cannot be read: one line with its path, the cause and the repair command."""

    def __init__(self, path: str | os.PathLike, cause: str):
        self.path = Path(path)
        self.cause = cause
        super().__init__(f"{self.path}: damaged shard ({cause}); {repair_hint(self.path)}")


def open_shard(path: Path, schema: pa.Schema | None = None, **kwargs) -> pq.ParquetFile:
    """Open a shard, checking its footer and that it has ``schema``'s columns."""
    try:
        pf = pq.ParquetFile(path, **kwargs)
        names = set(pf.schema_arrow.names)
    except READ_ERRORS as e:
        raise DamagedShard(path, _cause(e)) from None
    if schema is not None:
        missing = [f.name for f in schema if f.name not in names and f.name not in LATE_COLUMN_NAMES]
        if missing:
            raise DamagedShard(path, f"no column {missing[0]!r}")
    return pf


def read_shard(path: Path, schema: pa.Schema | None = None, columns: list[str] | None = None,
               **kwargs) -> pa.Table:
    """A shard's ``columns`` (all by default); DamagedShard when any part cannot be read."""
    pf = open_shard(path, schema)
    try:
        table = pf.read(columns=columns, **kwargs)
    except READ_ERRORS as e:
        raise DamagedShard(path, _cause(e)) from None
    if table.num_rows != pf.metadata.num_rows:
        raise DamagedShard(path, f"{table.num_rows} rows read of {pf.metadata.num_rows}")
    return table


def iter_shard_batches(pf: pq.ParquetFile, path: Path, **kwargs) -> Iterator[pa.RecordBatch]:
    """``pf.iter_batches(**kwargs)`` with a failure named as a DamagedShard of ``path``."""
    it = pf.iter_batches(**kwargs)
    while True:
        try:
            batch = next(it)
        except StopIteration:
            return
        except READ_ERRORS as e:
            raise DamagedShard(path, _cause(e)) from None
        yield batch


def find_damaged(paths: list[Path], schema: pa.Schema) -> list[DamagedShard]:
    """The shards of ``paths`` that cannot be read in full as ``schema`` (each read whole)."""
    bad = []
    for p in paths:
        try:
            table = read_shard(p, schema)
            present = [f for f in schema if f.name in table.column_names]
            table.select([f.name for f in present]).cast(pa.schema(present))
        except DamagedShard as e:
            bad.append(e)
        except READ_ERRORS as e:  # a column of the wrong type
            bad.append(DamagedShard(p, _cause(e)))
    return bad


def set_aside(run_dir: Path, damaged: list[DamagedShard]) -> list[Path]:
    """Move damaged shards to ``run_dir/damaged/<their folder>/``; their new paths."""
    moved = []
    for d in damaged:
        dst = run_dir / "damaged" / d.path.relative_to(run_dir)
        dst.parent.mkdir(parents=True, exist_ok=True)
        os.replace(d.path, dst)
        moved.append(dst)
    return moved


def run_dir_of(folder: Path) -> Path:
    """The run directory of ``samples/`` or ``verdicts/<name>/``."""
    where = _folder_of(folder / "part")
    return where[0] if where else folder.parent
