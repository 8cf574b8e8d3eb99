"""Thinking budgets by budget forcing (s1): one trace per sample index, cut at every budget.

A request with ``budgets`` (B_1 < ... < B_m) asks, for each of its n sample indices, for one
sample per budget. Each trace is generated once, its thinking capped at B_m tokens:

- the trace *closes* its thinking at t tokens when the model writes ``think_end`` starting after
  its t-th token; a trace that stops (end of sequence or a stop string) without closing it
  ends its thinking at its length L. Either way it is the same sample at every budget B >= t (or L):
  the answer it wrote itself, not forced (``forced`` False; one trace, counted at each budget).
- at a budget B below that, the trace is cut after its first B tokens, ``think_end`` and the
  answer cue are appended, and only the answer is generated (``forced`` True, thinking B tokens).

A trace that has not closed its thinking after B_m tokens (plus the length of the marker, so a
marker that starts by B_m is seen) stops there. After the thinking closes, the answer may run
to ``max_tokens`` more tokens; stop strings apply to the answer only.

The seed contract, per budget: the trace's token j uses the j-th uniform of a generator seeded
with the sample's seed (as without budgets), so the trace's prefix does not depend on how far it
is drawn; a forced answer uses a generator seeded with ``answer_seed(seed, B)``. So the sample at
(problem, temperature, index, budget) is the same whether budgets are drawn together, one at a
time, added later or resumed: the contract of :mod:`ttscale.sampling.backends.base`, per budget.

On transformers the forced answers reuse the trace's KV cache: the decode loop keeps a copy of
the cache when it holds exactly B generated tokens for each budget B, and a forced answer feeds
only the marker and cue, then decodes its own tokens. The trace costs B_m (+ marker) decode
steps and each forced answer its own; sampling each budget from scratch costs the sum of the
budgets (``benchmarks/bench_budgets.py`` measures both).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

from ttscale.errors import arg
from ttscale.sampling.backends.base import Request, Sample, Thinking, answer_seed
from ttscale.sampling.backends.batching import advance, decode, left_padded, pick, stop_cut

#: extra tokens a trace may run past the largest budget so that a marker starting by then is seen
MARKER_MARGIN = 2


@dataclass
class Trace:
    """One trace's tokens and where its thinking ended."""

    tokens: list[int]
    finish: str  # stop | length | budget (cut: thinking never closed by the largest budget)
    think_len: int | None = None  # thinking tokens before the marker / before it stopped
    answer_from: int | None = None  # index of the first token after the marker (None: no marker)
    stop_text: str | None = None  # the answer text cut at a stop string
    answers: dict[int, tuple[list[int], str, str]] = field(default_factory=dict)  # B -> forced

    def natural_at(self, budget: int) -> bool:
        return self.think_len is not None and self.think_len <= budget


def thinking_of(r: Request) -> Thinking:
    return r.thinking or Thinking()


def marker_start(tokenizer: Any, tokens: list[int], marker: str) -> tuple[int, int] | None:
    """(thinking tokens before ``marker``, index just past it) in ``tokens``, or None.

    The thinking length is the largest m whose decoded prefix ends at or before the marker's
    first character (a binary search over prefix decodes: exact for any tokenizer)."""
    text = tokenizer.decode(tokens, skip_special_tokens=False)
    pos = text.find(marker)
    if pos < 0:
        return None
    lo, hi = 0, len(tokens)
    while lo < hi:  # largest m with len(decode(tokens[:m])) <= pos
        mid = (lo + hi + 1) // 2
        if len(tokenizer.decode(tokens[:mid], skip_special_tokens=False)) <= pos:
            lo = mid
        else:
            hi = mid - 1
    end = pos + len(marker)
    past = lo
    while past < len(tokens) and len(tokenizer.decode(tokens[:past], skip_special_tokens=False)) < end:
        past += 1
    return lo, past


def samples_of_trace(backend: Any, r: Request, i: int, prompt_len: int, trace: Trace) -> list[Sample]:
    """The samples of one trace, one per budget of ``r`` (natural or forced)."""
    tok = backend.tokenizer
    th = thinking_of(r)
    out = []
    for b in sorted(r.budgets):
        if trace.natural_at(b):
            toks = trace.tokens
            if trace.stop_text is not None:
                text = trace.stop_text
            else:
                body = toks[:-1] if trace.finish == "stop" and toks and toks[-1] in backend.eos_ids else toks
                text = tok.decode(body, skip_special_tokens=True)
            think = int(trace.think_len or 0)
            answer = len(toks) - trace.answer_from if trace.answer_from is not None else len(toks) - think
            out.append(Sample(r.problem_id, r.temperature, r.first_index + i, r.seed + i, text,
                              prompt_len, len(toks), trace.finish, budget=b, thinking_tokens=think,
                              answer_tokens=max(0, answer), forced=False))
            continue
        ans_ids, ans_text, finish = trace.answers[b]
        force_ids = backend.force_ids(th)
        text = tok.decode(trace.tokens[:b], skip_special_tokens=True) + th.force_text + ans_text
        out.append(Sample(r.problem_id, r.temperature, r.first_index + i, r.seed + i, text,
                          prompt_len, b + len(force_ids) + len(ans_ids), finish, budget=b,
                          thinking_tokens=b, answer_tokens=len(ans_ids), forced=True))
    return out


