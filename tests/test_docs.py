"""The docs say what the program does: every default, option, report field and
built-in the docs show is read from their tables and compared with the program's
own. A test here fails with what the page says and what the program does; fix
whichever is wrong."""

from __future__ import annotations

import dataclasses
import functools
import json
import re
from pathlib import Path

import pytest

from support.markdown import ROOT, code_names, page, section, table, tables

USAGE, PLUGINS, BENCHMARKS = "docs/usage.md", "docs/plugins.md", "docs/benchmarks.md"
REFERENCE_PAGES = ("README.md", USAGE, PLUGINS, "docs/what-is-checked.md")
"""Pages that describe the program as it is now. benchmarks.md, reliability.md and
error-model.md record measurements: their counts are of the code as it was measured."""
REPORT = "Reading the JSON report"
FAMILY_SUFFIX = {"RNN": "", "LSTM": "-lstm", "GRU": "-gru", "RNNCell": "-rnncell", "LSTMCell": "-lstmcell", "GRUCell": "-grucell"}
NO_SUCH_FAMILY = "—"


@functools.cache
def registry():
    from harness.registry import discover

    return discover()


def builtins() -> dict[str, dict[str, object]]:
    """Each built-in's implementation per family, by the name the docs give it: the
    bare entry-point name of its nn.RNN."""
    found: dict[str, dict[str, object]] = {}
    for name, plugin in registry().loaded.items():
        if plugin.found.origin != "built-in":
            continue
        implementation = plugin.implementation
        suffix = FAMILY_SUFFIX[implementation.family]
        base = name[: len(name) - len(suffix)] if suffix else name
        assert name == base + suffix, f"built-in {name} is of family {implementation.family}, so its name should end in {suffix!r}"
        found.setdefault(base, {})[implementation.family] = implementation
    return found


def option_names(parser) -> set[str]:
    return {option for action in parser._actions for option in action.option_strings if option not in ("-h", "--help")}


def subcommand(name: str):
    from harness.cli import build_parser

    commands = next(action for action in build_parser()._actions if hasattr(action, "choices") and isinstance(action.choices, dict))
    return commands.choices[name]


def documented_options(relative: str, heading: str) -> dict[str, tuple[str, ...]]:
    options = table(relative, heading, "option")
    return {code_names(row[0])[0]: row for row in options.rows}


# -- profiles and defaults ---------------------------------------------------------------


def test_the_profile_table_gives_each_profiles_example_count():
    from harness.profiles import PROFILES

    profiles = table(USAGE, "Profiles", "profile")
    documented = {code_names(row[0])[0]: int(row[1].replace(",", "")) for row in profiles.rows}
    assert set(documented) == set(PROFILES), f"{USAGE}'s profile table lists {sorted(documented)}; the program has {sorted(PROFILES)}"
    for name, (examples, _) in PROFILES.items():
        assert documented[name] == examples, f"{USAGE} says profile {name} runs {documented[name]} examples; the program runs {examples}"


def test_the_pytest_profile_option_gives_each_profiles_example_count():
    from harness.profiles import PROFILES

    help_text = plugin_options()["--rnn-profile"]
    for name, (examples, _) in PROFILES.items():
        assert f"{name} ({examples}" in help_text, f"--rnn-profile's help should say {name} ({examples} examples): {help_text!r}"


def test_each_builtins_default_budget_and_timeout_are_the_programs():
    from harness.profiles import DEFAULT_TIMEOUT

    budgets = table(USAGE, "Default budgets", "built-in")
    families = budgets.header[1:-1]
    assert set(families) == set(FAMILY_SUFFIX), f"{USAGE}'s budget table has columns {families}; the families are {list(FAMILY_SUFFIX)}"
    documented = {code_names(row[0])[0]: row for row in budgets.rows}
    program = builtins()
    assert set(documented) == set(program), (
        f"{USAGE}'s budget table lists {sorted(documented)}; the registered built-ins are {sorted(program)}"
    )
    for name, row in documented.items():
        for family, cell in zip(families, row[1:-1]):
            implementation = program[name].get(family)
            if implementation is None:
                assert cell == NO_SUCH_FAMILY, f"{USAGE} gives {name} a {family} budget of {cell}; {name} has no {family}"
                continue
            expected = implementation.default_examples or "the profile's"
            assert cell == str(expected), f"{USAGE} says {implementation.name}'s budget is {cell}; the program uses {expected}"
        timeouts = {implementation.example_timeout for implementation in program[name].values()}
        assert len(timeouts) == 1, f"{name}'s families declare different example timeouts {timeouts}: one table cell cannot say them"
        (timeout,) = timeouts
        expected = "`--timeout`" if timeout is None else f"{timeout:g} s"
        assert row[-1] == expected, f"{USAGE} says {name}'s example timeout is {row[-1]}; the program uses {expected} (--timeout is {DEFAULT_TIMEOUT:g} s)"


