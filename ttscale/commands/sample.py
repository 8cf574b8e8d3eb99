"""``ttscale sample``: draw K samples per problem and temperature into a run directory, resumably.

Settings come from, in rising precedence: the run directory's own run.json (``ttscale sample
RUN_DIR`` resumes a run as it was started), a ``--config FILE`` YAML whose keys are the flags'
names (``num_samples`` or ``k``, ``temperatures`` as a list or "0.6,1.0", ``batch_size`` ...),
and the flags given. Every setting is checked before anything is written or loaded.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from ttscale.commands.argtypes import finite_float
from ttscale.errors import InputError
from ttscale.orchestration.samples import BACKEND_FLAGS


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
    p.add_argument("--max-tokens", type=int, help="maximum new tokens per sample (default 256; "
                   "with --budgets: per answer, after the thinking)")
    p.add_argument("--budgets", help="thinking budgets in tokens, e.g. 256,512,1024: one trace per "
                   "sample, cut at each budget and its answer forced")
    p.add_argument("--think-end", help="with --budgets: the string that closes the model's thinking "
                   "(default: the task's, else </think>)")
    p.add_argument("--answer-cue", help="with --budgets: appended after it to force the answer "
                   "(default: the task's, else a newline)")
    p.add_argument("--top-p", type=finite_float, help="nucleus threshold (default 1.0: off)")
    p.add_argument("--seed", type=int, help="run seed (default 0): sample j of (problem, T) uses "
                   "seed_base(seed, problem, T) + j")
    p.add_argument("--prompt-format", choices=["plain", "chat"], help="default plain")
    p.add_argument("--out", metavar="RUN_DIR", help="run directory to create or extend")
    p.add_argument("--from", dest="from_file", metavar="FILE",
                   help="import backend: JSONL of samples, or Large Language Monkeys YAML/JSON (file or folder)")
    p.add_argument("--max-n-per-request", type=int, help="chunk larger K into requests of this n (default 256)")
    g = p.add_argument_group("backend options", "every backend's options, defaults and meaning: "
                             "`ttscale list backends`")
    g.add_argument("--batch-size", type=int, help="transformers: sequences decoded together")
    g.add_argument("--max-num-seqs", type=int, help="vllm: sequences per engine step (transformers: = batch size)")
    g.add_argument("--gpu-memory-utilization", type=finite_float, help="vllm: fraction of GPU memory to use")
    g.add_argument("--dtype", help="auto, float32, bfloat16, float16")
    g.add_argument("--device", help="transformers: auto, cpu, cuda, cuda:1")
    g.add_argument("--threads", type=int, help="transformers: CPU threads (default: half the cores, at least 1)")
    g.add_argument("--backend-option", action="append", metavar="KEY=VALUE", default=None,
                   help="any other backend option (repeatable), e.g. base_url=http://localhost:8000/v1")
    e = p.add_argument_group("executor (where the backend runs)")
    e.add_argument("--executor", choices=["local", "ray"], help="local (default: this process) or ray "
                   "(backend replicas on a Ray cluster: $RAY_ADDRESS, or a local one)")
    e.add_argument("--replicas", type=int, help="ray: backend replicas (default: as many as fit)")
    e.add_argument("--ray-address", help="ray: cluster address (default: $RAY_ADDRESS)")
    e.add_argument("--executor-option", action="append", metavar="KEY=VALUE", default=None,
                   help="ray: num_cpus, num_gpus, batch_samples, in_flight, max_restarts (repeatable)")
    p.add_argument("--repair", action="store_true",
                   help="first move damaged sample shards aside (to RUN_DIR/damaged/) and draw their "
                        "samples again, with the same seeds")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--verbose", action="store_true",
                   help="also print the backend's own logs (vLLM, transformers) on stderr; they always "
                        "go to RUN_DIR/logs/backend.log")
    p.set_defaults(func=run)


def parse_pairs(items: list[str] | None, flag: str) -> dict[str, Any]:
    """``["a=1", "b=x"]`` -> ``{"a": 1, "b": "x"}`` (values parsed as YAML scalars)."""
    import yaml

    from ttscale.orchestration.config import safe_load

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


def run(args: argparse.Namespace) -> int:
    from ttscale.api import sample

    flags = {key: getattr(args, key) for key in (
        "max_tokens", "top_p", "seed", "prompt_format", "from_file", "max_n_per_request", "budgets",
        "think_end", "answer_cue")}
    task_options = parse_pairs(args.task_option, "--task-option") if args.task_option else None
    opts = parse_pairs(args.backend_option, "--backend-option")
    opts.update({k: getattr(args, k) for k in BACKEND_FLAGS if getattr(args, k) is not None})
    ex_opts = parse_pairs(args.executor_option, "--executor-option")
    ex_opts.update({k: v for k, v in (("replicas", args.replicas), ("address", args.ray_address))
                    if v is not None})
    res = sample(args.task, out=args.out, model=args.model, backend=args.backend,
                 num_samples=args.num_samples, temperatures=args.temperatures,
                 num_problems=args.num_problems, run_dir=args.run_dir, config=args.config,
                 task_options=task_options, backend_options=opts or None,
                 executor=args.executor, executor_options=ex_opts or None,
                 progress=not args.quiet, verbose=args.verbose, repair=args.repair, **flags)
    for path in res.set_aside:
        print(f"ttscale sample: damaged shard set aside to {path}; its samples drawn again",
              file=sys.stderr)
    rate = res.samples_per_second
    secs = res.sampling_seconds or res.seconds
    tok = res.output_tokens / secs if secs > 0 else 0.0
    plural = "" if res.num_problems == 1 else "s"
    print(f"{res.run_dir}: wrote {res.written} samples ({res.total} in the run, {res.num_problems} "
          f"problem{plural}) in {res.seconds:.1f} s; sampling: {rate:.0f} samples/s, {tok:.0f} tokens/s")
    from ttscale.orchestration.adaptive import summary_line

    line = summary_line(res.run_dir)  # an adaptive run: the rule and the samples it saved
    if line:
        print(line)
    return 0
