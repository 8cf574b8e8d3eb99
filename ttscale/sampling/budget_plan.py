"""Planning with thinking budgets: which (index, budget) samples a run lacks, and the requests
for them; how a model's thinking ends and its answer is forced (settings, else the task's).

A request covers a contiguous range of sample indices that lack the same budgets: each of its
traces is drawn once and cut at every budget it asks for (``ttscale.sampling.backends.budget_forcing``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pandas as pd

from ttscale.errors import InputError, arg
from ttscale.plugins import Problem
from ttscale.sampling.backends.base import Request, Thinking, seed_base

if TYPE_CHECKING:
    from ttscale.sampling.sampler import SampleSettings


def check_budgets(v: list[int] | None) -> list[int] | None:
    """The ``budgets`` setting, sorted; ValueError for an empty, repeated or non-positive one."""
    if v is None:
        return None
    if not v:
        raise ValueError("budgets is empty (leave it unset for no budget axis)")
    if any(int(b) < 1 for b in v):
        raise ValueError(f"budget {min(v)} is not a positive number of tokens")
    if len(set(v)) != len(v):
        raise ValueError("budgets repeat")
    return sorted(int(b) for b in v)


def check_budget_settings(s: SampleSettings, source: str) -> None:
    """What budgets do not combine with yet: one InputError line naming ``source``."""
    if not s.budgets:
        return
    if s.adaptive is not None:
        raise InputError(f"{source}: budgets: adaptive sampling with thinking budgets is not "
                         "supported yet (sample a fixed K per budget)")
    if s.executor != "local":
        raise InputError(f"{source}: budgets: the {s.executor} executor is not tested with thinking "
                         "budgets yet (use executor local)")
    if s.backend not in ("transformers", "vllm"):
        raise InputError(f"{source}: budgets: backend {s.backend!r} cannot force answers "
                         "(budgets need transformers or vllm)")


def missing_budgets(existing: pd.DataFrame, problem_ids: list[str], temperatures: list[float],
                    k: int, budgets: list[int]) -> dict[tuple[str, float], dict[int, tuple[int, ...]]]:
    """For each (problem, temperature), sample index -> the budgets ``existing`` lacks of it."""
    have: dict[tuple[str, float, int], set[int]] = {}
    if len(existing):
        cols = ["problem_id", "temperature", "sample_index"]
        for (pid, t, i), b in existing.groupby(cols)["budget"]:
            have[(str(pid), float(t), int(i))] = set(int(x) for x in b)
    out: dict[tuple[str, float], dict[int, tuple[int, ...]]] = {}
    for pid in problem_ids:
        for t in temperatures:
            lack = {}
            for i in range(k):
                got = have.get((pid, float(t), i), set())
                miss = tuple(b for b in budgets if b not in got)
                if miss:
                    lack[i] = miss
            if lack:
                out[(pid, float(t))] = lack
    return out


def thinking_of(s: SampleSettings, task: Any = None) -> Thinking | None:
    """How the model closes its thinking and how an answer is forced: the settings', else the
    task's (``think_end``/``answer_cue`` attributes), else ``</think>`` and a newline."""
    if not s.budgets:
        return None
    d = Thinking()
    end = s.think_end if s.think_end is not None else getattr(task, "think_end", None)
    cue = s.answer_cue if s.answer_cue is not None else getattr(task, "answer_cue", None)
    if end is not None and not str(end):
        raise InputError("think_end: empty (the string that closes the model's thinking)")
    return Thinking(str(end) if end is not None else d.think_end,
                    str(cue) if cue is not None else d.answer_cue)


def _prompt_of(p: Problem, s: SampleSettings) -> str | list[dict[str, str]]:
    if s.prompt_format == "chat":
        if not p.messages:
            raise InputError(f"{arg('prompt_format', 'chat')}: task {p.task!r} has no chat form of its prompts")
        return p.messages
    return p.prompt


def plan_budget_requests(problems: list[Problem], s: SampleSettings, existing: pd.DataFrame,
                          stop: tuple[str, ...], thinking: Thinking) -> list[Request]:
    """Requests for the (index, budget) samples ``existing`` lacks: a request covers a
    contiguous range of indices lacking the same budgets, chunked, seeds continuing."""
    assert s.num_samples is not None and s.budgets
    lack = missing_budgets(existing, [p.problem_id for p in problems], s.temperatures,
                           s.num_samples, s.budgets)
    requests = []
    for p in problems:
        prompt = _prompt_of(p, s)
        for t in s.temperatures:
            base = seed_base(s.seed, p.problem_id, t)
            per = lack.get((p.problem_id, float(t)), {})
            runs: list[tuple[int, int, tuple[int, ...]]] = []  # [lo, hi) lacking the same budgets
            for i in sorted(per):
                if runs and runs[-1][1] == i and runs[-1][2] == per[i]:
                    runs[-1] = (runs[-1][0], i + 1, per[i])
                else:
                    runs.append((i, i + 1, per[i]))
            for lo, hi, budgets in runs:
                for first in range(lo, hi, s.max_n_per_request):
                    n = min(s.max_n_per_request, hi - first)
                    requests.append(Request(p.problem_id, prompt, float(t), n, base + first, first,
                                            s.max_tokens, tuple(stop), s.top_p, budgets, thinking))
    return requests
