"""The package's module graph has no import cycle (one home per concept: a module that needs
another's types imports them; the two never import each other, not even inside a function).

The graph is read statically with `ast` from every module under lib/visionr1: imports at any
level (module top, functions, methods, `if TYPE_CHECKING:`), absolute (`import visionr1.x`,
`from visionr1 import x`, `from visionr1.x import y`) and relative (`from . import x`,
`from .x import y`). `from visionr1 import name` is an edge to the submodule `name` when there is
one, else to the package itself (visionr1/__init__.py).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = "visionr1"
ROOT = Path(__file__).resolve().parents[1] / "lib" / PACKAGE


def module_name(path: Path, root: Path = ROOT, package: str = PACKAGE) -> str:
    parts = [package, *path.relative_to(root).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules(root: Path = ROOT, package: str = PACKAGE) -> dict[str, Path]:
    """Every module of the package by dotted name (a package by its __init__.py)."""
    return {module_name(p, root, package): p for p in sorted(root.rglob("*.py"))}


def _known(name: str, known: set[str]) -> str | None:
    """`name`, or its longest prefix that is a module of the package (`visionr1.x.func` -> `visionr1.x`)."""
    parts = name.split(".")
    for n in range(len(parts), 0, -1):
        if ".".join(parts[:n]) in known:
            return ".".join(parts[:n])
    return None


def imports_of(source: str, module: str, known: set[str], is_package: bool = False) -> set[str]:
    """The package modules that `source` (the module `module`) imports, at any nesting level."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(m for a in node.names if (m := _known(a.name, known)))
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: from the module's own package, `level - 1` packages up
                base = module.split(".") if is_package else module.split(".")[:-1]
                base = base[:len(base) - (node.level - 1)]
                origin = ".".join(base + ([node.module] if node.module else []))
            else:
                origin = node.module or ""
            if _known(origin, known) is None:
                continue  # not this package (or a relative import above it)
            for a in node.names:  # `from pkg import sub` imports the submodule sub
                found.add(f"{origin}.{a.name}" if f"{origin}.{a.name}" in known else _known(origin, known))
    found.discard(module)
    return found


def import_graph(root: Path = ROOT, package: str = PACKAGE) -> dict[str, set[str]]:
    mods = modules(root, package)
    known = set(mods)
    return {m: imports_of(p.read_text(), m, known, p.name == "__init__.py") for m, p in mods.items()}


def tangles(graph: dict[str, set[str]]) -> list[set[str]]:
    """The strongly connected components with more than one module (Tarjan's algorithm): the sets
    of modules that all reach each other through imports."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[set[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = set()
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.add(w)
                if w == v:
                    break
            if len(comp) > 1:
                components.append(comp)

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return components


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle (a -> b -> ... -> a) per tangle, sorted, so a failure names every tangle once."""
    return sorted(_cycle_in(graph, comp) for comp in tangles(graph))


def _cycle_in(graph: dict[str, set[str]], comp: set[str]) -> list[str]:
    """The shortest cycle through the component's first module (breadth-first, inside the component)."""
    start = min(comp)
    paths = {start: [start]}
    frontier = [start]
    while frontier:
        nxt = []
        for v in frontier:
            for w in sorted(graph[v] & comp):
                if w == start:
                    return paths[v] + [start]
                if w not in paths:
                    paths[w] = paths[v] + [w]
                    nxt.append(w)
        frontier = nxt
    raise AssertionError(f"no cycle through {start} in {sorted(comp)}")  # a component always has one


# ---------------------------------------------------------------------------------------------
KNOWN = {"visionr1", "visionr1.a", "visionr1.b", "visionr1.sub", "visionr1.sub.c"}


@pytest.mark.parametrize("source, found", [
    ("import visionr1.a", {"visionr1.a"}),
    ("import visionr1.a as alias", {"visionr1.a"}),
    ("from visionr1 import a, b", {"visionr1.a", "visionr1.b"}),       # submodules by name
    ("from visionr1 import __version__", {"visionr1"}),                # a name of the package itself
    ("from visionr1.a import f", {"visionr1.a"}),
    ("from visionr1.sub import c", {"visionr1.sub.c"}),
    ("from . import a", {"visionr1.a"}),                               # relative, same package
    ("from .a import f", {"visionr1.a"}),
    ("def f():\n    from visionr1 import a\n", {"visionr1.a"}),        # inside a function
    ("class C:\n    def m(self):\n        import visionr1.a\n", {"visionr1.a"}),
    ("if False:\n    from visionr1.b import T\n", {"visionr1.b"}),     # guarded imports count too
    ("import os\nfrom PIL import Image\nimport visionrx", set()),      # other packages
    ("from visionr1 import me", set()),                                # itself: no edge
])
def test_imports_of(source, found):
    assert imports_of(source, "visionr1.me", KNOWN | {"visionr1.me"}) == found


def test_relative_imports_in_a_subpackage():
    assert imports_of("from .. import a\nfrom . import c", "visionr1.sub", KNOWN, is_package=True) == {
        "visionr1.a", "visionr1.sub.c"}
    assert imports_of("from ..a import f\nfrom .c import g", "visionr1.sub.c", KNOWN) == {"visionr1.a"}


@pytest.mark.parametrize("graph, found", [
    ({"a": {"b"}, "b": {"c"}, "c": set()}, []),                         # a chain
    ({"a": {"b"}, "b": {"a"}}, [["a", "b", "a"]]),                      # two modules
    ({"a": {"b"}, "b": {"c"}, "c": {"a", "d"}, "d": set()}, [["a", "b", "c", "a"]]),
    ({"a": {"b"}, "b": {"a"}, "c": {"d"}, "d": {"c"}}, [["a", "b", "a"], ["c", "d", "c"]]),  # one per tangle
])
def test_cycles(graph, found):
    assert cycles(graph) == found


def test_the_package_has_no_import_cycle():
    graph = import_graph()
    assert len(graph) > 10 and f"{PACKAGE}.evaluate" in graph  # the parse found the package
    found = sorted((_cycle_in(graph, comp), comp) for comp in tangles(graph))
    assert not found, "import cycles in lib/visionr1 (move the shared part to a module both import):\n" + "\n".join(
        "  " + " -> ".join(cycle) + (f"   (tangle: {', '.join(sorted(comp))})" if len(comp) > len(cycle) - 1 else "")
        for cycle, comp in found)
