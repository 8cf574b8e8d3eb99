"""Sampling backends, each imported only when chosen."""
