"""Sections of the HTML report beyond the tables (see :mod:`ttscale.reporting.html`): the interactive
scaling curves, forecasts, what-if simulations, and the per-problem view (pass-rate histogram
and example completions). Each is a function ``(run_dir, run_json) -> html`` returning "" when
there is nothing to show; :data:`ttscale.reporting.html.RUN_SECTIONS` lists them in page order.

None of them holds a per-sample table: the per-problem view reads the oracle's summary
(:mod:`ttscale.rundir.summaries`) and only the picked problems' rows of the shards, one shard at a time.
"""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ttscale.reporting.svg import Series, histogram, line_chart, table_html
from ttscale.rundir.damage import DamagedShard, iter_shard_batches, open_shard
from ttscale.rundir.store import (
    SAMPLE_KEY,
    SAMPLE_SCHEMA,
    VERDICT_SCHEMA,
    RunDir,
    read_parquet,
    shard_paths,
)


def _esc(x: Any) -> str:
    return html.escape(str(x))


def _h3(text: str) -> str:
    return f"<h3>{_esc(text)}</h3>"


def curves_chart(run: Path, cfg: dict[str, Any]) -> str:
    """pass@k (and maj@k, best-of-k) against k, one series per (verifier, metric, temperature);
    hover a point for its value and CI, click a legend entry to hide or show it."""
    path = run / "analysis" / "curves.parquet"
    if not path.is_file():
        return ""
    curves = pd.read_parquet(path)
    keys = [c for c in curves.columns if c not in ("k", "estimate", "ci_low", "ci_high")]
    series = []
    for key, g in curves.groupby(keys, sort=True, dropna=False):
        key = key if isinstance(key, tuple) else (key,)
        rec = dict(zip(keys, key, strict=True))
        g = g.sort_values("k")
        metric = rec.pop("metric", "pass@k")
        rec.pop("task", None)
        verifier = rec.pop("verifier", None)
        name = metric if metric != "pass@k" or verifier is None else f"pass@k ({verifier})"
        if metric != "pass@k" and verifier is not None:
            name = f"{metric} (answers: {verifier})"
        name += "".join(f", {k}={v:g}" if isinstance(v, float) else f", {k}={v}" for k, v in rec.items())
        series.append(Series(name, g["k"].astype(float).tolist(), g["estimate"].tolist(),
                             g["ci_low"].tolist(), g["ci_high"].tolist(), dashed=metric != "pass@k"))
    chart = line_chart(series, "k (samples per problem, log scale)", "accuracy")
    return (_h3("Scaling curves, interactive (hover a point; click a legend entry to hide it)")
            + f"<figure class='interactive'>{chart}</figure>") if chart else ""


def forecast_section(run: Path, cfg: dict[str, Any]) -> str:
    """analysis/forecast.json (a sweep's analysis.forecast_to, or ttscale forecast --json saved)."""
    path = run / "analysis" / "forecast.json"
    if not path.is_file():
        return ""
    try:
        data = json.loads(path.read_text())
    except ValueError:
        return ""
    rows = data if isinstance(data, list) else data.get("forecasts", []) if isinstance(data, dict) else []
    if not rows:
        return ""
    df = pd.json_normalize(rows)
    keep = [c for c in df.columns if not isinstance(df[c].iloc[0], list | dict)]
    return (_h3("Forecasts (coverage at larger k from the samples drawn)")
            + '<p class="muted">Extrapolations: trust them less the further k lies beyond the '
              "samples drawn; the interval is the forecast's own.</p>" + table_html(df[keep]))


def optimal_k_text(summary: dict[str, Any]) -> str:
    """``optimal k = K [low, high]`` of a ``ttscale simulate`` summary, with the interval's level
    and replicates; a censored upper end reads ``≥ high``; no interval says why."""
    k = summary.get("optimal_k")
    if k is None:
        return ""
    text = f"optimal k = {k}"
    ci = summary.get("optimal_k_ci")
    if isinstance(ci, list | tuple) and len(ci) == 2:
        censored = bool(summary.get("optimal_k_ci_censored"))
        high = f"≥ {ci[1]}" if censored else f"{ci[1]}"
        level = summary.get("optimal_k_ci_level")
        level = f"{float(level) * 100:g}% " if isinstance(level, int | float) else ""
        text += (f" [{ci[0]}, {high}] ({level}bootstrap interval over problems, "
                 f"{summary.get('optimal_k_boot')} replicates")
        text += "; upper end censored: the largest k simulated)" if censored else ")"
    elif summary.get("optimal_k_ci_note"):
        text += f" (no interval: {summary['optimal_k_ci_note']})"
    return text


