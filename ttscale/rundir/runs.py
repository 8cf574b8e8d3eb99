"""A run directory as Python objects: ``ttscale.open_run(path)``.

:class:`Run` reads nothing when opened; each table is read from its Parquet shards the first time
it is asked for and kept: ``problems`` (problems.parquet), ``samples`` (samples/),
``verdicts`` (every verifier's, with a ``verifier`` column), ``counts`` (a counts table per
verifier and temperature), ``config`` (run.json), and the analysis' ``curves`` and ``fits``
where ``ttscale analyze`` wrote them. Writing stays with the stages (sample, verify, analyze).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import pandas as pd

from ttscale.errors import InputError


@dataclass
class Run:
    """One run directory, its tables loaded lazily (see the module doc)."""

    path: Path

    @cached_property
    def _dir(self) -> Any:
        from ttscale.rundir.store import RunDir

        return RunDir(self.path)

    @cached_property
    def config(self) -> dict[str, Any]:
        """run.json: the resolved sampling settings, their hash, versions and seeds."""
        return self._dir.read_config()

    @cached_property
    def problems(self) -> pd.DataFrame:
        """problems.parquet: one row per problem (problem_id, task, prompt, reference, ...)."""
        return self._dir.read_problems()

    @cached_property
    def samples(self) -> pd.DataFrame:
        """Every sample: problem_id, temperature, sample_index, text, token counts, ..."""
        return self._dir.require_samples()

    @property
    def verifiers(self) -> list[str]:
        """The folders under verdicts/ that hold verdicts, sorted."""
        return self._dir.verifiers()

    def read_verdicts(self, verifier: str, columns: list[str] | None = None) -> pd.DataFrame:
        """One verifier's verdicts (a folder under verdicts/); InputError if there are none."""
        if verifier not in self.verifiers:
            raise InputError(f"{self.path / 'verdicts' / verifier}: no verdicts "
                             f"(have: {', '.join(self.verifiers) or 'none'})")
        return self._dir.read_verdicts(verifier, columns)

    @cached_property
    def verdicts(self) -> pd.DataFrame:
        """Every verifier's verdicts, one row per (verifier, sample), with a ``verifier`` column."""
        frames = [self.read_verdicts(v).assign(verifier=v) for v in self.verifiers]
        if not frames:
            raise InputError(f"{self.path / 'verdicts'}: no verdicts in this run directory "
                             "(run ttscale.verify first)")
        return pd.concat(frames, ignore_index=True)

    def verifier_info(self, verifier: str) -> dict[str, Any]:
        """verdicts/<verifier>/verifier.json: the verifier's name, kind and options."""
        meta = self.path / "verdicts" / verifier / "verifier.json"
        return json.loads(meta.read_text()) if meta.is_file() else {}

    @cached_property
    def counts(self) -> pd.DataFrame:
        """A counts table: verifier, temperature, (budget, when the run has thinking budgets),
        problem, num_samples, num_correct, and the mean tokens its verified samples used:
        mean_prompt_tokens, mean_output_tokens, mean_thinking_tokens, mean_answer_tokens."""
        from ttscale.rundir.counts import counts_from_verdicts
        from ttscale.rundir.store import SAMPLE_KEY

        v = self.verdicts[[*SAMPLE_KEY, "passed", "verifier"]]
        group = ["verifier", "temperature", *(["budget"] if (v["budget"] > 0).any() else [])]
        counts = counts_from_verdicts(v, group_by=group)
        tok = self._dir.read_samples([*SAMPLE_KEY, "num_prompt_tokens", "num_output_tokens",
                                      "thinking_tokens", "answer_tokens"])
        per = v.merge(tok, on=SAMPLE_KEY, how="left").groupby([*group, "problem_id"], sort=True)
        means = per[["num_prompt_tokens", "num_output_tokens", "thinking_tokens", "answer_tokens"]].mean()
        means.columns = ["mean_prompt_tokens", "mean_output_tokens", "mean_thinking_tokens",
                         "mean_answer_tokens"]
        means = means.reset_index().rename(columns={"problem_id": "problem"})
        return counts.merge(means, on=[*group, "problem"], how="left")

    @property
    def curves(self) -> pd.DataFrame:
        """analysis/curves.parquet (InputError when ``ttscale.analyze`` has not run)."""
        path = self.path / "analysis" / "curves.parquet"
        if not path.is_file():
            raise InputError(f"{path}: no analysis yet (run ttscale.analyze on this run)")
        return pd.read_parquet(path)

    @property
    def fits(self) -> pd.DataFrame:
        """analysis/fits.json as a table (InputError when ``ttscale.analyze`` has not run)."""
        path = self.path / "analysis" / "fits.json"
        if not path.is_file():
            raise InputError(f"{path}: no analysis yet (run ttscale.analyze on this run)")
        return pd.DataFrame(json.loads(path.read_text()))

    def __fspath__(self) -> str:
        return str(self.path)


def open_run(path: str | os.PathLike) -> Run:
    """Open a run directory (InputError if ``path`` is not one); nothing is read until asked.

    >>> run = ttscale.open_run("results/embedded-think/think-llama/long-addition")  # doctest: +SKIP
    >>> run.samples.groupby("temperature").size()                            # doctest: +SKIP
    """
    p = Path(path)
    if not p.is_dir():
        raise InputError(f"{p}: no such run directory")
    if not (p / "run.json").is_file() and not (p / "problems.parquet").is_file() \
            and not (p / "samples").is_dir():
        raise InputError(f"{p}: not a run directory (no run.json, problems.parquet or samples/)")
    return Run(p)
