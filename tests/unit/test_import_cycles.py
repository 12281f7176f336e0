"""No import cycle among the modules of ``oomd``: the layers of docs/design.md point one way.

Static, so that an import which runs only sometimes counts too: every ``import``/``from ...
import`` statement of every ``oomd/**/*.py`` is read with ``ast``, wherever it stands (module
level, inside a function, under ``if TYPE_CHECKING``, in a ``try``), and the Python-level and
``cimport`` lines of the Cython sources (``.pyx``/``.pxd``; a ``.pyx`` and its ``.pxd`` are one
module) are read line by line. ``from package import name`` is an edge to the submodule when
``name`` is one, else to the package.

Not edges: the parent packages that Python imports before a submodule (``oomd.config.parser``
does not depend on what ``oomd/config/__init__.py`` imports), and imports by computed name
(``importlib.import_module``: the plugin registry loading ``oomd.plugins.*``, the command
dispatcher loading ``oomd.commands.*``). Those are lookups of leaves by name, which is how a
leaf may import the module that looks it up (a plugin imports ``oomd.plugin``).
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "oomd"
CYTHON_IMPORT = re.compile(
    r"^[ \t]*(?:from[ \t]+(?P<from>[\w.]+)[ \t]+c?import[ \t]+(?P<names>\([^)]*\)|[^\n#]*)"
    r"|c?import[ \t]+(?P<mods>[^\n#]+))", re.M)


def module_names(root: Path) -> dict[str, list[Path]]:
    """Dotted module name -> its source files (a Cython module has .pyx and .pxd)."""
    mods: dict[str, list[Path]] = {}
    for path in sorted(root.rglob("*")):
        if path.suffix not in (".py", ".pyx", ".pxd") or "__pycache__" in path.parts:
            continue
        parts = list(path.relative_to(root.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        mods.setdefault(".".join(parts), []).append(path)
    return mods


def _target(mods, module: str | None, name: str | None = None) -> str | None:
    """The module of ours an import reaches: the submodule ``module.name`` if there is one,
    else the longest prefix of ``module`` that is ours (None for other packages)."""
    if module and name and f"{module}.{name}" in mods:
        return f"{module}.{name}"
    while module:
        if module in mods:
            return module
        module = module.rpartition(".")[0]
    return None


def _absolute(package: str, level: int, module: str | None) -> str:
    """The module a relative import names (``level`` dots) from inside ``package``."""
    if not level:
        return module or ""
    parts = package.split(".")
    base = parts[: len(parts) - level + 1]
    return ".".join(base + ([module] if module else []))


def _python_imports(package: str, path: Path):
    """(module, imported name or None, line) for every import statement of a .py file."""
    for node in ast.walk(ast.parse(path.read_bytes(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, None, node.lineno
        elif isinstance(node, ast.ImportFrom):
            module = _absolute(package, node.level, node.module)
            for alias in node.names:
                yield module, alias.name, node.lineno


def _cython_imports(package: str, path: Path):
    """The same for the ``import``/``cimport`` lines of a Cython source (parenthesised name
    lists may span lines)."""
    text = path.read_text()
    for m in CYTHON_IMPORT.finditer(text):
        line = text.count("\n", 0, m.start()) + 1
        if m["from"]:
            dots = len(m["from"]) - len(m["from"].lstrip("."))
            module = _absolute(package, dots, m["from"].lstrip(".") or None)
            names = [p.split()[0] for p in m["names"].strip("()").split(",") if p.split()]
            for imported in names or [None]:
                yield module, None if imported == "*" else imported, line
        else:
            for piece in m["mods"].split(","):
                if piece.split():
                    yield piece.split()[0], None, line


def import_graph(root: Path) -> dict[str, dict[str, str]]:
    """module -> {imported module: "file:line" of the first such import}."""
    mods = module_names(root)
    graph: dict[str, dict[str, str]] = {}
    for name, paths in mods.items():
        edges = graph.setdefault(name, {})
        for path in paths:
            package = name if path.stem == "__init__" else name.rpartition(".")[0]
            found = (_python_imports(package, path) if path.suffix == ".py"
                     else _cython_imports(package, path))
            for module, imported, line in found:
                target = _target(mods, module, imported)
                if target is not None and target != name:
                    edges.setdefault(target, f"{path.relative_to(root.parent)}:{line}")
    return graph


def find_cycles(graph: dict[str, dict[str, str]]) -> list[list[str]]:
    """One cycle (as a closed path of modules) per strongly connected component of more than
    one module, or of a module that imports itself (Tarjan's algorithm, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []
    for start in graph:
        if start in index:
            continue
        work = [(start, iter(graph[start]))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            for child in children:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(graph.get(child, ()))))
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    comp = []
                    while True:
                        top = stack.pop()
                        on_stack.discard(top)
                        comp.append(top)
                        if top == node:
                            break
                    if len(comp) > 1 or node in graph.get(node, ()):
                        components.append(comp)
    return [_cycle_in(graph, set(comp)) for comp in components]


