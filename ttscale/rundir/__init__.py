"""The run directory (stage 1): the single source of truth that every later stage reads and writes.

``store`` (RunDir: run.json, problems, sample and verdict shards, written atomically), ``runs``
(``open_run``), ``locks`` (one flock per stage), ``summaries`` (per-verifier counts and answer
histograms), ``staleness`` (is an analysis older than its data?), ``outputs`` (checks on output
paths), ``counts`` (counts tables, the smallest input) and ``adaptive_state`` (adaptive sampling's
stopping decisions). Imports only the foundation; every other stage builds on it.
"""
