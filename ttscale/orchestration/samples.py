"""The samples stage: fill a run directory's ``samples/``, by generating or by importing.

``resolve_settings`` merges, in rising precedence, a run directory's own ``run.json`` (resuming a
run as it was started), a YAML config file whose keys are ``ttscale sample``'s flag names, and
explicit overrides, into one checked :class:`ttscale.sampling.sampler.SampleSettings`. ``draw`` then
samples (:func:`ttscale.sampling.sampler.run_sampling`, any generating backend) or imports
(:func:`ttscale.sampling.backends.importer.import_samples`, backend ``import``). Every setting is checked
before anything is written or loaded. ``ttscale sample`` and ``ttscale.sample`` are this module.
"""

from __future__ import annotations

import os
from typing import Any

from ttscale.errors import InputError, arg

#: flags that are backend options (their values go to the backend's constructor)
BACKEND_FLAGS = ("max_num_seqs", "gpu_memory_utilization", "dtype", "device", "batch_size", "threads")
#: alternative spellings accepted in a config file
ALIASES = {"k": "num_samples", "from": "from_file", "task_option": "task_options",
           "backend_option": "backend_options", "executor_option": "executor_options"}


def parse_temperatures(value: Any, where: str) -> Any:
    """``"0.6,1.0"`` or ``0.6`` -> a list of floats (finite); lists pass through (checked later)."""
    import math

    if isinstance(value, str):
        try:
            temps = [float(x) for x in value.split(",") if x.strip()]
        except ValueError as e:
            raise InputError(f"{where}: temperatures {value!r}: expected numbers like 0.6,1.0") from e
    elif isinstance(value, int | float) and not isinstance(value, bool):
        temps = [float(value)]
    else:
        return value
    bad = [t for t in temps if not math.isfinite(t)]
    if bad:
        raise InputError(f"{where}: temperatures {value!r}: {bad[0]} is not a finite number")
    return temps


def parse_budgets(value: Any, where: str) -> Any:
    """``"256,512"`` or ``256`` -> a list of ints; lists pass through (checked by the settings)."""
    if isinstance(value, str):
        try:
            return [int(x) for x in value.split(",") if x.strip()]
        except ValueError as e:
            raise InputError(f"{where}: budgets {value!r}: expected token counts like 256,512,1024") from e
    if isinstance(value, int) and not isinstance(value, bool):
        return [value]
    return value


def normalise(raw: dict[str, Any], where: str) -> dict[str, Any]:
    """Config keys -> SampleSettings keys (aliases, top-level backend options, temperatures)."""
    out: dict[str, Any] = {}
    opts: dict[str, Any] = {}
    for key, value in raw.items():
        key = ALIASES.get(str(key).replace("-", "_"), str(key).replace("-", "_"))
        if key in BACKEND_FLAGS:
            opts[key] = value
        elif key == "temperatures":
            out[key] = parse_temperatures(value, where)
        elif key == "budgets":
            out[key] = parse_budgets(value, where)
        else:
            out[key] = value
    if opts:
        if not isinstance(out.get("backend_options", {}), dict):
            raise InputError(f"{where}: backend_options: expected a mapping")
        out["backend_options"] = {**out.get("backend_options", {}), **opts}
    return out


def load_config(path: str | os.PathLike) -> dict[str, Any]:
    """A sampling config file's keys, normalised (InputError naming the file)."""
    from ttscale.orchestration.config import read_yaml_mapping

    raw = read_yaml_mapping(path, label=f"--config {path}")
    if raw is None:
        return {}
    return normalise(raw, str(path))


