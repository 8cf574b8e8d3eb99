"""Long addition with a think block: the embedded thinking model's task (``think-llama``).

A problem is ``a+b`` with each operand's number of digits drawn uniformly in
``min_digits..max_digits`` (1..6 by default, the range ``think-llama`` was trained on), then the
operand uniformly among the numbers with that many digits. The plain prompt ends with the think
marker, ``"4057+968=<think>"``: the model writes its scratchpad (per column, least significant
first: the two digits, the sum digit, the carry, then ``,``), closes it with ``</think>`` and gives
the sum. ``exact`` verifies it: the last number of ``...,4050,</think>5025`` is the answer after
the think block (a completion with no answer after ``</think>`` gives a scratchpad fragment, which
does not match). :func:`scratchpad` is the reference trace. The model's thinking format is in
``ttscale/models/think-llama/thinking.json``.
"""

from __future__ import annotations

import numpy as np

from ttscale.core.registry import tasks
from ttscale.errors import InputError
from ttscale.plugins import Problem, Task

THINK_START, THINK_END = "<think>", "</think>"


def scratchpad(a: int, b: int) -> str:
    """The reference thinking text for a+b: per column (LSD first) a_i b_i sum_i carry, then ``,``."""
    sa, sb = str(a)[::-1], str(b)[::-1]
    out, carry = [], 0
    for i in range(max(len(sa), len(sb))):
        da = int(sa[i]) if i < len(sa) else 0
        db = int(sb[i]) if i < len(sb) else 0
        total = da + db + carry
        carry = total // 10
        out.append(f"{da}{db}{total % 10}{carry},")
    return "".join(out)


def draw_pairs(num_problems: int, seed: int, min_digits: int = 1, max_digits: int = 6) -> list[tuple[int, int]]:
    """``num_problems`` operand pairs, deterministic for a seed (digit counts uniform, then values)."""
    rng = np.random.default_rng(seed)
    out = []
    for da, db in rng.integers(min_digits, max_digits + 1, size=(num_problems, 2)):
        lo_a, lo_b = (0 if da == 1 else 10 ** (da - 1)), (0 if db == 1 else 10 ** (db - 1))
        out.append((int(rng.integers(lo_a, 10**da)), int(rng.integers(lo_b, 10**db))))
    return out


@tasks.register("long-addition", "a+b with 1..6-digit operands, thought out in a <think> scratchpad")
class LongAddition(Task):
    name = "long-addition"
    verifiers = ("exact", "math", "majority", "imperfect")
    option_names = ("seed", "min_digits", "max_digits")
    stop = ()
    #: budget forcing (thinking budgets): close the block, no answer cue (the model answers next)
    think_end = THINK_END
    answer_cue = ""

    def problems(self, num_problems: int | None = None, seed: int = 0) -> list[Problem]:
        n = 200 if num_problems is None else int(num_problems)
        if n < 1:
            raise InputError(f"long-addition task: field 'num_problems' must be at least 1, got {n}")
        lo = int(self.options.get("min_digits", 1))
        hi = int(self.options.get("max_digits", 6))
        if not 1 <= lo <= hi <= 18:  # operands are drawn as int64
            raise InputError(
                f"long-addition task: fields 'min_digits'/'max_digits' need 1 <= min <= max <= 18, got {lo}, {hi}"
            )
        # A fixed offset keeps evaluation problems apart from the training stream's seed 0.
        data_seed = int(self.options.get("seed", 10_000 + seed))
        problems = []
        for i, (a, b) in enumerate(draw_pairs(n, data_seed, lo, hi)):
            problems.append(
                Problem(
                    problem_id=f"ladd-{i:05d}",
                    task=self.name,
                    prompt=f"{a}+{b}={THINK_START}",
                    reference={"answer": str(a + b)},
                    messages=[
                        {"role": "user", "content": f"What is {a} + {b}? Reply with the number only."}
                    ],
                )
            )
        return problems