def sample_with_budgets(backend: Any, chunk: list[tuple[int, int]], requests: list[Request],
                        prompts: list[list[int]], oom: type[Exception]) -> list[list[Sample]]:
    """Per row of ``chunk``: its samples at each budget (transformers backend, whose
    out-of-memory error ``oom`` it takes)."""
    import torch

    try:
        traces = _traces(backend, chunk, requests, prompts)
    except torch.cuda.OutOfMemoryError as e:
        raise oom(f"{backend.device}: out of memory sampling {len(chunk)} traces with "
                          f"budgets; lower {arg('batch_size')}") from e
    return [samples_of_trace(backend, requests[ri], i, len(prompts[ri]), t)
            for (ri, i), t in zip(chunk, traces, strict=True)]


def _uniforms(seeds: list[int], lengths: list[int], steps: int, dev: Any) -> Any:
    import torch

    u = torch.zeros((len(seeds), max(1, steps)), dtype=torch.float64)
    for row, (seed, n) in enumerate(zip(seeds, lengths, strict=True)):
        gen = torch.Generator().manual_seed(int(seed))
        u[row, :n] = torch.rand(n, generator=gen, dtype=torch.float64)
    return u.to(dev)


def _traces(backend: Any, chunk: list[tuple[int, int]], requests: list[Request],
            prompts: list[list[int]]) -> list[Trace]:
    import torch
    from transformers import DynamicCache

    lm, tok, dev = backend.lm, backend.tokenizer, backend.device
    ids, mask, pos, row_slot = left_padded(backend, chunk, prompts)
    reqs = [requests[ri] for ri, _ in chunk]
    room = [backend.context - len(prompts[ri]) if backend.context else 1 << 30 for ri, _ in chunk]
    markers = [thinking_of(r).think_end for r in reqs]
    margin = [len(tok(m, add_special_tokens=False).input_ids) + MARKER_MARGIN for m in markers]
    think_cap = [min(max(r.budgets) + mg, rm) for r, mg, rm in zip(reqs, margin, room, strict=True)]
    full = [min(c + int(r.max_tokens), rm) for c, r, rm in zip(think_cap, reqs, room, strict=True)]
    steps = max(full)
    temps = torch.tensor([float(r.temperature) for r in reqs], device=dev)
    top_ps = torch.tensor([float(r.top_p) for r in reqs], device=dev)
    uniforms = _uniforms([int(r.seed) + i for r, (_, i) in zip(reqs, chunk, strict=True)], full, steps, dev)
    eos = torch.tensor(backend.eos_ids or [-1], device=dev)
    budgets = sorted({b for r in reqs for b in r.budgets})
    snaps: dict[int, tuple[Any, Any, Any, Any]] = {}

    with torch.inference_mode():
        cache = DynamicCache(config=lm.config)
        out = lm(input_ids=ids, attention_mask=mask, position_ids=pos, **{backend.cache_kw: cache},
                 use_cache=True)
        logits = out.logits[:, -1, :][row_slot]
        cache.reorder_cache(row_slot)
        mask = mask[row_slot]
        next_pos = pos[:, -1][row_slot] + 1
        live = torch.arange(len(chunk), device=dev)
        traces = [Trace([], "length") for _ in chunk]
        limit = list(think_cap)
        active = [True] * len(chunk)
        for step in range(steps):
            if step in budgets:  # the cache holds `step` generated tokens of every live row
                want = [b for b, row in enumerate(live.tolist())
                        if step in reqs[row].budgets and not traces[row].natural_at(step)]
                if want:
                    keep = torch.tensor(want, device=dev)
                    snap = copy.deepcopy(cache)
                    snap.batch_select_indices(keep)
                    snaps[step] = (snap, live[keep].clone(), mask[keep].clone(), next_pos[keep].clone())
            picked = pick(logits, temps[live], top_ps[live], uniforms[live, step])
            stopped_eos = torch.isin(picked, eos).tolist()
            for b, (row, t) in enumerate(zip(live.tolist(), picked.tolist(), strict=True)):
                if not active[row]:
                    continue
                tr, r = traces[row], reqs[row]
                tr.tokens.append(t)
                n = len(tr.tokens)
                if tr.answer_from is None:  # still thinking
                    if stopped_eos[b]:
                        active[row], tr.finish, tr.think_len = False, "stop", n - 1
                        continue
                    found = _closed(tok, tr.tokens, markers[row])
                    if found is not None:
                        think, past = found
                        if think > max(r.budgets):  # it closed too late: cut at the largest budget
                            active[row], tr.finish = False, "budget"
                            continue
                        tr.think_len, tr.answer_from = think, past
                        limit[row] = min(past + int(r.max_tokens), room[row])
                    elif n >= limit[row]:
                        active[row], tr.finish = False, "budget"
                        if limit[row] < max(r.budgets):  # the context ended it: a trace that stopped
                            tr.finish, tr.think_len = "length", n
                        continue
                if tr.answer_from is not None:
                    if stopped_eos[b]:
                        active[row], tr.finish = False, "stop"
                    elif r.stop and (cut := stop_cut(tok, tr.tokens, tr.answer_from, r.stop)) is not None:
                        active[row], tr.finish, tr.stop_text = False, "stop", cut
                    elif n >= limit[row]:
                        active[row] = False
            still = [b for b, row in enumerate(live.tolist()) if active[row]]
            if not still:
                break
            logits, live, mask, next_pos = advance(backend, cache, live, mask, next_pos, picked, still)
        backend.decoded_tokens += sum(len(t.tokens) for t in traces)
        for b in budgets:
            _force(backend, b, snaps.get(b), traces, reqs, chunk, room, temps, top_ps)
    return traces


