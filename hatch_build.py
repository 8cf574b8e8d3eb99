"""Hatch build hook: ship tasks/ and verifiers/ inside ttscale's namespace in a wheel.

A regular wheel gets them as ``ttscale/_plugins/tasks`` and ``ttscale/_plugins/verifiers``. An
editable install gets nothing extra: it maps ``ttscale`` to the source tree, where
``ttscale/_plugins/__init__.py`` points at the top-level folders.
"""

from hatchling.builders.hooks.plugin.interface import BuildHookInterface


class PluginFolders(BuildHookInterface):
    def initialize(self, version, build_data):
        if version != "editable":
            build_data["force_include"]["tasks"] = "ttscale/_plugins/tasks"
            build_data["force_include"]["verifiers"] = "ttscale/_plugins/verifiers"
