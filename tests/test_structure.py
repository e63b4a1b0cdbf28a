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

PLUGINS = "impls"
"""The built-in implementations' package: registered through entry points like any
outside plugin, so the engine reaches them only by name, never by an import."""


def plugin_imports(source: str) -> list[str]:
    """Each import of `PLUGINS` in ``source``, as written: import statements at module
    level or inside a function, and ``importlib.import_module`` or ``__import__`` of a
    literal name."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module is not None:
            names = [node.module]
        elif (isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", None)) in ("import_module", "__import__")
              and node.args and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)):
            names = [node.args[0].value]
        else:
            continue
        found += [f"line {node.lineno}: {name}" for name in names if name.split(".")[0] == PLUGINS]
    return found


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


@pytest.mark.parametrize("module", sorted(MODULES))
def test_the_engine_never_imports_the_built_in_implementations(module):
    imports = plugin_imports(MODULES[module].read_text())
    assert not imports, (
        f"{module} imports the built-in implementations ({'; '.join(imports)}): what the engine runs itself lives "
        "in harness/ (the references in harness/references/), and impls/ re-exports it, never the reverse"
    )


@pytest.mark.parametrize("source", [
    "import impls",
    "import impls.loop as loop",
    "from impls import torch_aten",
    "from impls.loop import LoopRNN",
    "def reference():\n    from impls.torch_aten import ATEN_MODULES\n",
    "import importlib\nimportlib.import_module('impls.loop')",
    "__import__('impls.torch_aten')",
])
def test_every_way_of_importing_a_built_in_is_seen(source):
    assert plugin_imports(source), source


def test_names_that_only_resemble_the_built_ins_are_not_imports_of_them():
    assert plugin_imports("import implsx\nfrom harness.registry import ENTRY_POINT_GROUP  # 'rnn_harness.impls'\n") == []


_STRING_PARSING = {"startswith", "endswith", "split", "rsplit", "partition", "rpartition", "removeprefix", "removesuffix"}


def _is_text(node: ast.AST) -> bool:
    """A string literal, an f-string, or an expression that builds one from them."""
    if isinstance(node, ast.Constant):
        return isinstance(node.value, str)
    if isinstance(node, ast.JoinedStr):
        return True
    if isinstance(node, ast.BinOp):
        return _is_text(node.left) or _is_text(node.right)
    if isinstance(node, ast.IfExp):
        return _is_text(node.body) or _is_text(node.orelse)
    return isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and _is_text(node.func.value)  # "...".join(...)


def _names_a_request(node: ast.AST) -> bool:
    return isinstance(node, ast.Name) and "request" in node.id.lower()


def string_requests(source: str) -> list[str]:
    """Each place in ``source`` where a request to a runner is a string rather than a
    dataclass of `harness.protocol`: text passed to a ``request(...)`` or ``answer(...)``
    call, text assigned to a name with "request" in it, and such a name compared with
    text or parsed as text (``startswith``, ``split``, ...)."""
    found = []
    for node in ast.walk(ast.parse(source)):
        called = getattr(node.func, "attr", getattr(node.func, "id", None)) if isinstance(node, ast.Call) else None
        if called in ("request", "answer") and node.args and _is_text(node.args[0]):
            found.append(f"line {node.lineno}: {called}() is given text")
        elif called in _STRING_PARSING and isinstance(node.func, ast.Attribute) and _names_a_request(node.func.value):
            found.append(f"line {node.lineno}: {node.func.value.id}.{called}() parses a request as text")
        elif isinstance(node, (ast.Assign, ast.AnnAssign)) and node.value is not None and _is_text(node.value):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            found += [f"line {node.lineno}: {target.id} is text" for target in targets if _names_a_request(target)]
        elif isinstance(node, ast.Compare):
            operands = [node.left, *node.comparators]
            if any(_names_a_request(operand) for operand in operands) and any(_is_text(operand) for operand in operands):
                found.append(f"line {node.lineno}: a request is compared with text")
    return found


@pytest.mark.parametrize("module", sorted(MODULES))
def test_requests_to_a_runner_are_dataclasses_never_strings(module):
    places = string_requests(MODULES[module].read_text())
    assert not places, (
        f"{module} speaks to a runner in strings ({'; '.join(places)}): a request is one of the dataclasses of "
        "harness.protocol, carried out by protocol.answer; add a dataclass there for a new kind of request"
    )


@pytest.mark.parametrize("source", [
    'runner.request("check", case)',
    'runner.request(f"check_waiving:{waived}", case)',
    'answer("reference_outcome", implementation, model)',
    'request = "check" if plain else "check_waiving:" + ",".join(waived)',
    'if request.startswith("check_expecting:"):\n    pass',
    'expected = request.split(":", 1)[1]',
    'if request == "localize":\n    pass',
])
def test_every_way_of_speaking_in_strings_is_seen(source):
    assert string_requests(source), source


def test_requests_as_dataclasses_pass_the_check():
    source = (
        "request = protocol.CheckWaiving(case, frozenset(waived))\n"
        "answer = runner.request(protocol.ReferenceOutcome(case))\n"
        "if isinstance(request, protocol.CheckExpecting):\n    pass\n"
        "show = request.config.getoption('--hypothesis-show-statistics')\n"  # pytest's own `request` fixture
    )
    assert string_requests(source) == []


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
    "what is under test": {"families", "step_formulas", "dropin", "references", "implementation", "packing", "registry", "usage"},
    "what is drawn": {"cases", "dimensions", "pairwise", "case_space", "strategies", "routing", "covering_stage", "coverage_report"},
    "how it is judged": {"torch_undefined", "declarations", "tolerance", "probes", "oracle"},
    "how campaigns run, and what users see": {
        "locate", "forkserver", "protocol", "worker_process", "isolation", "database", "repro", "campaign_result", "profiles", "findings", "campaign",
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
