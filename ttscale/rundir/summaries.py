"""Per-verifier summaries of a run directory: counted once, kept up to date incrementally.

Every analysis stage (analyze, compare, forecast, simulate, report) needs per (problem,
temperature) counts, and the selection metrics need each problem's answer histogram and score
ranks, never the samples themselves. This module keeps those under ``RUN_DIR/summaries/``::

    summaries/samples.parquet              problem_id, temperature, budget, n, prompt_tokens,
                                           output_tokens, thinking_tokens, answer_tokens, forced
    summaries/verdicts/<verifier>.parquet  problem_id, temperature, budget, answer, score, count, passed

A group is a (problem, temperature, budget): the budget is 0 in runs without a budget axis (and in
run directories written before it), so everything said below of a (problem, temperature) holds
of each of its budgets.

``samples.parquet`` holds, per (problem, temperature), the number of samples and the sums of
their token counts. A verifier's summary holds one row per distinct (answer, score) of a
(problem, temperature): how many samples gave it (``count``) and how many of those the verifier
passed (``passed``). Null answers (no vote) and null scores (none given; NaN is stored as null)
are rows of their own. Counts per problem are sums over the rows; maj@k reads the answer
histogram (sum over scores), best-of-k the score blocks (sum over answers): see
:mod:`ttscale.analysis.curves.vote_curves`.

Each summary file records, in its Parquet metadata, the names of the shards folded into it and
the hash of its content. An update reads only the shards not yet folded (only the columns it
needs, batch by batch), adds their counts and writes the whole file atomically (temporary file,
fsync, rename). A shard is named once and never rewritten, so the file always equals the sum
over the shards it names: killed at any moment (SIGKILL included), the old file stays and the
next update folds the remaining shards. A folded shard that has disappeared (shards deleted by
hand) makes the next update recount from scratch. The file also records each folded shard's
size: a shard whose size has changed since (cut short by a copy, say) is opened and, if it cannot
be read, named as damaged (:class:`ttscale.rundir.damage.DamagedShard`) rather than counted from
the summary as if it were whole.

Duplicates cannot be seen from counts alone; the check made here is that a verifier never has
more verdicts of a (problem, temperature) than there are samples of it, and none of a (problem,
temperature) that has no samples (a verdict of an unknown sample).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ttscale.errors import InputError
from ttscale.rundir.damage import DamagedShard, read_shard
from ttscale.rundir.store import (
    SAMPLE_SCHEMA,
    VERDICT_SCHEMA,
    RunDir,
    atomic_write_bytes,
    iter_batches,
    read_parquet,
    shard_paths,
)

VERSION = 2  # 2: the budget axis (a version-1 file is recounted from the shards)
META_KEY = b"ttscale.summary"
GROUP = ["problem_id", "temperature", "budget"]

SAMPLES_SUMMARY_SCHEMA = pa.schema([
    ("problem_id", pa.string()), ("temperature", pa.float64()), ("budget", pa.int64()),
    ("n", pa.int64()), ("prompt_tokens", pa.int64()), ("output_tokens", pa.int64()),
    ("thinking_tokens", pa.int64()), ("answer_tokens", pa.int64()), ("forced", pa.int64()),
])
SAMPLE_VALUES = ["n", "prompt_tokens", "output_tokens", "thinking_tokens", "answer_tokens", "forced"]
VERDICT_SUMMARY_SCHEMA = pa.schema([
    ("problem_id", pa.string()), ("temperature", pa.float64()), ("budget", pa.int64()),
    ("answer", pa.string()), ("score", pa.float64()), ("count", pa.int64()), ("passed", pa.int64()),
])
VERDICT_KEYS = ["problem_id", "temperature", "budget", "answer", "score"]
#: rows of a shard read per batch while folding it (bounded memory)
BATCH_ROWS = 262_144


@dataclass
class Summary:
    """A summary table, the shards folded into it and the hash of its content."""

    table: pa.Table
    shards: list[str]
    content_hash: str
    path: Path
    sizes: dict[str, int] | None = None  # bytes of each folded shard when it was folded


def summaries_dir(run: RunDir) -> Path:
    return run.path / "summaries"


def samples_summary_path(run: RunDir) -> Path:
    return summaries_dir(run) / "samples.parquet"


def verdict_summary_path(run: RunDir, verifier: str) -> Path:
    return summaries_dir(run) / "verdicts" / f"{verifier}.parquet"


# -- aggregation -----------------------------------------------------------------------------
def _sum_by(table: pa.Table, keys: list[str], values: list[str]) -> pa.Table:
    """Sum ``values`` over rows of equal ``keys`` (nulls are a key of their own), sorted."""
    if table.num_rows == 0:
        return table.select([*keys, *values])
    agg = table.group_by(keys, use_threads=False).aggregate([(v, "sum") for v in values])
    out = agg.select([*keys, *[f"{v}_sum" for v in values]]).rename_columns([*keys, *values])
    return out.sort_by([(k, "ascending") for k in keys])


def _samples_part(batch: pa.Table) -> pa.Table:
    t = pa.table({
        "problem_id": batch.column("problem_id"), "temperature": batch.column("temperature"),
        "budget": pc.cast(batch.column("budget"), pa.int64()),
        "n": pa.array(np.ones(batch.num_rows, np.int64)),
        "prompt_tokens": pc.cast(batch.column("num_prompt_tokens"), pa.int64()),
        "output_tokens": pc.cast(batch.column("num_output_tokens"), pa.int64()),
        "thinking_tokens": pc.cast(batch.column("thinking_tokens"), pa.int64()),
        "answer_tokens": pc.cast(batch.column("answer_tokens"), pa.int64()),
        "forced": pc.cast(batch.column("forced"), pa.int64()),
    })
    return _sum_by(t, GROUP, SAMPLE_VALUES)


def _verdicts_part(batch: pa.Table) -> pa.Table:
    score = batch.column("score")
    score = pc.if_else(pc.is_nan(score), pa.scalar(None, pa.float64()), score)
    passed = batch.column("passed")
    if passed.null_count:
        raise InputError("field 'passed' is null for some sample")
    t = pa.table({
        "problem_id": batch.column("problem_id"), "temperature": batch.column("temperature"),
        "budget": pc.cast(batch.column("budget"), pa.int64()),
        "answer": batch.column("answer"), "score": score,
        "count": pa.array(np.ones(batch.num_rows, np.int64)),
        "passed": pc.cast(passed, pa.int64()),
    })
    return _sum_by(t, VERDICT_KEYS, ["count", "passed"])


def _hash(table: pa.Table) -> str:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as w:
        w.write_table(table)
    return hashlib.sha256(sink.getvalue().to_pybytes()).hexdigest()[:16]


# -- reading and writing ---------------------------------------------------------------------
def _read(path: Path, schema: pa.Schema) -> Summary | None:
    """The stored summary, or None when absent, unreadable or of another version."""
    try:
        pf = pq.ParquetFile(path)
        meta = json.loads((pf.schema_arrow.metadata or {}).get(META_KEY, b"{}"))
        if meta.get("version") != VERSION:
            return None
        table = pf.read().cast(schema)
    except (OSError, ValueError, pa.ArrowInvalid):
        return None
    sizes = meta.get("sizes")
    return Summary(table, list(meta.get("shards", [])), str(meta.get("hash", "")), path,
                   dict(sizes) if isinstance(sizes, dict) else None)


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return -1


def _changed(have: Summary, shards: list[Path], schema: pa.Schema | None) -> bool:
    """Whether a folded shard's size differs from when it was folded (or was not recorded);
    one that changed and cannot be read raises DamagedShard."""
    if have.sizes is None:
        return True
    changed = False
    for p in shards:
        if p.name in have.sizes and have.sizes[p.name] != _size(p):
            read_shard(p, schema)  # raises when damaged
            changed = True
    return changed


def _write(path: Path, table: pa.Table, shards: list[str], sizes: dict[str, int] | None = None) -> Summary:
    h = _hash(table)
    meta = {"version": VERSION, "shards": shards, "hash": h, "sizes": sizes or {}}
    table = table.replace_schema_metadata({META_KEY: json.dumps(meta).encode()})
    buf = pa.BufferOutputStream()
    pq.write_table(table, buf)
    try:
        atomic_write_bytes(path, buf.getvalue().to_pybytes())
    except OSError:  # a read-only run directory: the summary is still right, just not kept
        pass
    return Summary(table.replace_schema_metadata(None), shards, h, path, sizes)


def _update(path: Path, folder: Path, schema: pa.Schema, columns: list[str], part, keys: list[str],
            values: list[str], shard_schema: pa.Schema | None = None) -> Summary:
    shards = shard_paths(folder)
    names = [p.name for p in shards]
    have = _read(path, schema)
    if have is not None and not set(have.shards) <= set(names):
        have = None  # a folded shard is gone: recount everything
    if have is not None and _changed(have, shards, shard_schema):
        have = None  # a folded shard was rewritten (and is readable): recount everything
    done = set(have.shards) if have is not None else set()
    new = [p for p in shards if p.name not in done]
    if have is not None and not new:
        return have
    parts = [have.table] if have is not None else [schema.empty_table()]
    for p in new:
        pending = []
        for batch in iter_batches(p, columns, BATCH_ROWS, shard_schema):
            pending.append(part(batch))
        if pending:
            parts.append(_sum_by(pa.concat_tables(pending), keys, values))
        if len(parts) > 8:  # keep the running total small
            parts = [_sum_by(pa.concat_tables(parts), keys, values).cast(schema)]
    table = _sum_by(pa.concat_tables(parts), keys, values).cast(schema)
    folded = [*(have.shards if have is not None else []), *[p.name for p in new]]
    return _write(path, table, folded, {p.name: _size(p) for p in shards if p.name in set(folded)})


def samples_summary(run: RunDir) -> Summary:
    """Per (problem, temperature, budget): samples, token sums and forced answers, folding any
    new sample shards."""
    if not run.has_samples():
        raise InputError(f"{run.samples_dir}: no samples in this run directory")
    return _update(samples_summary_path(run), run.samples_dir, SAMPLES_SUMMARY_SCHEMA,
                   ["problem_id", "temperature", "budget", "num_prompt_tokens", "num_output_tokens",
                    "thinking_tokens", "answer_tokens", "forced"],
                   _samples_part, GROUP, SAMPLE_VALUES, SAMPLE_SCHEMA)


def verdict_summary(run: RunDir, verifier: str, check: bool = True) -> Summary:
    """A verifier's answer/score histogram per (problem, temperature), folding new shards.

    With ``check``, an InputError when the verdicts exceed the samples of some (problem,
    temperature) or name one without samples (see the module doc)."""
    folder = run.verdicts_dir(verifier)
    try:
        s = _update(verdict_summary_path(run, verifier), folder, VERDICT_SUMMARY_SCHEMA,
                    ["problem_id", "temperature", "budget", "answer", "score", "passed"],
                    _verdicts_part, VERDICT_KEYS, ["count", "passed"],
                    VERDICT_SCHEMA)
    except DamagedShard:
        raise
    except InputError as e:
        raise InputError(f"{folder}: {e}") from None
    if check:
        _check_against_samples(run, verifier, s)
    return s


def _check_against_samples(run: RunDir, verifier: str, s: Summary) -> None:
    per = _sum_by(s.table, GROUP, ["count"])
    samples = samples_summary(run).table.select([*GROUP, "n"])
    joined = per.join(samples, GROUP, join_type="left outer")
    bad = pc.or_(pc.is_null(joined["n"]), pc.greater(joined["count"], pc.fill_null(joined["n"], 0)))
    if pc.any(bad).as_py():
        row = joined.filter(bad).slice(0, 1).to_pylist()[0]
        what = ("a verdict for a sample not in samples/" if row["n"] is None
                else f"{row['count']} verdicts for {row['n']} samples (a sample verified twice)")
        raise InputError(f"{run.verdicts_dir(verifier)}: {what} (problem_id {row['problem_id']!r}, "
                         f"temperature {row['temperature']}, budget {row['budget']})")


def update_all(run: RunDir) -> dict[str, str]:
    """Bring every summary of ``run`` up to date; {verifier: content hash}."""
    if run.has_samples():
        samples_summary(run)
    return {name: verdict_summary(run, name).content_hash for name in run.verifiers()}


def recount(run: RunDir, verifier: str) -> pa.Table:
    """A verifier's summary recomputed from all of its verdicts at once (for checks and tests)."""
    cols = ["problem_id", "temperature", "budget", "answer", "score", "passed"]
    table = pa.Table.from_pandas(run.read_verdicts(verifier, columns=cols), preserve_index=False)
    parts = [_verdicts_part(pa.Table.from_batches([b])) for b in table.to_batches()]
    if not parts:
        return VERDICT_SUMMARY_SCHEMA.empty_table()
    return _sum_by(pa.concat_tables(parts), VERDICT_KEYS, ["count", "passed"]).cast(VERDICT_SUMMARY_SCHEMA)


