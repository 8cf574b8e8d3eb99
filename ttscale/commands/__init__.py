"""Sub-commands of the ttscale CLI, one module each (see ttscale.cli)."""