def simulate_section(run: Path, cfg: dict[str, Any]) -> str:
    """Every ``ttscale simulate --out`` folder inside the run (simulation.parquet + summary.json)."""
    parts = []
    for sim in sorted(run.glob("**/simulation.parquet")):
        folder = sim.parent
        if len(folder.relative_to(run).parts) > 3:
            continue
        summary = folder / "summary.json"
        parts.append(f"<h4>{_esc(folder.relative_to(run))}</h4>")
        if summary.is_file():
            try:
                rows = json.loads(summary.read_text())
            except ValueError:
                rows = []
            if rows:
                df = pd.json_normalize(rows)
                keep = [c for c in df.columns if not c.startswith(("plan", "optimal_k_ci", "optimal_k_boot"))
                        and not isinstance(df[c].iloc[0], list | dict)]  # the interval: a line below
                parts.append(table_html(df[keep]))
                lines = []
                cols = _group_columns(sim, rows[0]) if isinstance(rows[0], dict) else []
                for row in rows:
                    text = optimal_k_text(row) if isinstance(row, dict) else ""
                    group = ", ".join(f"{c}={row[c]}" for c in cols if c in row)
                    if text:
                        lines.append(f"<li>{_esc(group + ': ' if group else '')}{_esc(text)}</li>")
                if lines:
                    parts.append(f"<ul class='optimal-k'>{''.join(lines)}</ul>")
        table = pd.read_parquet(sim)
        if {"k", "accuracy"} <= set(table.columns):
            group = [c for c in table.columns if c not in ("k", "coverage", "accuracy", "false_positive_rate",
                                                            "samples_drawn", "utility")]
            series = []
            for key, g in (table.groupby(group, sort=True) if group else [((), table)]):
                key = key if isinstance(key, tuple) else (key,)
                label = ", ".join(f"{c}={v}" for c, v in zip(group, key, strict=True)) or "simulated"
                g = g.sort_values("k")
                series.append(Series(f"accuracy {label}", g["k"].astype(float).tolist(), g["accuracy"].tolist()))
                if "coverage" in g:
                    series.append(Series(f"coverage {label}", g["k"].astype(float).tolist(),
                                         g["coverage"].tolist(), dashed=True))
            parts.append(f"<figure class='interactive'>{line_chart(series, 'k (log scale)', 'simulated')}</figure>")
    if not parts:
        return ""
    return _h3("What-if simulations (ttscale simulate)") + "".join(parts)


def _group_columns(sim: Path, row: dict[str, Any]) -> list[str]:
    """The group columns of a simulation (those its summary row carries and its table has)."""
    try:
        names = pq.read_schema(sim).names
    except Exception:  # noqa: BLE001 - a broken table has no groups to name
        return []
    return [c for c in row if c in names and c != "k"]


def problems_section(run: Path, cfg: dict[str, Any], examples: int = 3) -> str:
    """Per problem: the histogram of pass rates (the first oracle's verdicts) and example
    completions of the hardest, a middling and the easiest problem (one right, one wrong each).

    Reads the oracle's summary (:func:`pass_rates`) and, for the picked problems only, their
    rows of the verdict and sample shards one shard at a time (:func:`first_examples`): never
    the run's per-sample tables."""
    rd = RunDir(run)
    oracle = _first_oracle(rd)
    if oracle is None:
        return ""
    try:
        rates = pass_rates(rd, oracle)
    except DamagedShard:
        raise  # named with its repair, never a section silently missing
    except Exception:  # noqa: BLE001 - a run without readable verdicts has no per-problem view
        return ""
    if not len(rates):
        return ""
    picks = pick_problems(rates, examples)
    try:
        problems = rd.read_problems().set_index("problem_id")
        found = first_examples(rd, oracle, picks)
    except DamagedShard:
        raise
    except Exception:  # noqa: BLE001
        return rates_block(oracle, rates)
    return rates_block(oracle, rates) + examples_table(picks, rates, problems, found)


