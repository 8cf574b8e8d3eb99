"""Arguments of the public verbs checked in the API's own words, and the strict public estimators.

Each verb checks what it is given before it computes anything: a source that is neither a path,
a :class:`ttscale.rundir.runs.Run` nor a DataFrame, a ``to`` that is not a whole number or is
beyond what can be forecast, are :class:`ttscale.errors.InputError` lines naming the argument
(``to='abc'`` from Python, ``--to abc`` from the command line: :func:`ttscale.errors.arg`), never a TypeError or OverflowError from deep inside. ``ttscale.pass_at_k`` and
``ttscale.coverage`` refuse a k above a problem's samples (as the CLI does), where the internal
estimators of :mod:`ttscale.analysis.curves.estimators` return NaN for the curves' sake.
"""

from __future__ import annotations

import math
import os
from typing import Any

import numpy as np

from ttscale.errors import InputError, arg

#: the largest k a forecast or a curve is asked at (beyond it no count is exact in float64)
MAX_K = 10**15


def check_source(source: Any, verb: str, frames: bool = True) -> None:
    """``source`` is a path (str or os.PathLike, a Run included) or, with ``frames``, a DataFrame."""
    import pandas as pd

    if isinstance(source, str | os.PathLike) or (frames and isinstance(source, pd.DataFrame)):
        return
    want = ("a counts table or run directory (a path), a Run or a counts DataFrame" if frames
            else "a run directory (a path or a Run)")
    raise InputError(f"{verb}: source={source!r} ({type(source).__name__}): expected {want}")


def whole(value: Any, name: str, verb: str, minimum: int = 1, maximum: int = MAX_K) -> int:
    """``value`` as an int in [minimum, maximum] (an integral float accepted), else InputError."""
    ok = isinstance(value, int | np.integer) and not isinstance(value, bool)
    if isinstance(value, float | np.floating) and math.isfinite(value) and float(value).is_integer():
        ok = True
    if not ok:
        raise InputError(f"{verb}: {arg(name, value)}: expected a whole number")
    if not minimum <= value <= maximum:
        raise InputError(f"{verb}: {arg(name, value)}: must be between {minimum} and {maximum:.0e}".replace("e+", "e"))
    return int(value)


def pass_at_k(n: Any, c: Any, ks: Any) -> np.ndarray:
    """Unbiased pass@k per problem, ``1 - C(n-c, k) / C(n, k)``: shape (len(c), len(ks)).

    ``n`` samples per problem (or one number for all), ``c`` correct ones. A k above some
    problem's n is an InputError: no unbiased estimate exists from fewer than k samples."""
    from ttscale.analysis.curves import estimators

    out = estimators.pass_at_k(n, c, ks)
    if np.isnan(out).any():
        i, j = (int(x[0]) for x in np.nonzero(np.isnan(out)))
        nn = np.broadcast_to(np.atleast_1d(np.asarray(n)), (out.shape[0],))
        k = int(np.atleast_1d(np.asarray(ks))[j])
        raise InputError(f"pass_at_k: k={k} is more than the n={int(nn[i])} samples of problem {i} "
                         "(no unbiased estimate from fewer than k samples)")
    return out


def coverage(n: Any, c: Any, ks: Any) -> np.ndarray:
    """Coverage, the mean of pass@k over problems, for each k: shape (len(ks),); a k above some
    problem's n is an InputError (see :func:`pass_at_k`)."""
    return pass_at_k(n, c, ks).mean(axis=0)