def _closed(tok: Any, tokens: list[int], marker: str) -> tuple[int, int] | None:
    """Where the marker is, once its last character has been written (tail decode first)."""
    tail = tok.decode(tokens[-(len(marker) + 2):], skip_special_tokens=False)
    if marker not in tail:
        return None
    return marker_start(tok, tokens, marker)


def _force(backend: Any, budget: int, snap: Any, traces: list[Trace], reqs: list[Request],
           chunk: list[tuple[int, int]], room: list[int], temps: Any, top_ps: Any) -> None:
    """Generate the forced answers at ``budget`` of the rows that need one, from the snapshot."""
    import torch

    need = [row for row, (tr, r) in enumerate(zip(traces, reqs, strict=True))
            if budget in r.budgets and not tr.natural_at(budget)]
    if not need:
        return
    if snap is None:
        raise RuntimeError(f"budget {budget}: no cache kept for rows that need a forced answer")
    cache, live, mask, next_pos = snap
    where = {row: b for b, row in enumerate(live.tolist())}
    missing = [row for row in need if row not in where]
    if missing:
        raise RuntimeError(f"budget {budget}: rows {missing} were not live at step {budget}")
    keep = torch.tensor([where[row] for row in need], device=backend.device)
    cache.batch_select_indices(keep)
    mask, next_pos = mask[keep], next_pos[keep]
    dev, lm = backend.device, backend.lm
    # rows may differ in their cue; group rows by force text (usually one group)
    groups: dict[str, list[int]] = {}
    for k, row in enumerate(need):
        groups.setdefault(thinking_of(reqs[row]).force_text, []).append(k)
    for ks in groups.values():
        sub = torch.tensor(ks, device=dev)
        c = copy.deepcopy(cache) if len(groups) > 1 else cache
        if len(groups) > 1:
            c.batch_select_indices(sub)
        rows = [need[k] for k in ks]
        fids = backend.force_ids(thinking_of(reqs[rows[0]]))
        m = torch.cat([mask[sub], torch.ones((len(ks), len(fids)), dtype=mask.dtype, device=dev)], dim=1)
        p = next_pos[sub][:, None] + torch.arange(len(fids), device=dev)[None, :]
        with torch.inference_mode():
            out = lm(input_ids=torch.tensor([fids] * len(ks), device=dev), attention_mask=m,
                     position_ids=p, **{backend.cache_kw: c}, use_cache=True)
            limits = [max(1, min(int(reqs[row].max_tokens), room[row] - budget - len(fids))) for row in rows]
            seeds = [answer_seed(int(reqs[row].seed) + chunk[row][1], budget) for row in rows]
            idx = torch.tensor(rows, device=dev)
            outs = decode(backend, c, out.logits[:, -1, :], m, next_pos[sub] + len(fids), temps[idx],
                          top_ps[idx], _uniforms(seeds, limits, max(limits), dev), limits,
                          [tuple(reqs[row].stop or ()) for row in rows])
        backend.decoded_tokens += sum(len(o[0]) for o in outs)
        for row, answer in zip(rows, outs, strict=True):
            traces[row].answers[budget] = answer
