"""Built-in verifiers. Importable only as ttscale._plugins.verifiers (see ttscale/_plugins)."""
