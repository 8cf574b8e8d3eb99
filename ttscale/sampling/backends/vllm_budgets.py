"""Thinking budgets on vLLM: traces in one engine call, then every answer as a prefix-cached request.

The same rules as :mod:`ttscale.sampling.backends.budget_forcing` (read it first), in two calls:

1. Traces: one request per (request part) with ``n`` children seeded ``seed + i`` (as without
   budgets), ``max_tokens`` = the largest budget plus the marker's length, stopping at ``think_end``
   (kept in the output). A trace that wrote the marker starting within the largest budget closed
   its thinking; one that ended (end of sequence) did too, at its length; the others are cut.
2. Answers, all in one call, each a new request whose prompt is the original prompt plus the trace's
   tokens (token ids, never re-tokenized text): a trace that closed its thinking continues after its
   marker (seed ``answer_seed(seed, 0)``), and at each budget B below the trace's thinking length the
   answer is forced after ``trace[:B] + think_end + answer_cue`` (seed ``answer_seed(seed, B)``).
   vLLM's prefix caching (on by default in V1) finds the prompt and the trace's KV blocks computed
   in call 1, so an answer costs about its own tokens (plus the last, partial block of its prefix).

vllm 0.32 has its own per-request thinking budget (``SamplingParams.thinking_token_budget`` with
``--reasoning-config``; ``vllm/v1/sample/thinking_budget_state.py``): it forces the think-end tokens
into one request once its thinking reaches the budget. It is not used here: it caps a single
request, whereas every budget below the largest needs the cut-and-force of one shared trace, and
using it for the largest budget alone would force that budget differently (the end tokens without
the answer cue) from every other one, and only for models whose reasoning config the engine knows.

Unlike the transformers backend, where an answer after a closed think block continues the trace's
own random stream, here it is a new request with its own seed; each backend keeps the seed
contract for itself (its samples do not equal the other backend's, as without budgets).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ttscale.sampling.backends.base import Request, Sample, answer_seed
from ttscale.sampling.backends.budget_forcing import MARKER_MARGIN, marker_start, thinking_of


@dataclass
class _Trace:
    r: int  # request index
    i: int  # sample offset within the request
    tokens: list[int]
    think_len: int | None  # None: cut (not closed within the largest budget)
    answer_from: int | None  # tokens[:answer_from] is the thinking and its marker
    ended: bool  # stopped by end of sequence (no marker)


def generate_with_budgets(backend: Any, requests: list[Request], prompts: list[dict[str, list[int]]],
                          parts: list[list[tuple[int, int]]]) -> list[list[Sample]]:
    """Per request, its samples (n x budgets), sample index then budget order."""
    from vllm import SamplingParams

    tok = backend.tokenizer
    room = [backend.max_model_len - len(p["prompt_token_ids"]) for p in prompts]
    sub = [(ri, off, n) for ri in range(len(requests)) for (off, n) in parts[ri]]
    params = []
    for ri, off, n in sub:
        r = requests[ri]
        th = thinking_of(r)
        margin = len(tok.encode(th.think_end, add_special_tokens=False)) + MARKER_MARGIN
        params.append(SamplingParams(n=n, seed=int(r.seed) + off, temperature=float(r.temperature),
                                     top_p=float(r.top_p), max_tokens=max(1, min(max(r.budgets) + margin, room[ri])),
                                     stop=[th.think_end], include_stop_str_in_output=True))
    outs = backend._call(lambda: backend.llm.generate([prompts[ri] for ri, _, _ in sub], params, use_tqdm=False))
    traces: list[_Trace] = []
    for (ri, off, _), out in zip(sub, outs, strict=True):
        r = requests[ri]
        marker = thinking_of(r).think_end
        for c in sorted(out.outputs, key=lambda c: c.index):
            toks = [int(t) for t in c.token_ids]
            found = (marker_start(tok, toks, marker)
                     if marker in tok.decode(toks, skip_special_tokens=False) else None)
            if found is not None and found[0] <= max(r.budgets):  # closed its thinking
                traces.append(_Trace(ri, off + c.index, toks, found[0], found[1], False))
            elif found is None and c.finish_reason == "stop":  # end of sequence while thinking
                body = len(toks) - 1 if toks and toks[-1] in _eos(tok) else len(toks)
                traces.append(_Trace(ri, off + c.index, toks, body, None, True))
            elif found is None and room[ri] < max(r.budgets):  # the context ended it: it stopped
                traces.append(_Trace(ri, off + c.index, toks, len(toks), None, True))
            else:  # cut: not closed within the largest budget
                traces.append(_Trace(ri, off + c.index, toks, None, None, False))
    backend.decoded_tokens = getattr(backend, "decoded_tokens", 0) + sum(len(t.tokens) for t in traces)
    # the answers: continuations of closed traces, forced answers below each trace's thinking
    jobs: list[tuple[int, int]] = []  # (trace, budget; 0 = continuation)
    prompts2, params2 = [], []
    for k, t in enumerate(traces):
        r = requests[t.r]
        th = thinking_of(r)
        seed = int(r.seed) + t.i
        base = prompts[t.r]["prompt_token_ids"]
        if t.answer_from is not None:
            jobs.append((k, 0))
            prompts2.append({"prompt_token_ids": base + t.tokens[:t.answer_from]})
            params2.append(_answer_params(r, answer_seed(seed, 0), room[t.r] - t.answer_from))
        fids = backend.force_ids(th)
        for b in r.budgets:
            if t.think_len is not None and t.think_len <= b:
                continue
            jobs.append((k, b))
            prompts2.append({"prompt_token_ids": base + t.tokens[:b] + fids})
            params2.append(_answer_params(r, answer_seed(seed, b), room[t.r] - b - len(fids)))
    answers: dict[tuple[int, int], Any] = {}
    if jobs:
        outs2 = backend._call(lambda: backend.llm.generate(prompts2, params2, use_tqdm=False))
        for job, out in zip(jobs, outs2, strict=True):
            answers[job] = out.outputs[0]
    backend.decoded_tokens += sum(len(a.token_ids) for a in answers.values())
    by_req: list[list[Sample]] = [[] for _ in requests]
    for k, t in enumerate(traces):
        r = requests[t.r]
        th = thinking_of(r)
        nprompt = len(prompts[t.r]["prompt_token_ids"])
        for b in sorted(r.budgets):
            if t.think_len is not None and t.think_len <= b:  # natural: the same sample at each B
                cont = answers.get((k, 0))
                if cont is not None:
                    text = tok.decode(t.tokens, skip_special_tokens=True) + cont.text
                    n_out = len(t.tokens) + len(cont.token_ids)
                    finish = str(cont.finish_reason or "unknown")
                    answer = n_out - int(t.answer_from or 0)
                else:  # ended while thinking
                    body = t.tokens[:t.think_len]
                    text, n_out, finish = tok.decode(body, skip_special_tokens=True), len(t.tokens), "stop"
                    answer = n_out - t.think_len
                by_req[t.r].append(Sample(r.problem_id, r.temperature, r.first_index + t.i, int(r.seed) + t.i,
                                          text, nprompt, n_out, finish, budget=b,
                                          thinking_tokens=int(t.think_len), answer_tokens=max(0, answer)))
                continue
            a = answers[(k, b)]
            fids = backend.force_ids(th)
            text = tok.decode(t.tokens[:b], skip_special_tokens=True) + th.force_text + a.text
            by_req[t.r].append(Sample(r.problem_id, r.temperature, r.first_index + t.i, int(r.seed) + t.i,
                                      text, nprompt, b + len(fids) + len(a.token_ids),
                                      str(a.finish_reason or "unknown"), budget=b, thinking_tokens=b,
                                      answer_tokens=len(a.token_ids), forced=True))
    for samples in by_req:
        samples.sort(key=lambda s: (s.sample_index, s.budget))
    return by_req


def _answer_params(r: Request, seed: int, room: int) -> Any:
    from vllm import SamplingParams

    return SamplingParams(n=1, seed=seed, temperature=float(r.temperature), top_p=float(r.top_p),
                          max_tokens=max(1, min(int(r.max_tokens), room)), stop=list(r.stop) or None)


def _eos(tok: Any) -> set[int]:
    e = getattr(tok, "eos_token_id", None)
    return {int(e)} if e is not None else set()