def clear(run: RunDir) -> None:
    """Remove every summary (they are recomputed from the shards when next needed)."""
    import shutil

    shutil.rmtree(summaries_dir(run), ignore_errors=True)


JOINT_SCHEMA = pa.schema([
    ("problem_id", pa.string()), ("temperature", pa.float64()), ("budget", pa.int64()),
    ("n", pa.int64()), ("passed", pa.int64()), ("truth", pa.int64()), ("both", pa.int64()),
])


def joint_summary(run: RunDir, verifier: str, reference: str) -> pa.Table:
    """Per (problem, temperature), over the samples both verified: n, how many ``verifier``
    passed, how many ``reference`` passed (the truth), and how many both (for error rates and
    accept@k). Kept in ``summaries/joint/<verifier>~<reference>.parquet`` and recomputed only
    when either verifier's shards change (it reads only the key and ``passed`` columns)."""
    a, b = verdict_summary(run, verifier), verdict_summary(run, reference)
    path = summaries_dir(run) / "joint" / f"{verifier}~{reference}.parquet"
    stamp = [f"a:{s}" for s in a.shards] + [f"b:{s}" for s in b.shards]
    have = _read(path, JOINT_SCHEMA)
    if have is not None and have.shards == stamp:
        return have.table
    table = _joint_dense(run, verifier, reference)
    if table is None:  # sample indices outside 0 .. n-1 of their group: a join
        table = _joint_join(run, verifier, reference)
    table = table.sort_by([(k, "ascending") for k in GROUP]).cast(JOINT_SCHEMA)
    return _write(path, table, stamp).table


