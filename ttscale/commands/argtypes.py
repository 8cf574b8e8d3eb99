"""Argument types for the command line: numbers checked where they are parsed.

``type=finite_float`` rejects ``nan`` and ``inf`` (which ``float`` accepts), ``type=whole``
rejects ``1e20`` turned negative and other ints out of range; argparse reports the flag's name
and value in one line (see :class:`ttscale.cli.Parser`).
"""

from __future__ import annotations

import argparse
import math


def finite_float(text: str) -> float:
    """A float that is neither NaN nor infinite."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{text!r} is not a finite number")
    return value


def non_negative_float(text: str) -> float:
    """A finite float >= 0."""
    value = finite_float(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} is negative")
    return value


def probability(text: str) -> float:
    """A finite float in [0, 1]."""
    value = finite_float(text)
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not in [0, 1]")
    return value


def finite_floats(text: str) -> list[float]:
    """A comma-separated list of finite floats: ``0.6,1.0``."""
    parts = [x.strip() for x in text.split(",") if x.strip()]
    if not parts:
        raise argparse.ArgumentTypeError(f"{text!r}: expected numbers like 0.6,1.0")
    return [finite_float(x) for x in parts]


def non_negative_int(text: str) -> int:
    """An integer >= 0 (``--workers 0``: in this process)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} is negative")
    return value
