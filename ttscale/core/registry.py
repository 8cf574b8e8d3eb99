"""Plugin registries for tasks and verifiers.

Built-ins live in the repository's top-level ``tasks/`` and ``verifiers/`` folders, importable
only as ``ttscale._plugins.tasks.*`` and ``ttscale._plugins.verifiers.*`` (see
``ttscale/_plugins/__init__.py``). Each built-in module registers its objects with a decorator::

    from ttscale.core.registry import verifiers

    @verifiers.register("majority", "majority vote over normalised answers")
    class MajorityVote: ...

Third-party packages register through entry points in the groups ``ttscale.tasks`` and
``ttscale.verifiers`` (``name = "package.module:attr"``); they are loaded lazily, on first use
of that name. A name registered twice is an error that names both places.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Any

from ttscale.errors import InputError


@dataclass
class Entry:
    name: str
    description: str
    target: Any = None  # the object, once loaded
    ref: str | None = None  # "module:attr", for lazy entry points
    origin: str = "built-in"

    def load(self) -> Any:
        if self.target is None and self.ref is not None:
            module, _, attr = self.ref.partition(":")
            obj = importlib.import_module(module)
            for part in attr.split(".") if attr else []:
                obj = getattr(obj, part)
            self.target = obj
        return self.target


class Registry:
    """A name -> plugin map, filled from built-in modules and entry points on first use."""

    def __init__(self, kind: str):
        self.kind = kind  # "tasks" or "verifiers"
        self._entries: dict[str, Entry] = {}
        self._loaded = False

    def register(self, name: str, description: str = "") -> Callable[[Any], Any]:
        def deco(obj: Any) -> Any:
            self._add(Entry(name, description or _first_line(obj), target=obj,
                            origin=getattr(obj, "__module__", "?")))
            return obj

        return deco

    def _add(self, entry: Entry) -> None:
        old = self._entries.get(entry.name)
        if old is not None and old.target is not entry.target:
            raise ValueError(
                f"{self.kind[:-1]} {entry.name!r} registered twice: {old.origin} and {entry.origin}"
            )
        self._entries[entry.name] = entry

    def _load_all(self) -> None:
        if self._loaded:
            return
        self._loaded = True
        pkg = importlib.import_module(f"ttscale._plugins.{self.kind}")
        for info in sorted(pkgutil.iter_modules(pkg.__path__), key=lambda i: i.name):
            if not info.name.startswith("_"):
                importlib.import_module(f"{pkg.__name__}.{info.name}")
        for ep in entry_points(group=f"ttscale.{self.kind}"):
            if ep.name not in self._entries:
                self._add(Entry(ep.name, f"(plugin {ep.value})", ref=ep.value, origin=ep.value))

    def names(self) -> list[str]:
        self._load_all()
        return sorted(self._entries)

    def entries(self) -> list[Entry]:
        self._load_all()
        return [self._entries[n] for n in sorted(self._entries)]

    def get(self, name: str) -> Any:
        self._load_all()
        entry = self._entries.get(name)
        if entry is None:
            known = ", ".join(sorted(self._entries)) or "none"
            raise InputError(f"unknown {self.kind[:-1]} {name!r} (known: {known})")
        return entry.load()


def _first_line(obj: Any) -> str:
    doc = (getattr(obj, "__doc__", None) or "").strip()
    return doc.splitlines()[0] if doc else ""


tasks = Registry("tasks")
verifiers = Registry("verifiers")


def describe(what: str) -> list[tuple[str, str, str]]:
    """(name, kind, description) of each registered ``"tasks"`` or ``"verifiers"``, by name.

    A task's kind is ``task``; a verifier's ``oracle``, ``selector`` or ``imperfect`` (loaded to
    read it; a broken third-party plugin is still listed, as ``unloadable (Error)``).
    """
    if what not in ("tasks", "verifiers"):
        raise InputError(f"list: {what!r} is not 'tasks' or 'verifiers'")
    registry = tasks if what == "tasks" else verifiers
    out = []
    for entry in registry.entries():
        if what == "tasks":
            kind = "task"
        else:
            try:
                kind = str(getattr(entry.load(), "kind", "?"))
            except Exception as e:  # noqa: BLE001 - a broken third-party plugin still gets listed
                kind = f"unloadable ({type(e).__name__})"
        out.append((entry.name, kind, entry.description))
    return out
