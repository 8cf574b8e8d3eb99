"""Batching shared by the transformers backend's plain sampling and its budget forcing.

One definition of how the distinct prompts of a chunk of sample rows become one left-padded batch,
so the two decode paths cannot drift apart (a pad on the wrong side changes positions, and with
them every sampled token).
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