def test_the_builtin_table_names_each_builtin_and_its_families():
    described = table(USAGE, "Built-in implementations", "name")
    documented = {code_names(row[0])[0]: row[1] for row in described.rows}
    program = builtins()
    assert set(documented) == set(program), f"{USAGE}'s built-in table lists {sorted(documented)}; the registered built-ins are {sorted(program)}"
    for name, families in program.items():
        expected = "all six" if len(families) == len(FAMILY_SUFFIX) else ", ".join(family for family in FAMILY_SUFFIX if family in families)
        assert documented[name] == expected, f"{USAGE} says {name} implements {documented[name]}; it implements {expected}"


def test_counts_of_builtins_in_the_reference_pages_are_the_registrys():
    count = sum(len(families) for families in builtins().values())
    for relative in REFERENCE_PAGES:
        for stated in re.findall(r"\b(\d+) (?:built-ins|built-in implementations|registered implementations)\b", page(relative)):
            assert int(stated) == count, f"{relative} says {stated} built-ins; {count} are registered (or drop the number: it drifts)"


# -- options ---------------------------------------------------------------------------


def program_defaults(parser, decided_later: dict[str, object]) -> dict[str, object]:
    """Each option's default, where it has one to show: argparse's, or what the command
    decides when the option is absent."""
    defaults = {}
    for action in parser._actions:
        for option in action.option_strings:
            value = decided_later.get(option, action.default)
            if value not in (None, False) and option not in ("-h", "--help"):
                defaults[option] = value
    return defaults


def shown(cell: str, value: object) -> bool:
    """Whether a table's default cell shows ``value``: as a number, or as backticked text."""
    if isinstance(value, (int, float)):
        return any(float(number) == float(value) for number in re.findall(r"\d+(?:\.\d+)?", cell.replace(",", "")))
    return any(span.rstrip("/") == str(value).rstrip("/") for span in re.findall(r"`([^`]+)`", cell))


@pytest.mark.parametrize(
    ("command", "relative", "heading"),
    [("fuzz", USAGE, "`fuzz` options"), ("bench", BENCHMARKS, "`python -m harness bench`")],
)
def test_every_command_option_is_in_its_docs_table_with_its_default(command, relative, heading):
    from harness.local_run import TIME_BUDGETS
    from harness.profiles import DEFAULT_DATABASE

    parser = subcommand(command)
    documented = documented_options(relative, heading)
    program = option_names(parser)
    assert not program - set(documented), f"{relative} does not document `{command}` option(s) {sorted(program - set(documented))}"
    assert not set(documented) - program, f"{relative} documents `{command}` option(s) {sorted(set(documented) - program)} that do not exist"
    default_column = table(relative, heading, "option").column("default")
    for option, value in program_defaults(parser, {"--time-budget": TIME_BUDGETS["default"], "--database": DEFAULT_DATABASE}).items():
        cell = documented[option][default_column]
        assert shown(cell, value), f"{relative} says {command} {option}'s default is {cell!r}; the program uses {value}"


def plugin_options() -> dict[str, str]:
    """The pytest plugin's options and their help texts, as `pytest_addoption` adds them."""
    from harness import pytest_plugin

    added: dict[str, str] = {}

    class Recorder:
        def getgroup(self, name, description=""):
            return self

        def addoption(self, *names, **keywords):
            added.update({name: keywords.get("help", "") for name in names})

    pytest_plugin.pytest_addoption(Recorder())
    return added


