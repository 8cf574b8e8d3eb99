"""Adaptive sampling's stopping decisions, as a run directory keeps them.

``RUN_DIR/adaptive/state.parquet``: per (problem, temperature) the samples drawn ``n``, the
boundary checked before ``prev``, the ``successes`` there, whether it ``stopped`` and every boundary
checked. Written by the adaptive loop (:mod:`ttscale.orchestration.adaptive`), read by it on resume
and by the analysis of adaptive runs.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from ttscale.rundir.store import RunDir, atomic_write_table

STATE_COLUMNS = ["problem_id", "temperature", "n", "prev", "successes", "stopped", "checks"]


def state_path(run: RunDir) -> Path:
    """Where a run keeps its stopping decisions."""
    return run.path / "adaptive" / "state.parquet"


def read_state(run: RunDir) -> pd.DataFrame:
    """The stopping decisions so far (empty frame with the columns if none)."""
    path = state_path(run)
    if not path.is_file():
        return pd.DataFrame({c: pd.Series(dtype=t) for c, t in zip(
            STATE_COLUMNS, ["object", "float64", "int64", "int64", "int64", "bool", "object"], strict=True)})
    return pd.read_parquet(path)


def write_state(run: RunDir, rows: dict) -> None:
    """Write the decisions, keyed (problem_id, temperature), atomically."""
    frame = pd.DataFrame([{"problem_id": k[0], "temperature": k[1], **v} for k, v in sorted(rows.items())],
                         columns=STATE_COLUMNS)
    atomic_write_table(state_path(run), frame.astype({"n": "int64", "prev": "int64", "successes": "int64",
                                                      "stopped": "bool"}))