def _cycle_in(graph, comp: set[str]) -> list[str]:
    """A shortest closed path through the component's smallest module (breadth-first)."""
    start = min(comp)
    paths = {start: [start]}
    frontier = [start]
    while frontier:
        nxt = []
        for node in frontier:
            for child in sorted(graph[node]):
                if child == start:
                    return paths[node] + [start]
                if child in comp and child not in paths:
                    paths[child] = paths[node] + [child]
                    nxt.append(child)
        frontier = nxt
    raise AssertionError("a strongly connected component always closes")


def describe(graph, cycle: list[str]) -> str:
    return "  " + "\n  ".join(f"{a} -> {b}  ({graph[a][b]})" for a, b in zip(cycle, cycle[1:]))


def test_no_import_cycle_among_oomds_modules():
    graph = import_graph(PACKAGE)
    assert "oomd.context" in graph and "oomd.cli" in graph       # the walk found the package
    cycles = find_cycles(graph)
    assert not cycles, "import cycles:\n" + "\n\n".join(describe(graph, c) for c in cycles)


def test_the_walk_sees_every_kind_of_import_and_reports_the_cycle(tmp_path):
    """A package whose cycle hides in a function-level, a relative and a TYPE_CHECKING import
    (and a cimport between two Cython modules): each is an edge, and the cycle is named."""
    pkg = tmp_path / "pkg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "cy").mkdir()
    files = {
        "__init__.py": "from pkg import a\n",
        "a.py": "import os\n\ndef later():\n    from pkg.sub import b\n",
        "sub/__init__.py": "",
        "sub/b.py": "from . import c\n",
        "sub/c.py": ("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
                     "    from ..a import later\n"),
        "fast.pyx": "import numpy as np\nfrom pkg.slow cimport helper\n",
        "slow.pxd": "from libc.stdint cimport int64_t\ncdef int helper()\n",
        "slow.pyx": "from pkg cimport (\n    fast,\n)\n",
        "cy/__init__.py": "",
        "cy/one.pyx": "from . cimport two\nfrom pkg.cy.two cimport *\n",
        "cy/two.pxd": "cdef int two()\n",
    }
    for rel, text in files.items():
        (pkg / rel).write_text(text)
    graph = import_graph(pkg)
    assert graph["pkg.a"] == {"pkg.sub.b": "pkg/a.py:4"}
    assert graph["pkg.sub.b"] == {"pkg.sub.c": "pkg/sub/b.py:1"}
    assert graph["pkg.sub.c"] == {"pkg.a": "pkg/sub/c.py:3"}
    assert graph["pkg.fast"] == {"pkg.slow": "pkg/fast.pyx:2"}
    assert graph["pkg.slow"] == {"pkg.fast": "pkg/slow.pyx:1"}
    assert graph["pkg.cy.one"] == {"pkg.cy.two": "pkg/cy/one.pyx:1"}
    cycles = sorted(find_cycles(graph))
    assert cycles == [["pkg.a", "pkg.sub.b", "pkg.sub.c", "pkg.a"],
                      ["pkg.fast", "pkg.slow", "pkg.fast"]]
    assert describe(graph, cycles[0]).splitlines()[0] == "  pkg.a -> pkg.sub.b  (pkg/a.py:4)"


def test_no_cycle_is_reported_for_layers_that_point_one_way(tmp_path):
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "low.py").write_text("import json\n")
    (pkg / "mid.py").write_text("from pkg import low\n")
    (pkg / "top.py").write_text("from pkg import low, mid\n\ndef f():\n    import pkg.mid\n")
    graph = import_graph(pkg)
    assert graph["pkg.top"].keys() == {"pkg.low", "pkg.mid"}
    assert find_cycles(graph) == []