def test_every_pytest_option_is_in_the_plugin_docs_table():
    documented = set(documented_options(PLUGINS, "Running the harness inside your own test suite"))
    program = set(plugin_options())
    assert not program - documented, f"{PLUGINS} does not document the pytest option(s) {sorted(program - documented)}"
    assert not documented - program, f"{PLUGINS} documents pytest option(s) {sorted(documented - program)} that do not exist"


def test_the_pytest_help_section_is_titled_for_every_family():
    from harness import pytest_plugin

    titles = []

    class Recorder:
        def getgroup(self, name, description=""):
            titles.append(description)
            return self

        def addoption(self, *names, **keywords):
            pass

    pytest_plugin.pytest_addoption(Recorder())
    assert titles and all("nn.RNN" not in title for title in titles), f"the pytest --help section names nn.RNN alone: {titles}"


def command_lines(text: str) -> list[tuple[str, str]]:
    """Every ``python -m harness COMMAND ...`` written in a page: in a code block up to
    its comment, inline up to its closing backtick."""
    found = []
    for match in re.finditer(r"python -m harness (\w+)([^`\n#]*)", text):
        found.append((match.group(1), match.group(2)))
    return found


@pytest.mark.parametrize("relative", [*REFERENCE_PAGES, BENCHMARKS, "examples/plugin-template/README.md"])
def test_every_command_written_in_the_docs_exists_with_its_options(relative):
    known = {"list": set(), "fuzz": option_names(subcommand("fuzz")), "bench": option_names(subcommand("bench"))}
    pytest_options = set(plugin_options())
    for command, rest in command_lines(page(relative)):
        assert command in known, f"{relative} writes `python -m harness {command}`; the commands are {sorted(known)}"
        for option in re.findall(r"(?<![\w-])(--[a-z][a-z0-9-]*)", rest):
            assert option in known[command], f"{relative} writes `python -m harness {command} ... {option}`; {command} has no {option}"
    for option in re.findall(r"(?<![\w-])(--rnn-[a-z-]+)", page(relative)):
        assert option in pytest_options, f"{relative} names the pytest option {option}; the plugin has {sorted(pytest_options)}"


# -- the JSON report -------------------------------------------------------------------


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    """A real small report: one in-process campaign of one example, its result given a
    failure on the simplest case, written by the report writer; and the result of a
    cluster run merged from that campaign as its one unit."""
    from harness import database, report as report_module
    from harness.campaign import fuzz_implementation
    from harness.cases import Case
    from harness.cluster.merging import merge
    from harness.cluster.units import Outcome, plan
    from harness.campaign_result import Failure

    folder = tmp_path_factory.mktemp("report")
    loop = registry().implementation("loop")
    result = fuzz_implementation(loop, profile="ci", seed=1, max_examples=1, isolate=False, database=str(folder / "db"), repro_dir=folder)
    assert result.coverage is not None, result.reason
    failure = Failure(kind="value", subject="output", summary="what differs", case=Case(), repro_path=None)
    result = dataclasses.replace(result, verdict="fail", failure=failure)
    path = folder / "report.json"
    report_module.write_json(path, [result], seed=1, profile="ci", devices=["cpu"])
    (unit,) = plan(["loop"], ["cpu"], total=1, shards=1, seed=1, profile="ci", timeout=30.0, isolate=False, database=database.parse(folder / "db"))
    merged = merge("loop", [Outcome(unit, result, worker="tcp://worker:1", started=0.0, finished=1.0)], [], seed=1, profile="ci", repro_dir=None, replay="")
    return json.loads(path.read_text()), merged.to_json()


def emitted_fields(report) -> dict[str, set[str]]:
    document, merged = report
    (entry,) = document["implementations"].values()
    return {
        "report": set(document),
        "environment": set(document["environment"]),
        "implementations.NAME": set(entry) | set(merged),
        "failure": set(entry["failure"]),
        "coverage": set(entry["coverage"]),
        "shards[]": set(merged["shards"][0]),
    }


def test_every_report_field_is_documented_and_every_documented_field_is_emitted(report):
    for level, program in emitted_fields(report).items():
        documented = {name for row in table(PLUGINS, REPORT, level).rows for name in code_names(row[0])}
        assert not program - documented, f"{PLUGINS} does not document the report's {level} field(s) {sorted(program - documented)}"
        assert not documented - program, f"{PLUGINS} documents {level} field(s) {sorted(documented - program)} that no report has"


