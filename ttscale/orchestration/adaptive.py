"""Adaptive sampling: draw in rounds, verify in the loop, stop a (problem, temperature) once solved.

Settings: ``adaptive: {successes: r, min_samples: m, first_round: 32, growth: 2.0}`` in a sample
config (or a sweep's). The rule (:class:`ttscale.analysis.adaptive.estimators.StoppingRule`) checks each
(problem, temperature) at fixed boundaries (``first_round``, growing by ``growth``, the last one
K; boundaries below ``m`` are skipped, since nothing can stop there) and stops it at the first one
where the task's oracle verifier has passed at least r of its samples.

A round is one backend call for every still-active (problem, temperature) -- up to its next
boundary, so vLLM's batch stays full -- then the oracle verifier on the new samples
(:func:`ttscale.verification.verify.verify_run`: its plugins, process pools and resumable verdict
shards), then the stopping decisions, written atomically to ``RUN_DIR/adaptive/state.parquet``:
per (problem, temperature) the samples drawn ``n`` (the last boundary checked), the boundary
checked before it ``prev`` (0 if none), the successes there, ``stopped`` and every boundary
checked. A decision depends only on the samples below a boundary and their verdicts, which are
seeded and stored, so a run killed at any moment resumes to the same samples and the same
decisions. Sample j keeps the seed contract of a full run: adaptive samples are a prefix of the
K samples a full run would draw. ``run.json`` records the rule; resuming with another rule is
refused naming the field; K may grow (the old K stays one more boundary checked).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from ttscale.errors import InputError, arg
from ttscale.rundir.adaptive_state import read_state, write_state
from ttscale.rundir.store import RunDir
from ttscale.sampling.adaptive_settings import RULE_FIELDS, AdaptiveSettings, check_rule  # noqa: F401 (re-exported)
from ttscale.sampling.stopping import StoppingRule

if TYPE_CHECKING:
    from ttscale.plugins import Problem
    from ttscale.sampling.backends.base import Backend, Request
    from ttscale.sampling.sampler import SampleSettings, SamplingResult




def checks(rule: StoppingRule, k: int) -> list[int]:
    """The boundaries where the rule is checked: those at or past m, and K."""
    return [b for b in rule.boundaries(k) if b >= rule.min_samples]


def oracle_name(s: SampleSettings) -> str:
    """The verifier that decides: the configured one, else the task's first (its oracle)."""
    from ttscale.core.registry import tasks, verifiers

    assert s.adaptive is not None
    name = s.adaptive.verifier
    if name is None:
        fitting = tuple(getattr(tasks.get(s.task), "verifiers", ()) or ())
        if not fitting:
            raise InputError(f"adaptive.verifier: task {s.task!r} names no oracle verifier; give one")
        name = fitting[0]
    cls = verifiers.get(name)
    if getattr(cls, "kind", "oracle") != "oracle":
        raise InputError(f"adaptive.verifier: {name!r} is a {cls.kind} verifier; stopping needs an oracle")
    return name


def round_requests(problems: list[Problem], s: SampleSettings, existing: pd.DataFrame,
                   targets: dict[tuple[str, float], int], stop: tuple[str, ...]) -> list[Request]:
    """Requests for the samples below each group's target that ``existing`` lacks (chunked,
    seeds continuing: sample j has seed ``seed_base + j`` as in a full run)."""
    from ttscale.sampling.backends.base import Request, seed_base
    from ttscale.sampling.sampler import contiguous_ranges

    have: dict[tuple[str, float], set[int]] = {}
    if len(existing):
        for (pid, t), idx in existing.groupby(["problem_id", "temperature"])["sample_index"]:
            have[(str(pid), float(t))] = set(int(i) for i in idx)
    out = []
    for p in problems:
        prompt: Any = p.messages if s.prompt_format == "chat" else p.prompt
        if s.prompt_format == "chat" and not p.messages:
            raise InputError(f"{arg('prompt_format', 'chat')}: task {p.task!r} has no chat form of its prompts")
        for t in s.temperatures:
            key = (p.problem_id, float(t))
            if key not in targets:
                continue
            got = have.get(key, set())
            lack = [i for i in range(targets[key]) if i not in got]
            base = seed_base(s.seed, p.problem_id, t)
            for lo, hi in contiguous_ranges(lack):
                for first in range(lo, hi, s.max_n_per_request):
                    n = min(s.max_n_per_request, hi - first)
                    out.append(Request(p.problem_id, prompt, float(t), n, base + first, first,
                                       s.max_tokens, tuple(stop), s.top_p))
    return out


def _initial_state(state: pd.DataFrame, problems: list[Problem], temps: list[float]) -> dict:
    rows = {(str(r.problem_id), float(r.temperature)): {
        "n": int(r.n), "prev": int(r.prev), "successes": int(r.successes), "stopped": bool(r.stopped),
        "checks": str(r.checks)} for r in state.itertuples(index=False)}
    for p in problems:
        for t in temps:
            rows.setdefault((p.problem_id, float(t)),
                            {"n": 0, "prev": 0, "successes": 0, "stopped": False, "checks": ""})
    return rows


def _successes(run: RunDir, folder: str, targets: dict[tuple[str, float], int]) -> dict:
    """Passed verdicts below each group's target; InputError if a verdict is missing."""
    v = run.read_verdicts(folder, columns=["problem_id", "temperature", "sample_index", "passed"])
    key = pd.MultiIndex.from_arrays([v["problem_id"].astype(str), v["temperature"].astype(float)])
    tgt = pd.Series(targets)
    limit = tgt.reindex(key).to_numpy() if len(tgt) else np.zeros(len(v))
    inside = v["sample_index"].to_numpy() < np.nan_to_num(limit, nan=-1)
    v = v[inside]
    got = v.groupby(["problem_id", "temperature"])["passed"].agg(["sum", "size"])
    out = {}
    for k, target in targets.items():
        s, n = (int(got.loc[k, "sum"]), int(got.loc[k, "size"])) if k in got.index else (0, 0)
        if n != target:
            raise InputError(f"{run.verdicts_dir(folder)}: {n} verdicts of ({k[0]!r}, T={k[1]}) "
                             f"below {target}, expected {target} (verification incomplete?)")
        out[k] = s
    return out


