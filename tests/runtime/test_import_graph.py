"""The package's module import graph has no cycle, lazy imports included.

Every ``import`` and ``from ... import`` statement of every module under ``streamlstm/`` and
``converters/`` (shipped as ``streamlstm.converters``) counts, wherever it stands: at the top,
inside a function, under ``if TYPE_CHECKING``. An edge goes to the module named (for
``from p import n``: to ``p.n`` when that is a module, else to ``p``). Importing ``p.q`` also
runs ``p/__init__``; those implicit parent edges are left out, as import linters do, since a
package ``__init__`` importing its own submodules is not a cycle. The modules that import a
whole package by discovery (``importlib`` over ``pkgutil.iter_modules``) get an edge to each
module discovered (``DISCOVERS``).
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TREES = {"streamlstm": ROOT / "streamlstm", "streamlstm.converters": ROOT / "converters"}
DISCOVERS = {"streamlstm.kernels.rows": "streamlstm.kernels.kinds", "streamlstm.layers": "streamlstm.layers"}


def _modules() -> dict[str, Path]:
    mods = {}
    for prefix, top in TREES.items():
        for path in top.rglob("*.py"):
            parts = list(path.relative_to(top).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            mods[".".join([prefix, *parts])] = path
    return mods


def _canonical(name: str) -> str:
    return "streamlstm." + name if name == "converters" or name.startswith("converters.") else name


def import_graph() -> dict[str, set[str]]:
    """module -> the modules of the package it imports."""
    mods = _modules()
    graph = {m: set() for m in mods}
    for mod, path in mods.items():
        package = mod if path.name == "__init__.py" else mod.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            targets = []
            if isinstance(node, ast.Import):
                targets = [_canonical(a.name) for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")
                    base = base[:len(base) - node.level + 1]
                    origin = ".".join(base + ([node.module] if node.module else []))
                else:
                    origin = _canonical(node.module)
                targets = [f"{origin}.{a.name}" if f"{origin}.{a.name}" in mods else origin
                           for a in node.names]
            for t in targets:
                while t and t not in mods:  # ``import a.b.c`` of a non-module attribute path
                    t = t.rpartition(".")[0]
                if t and t != mod:
                    graph[mod].add(t)
    for mod, package in DISCOVERS.items():
        graph[mod] |= {m for m in mods if m.startswith(package + ".") and "." not in m[len(package) + 1:]}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of ``graph`` as a list of modules (first == last), or None."""
    state, stack = {}, []

    def visit(m):
        state[m] = "open"
        stack.append(m)
        for n in sorted(graph[m]):
            if state.get(n) == "open":
                return stack[stack.index(n):] + [n]
            if n not in state:
                found = visit(n)
                if found:
                    return found
        stack.pop()
        state[m] = "done"
        return None

    for m in sorted(graph):
        if m not in state:
            found = visit(m)
            if found:
                return found
    return None


def test_the_graph_is_read_from_the_sources():
    graph = import_graph()
    assert "streamlstm.kernels.rows" in graph["streamlstm.kernels.engine"]
    assert "streamlstm.network" in graph["streamlstm.converters.native"]
    assert "streamlstm.converters.native_file" in graph["streamlstm.network"]  # a lazy import
    assert "streamlstm.kernels.kinds.lstm" in graph["streamlstm.kernels.rows"]  # discovered
    assert "streamlstm.layers.conv" in graph["streamlstm.layers"]
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]


def test_no_import_cycles():
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_model_and_pool_do_not_import_each_other():
    graph = import_graph()
    assert "streamlstm.model" not in graph["streamlstm.pool"]


def test_kernels_import_nothing_outside_kernels():
    graph = import_graph()
    for mod, deps in graph.items():
        if mod.startswith("streamlstm.kernels"):
            assert all(d.startswith("streamlstm.kernels") for d in deps), (mod, deps)