def test_the_example_report_has_the_programs_fields_and_values(report):
    from harness.cases import Case
    from harness.oracle.localize import localize_layer
    from harness.campaign_result import Failure

    example = json.loads(re.search(r"```json\n(.*?)```", section(PLUGINS, REPORT), re.DOTALL).group(1))
    document, _ = report
    (entry,) = document["implementations"].values()
    (shown_entry,) = example["implementations"].values()
    program = emitted_fields(report)
    pairs = [
        ("report", set(example), program["report"]),
        ("environment", set(example["environment"]), program["environment"]),
        ("implementations.NAME", set(shown_entry), set(entry)),  # a local run: no cluster fields
        ("failure", set(shown_entry["failure"]), program["failure"]),
        ("coverage", set(shown_entry["coverage"]), program["coverage"]),
        ("failure.case", set(shown_entry["failure"]["case"]), {field.name for field in dataclasses.fields(Case)}),
    ]
    for level, shown_fields, emitted in pairs:
        assert shown_fields == emitted, (
            f"{PLUGINS}'s example report shows {level} fields {sorted(shown_fields - emitted)} that a report does not have "
            f"and lacks {sorted(emitted - shown_fields)}"
        )
    failure = Failure.from_json(shown_entry["failure"])
    layer = localize_layer(registry().implementation("loop"), failure.case)
    assert failure.layer == layer, (
        f"{PLUGINS}'s example report gives first_divergent_layer {failure.layer} for its case; the program gives {layer}"
    )


# -- the plugin contract and the case space ---------------------------------------------


@pytest.mark.parametrize("record, heading", [
    ("harness.implementation.Implementation", "The `Implementation` record"),
    ("harness.cases.Case", "`harness.Case`: what a `when` predicate receives"),
])
def test_the_record_tables_list_every_field(record, heading):
    import importlib

    module, name = record.rsplit(".", 1)
    documented = [field for row in table(PLUGINS, heading, "field").rows for field in code_names(row[0])]
    program = [field.name for field in dataclasses.fields(getattr(importlib.import_module(module), name))]
    assert sorted(documented) == sorted(program), (
        f"{PLUGINS}'s {name} table lists {sorted(set(documented) - set(program))} that {name} lacks "
        f"and lacks {sorted(set(program) - set(documented))}"
    )


def test_the_family_table_gives_each_familys_keywords_returns_and_gates():
    from harness import families

    contract = table(PLUGINS, "The contract", "family")
    documented = {code_names(row[0])[0]: row for row in contract.rows}
    assert list(documented) == list(FAMILY_SUFFIX), f"{PLUGINS}'s family table lists {list(documented)}; the families are {list(FAMILY_SUFFIX)}"
    keywords, returns, gates = (contract.column(name) for name in ("constructor keywords", "`forward(input, hx=None)` returns", "gate blocks"))
    for name, row in documented.items():
        record = families.family(name)
        shown_keywords = tuple(code_names(row[keywords]))
        assert shown_keywords == record.keywords, f"{PLUGINS} gives {name}'s constructor keywords as {shown_keywords}; torch's are {record.keywords}"
        signature = record.return_signature().removeprefix("a tuple ").removeprefix("a Tensor ")
        assert row[returns] == f"`{signature}`", f"{PLUGINS} says {name}.forward returns {row[returns]}; it returns {signature}"
        shown_gates = tuple(code_names(row[gates]))
        assert shown_gates == record.gates, f"{PLUGINS} gives {name}'s gate blocks as {shown_gates}; torch stacks {record.gates}"


def test_the_covering_set_sizes_in_what_is_checked_are_the_programs():
    from harness.cli import covering_text

    relative = "docs/what-is-checked.md"
    text = " ".join(page(relative).split())
    program = {}
    for name in ("torch", "torch-lstm"):
        pairs, cases, invalid = re.match(r"(\d+) pairs in (\d+) cases \+ (\d+) invalid", covering_text(registry().implementation(name))).groups()
        program[name] = {"pairs": int(pairs), "cases": int(cases), "invalid": int(invalid)}
    cases, pairs = re.search(r"For nn\.RNN that is (\d+) cases for ([\d,]+) pairs", text).groups()
    shown_rnn = {"pairs": int(pairs.replace(",", "")), "cases": int(cases)}
    assert shown_rnn == {key: program["torch"][key] for key in shown_rnn}, f"{relative} says nn.RNN's covering set is {shown_rnn}; the program's is {program['torch']}"
    rnn_invalid, lstm_invalid = (int(number) for number in re.search(r"\((\d+) for nn\.RNN, (\d+) for LSTM\)", text).groups())
    assert (rnn_invalid, lstm_invalid) == (program["torch"]["invalid"], program["torch-lstm"]["invalid"]), (
        f"{relative} says {rnn_invalid} invalid inputs for nn.RNN and {lstm_invalid} for LSTM; "
        f"the program has {program['torch']['invalid']} and {program['torch-lstm']['invalid']}"
    )


