"""Verification (stage 3): judge the samples of a run with verifier plugins.

Reads ``samples/`` and ``problems.parquet``; writes ``verdicts/<verifier>/part-*.parquet`` and
``summaries/<verifier>``. ``verify`` runs a verifier over a run (resumable, locked), ``pool`` its
worker processes, ``pending`` which samples still lack a verdict, ``answers`` answer extraction for
the plugins, ``ray_verify`` verifier workers on Ray, and ``sandbox/`` runs generated programs in
isolation. Imports the stages below it (run directory; sampling's executor specs).
"""
