"""``ttscale sample``: draw K samples per problem and temperature into a run directory, resumably.

Settings come from, in rising precedence: the run directory's own run.json (``ttscale sample
RUN_DIR`` resumes a run as it was started), a ``--config FILE`` YAML whose keys are the flags'
names (``num_samples`` or ``k``, ``temperatures`` as a list or "0.6,1.0", ``batch_size`` ...),
and the flags given. Every setting is checked before anything is written or loaded.
"""

from __future__ import annotations

import argparse
from typing import Any

from ttscale.argtypes import finite_float
from ttscale.errors import InputError

#: flags that are backend options (their values go to the backend's constructor)
BACKEND_FLAGS = ("max_num_seqs", "gpu_memory_utilization", "dtype", "device", "batch_size", "threads")
#: alternative spellings accepted in a config file
ALIASES = {"k": "num_samples", "from": "from_file", "task_option": "task_options",
           "backend_option": "backend_options", "executor_option": "executor_options"}


def add_parser(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "sample", help="sample K completions per problem and temperature into a run directory",
        description=__doc__.splitlines()[0],
    )
    p.add_argument("run_dir", nargs="?", help="resume this run directory with its own settings")
    p.add_argument("--config", metavar="FILE", help="YAML file with the same keys as the flags (flags win)")
    p.add_argument("--backend", choices=["transformers", "vllm", "openai", "import"], help="default transformers")
    p.add_argument("--model", help="'embedded', a Hugging Face id or local path, or a served model name")
    p.add_argument("--task", help="registered task name (see `ttscale list tasks`)")
    p.add_argument("--task-option", action="append", metavar="KEY=VALUE", default=None,
                   help="task option (repeatable)")
    p.add_argument("--num-problems", type=int, help="how many problems (default: the task's default)")
    p.add_argument("-k", "--num-samples", type=int, help="K: samples per problem and temperature")
    p.add_argument("--temperatures", help="comma-separated, e.g. 0.6,1.0 (0 is greedy)")
    p.add_argument("--max-tokens", type=int, help="maximum new tokens per sample (default 256)")
    p.add_argument("--top-p", type=finite_float, help="nucleus threshold (default 1.0: off)")
    p.add_argument("--seed", type=int, help="run seed (default 0): sample j of (problem, T) uses "
                   "seed_base(seed, problem, T) + j")
    p.add_argument("--prompt-format", choices=["plain", "chat"], help="default plain")
    p.add_argument("--out", metavar="RUN_DIR", help="run directory to create or extend")
    p.add_argument("--from", dest="from_file", metavar="FILE",
                   help="import backend: JSONL of samples, or Large Language Monkeys YAML/JSON (file or folder)")
    p.add_argument("--max-n-per-request", type=int, help="chunk larger K into requests of this n (default 256)")
    g = p.add_argument_group("backend options")
    g.add_argument("--batch-size", type=int, help="transformers: sequences decoded together")
    g.add_argument("--max-num-seqs", type=int, help="vllm: sequences per engine step (transformers: = batch size)")
    g.add_argument("--gpu-memory-utilization", type=finite_float, help="vllm: fraction of GPU memory to use")
    g.add_argument("--dtype", help="auto, float32, bfloat16, float16")
    g.add_argument("--device", help="transformers: auto, cpu, cuda, cuda:1")
    g.add_argument("--threads", type=int, help="transformers: CPU threads (default: torch's)")
    g.add_argument("--backend-option", action="append", metavar="KEY=VALUE", default=None,
                   help="any other backend option (repeatable), e.g. base_url=http://localhost:8000/v1")
    e = p.add_argument_group("executor (where the backend runs)")
    e.add_argument("--executor", choices=["local", "ray"], help="local (default: this process) or ray "
                   "(backend replicas on a Ray cluster: $RAY_ADDRESS, or a local one)")
    e.add_argument("--replicas", type=int, help="ray: backend replicas (default: as many as fit)")
    e.add_argument("--ray-address", help="ray: cluster address (default: $RAY_ADDRESS)")
    e.add_argument("--executor-option", action="append", metavar="KEY=VALUE", default=None,
                   help="ray: num_cpus, num_gpus, batch_samples, in_flight, max_restarts (repeatable)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--verbose", action="store_true",
                   help="also print the backend's own logs (vLLM, transformers) on stderr; they always "
                        "go to RUN_DIR/logs/backend.log")
    p.set_defaults(func=run)


def parse_pairs(items: list[str] | None, flag: str) -> dict[str, Any]:
    """``["a=1", "b=x"]`` -> ``{"a": 1, "b": "x"}`` (values parsed as YAML scalars)."""
    import yaml

    from ttscale.config import safe_load

    out: dict[str, Any] = {}
    for item in items or []:
        key, eq, value = item.partition("=")
        if not eq or not key.strip():
            raise InputError(f"{flag} {item!r}: expected KEY=VALUE")
        try:
            out[key.strip()] = safe_load(value) if value.strip() else ""
        except yaml.YAMLError:
            out[key.strip()] = value
    return out


