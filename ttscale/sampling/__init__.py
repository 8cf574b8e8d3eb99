"""Sampling (stage 2): plan and draw K samples per (problem, temperature) into RUN_DIR/samples/.

Reads a run directory's ``run.json`` and ``problems.parquet`` (or makes them) and writes
``samples/part-*.parquet`` shard by shard. ``sampler`` plans the missing samples and runs a
backend; ``backends/`` holds the backends (transformers, vLLM, OpenAI-compatible servers, JSONL
import), ``executors/`` where they run (this process, or Ray replicas); ``stopping`` and
``adaptive_settings`` define adaptive sampling's stopping rule; ``prompt_check`` checks that
prompts fit. Imports the foundation and the run directory only.
"""
