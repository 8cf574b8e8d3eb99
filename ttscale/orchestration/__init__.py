"""Orchestration (stage 6): what drives several stages.

``samples`` (draw or import into a run), ``adaptive`` (rounds of sample, verify, stopping rule),
``sweeps`` (models x tasks: sample, verify, analyse, report each cell) and ``config`` (the sweep
YAML). Reads and writes whatever the stages it drives do; imports every stage below it and is
imported only by ``ttscale.api`` and the commands.
"""