def parse_temperatures(value: Any, where: str) -> Any:
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
        else:
            out[key] = value
    if opts:
        if not isinstance(out.get("backend_options", {}), dict):
            raise InputError(f"{where}: backend_options: expected a mapping")
        out["backend_options"] = {**out.get("backend_options", {}), **opts}
    return out


def load_config(path: str) -> dict[str, Any]:
    from ttscale.config import read_yaml_mapping

    raw = read_yaml_mapping(path, label=f"--config {path}")
    if raw is None:
        return {}
    return normalise(raw, path)


def resolve(args: argparse.Namespace) -> tuple[Any, str]:
    """(SampleSettings, out) from run.json, --config and flags; InputError before any write."""
    from ttscale.sampling import SampleSettings, parse_settings
    from ttscale.store import RunDir

    merged: dict[str, Any] = {}
    if args.run_dir:
        stored = RunDir(args.run_dir).read_config()
        if not stored:
            from ttscale.outputs import not_a_run

            raise not_a_run(args.run_dir, "no run.json; start a run with --out and its settings")
        merged = {k: v for k, v in stored.items() if k in SampleSettings.model_fields}
    out = args.out or args.run_dir
    if args.config:
        cfg = load_config(args.config)
        out = args.out or cfg.pop("out", None) or args.run_dir
        cfg.pop("out", None)
        parse_settings({**merged, **cfg}, args.config)  # names the file in errors
        merged = {**merged, **cfg, "backend_options": {**merged.get("backend_options", {}),
                                                       **cfg.get("backend_options", {})},
                  "executor_options": {**merged.get("executor_options", {}),
                                       **cfg.get("executor_options", {})}}
    flags: dict[str, Any] = {}
    for key in ("backend", "model", "task", "num_problems", "num_samples", "max_tokens", "top_p",
                "seed", "prompt_format", "from_file", "max_n_per_request"):
        if getattr(args, key) is not None:
            flags[key] = getattr(args, key)
    if args.temperatures is not None:
        flags["temperatures"] = parse_temperatures(args.temperatures, "--temperatures")
    if args.task_option:
        flags["task_options"] = {**merged.get("task_options", {}), **parse_pairs(args.task_option, "--task-option")}
    opts = parse_pairs(args.backend_option, "--backend-option")
    opts.update({k: getattr(args, k) for k in BACKEND_FLAGS if getattr(args, k) is not None})
    if opts:
        flags["backend_options"] = {**merged.get("backend_options", {}), **opts}
    if args.executor is not None:
        flags["executor"] = args.executor
        if args.executor == "local":  # resuming a cluster run here: its ray options do not apply
            flags["executor_options"] = {}
    ex_opts = parse_pairs(args.executor_option, "--executor-option")
    ex_opts.update({k: v for k, v in (("replicas", args.replicas), ("address", args.ray_address))
                    if v is not None})
    if ex_opts:
        flags["executor_options"] = {**merged.get("executor_options", {}), **ex_opts}
    settings: SampleSettings = parse_settings({**merged, **flags}, "command line")
    if not out:
        raise InputError("--out: missing (the run directory to write)")
    if settings.backend == "import":
        if not settings.from_file:
            raise InputError("--from: the import backend needs a file of samples (--from FILE)")
    else:
        if settings.from_file:
            raise InputError(f"--from: only for --backend import (backend is {settings.backend})")
        if settings.num_samples is None:
            raise InputError("-k/--num-samples: missing (samples per problem and temperature)")
        if not settings.task:
            raise InputError("--task: missing (see `ttscale list tasks`)")
    return settings, str(out)


def run(args: argparse.Namespace) -> int:
    settings, out = resolve(args)
    from pathlib import Path

    from ttscale.backends.outage import ServerUnavailable
    from ttscale.logs import third_party_logs
    from ttscale.sampling import run_sampling

    try:
        with third_party_logs(Path(out) / "logs" / "backend.log", verbose=args.verbose):
            res = run_sampling(settings, out, progress=not args.quiet)
    except ServerUnavailable as e:
        from ttscale.store import RunDir

        kept = len(RunDir(out).read_samples(["sample_index"])) if (Path(out) / "run.json").is_file() else 0
        if not kept:
            raise ServerUnavailable(f"{e}; nothing was written: run the same command again when the "
                                    "server is back") from e
        raise ServerUnavailable(f"{e}; the {kept} samples written are kept; when the server is back, "
                                f"resume with: ttscale sample {out} (add --backend-option "
                                "retry_window=600 to wait longer)") from e
    rate = res.samples_per_second
    secs = res.sampling_seconds or res.seconds
    tok = res.output_tokens / secs if secs > 0 else 0.0
    print(f"{res.run_dir}: wrote {res.written} samples ({res.total} in the run, {res.num_problems} "
          f"problems) in {res.seconds:.1f} s; sampling: {rate:.0f} samples/s, {tok:.0f} tokens/s")
    return 0
