"""The samples a verifier has not judged yet, read shard by shard with only the columns it needs.

:func:`plan` compares the run's summaries (:mod:`ttscale.rundir.summaries`: samples per (problem,
temperature), and the verifier's verdicts per (problem, temperature)) without reading a sample:

- a (problem, temperature) with as many verdicts as samples is done;
- one without verdicts is verified whole;
- only one verified in part needs the verdicts' keys, read for its problems alone.

So a re-run with nothing to do reads two small summary files and no text. A verify that
finishes records the sample shards it saw whole (``summaries/verdicts/<verifier>.covered.json``,
valid while the verdict shards it lists exist); later runs skip those shards unopened.
:func:`iter_tasks` then walks the other sample shards one at a time: the key columns first, and the needed columns
(``text`` unless the verifier declares ``sample_columns``) only of the shards that hold work,
yielding (problem, samples) per problem of each shard. Memory is one shard's columns plus the
tasks in flight, whatever the size of the run.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from ttscale.rundir.store import (
    SAMPLE_KEY,
    SAMPLE_SCHEMA,
    VERDICT_SCHEMA,
    RunDir,
    read_parquet,
    shard_paths,
)

#: a group of samples: (problem, temperature, budget)
GROUP = ["problem_id", "temperature", "budget"]

#: columns a verifier reads besides the sample key, unless it declares ``sample_columns``
DEFAULT_COLUMNS = ("text",)


@dataclass
class Plan:
    total: int  # samples in the run
    todo: int  # samples to verify
    problems: int  # problems with at least one sample to verify
    whole: pd.MultiIndex  # (problem_id, temperature, budget) without any verdict
    partial: pd.MultiIndex  # (problem_id, temperature, budget) verified in part
    shards: list[str] = field(default_factory=list)  # sample shards that may hold work
    all_shards: list[str] = field(default_factory=list)  # every sample shard at planning time
    done_keys: pd.MultiIndex = field(default_factory=lambda: pd.MultiIndex.from_arrays([[], [], [], []]))

    @property
    def skipped(self) -> int:
        return self.total - self.todo


def needed_columns(verifier: Any) -> list[str]:
    """The sample columns ``verifier`` reads: the key plus its ``sample_columns`` (default text)."""
    extra = tuple(getattr(verifier, "sample_columns", DEFAULT_COLUMNS) or ())
    known = set(SAMPLE_SCHEMA.names)
    return [*SAMPLE_KEY, *[c for c in extra if c in known and c not in SAMPLE_KEY]]


def plan(run: RunDir, folder: str) -> Plan:
    """What is left to verify in ``verdicts/<folder>`` (see the module doc)."""
    from ttscale.rundir.summaries import samples_summary, verdict_summary

    per = samples_summary(run).table.to_pandas().set_index(GROUP)["n"]
    if shard_paths(run.verdicts_dir(folder)):
        v = verdict_summary(run, folder, check=False).table.to_pandas()
        done = v.groupby(GROUP)["count"].sum()
        done = done.reindex(per.index, fill_value=0)
    else:
        done = pd.Series(0, index=per.index)
    whole = per.index[done.to_numpy() == 0]
    part = (done.to_numpy() > 0) & (done.to_numpy() < per.to_numpy())
    partial = per.index[part]
    todo = int(per[done == 0].sum()) + int((per[part] - done[part]).sum())
    pids = set(whole.get_level_values(0)) | set(partial.get_level_values(0))
    names = [q.name for q in shard_paths(run.samples_dir)]
    covered = _covered(run, folder)
    out = Plan(int(per.sum()), todo, len(pids), whole, partial,
               [n for n in names if n not in covered], names)
    if len(partial):
        out.done_keys = _done_keys(run, folder, sorted(set(partial.get_level_values(0))))
    return out


def _covered_path(run: RunDir, folder: str) -> Path:
    from ttscale.rundir.summaries import summaries_dir

    return summaries_dir(run) / "verdicts" / f"{folder}.covered.json"


def _covered(run: RunDir, folder: str) -> set[str]:
    """Sample shards a finished verify of ``folder`` saw whole (none if a verdict shard it
    listed is gone)."""
    try:
        rec = json.loads(_covered_path(run, folder).read_text())
    except (OSError, ValueError):
        return set()
    have = {q.name for q in shard_paths(run.verdicts_dir(folder))}
    if not set(rec.get("verdicts", [])) <= have:
        return set()
    return set(rec.get("samples", []))


def mark_covered(run: RunDir, folder: str, p: Plan) -> None:
    """Record that every sample shard of the plan is verified (after a verify that finished)."""
    from ttscale.rundir.store import atomic_write_json

    rec = {"samples": p.all_shards,
           "verdicts": [q.name for q in shard_paths(run.verdicts_dir(folder))]}
    try:
        atomic_write_json(_covered_path(run, folder), rec)
    except OSError:
        pass


def _done_keys(run: RunDir, folder: str, problem_ids: list[str]) -> pd.MultiIndex:
    """Keys of the verdicts of these problems (only the key columns, filtered per shard)."""
    paths = [str(p) for p in shard_paths(run.verdicts_dir(folder))]
    parts = [read_parquet(p, SAMPLE_KEY, VERDICT_SCHEMA) for p in paths]
    table = pa.concat_tables(parts)
    df = table.filter(pc.is_in(table["problem_id"], value_set=pa.array(problem_ids))).to_pandas()
    return pd.MultiIndex.from_frame(df[SAMPLE_KEY].astype({"sample_index": np.int64}))


def _mask(keys: pd.DataFrame, p: Plan) -> np.ndarray:
    pairs = pd.MultiIndex.from_frame(keys[GROUP])
    mask = pairs.isin(p.whole)
    if len(p.partial):
        part = pairs.isin(p.partial)
        if part.any():
            full = pd.MultiIndex.from_frame(keys[SAMPLE_KEY].astype({"sample_index": np.int64}))
            mask |= part & ~full.isin(p.done_keys)
    return np.asarray(mask)


def iter_shards(run: RunDir, p: Plan, columns: list[str]) -> Iterator[pd.DataFrame]:
    """The samples still to verify (only ``columns``), one frame per sample shard that has any."""
    if p.todo == 0:
        return
    for name in p.shards:
        path = run.samples_dir / name
        keys = read_parquet(path, SAMPLE_KEY, SAMPLE_SCHEMA).to_pandas()
        mask = _mask(keys, p)
        if not mask.any():
            continue
        table = read_parquet(path, columns, SAMPLE_SCHEMA)
        if not mask.all():
            table = table.filter(pa.array(mask))
        yield table.to_pandas()


def iter_keys(run: RunDir) -> Iterator[pd.DataFrame]:
    """Every sample's key, one frame per shard (for checks that must see all samples)."""
    for path in shard_paths(run.samples_dir):
        yield read_parquet(path, SAMPLE_KEY, SAMPLE_SCHEMA).to_pandas()


def iter_tasks(run: RunDir, p: Plan, columns: list[str], problems: dict[str, Any]
               ) -> Iterator[tuple[Any, pd.DataFrame]]:
    """(problem, its samples still to verify in one shard), shard after shard."""
    for frame in iter_shards(run, p, columns):
        for pid, grp in frame.groupby("problem_id", sort=True):
            yield problems[str(pid)], grp.reset_index(drop=True)
