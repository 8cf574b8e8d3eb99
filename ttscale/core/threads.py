"""One BLAS thread for the analysis: numpy's small matrices gain nothing from more.

The fits, bootstraps and forecasts of :mod:`ttscale.analysis` multiply and solve matrices of a
few hundred rows at most, many thousand times. numpy's BLAS (OpenBLAS) starts a thread per core
for each call, and on a machine whose cores are busy (a shared server, or ttscale's own sampling)
the threads spin waiting on one another. ``examples/notebook.py`` on the shared 2-core machine,
default threads vs one, alternating: 158 and 219 user-CPU seconds (350 and 575 s wall) vs 39 and
34 (133 and 109 s wall); ``python benchmarks/bench_blas_threads.py --workload notebook`` measures
it side by side (``--workload analyze``, an analyze and a beta forecast of the Monkeys counts,
shows no difference: 1.02x). :func:`analysis_threads` limits BLAS to ``TTSCALE_BLAS_THREADS``
threads (default 1; 0 leaves numpy's default) for the duration of an analysis verb, through
threadpoolctl, which changes the running library's setting (an environment variable would have
to be set before numpy is first imported). Torch's own thread pool is not touched.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator


def blas_threads() -> int | None:
    """The BLAS thread limit for analysis (None: numpy's default)."""
    raw = os.environ.get("TTSCALE_BLAS_THREADS", "1").strip()
    try:
        n = int(raw)
    except ValueError:
        return 1
    return None if n <= 0 else n


@contextlib.contextmanager
def analysis_threads() -> Iterator[None]:
    """Limit numpy's BLAS to :func:`blas_threads` threads inside the block."""
    limit = blas_threads()
    if limit is None:
        yield
        return
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # an install without it: numpy's default
        yield
        return
    with threadpool_limits(limits=limit, user_api="blas"):
        yield
