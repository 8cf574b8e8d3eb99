"""Verifier comparison: several verifiers judged against one reference oracle on the same samples.

The library form of ``ttscale compare RUN_DIR --verifiers a,b,c`` (``ttscale.compare`` in Python).

Which verifiers a list names, the reference oracle, the curve per verifier kind (pass@k, maj@k,
best-of-k, accept@k with its exact expectation) and the output files are described once, in
``ttscale compare --help`` (``ttscale/commands/compare.py``).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from ttscale.analysis.curves.verifier_curves import TABLE_COLUMNS  # noqa: F401 - the table's columns
from ttscale.errors import InputError, arg


def split_specs(text: str) -> list[str]:
    """Split at commas outside parentheses: ``"a,b(x=1,y=2)"`` -> ``["a", "b(x=1,y=2)"]``."""
    out, depth, cur = [], 0, ""
    for ch in text:
        depth += (ch == "(") - (ch == ")")
        if depth < 0:
            raise InputError(f"{arg('verifiers')} {text!r}: unbalanced ')'")
        if ch == "," and depth == 0:
            out.append(cur.strip())
            cur = ""
        else:
            cur += ch
    if depth:
        raise InputError(f"{arg('verifiers')} {text!r}: unbalanced '('")
    out.append(cur.strip())
    if not all(out):
        raise InputError(f"{arg('verifiers')} {text!r}: empty entry")
    return out


def resolve(run: Any, spec: str) -> tuple[Any, str]:
    """(verifier object, verdict folder) for one entry of --verifiers / --oracle."""
    from ttscale.core.registry import verifiers
    from ttscale.verification.verify import make_verifier, parse_options, verdict_name

    m = re.fullmatch(r"([A-Za-z0-9_.-]+)\((.*)\)", spec)
    if m:
        opts = parse_options([p for p in m.group(2).split(",") if p.strip()], flag=arg("verifiers", spec))
        v = make_verifier(m.group(1), opts)
        return v, verdict_name(v)
    meta = run.verdicts_dir(spec) / "verifier.json"
    if meta.is_file():  # a folder of verdicts (a sweep's label, or name-and-options)
        info = json.loads(meta.read_text())
        return make_verifier(info["name"], info.get("options") or {}), spec
    if spec in verifiers.names():
        v = make_verifier(spec, {})
        return v, verdict_name(v)
    make_verifier(spec)  # raises: unknown verifier, listing the known ones
    raise AssertionError("unreachable")


def pick_oracle(run: Any, resolved: list[tuple[Any, str]], oracle: str | None) -> tuple[Any, str]:
    if oracle:
        v, folder = resolve(run, oracle)
        if v.kind != "oracle":
            raise InputError(f"{arg('oracle', oracle)}: {v.name!r} is a {v.kind}, not an oracle")
        return v, folder
    for v, folder in resolved:
        if v.kind == "oracle":
            return v, folder
    from ttscale.verification.verify import verdict_name

    for v, _ in resolved:
        if v.kind == "imperfect" and hasattr(v, "base"):
            return v.base, verdict_name(v.base)
    from ttscale.core.registry import tasks

    task_names = sorted(set(run.read_problems()["task"].astype(str)))
    for t in task_names:
        cls = tasks.get(t)
        if getattr(cls, "verifiers", ()):
            return resolve(run, cls.verifiers[0])
    raise InputError(f"{run.path}: no oracle among --verifiers and none known for task(s) "
                     f"{', '.join(task_names)}: give {arg('oracle')}")


def compare_run(run_dir: str | Path, specs: list[str], *, oracle: str | None = None,
                ks: list[int] | None = None, n_boot: int = 1000, seed: int = 0,
                workers: int | None = None, progress: bool = False, allow_stale: bool = False) -> Any:
    """Verify what is missing, then the comparison table (TABLE_COLUMNS); see module doc."""
    import numpy as np

    from ttscale.analysis.curves.coverage import default_ks
    from ttscale.analysis.curves.verifier_curves import min_samples, verifier_table
    from ttscale.rundir.counts import check_k
    from ttscale.rundir.store import RunDir
    from ttscale.verification.verify import prepare, verify_run

    run = RunDir(run_dir)
    if not run.exists():
        raise InputError(f"{run.path}: run directory does not exist")
    from ttscale.analysis.adaptive.run import run_rule

    rule = run_rule(run)  # an adaptive run: the deciding verifier's curve reaches K (others k <= m)
    n_min = int(rule["num_samples"]) if rule is not None else min_samples(run)
    kk = np.asarray(default_ks(n_min) if ks is None else ks, dtype=np.int64)
    check_k(kk, n_min, run.samples_dir)
    resolved = [resolve(run, s) for s in specs]
    folders = [f for _, f in resolved]
    if len(set(folders)) != len(folders):
        raise InputError(f"{arg('verifiers')}: an entry repeats ({', '.join(folders)})")
    ref, ref_folder = pick_oracle(run, resolved, oracle)
    todo = [(ref, ref_folder)] + [(v, f) for v, f in resolved if f != ref_folder]
    for v, f in todo:  # validate all before verifying any
        prepare(run, v, out_name=f)
    from ttscale.core.progress import progress_bar

    for v, f in todo:
        with progress_bar(f"verify {f}", "sample", enabled=bool(progress)) as bar:
            verify_run(run, v, out_name=f, workers=workers, progress=bar)
    from ttscale.rundir.staleness import check, coverage_problems, run_state

    state = run_state(run, [f for _, f in todo])  # recorded beside the table (write_compare)
    check(coverage_problems(run, state), run.path, allow_stale)
    # the curves come from the summaries only (ttscale.rundir.summaries), never the per-sample tables
    with progress_bar("compare", "verifier", enabled=bool(progress)) as bar:
        table = verifier_table(run, [(f, v.kind) for v, f in todo], ref_folder, kk, n_boot, seed,
                               progress=bar)
    table.attrs["state"] = state
    return table


def write_compare(table: Any, out: str | Path, title: str) -> None:
    """Write the comparison table (Parquet, CSV) and its figure (PNG, SVG) into ``out``."""
    from ttscale.analysis.figures import compare_figure_bytes
    from ttscale.rundir.store import atomic_write_bytes, atomic_write_table

    out = Path(out)
    png, svg = compare_figure_bytes(table, title)
    atomic_write_table(out / "compare.parquet", table)
    atomic_write_bytes(out / "compare.csv", table.to_csv(index=False).encode())
    atomic_write_bytes(out / "compare.png", png)
    atomic_write_bytes(out / "compare.svg", svg)
    if table.attrs.get("state") is not None:  # what it was computed from (ttscale.rundir.staleness)
        from ttscale.rundir.staleness import write_state

        write_state(out, table.attrs["state"])
