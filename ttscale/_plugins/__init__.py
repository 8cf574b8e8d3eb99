"""Namespace for ttscale's built-in plugins: ``ttscale._plugins.tasks`` and ``.verifiers``.

In a wheel, hatch's force-include copies the repository's top-level ``tasks/`` and ``verifiers/``
folders here. In a source checkout (or an editable install) they stay at the repository's top
level, and this package's search path points there. Either way the plugins are importable only
under ttscale's own namespace: never as top-level ``tasks`` or ``verifiers`` packages, which are
names that unrelated distributions on PyPI use.
"""

from pathlib import Path

_here = Path(__file__).resolve().parent
_top = _here.parent.parent
if not (_here / "verifiers").is_dir() and (_top / "verifiers" / "__init__.py").is_file():
    __path__.append(str(_top))  # noqa: F821 - a package's __path__ is defined at import
