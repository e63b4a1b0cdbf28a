"""The engine's layout: its modules depend on each other in one direction (no import
cycle anywhere, the command line on top and never imported back), and each module is
small enough to hold one job, or says at its top why it is not."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import harness

PACKAGE = Path(harness.__file__).parent
# A module over this many lines must say why in its docstring, with a line starting
# "Why one module" (a split that would scatter one job is the usual reason).
MAX_LINES = 400


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def imported_harness_modules(path: Path) -> set[str]:
    """Every ``harness`` module the file imports, at module level or inside a function.

    ``from harness.oracle import comparison`` names the submodule when there is one,
    and the package otherwise; a package is an edge to its ``__init__``.
    """
    imported: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            imported.update(alias.name for alias in node.names if alias.name.startswith("harness."))
        elif isinstance(node, ast.ImportFrom) and node.module is not None and node.module.split(".")[0] == "harness":
            for alias in node.names:
                submodule = f"{node.module}.{alias.name}"
                imported.add(submodule if submodule in MODULES else node.module)
    imported.discard("harness")  # the public names: imported lazily, by name, on first use
    return imported


GRAPH = {name: imported_harness_modules(path) - {name} for name, path in MODULES.items()}


def reachable_from(module: str, graph: dict[str, set[str]]) -> set[str]:
    seen, stack = set(), [module]
    while stack:
        for name in graph.get(stack.pop(), ()):
            if name not in seen:
                seen.add(name)
                stack.append(name)
    return seen


def cycle_through(module: str, graph: dict[str, set[str]]) -> list[str] | None:
    """One import path from ``module`` back to itself, or None."""
    paths, seen = [[module]], {module}
    while paths:
        path = paths.pop(0)
        for name in sorted(graph.get(path[-1], ())):
            if name == module:
                return [*path, module]
            if name not in seen:
                seen.add(name)
                paths.append([*path, name])
    return None


def test_the_layout_is_read_from_the_packages():
    # The checks below see every module, packages included.
    assert {"harness.cli", "harness.campaign", "harness.oracle", "harness.bench"} <= set(MODULES)
    assert any(name.startswith("harness.oracle.") for name in MODULES)
    assert any(name.startswith("harness.bench.") for name in MODULES)


def test_the_engine_never_imports_the_command_line():
    for engine in ("harness.campaign", "harness.bench", "harness.oracle", "harness.cluster"):
        path_back = reachable_from(engine, GRAPH)
        assert "harness.cli" not in path_back, f"{engine} imports harness.cli (directly or through {sorted(path_back)}): an import cycle with the CLI"


@pytest.mark.parametrize("module", sorted(MODULES))
def test_no_module_imports_itself_back(module):
    cycle = cycle_through(module, GRAPH)
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_the_cluster_uses_the_campaign_never_the_reverse():
    assert "harness.campaign" in reachable_from("harness.cluster", GRAPH)
    assert "harness.cluster" not in reachable_from("harness.campaign", GRAPH)


@pytest.mark.parametrize("module", sorted(MODULES))
def test_a_long_module_says_why_at_its_top(module):
    path = MODULES[module]
    lines = len(path.read_text().splitlines())
    if lines <= MAX_LINES:
        return
    docstring = ast.get_docstring(ast.parse(path.read_text())) or ""
    assert "Why one module" in docstring, (
        f"{path.relative_to(PACKAGE.parent)} has {lines} lines (over {MAX_LINES}): split it by job, "
        "or say at its top why it is one module (a docstring paragraph starting 'Why one module')"
    )


# The flow a case goes through, as the layout shows it (harness/__init__.py lists the
# modules the same way). A module may import its own stage and the stages before it:
# what is drawn never depends on how it is judged, and neither on how campaigns run.
# Running campaigns and showing them are one stage: the command runners report
# progress as they go.
STAGES = {
    "what is under test": {"families", "cells", "dropin", "implementation", "packing", "registry", "usage"},
    "what is drawn": {"cases", "dimensions", "pairwise", "covering", "strategies", "routing", "coverage"},
    "how it is judged": {"torch_undefined", "declarations", "tolerance", "probes", "oracle"},
    "how campaigns run, and what users see": {
        "locate", "forkserver", "worker_process", "isolation", "database", "repro", "campaign_result", "profiles", "findings", "campaign",
        "local_run", "cluster", "report", "fuzz_command", "cli", "pytest_plugin", "suite", "__main__", "bench",
    },
}


def stage_of(module: str) -> int:
    top = module.split(".")[1]
    return next(index for index, members in enumerate(STAGES.values()) if top in members)


def test_every_module_has_its_place_in_the_flow():
    tops = {name.split(".")[1] for name in MODULES if name != "harness"}
    placed = set().union(*STAGES.values())
    assert tops <= placed, f"modules not placed in a stage of STAGES (and in harness/__init__.py's list): {sorted(tops - placed)}"
    assert placed <= tops, f"STAGES names modules that do not exist: {sorted(placed - tops)}"


@pytest.mark.parametrize("module", sorted(name for name in MODULES if name != "harness"))
def test_a_module_imports_only_its_own_stage_and_earlier_ones(module):
    later = sorted(name for name in GRAPH[module] if name != "harness" and stage_of(name) > stage_of(module))
    stages = list(STAGES)
    assert not later, f"{module} ({stages[stage_of(module)]}) imports {later} ({', '.join(stages[stage_of(name)] for name in later)}): against the flow"


RESULT_CLASSES = {"ImplementationResult", "ClusterResult"}


def positional_result_constructions(path: Path) -> list[int]:
    """Lines of the file where an `ImplementationResult` (or its cluster subclass) is built
    with positional arguments: a result is built by keyword or by a named constructor."""
    lines = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Call) and node.args:
            called = node.func.id if isinstance(node.func, ast.Name) else node.func.attr if isinstance(node.func, ast.Attribute) else None
            if called in RESULT_CLASSES:
                lines.append(node.lineno)
    return lines


def test_no_result_is_built_from_positional_arguments():
    built = {str(path.relative_to(PACKAGE.parent)): lines for path in MODULES.values() if (lines := positional_result_constructions(path))}
    assert not built, (
        f"ImplementationResult(...) with positional arguments at {built}: use a named constructor "
        "(ImplementationResult.passed, .failed, .error, .skipped, .pending) or keywords"
    )
