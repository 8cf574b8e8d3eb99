"""The package's shape: a documented public API, no import cycles, commands imported only by the CLI,
and ``import ttscale`` light.

The import graph is read from the source (every ``import`` statement, also those inside functions,
which is where ttscale keeps its heavy and optional imports; blocks under ``if TYPE_CHECKING:``
are left out since they never run).
"""

from __future__ import annotations

import ast
import inspect
import subprocess
import sys
from pathlib import Path

import pytest

import ttscale

PKG = Path(ttscale.__file__).parent


def module_name(path: Path) -> str:
    rel = path.relative_to(PKG.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {module_name(p): p for p in PKG.rglob("*.py")}


def _runtime_imports(tree: ast.AST) -> list[ast.AST]:
    """Import nodes outside ``if TYPE_CHECKING:`` blocks."""
    out: list[ast.AST] = []

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import | ast.ImportFrom):
            out.append(node)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return out


def imports_of(name: str) -> set[str]:
    """The ttscale modules that module ``name`` imports (at any depth of its code)."""
    path = MODULES[name]
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in _runtime_imports(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        else:
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base
                       for a in node.names]
        for t in targets:
            while t and t not in MODULES:  # ttscale.x.y where y is a name: its module
                t = t.rpartition(".")[0]
            if t.startswith("ttscale") and t != name:
                found.add(t)
    return found


GRAPH = {m: imports_of(m) for m in MODULES}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []

    def strong(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    sys.setrecursionlimit(10_000)
    for v in sorted(graph):
        if v not in index:
            strong(v)
    return out


def test_the_graph_sees_lazy_imports():
    # a function-level import is an edge too (this is how the three old cycles hid)
    assert "ttscale.analysis.pipeline" in GRAPH["ttscale.api.questions"]
    assert "ttscale.sampling.backends.importer" in GRAPH["ttscale.orchestration.samples"]
    assert "ttscale.sampling.sampler" in GRAPH["ttscale.sampling.backends.importer"]


def test_cycle_finder_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_import_cycles():
    found = cycles(GRAPH)
    assert not found, "import cycles: " + "; ".join(" <-> ".join(c) for c in found)



#: the stages in data-flow order; a module may import its own stage and those before it, never one
#: after it. Stage 0 is the foundation (errors, the plugin contract, core/); the root package
#: ``ttscale`` counts as stage 0 (its verbs load lazily, through importlib).
STAGES = [
    ("ttscale", "ttscale.errors", "ttscale.plugins", "ttscale.core", "ttscale._plugins"),
    ("ttscale.rundir",),
    ("ttscale.sampling",),
    ("ttscale.verification",),
    ("ttscale.analysis",),
    ("ttscale.reporting",),
    ("ttscale.orchestration",),
    ("ttscale.api",),
    ("ttscale.cli", "ttscale.commands", "ttscale.__main__"),
]


def stage_of(module: str) -> int | None:
    """The stage a module belongs to (the longest matching prefix), None if it belongs to none."""
    best = None
    for i, prefixes in enumerate(STAGES):
        for p in prefixes:
            if module == p or (p != "ttscale" and module.startswith(p + ".")):
                best = i
    return best


def upward_imports(graph: dict[str, set[str]]) -> list[str]:
    return sorted(f"{m} (stage {stage_of(m)}) imports {d} (stage {stage_of(d)})"
                  for m, deps in graph.items() for d in deps
                  if stage_of(m) is not None and stage_of(d) is not None
                  and stage_of(d) > stage_of(m))


def test_every_module_belongs_to_a_stage():
    loose = sorted(m for m in MODULES if stage_of(m) is None)
    assert not loose, f"modules outside every stage (put them in a stage's package): {loose}"


def test_the_stage_check_catches_an_upward_import():
    fake = {"ttscale.sampling.sampler": {"ttscale.analysis.curves.estimators"},
            "ttscale.analysis.pipeline": {"ttscale.rundir.store"}}
    assert upward_imports(fake) == [
        "ttscale.sampling.sampler (stage 2) imports ttscale.analysis.curves.estimators (stage 4)"]


def test_no_stage_imports_a_later_one():
    found = upward_imports(GRAPH)
    assert not found, "imports against the data flow:\n" + "\n".join(found)


def test_every_package_says_what_it_is():
    for init in PKG.rglob("__init__.py"):
        if "models" in init.relative_to(PKG).parts:
            continue
        doc = ast.get_docstring(ast.parse(init.read_text()))
        assert doc and len(doc) > 60, f"{init.relative_to(PKG.parent)}: no docstring saying which stage it is"


def test_no_module_over_400_lines_without_its_reason():
    for path in PKG.rglob("*.py"):
        lines = path.read_text().count("\n")
        if lines > 400:
            doc = " ".join((ast.get_docstring(ast.parse(path.read_text())) or "").lower().split())
            assert "over 400 lines" in doc, f"{path.relative_to(PKG.parent)}: {lines} lines, no reason given"


def test_only_the_cli_imports_the_command_modules():
    offenders = sorted(m for m, deps in GRAPH.items()
                       if any(d == "ttscale.commands" or d.startswith("ttscale.commands.") for d in deps)
                       and m != "ttscale.cli" and not m.startswith("ttscale.commands"))
    assert not offenders, f"modules importing ttscale.commands: {offenders}"


def test_every_public_name_is_documented_and_typed():
    assert set(ttscale.__all__) >= {"sample", "verify", "analyze", "compare", "forecast",
                                    "simulate", "sweep", "report", "open_run"}
    for name in ttscale.__all__:
        if name == "__version__":
            continue
        obj = getattr(ttscale, name)
        doc = inspect.getdoc(obj)
        assert doc and len(doc) > 40, f"ttscale.{name} has no docstring"
        if inspect.isfunction(obj):
            sig = inspect.signature(obj)
            untyped = [p for p in sig.parameters.values() if p.annotation is inspect.Parameter.empty]
            assert not untyped, f"ttscale.{name}: parameters without a type hint: {untyped}"
            assert sig.return_annotation is not inspect.Signature.empty, f"ttscale.{name}: no return type"


def test_public_names_are_not_submodule_names():
    # importing ttscale.<x> would rebind the package attribute x to the module, hiding the verb
    subs = {m.split(".")[1] for m in MODULES if m.count(".") >= 1}
    clash = sorted(set(ttscale.__all__) & subs)
    assert not clash, f"public names that are also submodules: {clash}"


def test_verbs_survive_importing_every_module():
    code = ("import importlib, pkgutil, ttscale\n"
            "for m in ['ttscale.orchestration.sweeps', 'ttscale.reporting.html', 'ttscale.analysis.forecasting.simulation', "
            "'ttscale.api', 'ttscale.rundir.runs', 'ttscale.cli']:\n"
            "    importlib.import_module(m)\n"
            "for n in ('sweep', 'report', 'simulate', 'sample', 'analyze'):\n"
            "    assert callable(getattr(ttscale, n)), n\n")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def test_import_ttscale_is_light():
    code = ("import sys, ttscale; ttscale.__version__\n"
            "print([m for m in ('torch', 'vllm', 'matplotlib', 'pandas', 'numpy', 'scipy', "
            "'transformers', 'ray') if m in sys.modules])")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and r.stdout.strip() == "[]", r.stderr


def test_unknown_attribute_is_an_attribute_error():
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        ttscale.nope  # noqa: B018
