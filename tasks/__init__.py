"""Built-in tasks. Importable only as ttscale._plugins.tasks (see ttscale/_plugins)."""