def run_adaptive(settings: SampleSettings, out: str | Path, backend: Backend | None = None,
                 progress: bool = True) -> SamplingResult:
    """Sample ``out`` in rounds until every (problem, temperature) is solved or at K."""
    import dataclasses

    from ttscale.plugins import problems_frame
    from ttscale.sampling import sampler as smp
    from ttscale.verification.pool import keep_workers
    from ttscale.verification.verify import make_verifier, verdict_name, verify_run

    assert settings.adaptive is not None
    if settings.backend == "import":
        raise InputError("adaptive: field 'backend': import brings samples already drawn; "
                         "sampling until solved needs a backend that draws (transformers, vllm, openai)")
    if settings.num_samples is None:
        raise InputError("num_samples: missing required field (-k)")
    k_max = settings.num_samples
    rule = settings.adaptive.rule()
    rule.check(k_max, where="adaptive")
    from ttscale.sampling.executors import executor_of

    executor = executor_of(settings)  # a bad executor option: an error before anything is loaded
    name = oracle_name(settings)
    verifier = make_verifier(name, dict(settings.adaptive.verifier_options))
    folder = verdict_name(verifier)
    t0 = time.time()
    run = RunDir(out)
    problems, stop = smp.load_problems(settings)
    frame = problems_frame(problems)
    from ttscale.rundir.outputs import check_run_target, undo_if_nothing_drawn

    check_run_target(run.path)
    created = not run.path.exists()
    if run.path.is_dir():
        smp.check_resume(run, settings, frame)
    bounds = checks(rule, k_max)
    owned = backend is None
    written = tokens = requested = rounds = 0
    t_sample = 0.0
    info = None
    with undo_if_nothing_drawn(run.path, created), smp.locked(run):
        old = smp.check_resume(run, settings, frame)
        rows = _initial_state(read_state(run), problems, settings.temperatures)
        info = old.get("backend_info")
        run.write_problems(frame)
        run.write_config(smp.run_record(settings, old, info, len(problems)))
        with keep_workers(verifier):  # the verifier's worker processes live across rounds
            try:
                while True:
                    targets = {}
                    for key, st in rows.items():
                        if not st["stopped"] and st["n"] < k_max:
                            targets[key] = next(b for b in bounds if b > st["n"])
                    if not targets:
                        break
                    rounds += 1
                    existing = run.read_samples(["problem_id", "temperature", "sample_index"])
                    requests = round_requests(problems, settings, existing, targets, stop)
                    if requests:
                        if backend is None:
                            from ttscale.sampling.executors import (
                                make_backend,  # local, or ray replicas
                            )

                            backend = make_backend(settings)
                        if hasattr(backend, "validate"):
                            backend.validate(requests)
                        if info is None:
                            info = dataclasses.asdict(backend.info())
                            run.write_config(smp.run_record(settings, run.read_config(), info, len(problems)))
                        ts = time.time()
                        w, tok = smp._drain(run, backend, requests, progress)
                        t_sample += time.time() - ts
                        written, tokens, requested = written + w, tokens + tok, requested + sum(r.n for r in requests)
                    verify_run(run, verifier, out_name=folder, executor=executor)  # ray: verifier actors
                    succ = _successes(run, folder, targets)
                    for key, target in targets.items():
                        st = rows[key]
                        st["prev"], st["n"], st["successes"] = st["n"], target, succ[key]
                        st["stopped"] = succ[key] >= rule.successes and target >= rule.min_samples
                        st["checks"] = f"{st['checks']},{target}".lstrip(",")
                    write_state(run, rows)
            finally:
                if owned and backend is not None:
                    backend.close()
        seconds = time.time() - t0
        total = len(run.read_samples(["sample_index"]))
        drawn = sum(st["n"] for st in rows.values())
        full = len(rows) * k_max
        summary = {"rule": rule.to_dict(), "verifier": folder, "boundaries": bounds,
                   "samples_drawn": drawn, "samples_full": full,
                   "fraction_drawn": drawn / full if full else 0.0,
                   "stopped": sum(st["stopped"] for st in rows.values()), "groups": len(rows)}
        stats = {"last_call": {"samples": written, "seconds": round(seconds, 3), "rounds": rounds,
                               "sampling_seconds": round(t_sample, 3), "output_tokens": tokens},
                 "adaptive_summary": summary}
        run.write_config(smp.run_record(settings, run.read_config(), info, len(problems), stats))
    return smp.SamplingResult(run.path, len(problems), requested, written, total, seconds, tokens, t_sample)


def summary_line(run_dir: str | Path) -> str | None:
    """One line on an adaptive run (rule, stopped, samples drawn of full K); None otherwise."""
    cfg = RunDir(run_dir).read_config()
    s, rule = cfg.get("adaptive_summary"), cfg.get("adaptive")
    if not s or not rule:
        return None
    return (f"adaptive (r={rule['successes']}, m={rule['min_samples']}, boundaries "
            f"{','.join(map(str, s['boundaries']))}): {s['stopped']} of {s['groups']} (problem, "
            f"temperature) stopped; {s['samples_drawn']} of {s['samples_full']} samples drawn "
            f"({s['fraction_drawn']:.3f} of full K)")
