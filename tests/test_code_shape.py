"""The shape of the code: no module over the size limit, no import circles, one TUI surface.

(Declared third-party imports are checked in tests/test_settings.py.)

Static checks over the source tree (AST, no imports), so they are fast and cannot be fooled by
import order. Function-level (lazy) imports count: a circle through a lazy import is still a
circle a reader has to untangle.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

from tests.run_helpers import REPO

#: Installed name -> folder in the repository (pyproject's [tool.setuptools.package-dir]).
ROOTS = {"clmtune.backend": "backend", "clmtune.tui": "tui", "clmtune.themes": "themes"}
MAX_LINES = 700


def _modules() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for name, folder in ROOTS.items():
        for path in sorted((REPO / folder).rglob("*.py")):
            parts = path.relative_to(REPO / folder).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found[".".join((name, *parts))] = path
    return found


MODULES = _modules()


def _imports(module: str, path: Path) -> set[str]:
    """The clmtune modules ``module`` imports anywhere in its body, resolved to modules."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            # `from pkg import mod` names a module when pkg.mod is one.
            names = [f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base
                     for a in node.names]  # fmt: skip
        else:
            continue
        for name in names:
            while name and name not in MODULES:
                name = name.rpartition(".")[0]
            if name and name != module and name.startswith("clmtune."):
                out.add(name)
    return out


def test_no_module_is_over_the_size_limit():
    sizes = {m: len(p.read_text().splitlines()) for m, p in MODULES.items()}
    too_big = {m: n for m, n in sizes.items() if n > MAX_LINES}
    assert not too_big, f"split these by job (limit {MAX_LINES} lines): {too_big}"


def test_the_size_check_sees_every_module():
    # Guards the check above against silently scanning nothing.
    assert {"clmtune.backend.cli", "clmtune.backend.worker", "clmtune.tui.app"} <= set(MODULES)


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every strongly connected component with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = [0]

    def visit(node: str) -> None:
        index[node] = low[node] = counter[0]
        counter[0] += 1
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                item = stack.pop()
                on_stack.discard(item)
                component.append(item)
                if item == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10_000))
    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_no_import_circles():
    graph = {m: _imports(m, p) for m, p in MODULES.items()}
    assert not _cycles(graph), f"import circles: {_cycles(graph)}"


def test_the_circle_finder_finds_a_circle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_the_backend_never_imports_the_tui():
    graph = {m: _imports(m, p) for m, p in MODULES.items() if m.startswith("clmtune.backend")}
    leaks = {m: sorted(i for i in deps if i.startswith("clmtune.tui")) for m, deps in graph.items()}
    assert not {m: d for m, d in leaks.items() if d}


def test_the_tui_uses_only_the_backend_surface():
    from clmtune.backend import TUI_SURFACE

    allowed = {f"clmtune.backend.{m}" for m in TUI_SURFACE}
    assert allowed <= set(MODULES), sorted(allowed - set(MODULES))
    graph = {m: _imports(m, p) for m, p in MODULES.items() if m.startswith("clmtune.tui")}
    outside = {m: sorted(d for d in deps if d.startswith("clmtune.backend.") and d not in allowed)
               for m, deps in graph.items()}  # fmt: skip
    assert not {m: d for m, d in outside.items() if d}, "add to TUI_SURFACE only light modules"


def _plain_inputs(tree: ast.AST) -> list[int]:
    """Lines that build Textual's ``Input`` itself (not the dashboard's TextInput)."""
    return [node.lineno for node in ast.walk(tree)
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
            and node.func.id == "Input"]


def test_every_text_field_of_the_dashboard_keeps_keys_in_order():
    # A plain Input runs backspace / ctrl+u / enter after the characters typed behind
    # them when keys arrive together (tui/widgets/text_input.py says why).
    found = {name: lines for name, path in MODULES.items() if name.startswith("clmtune.tui")
             if (lines := _plain_inputs(ast.parse(path.read_text(encoding="utf-8"))))}
    assert not found, f"use clmtune.tui.widgets.text_input.TextInput: {found}"


def test_the_plain_input_finder_finds_one():
    assert _plain_inputs(ast.parse("from textual.widgets import Input\nw = Input('x')\n")) == [2]