_KEY_COLUMNS = ["problem_id", "temperature", "budget", "sample_index", "passed"]


def _joint_dense(run: RunDir, verifier: str, reference: str) -> pa.Table | None:
    """The joint counts with one byte a sample: each verifier's verdicts go, shard by shard, to
    slot ``offset[group] + sample_index`` of an int8 array (-1: no verdict), groups and sizes
    from the samples' summary; then counted per group. Time linear in samples, memory about
    three bytes a sample. None when some index does not fit its group's 0 .. n-1."""
    samples = samples_summary(run).table
    pids = pc.unique(samples["problem_id"])
    temps = pc.unique(samples["temperature"])
    buds = pc.unique(samples["budget"])
    width = len(temps) * len(buds)
    code = (pc.index_in(samples["problem_id"], pids).to_numpy() * width
            + pc.index_in(samples["temperature"], temps).to_numpy() * len(buds)
            + pc.index_in(samples["budget"], buds).to_numpy())
    sizes = np.zeros(len(pids) * width, np.int64)
    sizes[code] = samples["n"].to_numpy()
    offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    total = int(sizes.sum())

    def fill(name: str) -> np.ndarray | None:
        state = np.full(total, -1, np.int8)
        for path in shard_paths(run.verdicts_dir(name)):
            t = read_parquet(path, _KEY_COLUMNS, VERDICT_SCHEMA)
            p = pc.index_in(t["problem_id"], pids).to_numpy(zero_copy_only=False)
            q = pc.index_in(t["temperature"], temps).to_numpy(zero_copy_only=False)
            r = pc.index_in(t["budget"], buds).to_numpy(zero_copy_only=False)
            if any(np.isnan(x.astype(float)).any() for x in (p, q, r)):
                return None  # a verdict for a group without samples
            g = p.astype(np.int64) * width + q.astype(np.int64) * len(buds) + r.astype(np.int64)
            idx = t["sample_index"].to_numpy(zero_copy_only=False).astype(np.int64)
            if ((idx < 0) | (idx >= sizes[g])).any():
                return None
            state[offsets[g] + idx] = t["passed"].to_numpy(zero_copy_only=False).astype(np.int8)
        return state

    a = fill(verifier)
    b = fill(reference) if a is not None else None
    if a is None or b is None:
        return None
    both = (a >= 0) & (b >= 0)
    live = np.flatnonzero(sizes > 0)
    starts = offsets[live]

    def per_group(mask: np.ndarray) -> np.ndarray:
        return np.add.reduceat(mask.astype(np.int64), starts) if total else np.zeros(0, np.int64)

    n = per_group(both)
    keep = n > 0
    rows = live[keep]
    return pa.table({
        "problem_id": pids.take(pa.array(rows // width)),
        "temperature": temps.take(pa.array((rows % width) // len(buds))),
        "budget": buds.take(pa.array(rows % len(buds))),
        "n": n[keep], "passed": per_group(both & (a == 1))[keep],
        "truth": per_group(both & (b == 1))[keep], "both": per_group(both & (a == 1) & (b == 1))[keep],
    })


def _joint_join(run: RunDir, verifier: str, reference: str) -> pa.Table:
    """The joint counts by a hash join of the two verifiers' key columns (any sample indices)."""
    cols = _KEY_COLUMNS

    def read(name: str, as_: str) -> pa.Table:
        parts = [read_parquet(p, cols, VERDICT_SCHEMA) for p in shard_paths(run.verdicts_dir(name))]
        t = pa.concat_tables(parts) if parts else pa.table({c: [] for c in cols})
        return t.rename_columns([*cols[:4], as_])

    joined = read(verifier, "passed").join(read(reference, "truth"), cols[:4], join_type="inner",
                                           use_threads=False)
    p = pc.cast(joined["passed"], pa.int64())
    t = pc.cast(joined["truth"], pa.int64())
    table = pa.table({"problem_id": joined["problem_id"], "temperature": joined["temperature"],
                      "budget": joined["budget"],
                      "n": pa.array(np.ones(joined.num_rows, np.int64)), "passed": p, "truth": t,
                      "both": pc.multiply(p, t)})
    return _sum_by(table, GROUP, ["n", "passed", "truth", "both"])
