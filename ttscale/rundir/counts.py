"""Counts tables: the smallest input the analysis accepts.

A counts table has one row per (problem, group): ``problem``, ``num_samples``, ``num_correct``,
plus any grouping columns (benchmark, model, temperature, budget, verifier, seed, ...). A
``budget`` column (thinking tokens; 0 = none) groups like ``temperature``. Counts derived from a
run may carry the tokens its samples used, per row: ``mean_prompt_tokens``,
``mean_output_tokens``, ``mean_thinking_tokens``, ``mean_answer_tokens`` (value columns). It is read from
CSV or Parquet, or derived from a run directory's samples and one verifier's verdicts.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ttscale.errors import InputError

REQUIRED = ("problem", "num_samples", "num_correct")
#: optional per-row token columns: mean tokens a sample used (output = thinking + answer)
TOKEN_COLUMNS = ("mean_output_tokens", "mean_thinking_tokens", "mean_answer_tokens", "mean_prompt_tokens")
#: columns of a counts table that are not grouping columns
VALUE_COLUMNS = ("problem", "num_samples", "num_correct",
                 # an adaptive run's rule and boundaries (ttscale.analysis.adaptive.run)
                 "adaptive_prev", "adaptive_successes", "adaptive_min_samples", "adaptive_max_samples",
                 # tokens actually used per sample, mean over the row's samples (the cost axis)
                 *TOKEN_COLUMNS)


#: names of columns the outputs add (curves, costs, simulations): not usable as grouping columns
RESERVED = ("k", "metric", "estimate", "ci_low", "ci_high", "flops", "coverage", "accuracy",
            "false_positive_rate", "samples_drawn", "utility")
#: counts above this are no sample counts (and would overflow int64 arithmetic)
MAX_COUNT = 1 << 53


def _show(value: object) -> str:
    """A cell as a user wrote it: 1e+20, nan, 'abc' (never np.float64(...))."""
    if hasattr(value, "item"):
        value = value.item()
    return repr(value) if isinstance(value, str) else str(value)


def group_columns(df: pd.DataFrame) -> list[str]:
    """The grouping columns of a counts table: every column but problem and the counts."""
    return [c for c in df.columns if c not in VALUE_COLUMNS]


def read_table(path: str | Path) -> pd.DataFrame:
    """Read a CSV or Parquet file, turning every failure into an InputError naming the file."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: no such file")
    if path.is_dir():
        raise InputError(f"{path}: is a directory, expected a CSV or Parquet counts table")
    if path.stat().st_size == 0:
        raise InputError(f"{path}: file is empty")
    with open(path, "rb") as f:
        head = f.read(256).lstrip()
    if path.suffix.lower() in (".json", ".jsonl") or head[:1] in (b"{", b"["):
        raise InputError(f"{path}: is JSON; a counts table is a CSV or Parquet file with columns "
                         "problem, num_samples, num_correct")
    try:
        if path.suffix.lower() in (".parquet", ".pq"):
            df = pd.read_parquet(path)
        else:
            df = pd.read_csv(path)
    except pd.errors.EmptyDataError as e:
        raise InputError(f"{path}: file is empty") from e
    except Exception as e:  # noqa: BLE001 - any parse failure is bad input
        raise InputError(f"{path}: cannot be read as a table ({type(e).__name__}: {e})") from e
    return df


def validate_counts(df: pd.DataFrame, source: str | Path) -> pd.DataFrame:
    """Check a counts table and return it with integer counts; raise InputError otherwise."""
    if len(df) == 0:
        raise InputError(f"{source}: counts table has no rows")
    for col in REQUIRED:
        if col not in df.columns:
            raise InputError(f"{source}: missing column '{col}' (need {', '.join(REQUIRED)})")
    clash = [c for c in df.columns if c in RESERVED]
    if clash:
        raise InputError(f"{source}: column '{clash[0]}' would be a grouping column, but the outputs use "
                         f"that name (reserved: {', '.join(RESERVED)}); rename it")
    out = df.copy()
    for col in ("num_samples", "num_correct"):
        values = pd.to_numeric(out[col], errors="coerce")
        bad = values.isna() | ~np.isfinite(values.astype(float)) | (values != np.round(values))
        if bad.any():
            row = int(np.flatnonzero(bad.to_numpy())[0])
            raise InputError(
                f"{source}: column '{col}' row {row + 1}: {_show(df[col].iloc[row])} is not a whole number"
            )
        if (values > MAX_COUNT).any():
            row = int(np.flatnonzero((values > MAX_COUNT).to_numpy())[0])
            raise InputError(f"{source}: column '{col}' row {row + 1}: {_show(df[col].iloc[row])} is "
                             f"too large for a count (at most 2**53)")
        if (values < 0).any():
            row = int(np.flatnonzero((values < 0).to_numpy())[0])
            raise InputError(f"{source}: column '{col}' row {row + 1}: negative count {_show(df[col].iloc[row])}")
        out[col] = values.astype(np.int64)
    if (out["num_samples"] == 0).any():
        row = int(np.flatnonzero((out["num_samples"] == 0).to_numpy())[0])
        raise InputError(f"{source}: column 'num_samples' row {row + 1}: zero samples")
    over = out["num_correct"] > out["num_samples"]
    if over.any():
        row = int(np.flatnonzero(over.to_numpy())[0])
        raise InputError(
            f"{source}: row {row + 1}: num_correct {out['num_correct'].iloc[row]} > "
            f"num_samples {out['num_samples'].iloc[row]}"
        )
    keys = ["problem", *group_columns(out)]
    dup = out.duplicated(keys)
    if dup.any():
        row = int(np.flatnonzero(dup.to_numpy())[0])
        raise InputError(f"{source}: row {row + 1}: problem {_show(out['problem'].iloc[row])} appears twice in one group")
    return out


def load_counts(path: str | Path) -> pd.DataFrame:
    """Read and validate a counts table from CSV or Parquet."""
    return validate_counts(read_table(path), path)


def counts_from_verdicts(verdicts: pd.DataFrame, group_by: list[str] | None = None) -> pd.DataFrame:
    """Per-sample verdicts (problem_id, passed, grouping columns) -> a counts table."""
    group_by = list(group_by or [])
    g = verdicts.groupby([*group_by, "problem_id"], sort=True, dropna=False)["passed"]
    out = g.agg(num_samples="size", num_correct="sum").reset_index()
    out = out.rename(columns={"problem_id": "problem"})
    out["num_correct"] = out["num_correct"].astype(np.int64)
    out["num_samples"] = out["num_samples"].astype(np.int64)
    return out[[*group_by, "problem", "num_samples", "num_correct"]]


def check_k(k: int | np.ndarray, n_min: int, source: str | Path, what: str = "k") -> None:
    """Raise InputError when a requested k is impossible for the samples available."""
    ks = np.atleast_1d(np.asarray(k))
    if (ks < 1).any():
        raise InputError(f"{source}: {what}={int(ks.min())} must be at least 1")
    if (ks > n_min).any():
        raise InputError(
            f"{source}: {what}={int(ks.max())} exceeds the samples available "
            f"(the smallest num_samples is {n_min})"
        )
