"""The frontier of a run as one result: its tables, its figure and its files.

:func:`compute_frontier` runs the questions of this package on :class:`Configurations`;
:class:`Frontier` holds the answers (``candidates``, ``table``, ``band``, ``disagreements``,
``moves``, ``allocation``, ``saturation``, ``notes``), draws the figure (accuracy against cost on a
log axis, one panel per cost metric: every configuration in grey, the frontier with its band) and
writes ``frontier.parquet``, ``frontier_candidates.parquet``, ``frontier_moves.parquet``,
``frontier_allocation.parquet``, ``frontier_saturation.parquet``, ``frontier_whatif.parquet``,
``frontier_extrapolated.parquet``, ``frontier.json`` (settings,
notes, disagreements) and ``figures/frontier.{png,svg}``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ttscale.analysis.frontier.allocation import allocate, saturation_by_bin
from ttscale.analysis.frontier.band import (
    boot_deviations,
    disagreements,
    frontier_at,
    frontier_table,
    simultaneous_intervals,
)
from ttscale.analysis.frontier.configs import METRICS, Configurations
from ttscale.analysis.frontier.moves import next_moves
from ttscale.errors import InputError, arg


@dataclass
class Frontier:
    """Where each unit of compute should go, from one run or counts table (``ttscale.frontier``).

    ``candidates``: one row per (configuration, k): ``label``, ``k``, ``accuracy`` with its
    simultaneous interval ``ci_low``/``ci_high``, ``cost_<metric>``. ``table``: one row per
    frontier point per metric (best candidate, its accuracy and interval, the band there,
    ``p_best``, ``not_worse``: the configurations not significantly worse at that cost).
    ``band``: the frontier and its band at every candidate cost (for plotting). ``disagreements``:
    accuracy targets where FLOPs and Kinetics eFLOPs pick different configurations. ``moves``: the
    next move from each frontier point of the first metric (or ``at``). ``allocation``: the
    cross-fitted per-difficulty gain; ``saturation``: per difficulty bin. ``configs``: one row per
    configuration (where its token counts came from, its model shape). ``notes``: what to know
    before trusting the numbers.
    """

    configs: pd.DataFrame
    candidates: pd.DataFrame
    table: pd.DataFrame
    band: pd.DataFrame
    disagreements: pd.DataFrame
    moves: pd.DataFrame
    allocation: pd.DataFrame
    saturation: pd.DataFrame
    notes: list[str]
    settings: dict[str, Any]
    #: with ``whatif_k`` / ``whatif_budget``: the forecast candidates beyond the samples or budgets drawn, and the frontier of
    #: observed and forecast candidates together (``extrapolated`` marks the forecast points)
    extrapolated: pd.DataFrame = field(default_factory=pd.DataFrame)
    whatif: pd.DataFrame = field(default_factory=pd.DataFrame)
    written: list[Path] = field(default_factory=list)

    @property
    def metrics(self) -> list[str]:
        """The cost metrics the frontier was computed for."""
        return list(self.settings["metrics"])

    def plot(self) -> Any:
        """Accuracy against cost (log axis), one panel per metric: configurations in grey, the
        frontier (black steps) with its band (shaded), frontier points coloured by configuration."""
        from ttscale.analysis.figures import _pyplot

        plt = _pyplot()
        ms = self.metrics
        rows = int(self.table.groupby("metric")["label"].nunique().max()) if len(self.table) else 0
        fig, axes = plt.subplots(1, len(ms), figsize=(5.2 * len(ms), 4.4 + 0.14 * rows), squeeze=False)
        for ax, m in zip(axes[0], ms, strict=True):
            col = f"cost_{m}"
            for _, g in self.candidates.groupby("config"):
                ax.plot(g[col], g["accuracy"], color="0.75", lw=0.8, marker=".", ms=2)
            b = self.band[self.band["metric"] == m]
            pos = b["cost"] > 0
            ax.fill_between(b["cost"][pos], b["band_low"][pos], b["band_high"][pos], step="post",
                            color="C0", alpha=0.25, lw=0, label=f"{self.settings['level']:.0%} band")
            ax.step(b["cost"][pos], b["frontier"][pos], where="post", color="k", lw=1.4, label="frontier")
            w = self.whatif[self.whatif["metric"] == m] if len(self.whatif) else self.whatif
            if len(w) and w["extrapolated"].any():
                ax.step(w["cost"], w["accuracy"], where="post", color="k", lw=1, ls="--",
                        label="what-if: k or budget beyond the run (extrapolated)")
            t = self.table[self.table["metric"] == m]
            for i, (label, g) in enumerate(t.groupby("label", sort=False)):
                ax.scatter(g["cost"], g["accuracy"], s=16, color=f"C{(i + 1) % 10}", zorder=3,
                           label=f"{label} (k={', '.join(str(k) for k in g['k'])})")
            ax.set_xscale("log")
            ax.set_xlabel(f"mean cost per problem ({METRICS[m]})")
            ax.set_ylabel("accuracy")
            ax.grid(alpha=0.3)
            ax.legend(fontsize=6, loc="upper center", bbox_to_anchor=(0.5, -0.16), frameon=False)
        fig.tight_layout()
        return fig

    def save(self, out_dir: str | Path) -> list[Path]:
        """Write the tables, frontier.json and the figure into ``out_dir``; return the paths."""
        from ttscale.analysis.figures import save_figure
        from ttscale.rundir.store import atomic_write_json, atomic_write_table

        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        written = [atomic_write_table(out / f"frontier{suffix}.parquet", df) for suffix, df in (
            ("", self.table), ("_candidates", self.candidates), ("_moves", self.moves),
            ("_allocation", self.allocation), ("_saturation", self.saturation), ("_band", self.band),
            ("_configs", self.configs), ("_whatif", self.whatif), ("_extrapolated", self.extrapolated))]
        doc = {"settings": self.settings, "notes": self.notes,
               "disagreements": json.loads(self.disagreements.to_json(orient="records"))
               if len(self.disagreements) else []}
        written.append(atomic_write_json(out / "frontier.json", doc))
        written += save_figure(self.plot(), out / "figures" / "frontier")
        self.written = written
        return written


def compute_frontier(cs: Configurations, *, metrics: list[str] | None = None, n_boot: int = 1000,
                     level: float = 0.95, seed: int = 0, at: list[tuple[int, int]] | None = None,
                     bins: int = 4, allocation: bool = True, whatif_k: list[int] | None = None,
                     whatif_method: str | None = None, whatif_budget: list[int] | None = None) -> Frontier:
    """Every question of the package on ``cs`` (see :class:`Frontier`)."""
    from ttscale.analysis.frontier.band import check_level

    check_level(level, n_boot, cs.source)
    if metrics is None:
        metrics = cs.metrics
    for m in metrics:
        if m not in cs.metrics:
            raise InputError(f"{cs.source}: {arg('metrics', flag='--metric')} {m!r} is not available (available: "
                             f"{', '.join(cs.metrics)}; FLOPs and eFLOPs need a model shape, dollars {arg('prices', flag='--price')})")
    cand = cs.candidates().copy()
    x = cs.matrix()
    dev = boot_deviations(x, n_boot, seed)
    low, high, q = simultaneous_intervals(cand["accuracy"].to_numpy(), dev, level)
    cand["ci_low"], cand["ci_high"] = low, high
    tables, bands = [], []
    for m in metrics:
        tables.append(frontier_table(cand, dev, low, high, m, level))
        cost = cand[f"cost_{m}"].to_numpy()
        grid = np.unique(cost)
        bands.append(pd.DataFrame({"metric": m, "cost": grid,
                                   "frontier": frontier_at(cost, cand["accuracy"].to_numpy(), grid),
                                   "band_low": frontier_at(cost, low, grid),
                                   "band_high": frontier_at(cost, high, grid)}))
    table = pd.concat(tables, ignore_index=True)
    dis = disagreements(cand) if {"flops", "kinetics_eflops"} <= set(metrics) else pd.DataFrame()
    notes = list(cs.notes)
    if len(dis):
        r = dis.iloc[0]
        notes.append(f"FLOPs and Kinetics eFLOPs pick different configurations at {len(dis)} accuracy "
                     f"target(s); e.g. for accuracy >= {r['accuracy']:.3f} FLOPs picks {r['flops_choice']} "
                     f"(k={r['flops_k']}) and eFLOPs {r['kinetics_eflops_choice']} (k={r['kinetics_eflops_k']}), "
                     f"whose eFLOPs are {r['cost_ratio_kinetics_eflops']:.2f}x less")
    if cs.n.shape[0] < 30:
        notes.append(f"only {cs.n.shape[0]} problems: bootstrap intervals over so few problems are rough")
    first = table[table["metric"] == metrics[0]]
    starts = at if at is not None else list(dict.fromkeys(zip(first["config"], first["k"], strict=True)))
    moves = next_moves(cs, [(int(j), int(k)) for j, k in starts], n_boot, level, seed)
    alloc, sat = pd.DataFrame(), pd.DataFrame()
    if allocation:
        if bins < 1:
            raise InputError(f"{cs.source}: {arg('bins')} must be at least 1, got {bins}")
        try:
            alloc = allocate(cs, metrics[0], bins, None, n_boot, level, seed)
        except InputError as e:  # e.g. a problem with one sample: nothing to halve
            notes.append(f"per-difficulty allocation skipped: {str(e).split(': ', 1)[-1]}")
        sat = saturation_by_bin(cs, bins, n_boot, level, seed)
    extra, whatif = pd.DataFrame(), pd.DataFrame()
    if whatif_k:
        from ttscale.analysis.frontier.whatif import DEFAULT_WHATIF_METHOD, extrapolate_k

        extra = extrapolate_k(cs, whatif_k, whatif_method or DEFAULT_WHATIF_METHOD, seed=seed)
    if whatif_budget:
        from ttscale.analysis.frontier.whatif_budget import extrapolate_budget

        more, why = extrapolate_budget(cs, whatif_budget, seed=seed)
        notes += why
        extra = pd.concat([extra, more], ignore_index=True) if len(more) else extra
    if whatif_k or whatif_budget:
        from ttscale.analysis.frontier.whatif import whatif_frontier

        whatif = whatif_frontier(cand, extra, metrics)
        if len(whatif) and whatif["extrapolated"].any():
            notes.append("what-if frontier: points marked extrapolated rest on a forecast at k or a budget "
                         "beyond the run (a model's extrapolation, outside the band)")
    settings = {"source": cs.source, "axes": cs.axes, "metrics": metrics, "n_boot": n_boot,
                "level": level, "seed": seed, "band_quantile": q, "problems": int(cs.n.shape[0]),
                "configurations": int(cs.n.shape[1]), "candidates": int(len(cand)), "bins": bins,
                "ks": [int(k) for k in cs.ks]}
    return Frontier(cs.configs, cand, table, pd.concat(bands, ignore_index=True), dis, moves, alloc, sat,
                    notes, settings, extra, whatif)