# -- links ---------------------------------------------------------------------------


def anchor(heading: str) -> str:
    """The anchor GitHub gives a heading: lower case, punctuation dropped, spaces as hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


@pytest.mark.parametrize("relative", [*REFERENCE_PAGES, BENCHMARKS, "docs/error-model.md", "docs/reliability.md", "docs/found-bugs.md", "docs/mutation-catalogue.md"])
def test_every_link_between_the_pages_reaches_its_file_and_heading(relative):
    source = ROOT / relative
    for target in re.findall(r"\]\(([^)\s]+)\)", page(relative)):
        if re.match(r"[a-z]+:", target):
            continue  # another site
        path, _, fragment = target.partition("#")
        linked = (source.parent / path).resolve() if path else source
        assert linked.exists(), f"{relative} links to {target}: there is no {path}"
        if fragment and linked.suffix == ".md":
            anchors = {anchor(line.lstrip("#")) for line in linked.read_text().splitlines() if re.match(r"#+ ", line)}
            assert fragment in anchors, f"{relative} links to {target}: {linked.name} has no heading with the anchor #{fragment}"


# -- the README ------------------------------------------------------------------------

QUICK_START = '```bash\npip install -e ".[dev]" && python -m harness fuzz\npython -m pytest\n```'


def test_the_readme_installs_torch_before_the_quick_start_commands():
    text = section("README.md", "Quick start")
    assert QUICK_START in text, f"README.md's quick start should be exactly:\n{QUICK_START}"
    assert "pip install torch==" in text.split(QUICK_START)[0], "README.md must say how to install torch's CPU wheel before the commands that need it"


def test_the_readme_names_every_builtin():
    text = " ".join(page("README.md").split())
    listed = re.search(r"The built-ins, each registered once per family it implements, are (.*?); what each one is", text).group(1)
    documented, program = set(code_names(listed)), set(builtins())
    assert documented == program, f"README.md names the built-ins {sorted(documented)}; the registered ones are {sorted(program)}"


@pytest.mark.parametrize("term", ["campaign", "covering set", "profile"])
def test_the_readme_says_what_a_term_is_before_using_it(term):
    text = " ".join(page("README.md").split()).lower()
    first = text.find(term)
    assert first >= 0 and text[first - 1] == "*", f"README.md uses {term!r} before it says what it is (its first use should be the *{term}* that defines it)"


# -- the layout ------------------------------------------------------------------------


def test_the_layout_lists_every_engine_module_in_its_stage():
    # docs/usage.md's layout: one table per stage of tests/test_structure.py, in order;
    # a package's row names each of its modules.
    import harness
    from test_structure import STAGES

    package = Path(harness.__file__).parent
    layout = [found for found in tables("docs/usage.md", "Layout: how a run flows") if found.header[0] == "module"]
    assert len(layout) == len(STAGES), f"docs/usage.md's layout has {len(layout)} stage tables; the program has {len(STAGES)} stages"
    for (stage, members), shown in zip(STAGES.items(), layout):
        listed = {name.rstrip("/"): row for row in shown.rows for name in code_names(row[0])}
        assert set(listed) == members, (
            f"docs/usage.md's layout, stage {stage!r}: missing {sorted(members - set(listed))}, "
            f"not in this stage {sorted(set(listed) - members)}"
        )
        for name, row in listed.items():
            if (package / name).is_dir():
                modules = {path.stem for path in (package / name).glob("*.py")} - {"__init__"}
                named = set(code_names(row[1]))
                assert modules <= named, f"docs/usage.md's layout: the row of {name}/ does not name {sorted(modules - named)}"
