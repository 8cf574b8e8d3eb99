"""Batching shared by the transformers backend's plain sampling and its budget forcing.

One definition of how the distinct prompts of a chunk of sample rows become one left-padded batch
(:func:`left_padded`), of how a token is picked from its row's uniform (:func:`pick`), of one
decode step with the halving of the live batch (:func:`advance`), and of decoding rows until each
stops (:func:`decode`: plain samples and forced answers), so the decode paths cannot drift apart
(a pad on the wrong side changes positions, a stop checked differently changes texts).
"""

from __future__ import annotations

from typing import Any


def left_padded(backend: Any, chunk: list[tuple[int, int]], prompts: list[list[int]]) -> tuple:
    """The distinct prompts of ``chunk`` (rows: (request index, sample)) left-padded into one
    batch: (ids, attention mask, positions, each row's prompt slot), on the backend's device."""
    import torch

    dev = backend.device
    uniq = sorted({ri for ri, _ in chunk})
    slot = {ri: k for k, ri in enumerate(uniq)}
    width = max(len(prompts[ri]) for ri in uniq)
    ids = torch.full((len(uniq), width), backend.pad_id, dtype=torch.long)
    mask = torch.zeros((len(uniq), width), dtype=torch.long)
    for k, ri in enumerate(uniq):
        p = prompts[ri]
        ids[k, width - len(p):] = torch.tensor(p)
        mask[k, width - len(p):] = 1
    ids, mask = ids.to(dev), mask.to(dev)
    pos = (mask.cumsum(-1) - 1).clamp(min=0)
    row_slot = torch.tensor([slot[ri] for ri, _ in chunk], device=dev)
    return ids, mask, pos, row_slot


def pick(logits: Any, temps: Any, top_ps: Any, u: Any) -> Any:
    """One token per row: argmax where the temperature is 0, else inverse-CDF sampling at ``u``."""
    import torch

    greedy = temps == 0
    x = logits.double() / torch.where(greedy, torch.ones_like(temps), temps)[:, None].double()
    probs = torch.softmax(x, dim=-1)
    order = None
    if bool((top_ps < 1).any()):
        probs, order = probs.sort(dim=-1, descending=True, stable=True)
        before = probs.cumsum(-1) - probs  # mass strictly before each token
        probs = probs * (before < top_ps[:, None].double())
    cdf = probs.cumsum(-1)
    idx = torch.searchsorted(cdf, (u * cdf[:, -1])[:, None], right=True).squeeze(1)
    vocab = probs.shape[-1]
    last_nonzero = vocab - 1 - (probs > 0).flip(-1).long().argmax(-1)
    idx = torch.minimum(idx, last_nonzero)
    if order is not None:
        idx = order.gather(1, idx[:, None]).squeeze(1)
    return torch.where(greedy, logits.argmax(-1), idx)


def advance(backend: Any, cache: Any, live: Any, mask: Any, next_pos: Any, picked: Any,
            still: list[int]) -> tuple[Any, Any, Any, Any]:
    """Feed each live row's picked token: the batch keeps only the rows ``still`` running once they
    are half of it or fewer (and it has 8 rows or more). Returns (logits, live, mask, next_pos)."""
    import torch

    if len(still) <= len(live) // 2 and len(live) >= 8:
        keep = torch.tensor(still, device=backend.device)
        cache.batch_select_indices(keep)
        live, mask, next_pos, picked = live[keep], mask[keep], next_pos[keep], picked[keep]
    mask = torch.cat([mask, torch.ones_like(mask[:, :1])], dim=1)
    out = backend.lm(input_ids=picked[:, None], attention_mask=mask, position_ids=next_pos[:, None],
                     **{backend.cache_kw: cache}, use_cache=True)
    return out.logits[:, -1, :], live, mask, next_pos + 1


def stop_cut(tokenizer: Any, tokens: list[int], start: int, stop: tuple[str, ...]) -> str | None:
    """The whole text cut at the first stop string written after token ``start``, or None."""
    tail = tokenizer.decode(tokens[start:], skip_special_tokens=True)
    cuts = [tail.find(s) for s in stop if s and s in tail]
    if not cuts:
        return None
    return tokenizer.decode(tokens[:start], skip_special_tokens=True) + tail[: min(cuts)]


def decode(backend: Any, cache: Any, logits: Any, mask: Any, next_pos: Any, temps: Any, top_ps: Any,
           uniforms: Any, limits: list[int], stops: list[tuple[str, ...]]) -> list[tuple[list[int], str, str]]:
    """Decode every row of a prefilled ``cache`` (``logits``: each row's next-token logits) until
    it writes an end-of-sequence token, one of its ``stops`` or ``limits[row]`` tokens: per row
    (tokens, text, finish), the text cut at the stop string, else without the end token.
    ``temps``, ``top_ps`` and ``uniforms`` (rows x steps) are row-aligned."""
    import torch

    dev, tok = backend.device, backend.tokenizer
    eos = torch.tensor(backend.eos_ids or [-1], device=dev)
    rows = len(limits)
    live = torch.arange(rows, device=dev)  # batch position -> row
    tokens: list[list[int]] = [[] for _ in range(rows)]
    finish = ["length"] * rows
    texts: list[str | None] = [None] * rows
    active = [True] * rows
    for step in range(max(limits)):
        picked = pick(logits, temps[live], top_ps[live], uniforms[live, step])
        ended = torch.isin(picked, eos).tolist()
        for b, (row, t) in enumerate(zip(live.tolist(), picked.tolist(), strict=True)):
            if not active[row]:
                continue
            tokens[row].append(t)
            if ended[b]:
                active[row], finish[row] = False, "stop"
            elif stops[row] and (cut := stop_cut(tok, tokens[row], 0, stops[row])) is not None:
                active[row], finish[row], texts[row] = False, "stop", cut
            elif len(tokens[row]) >= limits[row]:
                active[row] = False
        still = [b for b, row in enumerate(live.tolist()) if active[row]]
        if not still:
            break
        logits, live, mask, next_pos = advance(backend, cache, live, mask, next_pos, picked, still)
    out = []
    for row, toks in enumerate(tokens):
        text = texts[row]
        if text is None:
            text = tok.decode(toks[:-1] if finish[row] == "stop" else toks, skip_special_tokens=True)
        out.append((toks, text, finish[row]))
    return out
