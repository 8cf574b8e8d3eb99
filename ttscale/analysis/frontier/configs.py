"""Configurations of a run, each with its accuracy over k and its cost over k.

A configuration is one combination of the grouping columns a counts table holds (``model``,
``temperature``, ``budget``, ``selection``, ``verifier``, and any other): every combination
present is one. All configurations are compared on the problems they share (paired), so the
per-problem counts become two (P, J) matrices ``n`` and ``c``. A candidate is a (configuration,
k) pair; its accuracy is the mean over problems of the unbiased pass@k
(:func:`ttscale.analysis.curves.estimators.pass_at_k`): a counts table gives each configuration's
oracle coverage; a ``selection`` column is one more axis whose counts are read the same way.

Cost of k samples of one problem is ``once + k * each`` in every metric:

* ``tokens``: generated tokens (``once`` = 0, ``each`` = the output tokens of a sample);
* ``flops``: Large Language Monkeys FLOPs (prompt prefill once, each sample's completion);
* ``kinetics_eflops``: Kinetics' eFLOPs with the KV-cache memory term
  (:func:`ttscale.analysis.costs.cost.curve_cost`, metric ``"kinetics"``);
* ``dollars``: ``prompt * input price + k * output * output price`` from per-token prices.

The output tokens of a sample are, per configuration, in this order: the table's
``mean_output_tokens`` (or ``mean_thinking_tokens + mean_answer_tokens``) per row (``measured``);
the ``budget`` (``budget``: tokens <= budget, an upper bound); the ``tokens_per_sample`` option
(``given``); else :data:`ttscale.analysis.costs.model_shape.DEFAULT_OUTPUT_TOKENS` (``assumed``).
``Configurations.configs["tokens_from"]`` says which. FLOPs and eFLOPs need a model shape per
configuration (its ``model`` looked up, else ``model_shape``); without one they are left out and a
note says so.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ttscale.analysis.curves.estimators import pass_at_k
from ttscale.errors import InputError, arg
from ttscale.rundir.counts import TOKEN_COLUMNS, group_columns, validate_counts

#: cost metrics, in the order the outputs show them, with their units
METRICS = {"tokens": "generated tokens", "flops": "FLOPs", "kinetics_eflops": "Kinetics eFLOPs",
           "dollars": "dollars"}
#: a run without a budget axis records budget 0
NO_BUDGET = 0


def k_grid(max_k: int) -> np.ndarray:
    """1, 2, 3, 4, 6, 8, 12, 16, 24, ... up to ``max_k`` (doubling a k of the grid stays on it)."""
    out = {1}
    base = 2
    while base <= max_k:
        out.add(base)
        if base // 2 * 3 <= max_k:
            out.add(base // 2 * 3)
        base *= 2
    return np.array(sorted(k for k in out if k <= max_k), dtype=np.int64)


@dataclass
class Configurations:
    """Per-problem counts of every configuration, its cost per problem, and the candidate grid."""

    source: str
    axes: list[str]
    configs: pd.DataFrame  # one row per configuration: axes, label, tokens_from, output_tokens, shape
    problems: np.ndarray
    n: np.ndarray  # (P, J) samples
    c: np.ndarray  # (P, J) correct
    once: dict[str, np.ndarray]  # metric -> (P, J) cost paid once per problem
    each: dict[str, np.ndarray]  # metric -> (P, J) cost of one more sample
    ks: np.ndarray
    notes: list[str] = field(default_factory=list)
    #: configuration -> (ks, (P, K) values): selection methods computed from a run's answer histograms
    fixed: dict[int, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    _cand: pd.DataFrame | None = None
    _x: np.ndarray | None = None

    @property
    def metrics(self) -> list[str]:
        """The cost metrics computed, in :data:`METRICS` order."""
        return [m for m in METRICS if m in self.once]

    def labels(self) -> list[str]:
        return list(self.configs["label"])

    def mean_cost(self, metric: str, j: int | np.ndarray, k: Any) -> np.ndarray:
        """Mean cost per problem of k samples of configuration j."""
        return self.once[metric][:, j].mean(axis=0) + np.asarray(k, float) * self.each[metric][:, j].mean(axis=0)

    def per_problem(self, j: int, ks: Any) -> np.ndarray:
        """(P, len(ks)) accuracy at each k of configuration j: unbiased pass@k, or the selection
        method's estimate (NaN where k exceeds a problem's n or was not computed)."""
        ks = np.atleast_1d(np.asarray(ks, np.int64))
        if j in self.fixed:
            have, values = self.fixed[j]
            pos = np.searchsorted(have, ks)
            ok = (pos < have.size) & (have[np.minimum(pos, have.size - 1)] == ks)
            out = np.full((values.shape[0], ks.size), np.nan)
            out[:, ok] = values[:, pos[ok]]
            return out
        return np.asarray(pass_at_k(self.n[:, j], self.c[:, j], ks), float)

    def has_k(self, j: int, k: int) -> bool:
        """Whether configuration j has an estimate at k."""
        if k > self.n[:, j].min():
            return False
        return j not in self.fixed or bool(np.isin(k, self.fixed[j][0]))

    def candidates(self) -> pd.DataFrame:
        """One row per (configuration, k) with k <= every problem's n: ``config`` (index),
        ``label``, ``k``, ``accuracy`` and ``cost_<metric>`` for each metric."""
        if self._cand is None:
            rows, cols = [], []
            nmin = self.n.min(axis=0)
            for j in range(self.n.shape[1]):
                ks = self.ks[self.ks <= nmin[j]]
                if j in self.fixed:
                    ks = ks[np.isin(ks, self.fixed[j][0])]
                if ks.size == 0:
                    continue
                x = self.per_problem(j, ks)
                cols.append(x)
                rows.append(pd.DataFrame({"config": j, "label": self.configs["label"].iloc[j], "k": ks,
                                          "accuracy": x.mean(axis=0)}))
            cand = pd.concat(rows, ignore_index=True)
            for m in self.metrics:
                cand[f"cost_{m}"] = self.mean_cost(m, cand["config"].to_numpy(), cand["k"].to_numpy())
            self._cand, self._x = cand, np.hstack(cols)
        return self._cand

    def matrix(self) -> np.ndarray:
        """(P, M) per-problem pass@k of every candidate, columns in :meth:`candidates` order."""
        self.candidates()
        assert self._x is not None
        return self._x


SELECTION_COLUMNS = ("problem_id", "answer", "score", "count", "passed")


def _with_selection(keys: pd.DataFrame, axes: list[str], n: np.ndarray, c: np.ndarray, otok: np.ndarray,
                    problems: np.ndarray, hist: pd.DataFrame, grid: np.ndarray, cache_dir: Path | None):
    """Add, per configuration, one configuration per selection method its run's answer histogram
    allows (maj@k with answers, best-of-k with scores, the weighted vote with both), through
    :func:`ttscale.analysis.curves.vote_curves.selection_matrix`; the originals get
    ``selection=coverage``."""
    from ttscale.analysis.curves.vote_curves import selection_matrix

    by = [col for col in hist.columns if col not in SELECTION_COLUMNS and col in axes]
    hist = hist[hist["problem_id"].isin(set(problems))]
    new_keys, cols, fixed = [], [], {}
    nmin = n.min(axis=0)
    for j in range(len(keys)):
        s = hist
        for col in by:
            s = s[s[col] == keys[col].iloc[j]]
        have_answers = bool(s["answer"].notna().any())
        have_scores = bool(len(s)) and bool(s["score"].notna().all())
        methods = (["maj@k"] if have_answers else []) + (["best-of-k"] if have_scores else [])
        methods += ["weighted-vote@k"] if have_answers and have_scores else []
        ks = grid[grid <= nmin[j]]
        for metric in methods if ks.size else []:
            m = selection_matrix(s, metric, ks, cache_dir=cache_dir)
            pos = pd.Series(np.arange(len(m.problems)), index=pd.Index(m.problems.astype(str)))
            values = m.values[pos[[str(p) for p in problems]].to_numpy()]
            fixed[len(keys) + len(new_keys)] = (np.asarray(m.ks, np.int64), values)
            new_keys.append({**keys.iloc[j].to_dict(), "selection": metric})
            cols.append(j)
    keys = pd.concat([keys.assign(selection="coverage"), pd.DataFrame(new_keys)], ignore_index=True)
    take = np.r_[np.arange(n.shape[1]), np.asarray(cols, np.int64)]
    return keys, [*axes, "selection"], n[:, take], c[:, take], otok[:, take], fixed


def _label(axes: list[str], values: tuple) -> str:
    return ", ".join(f"{a}={v}" for a, v in zip(axes, values, strict=True)) or "all"


def _output_tokens(df: pd.DataFrame, source: str) -> pd.Series:
    """Per-row mean output tokens from the token columns (NaN where the row gives none)."""
    out = pd.Series(np.nan, index=df.index)
    for col in TOKEN_COLUMNS:
        if col in df.columns:
            v = pd.to_numeric(df[col], errors="coerce")
            bad = (df[col].notna() & v.isna()) | (v < 0) | np.isinf(v)
            if bad.any():
                row = int(np.flatnonzero(bad.to_numpy())[0])
                raise InputError(f"{source}: column '{col}' row {row + 1}: {df[col].iloc[row]!r} is "
                                 "not a token count >= 0")
    if "mean_output_tokens" in df.columns:
        out = pd.to_numeric(df["mean_output_tokens"], errors="coerce")
    if "mean_thinking_tokens" in df.columns and "mean_answer_tokens" in df.columns:
        parts = (pd.to_numeric(df["mean_thinking_tokens"], errors="coerce")
                 + pd.to_numeric(df["mean_answer_tokens"], errors="coerce"))
        out = out.fillna(parts)
    return out.astype(float)


def _parse_prices(prices: Any, models: list[str], source: str) -> dict[str, tuple[float, float]] | None:
    """``{model or "*": (input, output) dollars per million tokens}`` checked; None: no dollars."""
    if prices is None:
        return None
    if isinstance(prices, tuple | list) and len(prices) == 2 and not isinstance(prices[0], tuple | list):
        prices = {"*": tuple(prices)}
    if not isinstance(prices, dict):
        raise InputError(f"{source}: {arg('prices', flag='--price')} must be IN,OUT or MODEL=IN,OUT (dollars per million tokens)")
    out = {}
    for key, pair in prices.items():
        try:
            a, b = (float(x) for x in pair)
        except (TypeError, ValueError) as e:
            raise InputError(f"{source}: {arg('prices', flag='--price')} {key}: {pair!r} is not two numbers IN,OUT") from e
        if not (np.isfinite(a) and np.isfinite(b) and a >= 0 and b >= 0):
            raise InputError(f"{source}: {arg('prices', flag='--price')} {key}: prices must be >= 0, got {pair!r}")
        out[str(key)] = (a, b)
    missing = [m for m in models if m not in out and "*" not in out]
    if missing:
        raise InputError(f"{source}: {arg('prices', flag='--price')} gives no price for model {missing[0]!r} (give MODEL=IN,OUT "
                         "for each model, or one IN,OUT for all)")
    return out


def build_configurations(
    counts: pd.DataFrame, source: str = "<counts>", *, ks: list[int] | None = None,
    model_shape: str | None = None, prompt_tokens: float | None = None,
    tokens_per_sample: float | None = None, prices: Any = None, selection: pd.DataFrame | None = None,
    cache_dir: Path | None = None,
) -> Configurations:
    """Validate a counts table and lay it out as :class:`Configurations` (see the module doc)."""
    from ttscale.analysis.costs.cost import curve_cost
    from ttscale.analysis.costs.model_shape import (
        DEFAULT_OUTPUT_TOKENS,
        DEFAULT_PROMPT_TOKENS,
        find_shape,
        resolve_shape,
    )

    counts = validate_counts(counts, source)
    if "adaptive_prev" in counts.columns:
        raise InputError(f"{source}: an adaptive run's counts stop at a rule, not at k samples; the "
                         "frontier needs fixed-K counts")
    axes = group_columns(counts)
    for col in axes:
        if counts[col].isna().any():
            row = int(np.flatnonzero(counts[col].isna().to_numpy())[0])
            raise InputError(f"{source}: column '{col}' row {row + 1}: empty (a configuration needs every value)")
    if "budget" in counts.columns:
        b = pd.to_numeric(counts["budget"], errors="coerce")
        bad = b.isna() | (b < 0) | (b != np.round(b))
        if bad.any():
            row = int(np.flatnonzero(bad.to_numpy())[0])
            raise InputError(f"{source}: column 'budget' row {row + 1}: {counts['budget'].iloc[row]!r} is not "
                             "a whole number of tokens >= 0 (0: no budget)")
        counts["budget"] = b.astype(np.int64)
    for name, v in (("prompt_tokens", prompt_tokens), ("tokens_per_sample", tokens_per_sample)):
        if v is not None and not (np.isfinite(v) and v >= 0):
            raise InputError(f"{source}: {arg(name)} must be a number >= 0, got {v!r}")
    counts = counts.assign(_otok=_output_tokens(counts, source))
    if axes:
        keys = counts[axes].drop_duplicates().sort_values(axes).reset_index(drop=True)
    else:
        keys = pd.DataFrame(index=[0])
    problems = None
    for _, g in (counts.groupby(axes, sort=True) if axes else [((), counts)]):
        ids = set(g["problem"])
        problems = ids if problems is None else problems & ids
    all_problems = set(counts["problem"])
    problems = np.array(sorted(problems, key=str), dtype=object)
    notes: list[str] = []
    if problems.size == 0:
        raise InputError(f"{source}: the configurations share no problem; a frontier compares them on "
                         "the same problems")
    if problems.size < len(all_problems):
        notes.append(f"{len(all_problems) - problems.size} of {len(all_problems)} problems are missing "
                     "from some configuration and were left out (configurations are compared on the "
                     f"{problems.size} they share)")
    P, J = problems.size, len(keys)
    pos = pd.Series(np.arange(P), index=pd.Index(problems))
    n = np.zeros((P, J), np.int64)
    c = np.zeros((P, J), np.int64)
    otok = np.full((P, J), np.nan)
    cfg_idx = (counts[axes].merge(keys.reset_index(), on=axes, how="left")["index"].to_numpy()
               if axes else np.zeros(len(counts), np.int64))
    keep = counts["problem"].isin(pos.index).to_numpy()
    rows = pos[counts["problem"][keep]].to_numpy()
    n[rows, cfg_idx[keep]] = counts["num_samples"].to_numpy()[keep]
    c[rows, cfg_idx[keep]] = counts["num_correct"].to_numpy()[keep]
    otok[rows, cfg_idx[keep]] = counts["_otok"].to_numpy()[keep]
    if ks is None:
        grid = k_grid(int(n.max()))
    else:
        grid = np.unique(np.asarray([int(k) for k in ks], np.int64))
        if grid.size == 0 or grid.min() < 1:
            raise InputError(f"{source}: {arg('ks')} must hold whole numbers >= 1")
        if grid.min() > n.min(axis=0).max():
            raise InputError(f"{source}: {arg('ks')} {int(grid.min())} exceeds the samples of every configuration "
                             f"(the most any configuration has on all problems is {int(n.min(axis=0).max())})")
    fixed: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    if selection is not None:
        keys, axes, n, c, otok, fixed = _with_selection(keys, axes, n, c, otok, problems, selection, grid,
                                                        cache_dir)
        J = len(keys)

    configs = keys.copy()
    configs["label"] = [_label(axes, tuple(r)) for r in keys[axes].itertuples(index=False)] if axes else ["all"]
    tokens_from = []
    for j in range(J):
        col = otok[:, j]
        budget = int(keys["budget"].iloc[j]) if "budget" in axes else NO_BUDGET
        fill, how = ((budget, "budget") if budget > NO_BUDGET else
                     (tokens_per_sample, "given") if tokens_per_sample is not None else
                     (DEFAULT_OUTPUT_TOKENS, "assumed"))
        if np.isfinite(col).all():
            tokens_from.append("measured")
        else:
            tokens_from.append(how if not np.isfinite(col).any() else f"measured+{how}")
            col[~np.isfinite(col)] = fill
    configs["tokens_from"] = tokens_from
    configs["output_tokens"] = otok.mean(axis=0)
    p_tok = DEFAULT_PROMPT_TOKENS if prompt_tokens is None else float(prompt_tokens)
    configs["prompt_tokens"] = p_tok
    used = sorted(set(t.split("+")[-1] for t in tokens_from) - {"measured"})
    if used:
        notes.append("output tokens per sample: " + "; ".join(
            {"budget": "the budget where no token counts were given (tokens <= budget: cost is an upper bound)",
             "given": f"{arg('tokens_per_sample', tokens_per_sample)} where no token counts were given",
             "assumed": f"{DEFAULT_OUTPUT_TOKENS:.0f} assumed where neither token counts nor a budget "
                        f"were given (give {arg('tokens_per_sample')})"}[u] for u in used))
    if prompt_tokens is None:
        notes.append(f"prompt tokens: {p_tok:.0f} assumed (give {arg('prompt_tokens')})")

    once = {"tokens": np.zeros((P, J))}
    each = {"tokens": otok.copy()}
    # model shapes: each configuration's model, else --model-shape
    shapes, shape_names = [], []
    for j in range(J):
        found = None
        if "model" in axes:
            found = find_shape(str(keys["model"].iloc[j]))
        if found is None and model_shape is not None:
            found = resolve_shape(model_shape, source)
        shapes.append(found[0] if found else None)
        shape_names.append(found[1] if found else None)
    configs["model_shape"] = shape_names
    if all(s is not None for s in shapes):
        for metric, name in (("flops", "flops"), ("kinetics_eflops", "kinetics")):
            o, e = np.zeros((P, J)), np.zeros((P, J))
            for j, shape in enumerate(shapes):
                c0 = np.asarray(curve_cost(0, p_tok, otok[:, j], shape, name), float)
                c1 = np.asarray(curve_cost(1, p_tok, otok[:, j], shape, name), float)
                o[:, j], e[:, j] = c0, c1 - c0
            once[metric], each[metric] = o, e
    else:
        missing = configs["label"][[s is None for s in shapes]].iloc[0]
        notes.append(f"FLOPs and eFLOPs left out: no model shape for {missing} (give {arg('model_shape')}, "
                     "or a model column naming a preset or a local config.json)")
    models = [str(m) for m in keys["model"]] if "model" in axes else ["*"]
    price = _parse_prices(prices, sorted(set(models) - {"*"}), source)
    if price is not None:
        pin = np.array([price.get(m, price.get("*", (0, 0)))[0] for m in models]) / 1e6
        pout = np.array([price.get(m, price.get("*", (0, 0)))[1] for m in models]) / 1e6
        once["dollars"] = np.broadcast_to(p_tok * pin, (P, J)).copy()
        each["dollars"] = otok * pout[None, :]
    return Configurations(str(source), axes, configs, problems, n, c, once, each, grid, notes, fixed)


def run_counts(path: Path, allow_stale: bool) -> tuple[pd.DataFrame, str, float | None, pd.DataFrame | None]:
    """A run directory as a counts table for the frontier: oracle coverage per verifier and
    temperature, mean output tokens per row, the run's model; its mean prompt tokens; and its
    answer/score histograms (for the selection methods; ``model`` added to match)."""
    from ttscale.analysis.costs.model_shape import run_model
    from ttscale.analysis.inputs import load_input

    inp = load_input(path, allow_stale=allow_stale)
    cols = [c for c in inp.group_cols if c != "task"]
    counts = inp.counts.groupby([*cols, "problem"], sort=True, dropna=False)[
        ["num_samples", "num_correct"]].sum().reset_index()
    prompt = None
    if inp.tokens is not None and len(inp.tokens):
        tok = inp.tokens.groupby(cols, dropna=False)[["avg_prompt_tokens", "avg_output_tokens"]].mean() \
            if cols else inp.tokens[["avg_prompt_tokens", "avg_output_tokens"]].mean().to_frame().T
        tok = tok.reset_index() if cols else tok
        counts = counts.merge(tok, on=cols, how="left") if cols else counts.assign(**tok.iloc[0].to_dict())
        counts = counts.rename(columns={"avg_output_tokens": "mean_output_tokens"})
        prompt = float(counts.pop("avg_prompt_tokens").mean())
    model = run_model(path)
    hist = None
    if inp.selection is not None:
        hist = inp.selection.drop(columns=[c for c in ("task",) if c in inp.selection.columns])
    if model:
        counts.insert(0, "model", model)
        if hist is not None:
            hist.insert(0, "model", model)
    return counts, str(path), prompt, hist
