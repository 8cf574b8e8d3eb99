"""What the public verbs return: plain dataclasses holding pandas DataFrames, with ``plot``/``save``.

:class:`Analysis` (``ttscale.analyze``), :class:`Comparison` (``ttscale.compare``) and
:class:`Simulation` (``ttscale.simulate``) each keep the tables the CLI writes, draw the same
figures (``plot`` returns matplotlib Figures, which a notebook shows inline) and write the same
files (``save``). Nothing here computes: the stage modules do (``ttscale.analysis.*``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from ttscale.errors import InputError


@dataclass
class Analysis:
    """Scaling curves and fitted laws of one input (a counts table or a run directory).

    ``curves``: one row per (group, metric, k) with ``estimate``, ``ci_low``, ``ci_high``;
    ``fits``: one row per group (the law, its parameters and standard errors, fit errors,
    saturation points, FLOPs); ``costs``: FLOPs per problem at each k, where the cost is known.
    The column meanings are those of ``ttscale analyze``'s files (README, "analyze outputs").
    ``result`` is the underlying :class:`ttscale.analysis.pipeline.AnalysisResult` (fitted law
    objects included); ``written`` the files written when an output folder was given.
    """

    result: Any
    written: list[Path] = field(default_factory=list)

    @property
    def curves(self) -> pd.DataFrame:
        """The curves table (``curves.parquet``)."""
        return self.result.curves

    @property
    def fits(self) -> pd.DataFrame:
        """The fits, one row per group (``fits.json`` as a table)."""
        return pd.DataFrame(self.result.fits)

    @property
    def costs(self) -> pd.DataFrame | None:
        """FLOPs per problem at each k (``costs.parquet``), or None when the cost is unknown."""
        return self.result.costs

    @property
    def group_cols(self) -> list[str]:
        """The grouping columns (e.g. ``benchmark``, ``model``; ``task``, ``verifier``, ``temperature``)."""
        return list(self.result.group_cols)

    def figures(self) -> dict[str, Any]:
        """Every figure ``ttscale analyze`` draws, by file stem (``coverage_k``, ``coverage_flops``...)."""
        from ttscale.analysis.figures import build_figures

        return dict(build_figures(self.result))

    def plot(self, which: str = "coverage_k") -> Any:
        """The first figure whose stem starts with ``which`` (a matplotlib Figure).

        ``coverage_k`` (coverage against k, CI bands, fitted laws, saturation points),
        ``coverage_flops`` (against FLOPs, where the cost is known) or ``selection_k``; with
        several panels (benchmarks, tasks) add the suffix, e.g. ``coverage_k-math``.
        """
        figs = self.figures()
        for stem, fig in figs.items():
            if stem == which or stem.startswith(f"{which}-"):
                return fig
        raise InputError(f"plot: no figure {which!r} in this analysis (have: {', '.join(figs)})")

    def save(self, out: str | os.PathLike) -> list[Path]:
        """Write curves.parquet, fits.json, costs.parquet and figures/ into ``out`` (atomically)."""
        from ttscale.analysis.pipeline import write_outputs

        self.written = write_outputs(self.result, out)
        return self.written


@dataclass
class Comparison:
    """Several verifiers on the same samples against one reference oracle (``ttscale.compare``).

    ``table`` has one row per (verifier, temperature, k): ``verifier``, ``kind``, ``temperature``,
    ``metric`` (pass@k, maj@k, best-of-k or accept@k), ``k``, ``accuracy``, ``ci_low``,
    ``ci_high``, ``fpr``, ``fnr`` (see ``ttscale compare --help``); the reference oracle first.
    """

    table: pd.DataFrame
    title: str = "verifiers"

    def plot(self) -> Any:
        """Accuracy against k per verifier with CI bands (a matplotlib Figure)."""
        from ttscale.analysis.figures import compare_figure

        return compare_figure(self.table, self.title)

    def save(self, out: str | os.PathLike) -> Path:
        """Write compare.parquet, compare.csv, compare.png and compare.svg into ``out``."""
        from ttscale.analysis.compare import write_compare

        write_compare(self.table, out, self.title)
        return Path(out)


@dataclass
class Simulation:
    """What-if curves (``ttscale.simulate``): one row per (group, k), one summary per group.

    ``table`` columns: the group columns, ``k``, ``coverage``, ``accuracy``,
    ``false_positive_rate``, ``samples_drawn``, ``utility``. Each summary holds
    ``saturation_k``, ``optimal_k`` with ``optimal_k_ci`` (its bootstrap interval over problems;
    ``optimal_k_ci_level``, ``optimal_k_ci_censored``), ``optimal_utility``, ``accuracy_ceiling`` (resample),
    the rates and costs simulated, and with planning ``plan``/``plan_recommendation``.
    """

    table: pd.DataFrame
    summaries: list[dict[str, Any]]
    adaptive_plan: pd.DataFrame | None = None  # with ``adaptive=[r, ...]``: one row per (group, r, k)

    @property
    def summary(self) -> pd.DataFrame:
        """The summaries as a table (one row per group; the plan table left out)."""
        return pd.DataFrame([{k: v for k, v in s.items() if k not in ("plan", "adaptive_plan")}
                             for s in self.summaries])

    def plot(self) -> Any:
        """Coverage and accuracy against k, ceilings and optimal k marked (a matplotlib Figure)."""
        from ttscale.analysis.figures import simulation_figure
        from ttscale.analysis.forecasting.simulation import group_columns_of

        return simulation_figure(self.table, self.summaries,
                                 group_columns_of(self.table, self.summaries))

    def save(self, out: str | os.PathLike) -> Path:
        """Write simulation.parquet, summary.json, adaptive_plan.parquet and figures/ into ``out``."""
        from ttscale.analysis.forecasting.simulation import write_simulation

        write_simulation(self.table, self.summaries, out, self.adaptive_plan)
        return Path(out)