def pick_problems(rates: pd.Series, examples: int = 3) -> list[str]:
    """The hardest, a middling and the easiest problem of ``rates`` (ascending), distinct."""
    return list(dict.fromkeys([rates.index[0], rates.index[len(rates) // 2], rates.index[-1]]))[:examples]


def rates_block(oracle: str, rates: pd.Series) -> str:
    """The section's heading, counts and pass-rate histogram."""
    return "".join([
        _h3(f"Per problem ({oracle}): pass rates and example completions"),
        f"<p>{len(rates)} problems; {int((rates == 0).sum())} never solved, "
        f"{int((rates == 1).sum())} always solved (all temperatures pooled).</p>",
        f"<figure class='interactive'>{histogram(rates.tolist(), 20, 'share of samples passed, per problem')}"
        "</figure><p class='muted'>pass rate per problem (hover a bar for its count)</p>"])


def examples_table(picks: list[str], rates: pd.Series, problems: pd.DataFrame,
                   found: dict[str, tuple[str | None, str | None]]) -> str:
    """One row per picked problem: its rate, prompt, reference, a passing and a failing text
    (each headed by its thinking budget where the run has that axis)."""
    rows = []
    for pid in picks:
        good, bad = found.get(pid, (None, None))
        prompt = str(problems.loc[pid, "prompt"]) if pid in problems.index else ""
        ref = str(problems.loc[pid, "reference"]) if pid in problems.index and "reference" in problems else ""
        rows.append(f"<tr><td class='l'>{_esc(pid)}</td><td>{rates[pid]:.3f}</td>"
                    f"<td class='l'><pre>{_esc(_clip(prompt))}</pre></td><td class='l'><pre>{_esc(_clip(ref))}</pre></td>"
                    f"<td class='l'><pre>{_esc(_clip(good)) if good is not None else '<i>none</i>'}</pre></td>"
                    f"<td class='l'><pre>{_esc(_clip(bad)) if bad is not None else '<i>none</i>'}</pre></td></tr>")
    return ('<div class="scroll"><table class="examples"><thead><tr><th class="l">problem</th>'
            '<th>pass rate</th><th class="l">prompt</th><th class="l">reference</th>'
            '<th class="l">a passing sample</th><th class="l">a failing sample</th></tr></thead>'
            f"<tbody>{''.join(rows)}</tbody></table></div>")


def pass_rates(rd: RunDir, verifier: str) -> pd.Series:
    """Share of a verifier's verdicts that passed, per problem (all temperatures pooled), in
    ascending order: from the verifier's summary (:mod:`ttscale.rundir.summaries`), whose size is
    problems x distinct answers, never from the per-sample verdicts."""
    from ttscale.rundir.summaries import verdict_summary

    table = verdict_summary(rd, verifier).table.select(["problem_id", "count", "passed"])
    per = table.to_pandas().groupby("problem_id")[["count", "passed"]].sum()
    return (per["passed"] / per["count"]).sort_values()


_KEY = SAMPLE_KEY  # (problem_id, temperature, budget, sample_index): a budget's sample, not another's
#: rows of sample text decoded at a time, and the read buffer, while looking up example texts
TEXT_BATCH = 1024
TEXT_BUFFER = 1 << 20


def first_examples(rd: RunDir, verifier: str, picks: list[str]) -> dict[str, tuple[str | None, str | None]]:
    """Per picked problem: the text of its first passing and of its first failing sample by
    (temperature, budget, sample_index) among those ``verifier`` judged (None where there is
    none); a text at a thinking budget > 0 is headed ``[budget B, answer forced]`` or
    ``[budget B]``, since the same index holds other texts at other budgets.

    Reads only the picked problems' rows (pyarrow filters), one shard at a time: the verdict
    shards for the first keys, then the sample shards for those keys' texts, stopping once all
    are found. A verdict whose sample is missing is passed over for the next one."""
    texts: dict[tuple[str, bool], str | None] = {}
    skip: set[tuple[Any, ...]] = set()
    while True:
        keys = {slot: key for slot, key in _first_keys(rd, verifier, picks, skip).items()
                if slot not in texts}
        if not keys:
            break
        got = _texts(rd, set(keys.values()))
        for slot, key in keys.items():
            if key in got:
                texts[slot] = got[key]
            else:
                skip.add(key)
    return {pid: (texts.get((pid, True)), texts.get((pid, False))) for pid in picks}


def _first_keys(rd: RunDir, verifier: str, picks: list[str],
                skip: set[tuple[Any, ...]]) -> dict[tuple[str, bool], tuple[Any, ...]]:
    """(problem_id, passed) -> the smallest (problem_id, temperature, budget, sample_index)
    verdict key of the picked problems, ``skip`` left out; one verdict shard's filtered rows at a
    time."""
    best: dict[tuple[str, bool], tuple[Any, ...]] = {}
    for path in shard_paths(rd.verdicts_dir(verifier)):
        t = read_parquet(path, [*_KEY, "passed"], VERDICT_SCHEMA)
        t = t.filter(pc.is_in(t["problem_id"], pa.array(picks, pa.string())))
        for pid in picks:
            for flag in (True, False):
                mask = pc.and_(pc.equal(t["problem_id"], pid), pc.equal(t["passed"], flag))
                for key in skip:
                    if key[0] == pid:
                        mask = pc.and_(mask, pc.invert(_matches(t, key, with_problem=False)))
                sub = t.filter(mask)
                if not sub.num_rows:
                    continue
                for col in _KEY[1:-1]:  # the smallest temperature, then budget, then index
                    sub = sub.filter(pc.equal(sub[col], pc.min(sub[col])))
                key = (pid, *(sub[c][0].as_py() for c in _KEY[1:-1]), pc.min(sub["sample_index"]).as_py())
                if (pid, flag) not in best or key[1:] < best[(pid, flag)][1:]:
                    best[(pid, flag)] = key
    return best


def _texts(rd: RunDir, keys: set[tuple[Any, ...]]) -> dict[tuple[Any, ...], str | None]:
    """The sample text of each (problem_id, temperature, budget, sample_index) in ``keys`` that exists,
    shard by shard until all are found: a shard's key columns locate the rows, then its text
    is streamed in batches up to the last of them (never a whole shard's texts at once)."""
    found: dict[tuple[Any, ...], str | None] = {}
    for path in shard_paths(rd.samples_dir):
        pf = open_shard(path, SAMPLE_SCHEMA, buffer_size=TEXT_BUFFER)
        t = read_parquet(path, [*_KEY, "forced"], SAMPLE_SCHEMA)
        mask = None
        for key in keys - found.keys():
            hit = _matches(t, key)
            mask = hit if mask is None else pc.or_(mask, hit)
        if mask is None:
            break
        rows = pc.indices_nonzero(pc.fill_null(mask, False)).to_pylist()
        if not rows:
            continue
        at = {r: tuple(k[c] for c in _KEY) for r, k in zip(rows, t.take(rows).to_pylist(), strict=True)}
        head = {r: (f"[budget {k['budget']}{', answer forced' if k['forced'] else ''}] " if k["budget"] else "")
                for r, k in zip(rows, t.take(rows).to_pylist(), strict=True)}
        start = 0
        for batch in iter_shard_batches(pf, path, batch_size=TEXT_BATCH, columns=["text"]):
            for r in rows:
                if start <= r < start + batch.num_rows and at[r] not in found:
                    text = batch.column(0)[r - start].as_py()
                    found[at[r]] = None if text is None else head[r] + text
            start += batch.num_rows
            if start > rows[-1]:
                break
        if len(found) == len(keys):
            break
    return found


def _matches(t: pa.Table, key: tuple[Any, ...], with_problem: bool = True) -> pa.ChunkedArray:
    """Rows of ``t`` whose key columns equal ``key`` (all of them, or all but the problem)."""
    cols = list(zip(_KEY, key, strict=True))[0 if with_problem else 1:]
    mask = pc.equal(t[cols[0][0]], cols[0][1])
    for col, v in cols[1:]:
        mask = pc.and_(mask, pc.equal(t[col], v))
    return mask


def _first_oracle(rd: Any) -> str | None:
    for name in rd.verifiers():
        meta = rd.verdicts_dir(name) / "verifier.json"
        try:
            kind = json.loads(meta.read_text()).get("kind", "oracle")
        except (OSError, ValueError):
            kind = "oracle"
        if kind == "oracle":
            return name
    return None


def _clip(text: str, n: int = 400) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"