def resolve_settings(
    run_dir: str | os.PathLike | None = None,
    config: str | os.PathLike | None = None,
    out: str | os.PathLike | None = None,
    overrides: dict[str, Any] | None = None,
    task_options: dict[str, Any] | None = None,
    backend_options: dict[str, Any] | None = None,
    executor: str | None = None,
    executor_options: dict[str, Any] | None = None,
) -> tuple[Any, str]:
    """(SampleSettings, out) from run.json, a config file and overrides; InputError before any write.

    ``overrides`` holds SampleSettings fields (``temperatures`` may be "0.6,1.0"); ``task_options``
    ``backend_options`` and ``executor_options`` are merged into the stored/config ones, key by
    key; ``executor="local"`` drops stored executor options (a cluster run resumed here).
    """
    from ttscale.rundir.store import RunDir
    from ttscale.sampling.sampler import SampleSettings, parse_settings

    merged: dict[str, Any] = {}
    if run_dir:
        stored = RunDir(run_dir).read_config()
        if not stored:
            from ttscale.rundir.outputs import not_a_run

            raise not_a_run(run_dir, "no run.json; start a run with --out and its settings")
        merged = {k: v for k, v in stored.items() if k in SampleSettings.model_fields}
    explicit, out = out, out or run_dir
    if config:
        cfg = load_config(config)
        out = explicit or cfg.pop("out", None) or run_dir
        cfg.pop("out", None)
        parse_settings({**merged, **cfg}, str(config))  # names the file in errors
        merged = {**merged, **cfg, "backend_options": {**merged.get("backend_options", {}),
                                                       **cfg.get("backend_options", {})},
                  "executor_options": {**merged.get("executor_options", {}),
                                       **cfg.get("executor_options", {})}}
    flags = {k: v for k, v in (overrides or {}).items() if v is not None}
    if "temperatures" in flags:
        flags["temperatures"] = parse_temperatures(flags["temperatures"], "--temperatures")
    if "budgets" in flags:
        flags["budgets"] = parse_budgets(flags["budgets"], "--budgets")
    if task_options:
        flags["task_options"] = {**merged.get("task_options", {}), **task_options}
    if backend_options:
        flags["backend_options"] = {**merged.get("backend_options", {}), **backend_options}
    if executor is not None:
        flags["executor"] = executor
        if executor == "local":  # resuming a cluster run here: its ray options do not apply
            flags["executor_options"] = {}
    if executor_options:
        flags["executor_options"] = {**merged.get("executor_options", {}), **executor_options}
    final = {**merged, **flags}
    given = {**(cfg.get("executor_options", {}) if config else {}), **(executor_options or {})}
    if final.get("executor") == "ray" and "replicas" in final.get("executor_options", {}):
        # a resume fits the replicas stored in run.json to the cluster it finds (one line);
        # replicas asked for now must fit
        final["executor_options"] = {**final["executor_options"],
                                     "fit": bool(given.get("fit", "replicas" not in given))}
    settings: SampleSettings = parse_settings(final, "sample")
    if not out:
        raise InputError(f"{arg('out')}: missing (the run directory to write)")
    if settings.backend == "import":
        if not settings.from_file:
            raise InputError(f"{arg('from_file', flag='--from')}: the import backend needs a file of samples")
    else:
        if settings.from_file:
            raise InputError(f"{arg('from_file', flag='--from')}: only for {arg('backend', 'import')} (backend is {settings.backend})")
        if settings.num_samples is None:
            raise InputError(f"{arg('num_samples', flag='-k/--num-samples')}: missing (samples per problem and temperature)")
        if not settings.task:
            raise InputError(f"{arg('task')}: missing (see `ttscale list tasks`)")
    return settings, str(out)


def draw(settings: Any, out: str | os.PathLike, backend: Any = None, progress: bool = True) -> Any:
    """Fill run directory ``out`` with the samples ``settings`` asks for -> SamplingResult.

    Backend ``import`` reads them from ``settings.from_file``; ``settings.adaptive`` samples in
    rounds until each problem's stopping rule holds (:mod:`ttscale.orchestration.adaptive`); otherwise the
    missing samples are generated (a ready ``backend`` may be passed to reuse an engine).
    """
    if getattr(settings, "adaptive", None) is not None:  # rounds with a stopping rule
        from ttscale.orchestration.adaptive import run_adaptive  # (which refuses backend import)

        return run_adaptive(settings, out, backend, progress)
    if settings.backend == "import":
        from ttscale.sampling.backends.importer import import_samples

        return import_samples(settings, out, progress=progress)
    from ttscale.sampling.sampler import run_sampling

    return run_sampling(settings, out, backend=backend, progress=progress)
