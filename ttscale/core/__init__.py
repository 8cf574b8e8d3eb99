"""Foundation (stage 0): the plugin registry, progress bars, log files and JSONL reading.

Shared by every stage and importing none of them (only ``ttscale.errors`` and ``ttscale.plugins``,
the plugin contract, sit beside it at this level). Reads and writes nothing of a run by itself.
"""
