"""The engine's modules depend on each other in one direction: the command line sits
on top of the engine, and the engine never reaches back up into it."""

from __future__ import annotations

import ast
from pathlib import Path

import harness

PACKAGE = Path(harness.__file__).parent


def imported_harness_modules(path: Path) -> set[str]:
    """Every ``harness.*`` module the file imports, at module level or inside a function."""
    imported: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            imported.update(alias.name for alias in node.names if alias.name.startswith("harness."))
        elif isinstance(node, ast.ImportFrom) and node.module is not None:
            if node.module == "harness":
                imported.update(f"harness.{alias.name}" for alias in node.names if (PACKAGE / f"{alias.name}.py").exists())
            elif node.module.startswith("harness."):
                imported.add(node.module)
    return imported


def reachable_from(module: str, graph: dict[str, set[str]]) -> set[str]:
    seen, stack = set(), [module]
    while stack:
        for name in graph.get(stack.pop(), ()):
            if name not in seen:
                seen.add(name)
                stack.append(name)
    return seen


def test_the_engine_never_imports_the_command_line():
    graph = {f"harness.{path.stem}": imported_harness_modules(path) for path in PACKAGE.glob("*.py")}
    for engine in ("harness.campaign", "harness.bench"):
        path_back = reachable_from(engine, graph)
        assert "harness.cli" not in path_back, f"{engine} imports harness.cli (directly or through {sorted(path_back)}): an import cycle with the CLI"
