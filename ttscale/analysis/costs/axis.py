"""The cost axis of one analysed group: FLOPs and Kinetics eFLOPs per problem at each k.

``cost_axis(shape, tokens, ks)`` gives the columns of ``costs.parquet`` (``k``, ``flops`` in the
Large Language Monkeys count, ``kinetics_eflops`` in Kinetics' definition, see
:mod:`ttscale.analysis.costs.cost`), the FLOPs function the figures use, and the fields of fits.json:
``flops_per_sample``, ``kinetics_eflops_per_sample`` (the cost of one more sample),
``kinetics_eflops_shared_prompt`` (Kinetics' once-per-problem part), the token counts used and
``tokens_assumed`` (true when a counts table gave none and the defaults of
:mod:`ttscale.analysis.costs.model_shape` stood in).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from ttscale.analysis.costs.cost import (
    ModelShape,
    cost_per_sample,
    curve_cost,
    kinetics_shared_prompt_cost,
)


@dataclass
class CostAxis:
    flops: Callable[[Any], np.ndarray]
    columns: dict[str, Any]
    record: dict[str, Any]


def cost_axis(shape: ModelShape, tokens: tuple[float, float] | None, ks: Any) -> CostAxis:
    """Costs of one group at each k (``tokens``: average prompt and output tokens, or None)."""
    from ttscale.analysis.costs.model_shape import DEFAULT_OUTPUT_TOKENS, DEFAULT_PROMPT_TOKENS

    assumed = tokens is None or not all(np.isfinite(t) and t >= 0 for t in tokens) or tokens[1] == 0
    p_tok, o_tok = (DEFAULT_PROMPT_TOKENS, DEFAULT_OUTPUT_TOKENS) if assumed else tokens

    def flops(k: Any, p_tok: float = p_tok, o_tok: float = o_tok) -> np.ndarray:
        return np.asarray(curve_cost(np.asarray(k), p_tok, o_tok, shape, "flops"), float)

    ks = np.asarray(ks, dtype=np.int64)
    columns = {"k": ks, "flops": flops(ks),
               "kinetics_eflops": np.asarray(curve_cost(ks, p_tok, o_tok, shape, "kinetics"), float)}
    record = {
        "avg_prompt_tokens": float(p_tok), "avg_output_tokens": float(o_tok),
        "tokens_assumed": bool(assumed),
        "flops_per_sample": float(flops(np.array([1]))[0]),
        "kinetics_eflops_per_sample": float(cost_per_sample(p_tok, o_tok, shape, "kinetics")),
        "kinetics_eflops_shared_prompt": float(kinetics_shared_prompt_cost(shape, p_tok, o_tok)),
    }
    return CostAxis(flops, columns, record)
