"""Arithmetic: generated, seeded multi-digit problems; the embedded model's own task.

Plain prompts are the bare expression (``"123+456="``), the format the embedded model was trained
on; the chat form asks for the number alone. Difficulty is set by the number of digits of each
operand and the operators used.
"""

from __future__ import annotations

import numpy as np

from ttscale.core.registry import tasks
from ttscale.errors import InputError
from ttscale.plugins import Problem, Task

OPERATORS = {"+": lambda a, b: a + b, "*": lambda a, b: a * b, "-": lambda a, b: a - b}


def make_problems(
    num_problems: int, seed: int = 0, add_digits: int = 3, mul_digits: int = 2, ops: str = "+*"
) -> list[tuple[int, str, int]]:
    """``num_problems`` (a, op, b) triples, alternating over ``ops``, deterministic for a seed.

    Additions (and subtractions) draw operands in [0, 10**add_digits), multiplications in
    [0, 10**mul_digits): the recipe the embedded model was trained on.
    """
    for name, digits in (("add_digits", add_digits), ("mul_digits", mul_digits)):
        if not 1 <= digits <= 18:  # operands are drawn as int64
            raise InputError(f"arithmetic task: field '{name}' must be in 1..18, got {digits}")
    for op in ops:
        if op not in OPERATORS:
            raise InputError(f"arithmetic task: field 'ops': unknown operator {op!r} (use + - *)")
    rng = np.random.default_rng(seed)
    out = []
    for i in range(num_problems):
        op = ops[i % len(ops)]
        hi = 10 ** (mul_digits if op == "*" else add_digits)
        a, b = (int(x) for x in rng.integers(0, hi, size=2))
        out.append((a, op, b))
    return out


@tasks.register("arithmetic", "generated, seeded a+b / a*b problems (the embedded model's task)")
class Arithmetic(Task):
    name = "arithmetic"
    verifiers = ("exact", "math", "majority", "imperfect")
    option_names = ("seed", "add_digits", "mul_digits", "ops")
    stop = ()

    def problems(self, num_problems: int | None = None, seed: int = 0) -> list[Problem]:
        n = 200 if num_problems is None else int(num_problems)
        if n < 1:
            raise InputError(f"arithmetic task: field 'num_problems' must be at least 1, got {n}")
        # A fixed offset keeps evaluation problems apart from the training stream's seed 0.
        data_seed = int(self.options.get("seed", 10_000 + seed))
        triples = make_problems(
            n,
            seed=data_seed,
            add_digits=int(self.options.get("add_digits", 3)),
            mul_digits=int(self.options.get("mul_digits", 2)),
            ops=str(self.options.get("ops", "+*")),
        )
        problems = []
        for i, (a, op, b) in enumerate(triples):
            expr = f"{a}{op}{b}"
            answer = OPERATORS[op](a, b)
            problems.append(
                Problem(
                    problem_id=f"arith-{i:05d}",
                    task=self.name,
                    prompt=f"{expr}=",
                    reference={"answer": str(answer)},
                    messages=[
                        {"role": "user", "content": f"What is {a} {op} {b}? Reply with the number only."}
                    ],
                )
            )
        return problems
