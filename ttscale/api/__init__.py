"""The public verbs, one per CLI command: ``ttscale.sample``, ``verify``, ``analyze``, ``compare``,
``forecast``, ``simulate``, ``frontier``, ``sweep``, ``report``, ``open_run`` (importable from ``ttscale``).

Each takes plain objects (paths, a counts DataFrame, a :class:`ttscale.rundir.runs.Run`) and returns
plain ones (a dataclass, a DataFrame, a path); each raises :class:`ttscale.errors.InputError`
on bad input before anything is written, and ``ttscale <command>`` is flag parsing, one call
here, and printing. Keyword arguments mirror the command's flags (``--n-boot`` -> ``n_boot``), and
errors name them so (``n_boot must be >= 0``; the CLI runs each verb inside
:func:`ttscale.errors.cli_wording`, where the same message says ``--n-boot``);
options a stage grows later pass through ``**options`` to it unchanged. Nothing heavy is
imported until a verb runs.
"""

from ttscale.api.questions import (
           analyze,
           compare,
           forecast,
           forecast_records,
           frontier,
           simulate,
           temperatures,
)
from ttscale.api.runs import list_plugins, report, sample, sweep, sweep_plan, verify

__all__ = ["analyze", "compare", "forecast", "forecast_records", "frontier", "list_plugins", "report", "sample",
           "simulate", "sweep", "sweep_plan", "temperatures", "verify"]
