"""The pytest plugin runs our differential suite inside anyone's pytest session.

Each scenario is one real ``python -m pytest`` run in a subprocess, in its own
directory: a wrong implementation is registered there by a hand-made ``.dist-info``
(found through PYTHONPATH, as an installed package's would be), and the outcome of
every test is read from a JUnit XML file. The scenarios run at the same time, because
each spends seconds importing torch; the tests below only read their results.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import tomllib
import subprocess
import sys
import textwrap
import xml.etree.ElementTree as ElementTree
from pathlib import Path

import pytest

SEED = 7
EXIT_OK, EXIT_TESTS_FAILED, EXIT_USAGE = 0, 1, 4

WRONG_DISTRIBUTION = {
    "rnn_harness_fixture_wrong-0.0.1.dist-info/METADATA": "Metadata-Version: 2.1\nName: rnn-harness-fixture-wrong\nVersion: 0.0.1\n",
    "rnn_harness_fixture_wrong-0.0.1.dist-info/entry_points.txt": textwrap.dedent("""\
        [rnn_harness.impls]
        wrong-sign = wrong_rnn:IMPLEMENTATION
        broken-import = wrong_rnn_missing_module:IMPLEMENTATION
        marks-import = marks_import:IMPLEMENTATION
        """),
    "marks_import.py": textwrap.dedent('''\
        """Leaves a file behind when imported: only sessions that ask for it may import it."""
        from pathlib import Path

        from torch import nn

        from harness import Implementation

        Path("marks-import.imported").write_text("")
        IMPLEMENTATION = Implementation(name="marks-import", factory=nn.RNN)
        '''),
    "wrong_rnn.py": textwrap.dedent('''\
        """The textbook loop with its sign flipped: wrong on every non-empty valid case,
        so even a three-example campaign finds it whatever the seed."""
        from harness import Implementation
        from impls.loop import LoopRNN


        class FlipsTheSign(LoopRNN):
            def activation(self, pre_activation):
                return -super().activation(pre_activation)


        IMPLEMENTATION = Implementation(name="wrong-sign", factory=FlipsTheSign)
        '''),
}

# An author's own test file: the fixture on an Implementation object, not a name.
ONE_LINE_TESTS = textwrap.dedent('''\
    import torch
    from harness import Implementation, Unavailable


    def needs_a_compiler(**constructor):
        raise Unavailable("needs a compiler this machine lacks")


    def test_torch_itself(rnn_harness_fuzz):
        result = rnn_harness_fuzz(Implementation(name="torch-itself", factory=torch.nn.RNN), max_examples=2)
        assert result.verdict == "pass" and result.examples >= 1


    def test_unavailable(rnn_harness_fuzz):
        rnn_harness_fuzz(Implementation(name="needs-compiler", factory=needs_a_compiler))
    ''')

PLAIN_TEST = textwrap.dedent('''\
    import sys


    def test_plain():
        heavy = [module for module in ("torch", "hypothesis", "harness.campaign") if module in sys.modules]
        assert heavy == [], f"a session without --rnn-impl imported {heavy}"
    ''')


@dataclasses.dataclass
class Run:
    directory: Path
    returncode: int
    output: str

    def outcomes(self) -> dict[str, tuple[str, str]]:
        """test name (with its parameter) -> (passed|failed|skipped, message)."""
        found = {}
        for case in ElementTree.parse(self.directory / "junit.xml").iter("testcase"):
            outcome, message = "passed", ""
            for child in case:
                if child.tag in ("failure", "error", "skipped"):
                    outcome = "skipped" if child.tag == "skipped" else "failed"
                    message = (child.get("message") or "") + "\n" + (child.text or "")
            found[case.get("name")] = (outcome, message)
        return found

    def report(self, name: str) -> dict:
        return json.loads((self.directory / name).read_text())


def start_pytest(directory: Path, files: dict[str, str], arguments: list[str]) -> tuple[Path, subprocess.Popen]:
    directory.mkdir()
    for relative, text in files.items():
        (directory / relative).parent.mkdir(parents=True, exist_ok=True)
        (directory / relative).write_text(text)
    environment = {**os.environ, "PYTHONPATH": str(directory)}
    environment.pop("HYPOTHESIS_PROFILE", None)
    # Several sessions and their workers share the cores: one thread each, so that
    # OpenMP threads waiting for a core do not turn milliseconds into the per-example timeout.
    environment.update(OMP_NUM_THREADS="1", RNN_HARNESS_WORKER_THREADS="1")
    command = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--junitxml=junit.xml", "-o", "junit_family=xunit2", *arguments]
    process = subprocess.Popen(command, cwd=directory, env=environment, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    return directory, process


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Run]:
    workspace = tmp_path_factory.mktemp("pytest-plugin")
    tiny = ["--rnn-max-examples", "3"]
    scenarios = {
        "serial": start_pytest(workspace / "serial", {**WRONG_DISTRIBUTION, "test_one_line.py": ONE_LINE_TESTS}, [
            "--pyargs", "harness.suite", "test_one_line.py",
            "--rnn-impl", "loop", "--rnn-impl", "wrong-sign", "--rnn-impl", "broken-import", "--rnn-impl", "no-such-impl",
            *tiny, "--rnn-seed", str(SEED), "--rnn-report", "report.json", "--rnn-repro-dir", "repros",
        ]),
        "xdist": start_pytest(workspace / "xdist", WRONG_DISTRIBUTION, [
            # No --rnn-seed: the controller draws one and hands it to both workers.
            "-n", "2", "--pyargs", "harness.suite", "--rnn-impl", "torch", "--rnn-impl", "torch-aten", *tiny, "--rnn-report", "report.json",
        ]),
        "without --rnn-impl": start_pytest(workspace / "plain", {"test_plain.py": PLAIN_TEST}, ["test_plain.py"]),
        "--rnn-family RNN": start_pytest(workspace / "family", WRONG_DISTRIBUTION, ["--pyargs", "harness.suite", "--rnn-family", "RNN", "--collect-only", "-q"]),
        "unknown family": start_pytest(workspace / "no-family", {}, ["--pyargs", "harness.suite", "--rnn-family", "NoSuchFamily"]),
        # This project's own tests with an outside plugin installed: they check the built-ins only.
        "project suite": start_pytest(workspace / "project", WRONG_DISTRIBUTION, [str(Path(__file__).parent / "test_fuzz_builtins.py"), "--collect-only", "-q"]),
        # What the campaign drew, as Hypothesis shows it for its own tests.
        "statistics": start_pytest(workspace / "statistics", {}, [
            "--pyargs", "harness.suite", "--rnn-impl", "torch-grucell", "--rnn-max-examples", "150", "--rnn-seed", str(SEED),
            "--hypothesis-show-statistics",
        ]),
        "misspelt profile": start_pytest(workspace / "profile", {"test_plain.py": PLAIN_TEST}, ["--rnn-profile", "nightly", "test_plain.py"]),
    }
    results = {}
    for scenario, (directory, process) in scenarios.items():
        output, _ = process.communicate(timeout=300)
        results[scenario] = Run(directory, process.returncode, output)
    return results


def test_plugin_is_registered_for_pytest_by_entry_point():
    from importlib.metadata import entry_points

    registered = {entry.name: entry.value for entry in entry_points(group="pytest11")}
    assert registered.get("rnn_harness") == "harness.pytest_plugin", f"pytest11 entry points: {registered}"


def test_importing_the_plugin_imports_neither_torch_nor_hypothesis():
    probe = "import sys, harness.pytest_plugin; print(sorted(m for m in ('torch', 'hypothesis', 'harness.campaign') if m in sys.modules))"
    completed = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert completed.stdout.strip() == "[]", f"importing the plugin imported {completed.stdout.strip()}{completed.stderr}"


def test_suite_test_ids_are_the_implementation_names(runs):
    outcomes = runs["serial"].outcomes()
    suite = sorted(name for name in outcomes if name.startswith("test_matches_torch_nn_rnn"))
    expected = sorted(f"test_matches_torch_nn_rnn[{name}]" for name in ("loop", "wrong-sign", "broken-import", "no-such-impl"))
    assert suite == expected, f"suite tests {suite}, expected one per --rnn-impl: {expected}\n{runs['serial'].output}"


def test_show_statistics_lists_each_dimension_value_the_campaign_drew(runs):
    run = runs["statistics"]
    assert run.returncode == 0, run.output
    assert "Hypothesis Statistics" in run.output
    statistics = run.output[run.output.index("Hypothesis Statistics"):]
    # The covering and sampled cases run as Hypothesis' reuse phase, then its own
    # generation (half of a random phase of 126), each case labelled with the value of
    # every dimension it held, and the guided search's best.
    assert "during reuse phase" in statistics and "during generate phase" in statistics, statistics
    for dimension in ("layout=", "batch=", "grad_mode=", "dtype=", "second_call=", "defect="):
        assert f"%, {dimension}" in statistics, statistics
    assert "label='worst |error| / bound'" in statistics, statistics


def test_a_correct_builtin_passes(runs):
    outcome, message = runs["serial"].outcomes()["test_matches_torch_nn_rnn[loop]"]
    assert outcome == "passed", f"loop should pass, but {outcome}:\n{message}"


def test_a_wrong_implementation_fails_with_what_differs_where_and_the_repro(runs):
    run = runs["serial"]
    outcome, message = run.outcomes()["test_matches_torch_nn_rnn[wrong-sign]"]
    assert outcome == "failed", f"wrong-sign flips the sign and should fail, but {outcome}:\n{run.output}"
    for expected in (
        "=== wrong-sign: FAIL (first failing example",  # the harness' own explanation, not a traceback
        "nn.RNN(input_size=",  # the minimal case, as a constructor call
        f"repro: python {Path('repros') / 'repro_wrong-sign.py'}",
        f"replay the campaign: python -m harness fuzz --impl wrong-sign --seed {SEED}",
    ):
        assert expected in message, f"the failure should say {expected!r}; it says:\n{message}"
    assert (run.directory / "repros" / "repro_wrong-sign.py").is_file(), "the repro script should be in --rnn-repro-dir"
    assert "Traceback" not in message and "def fuzz(" not in message, f"the message should not be a traceback of the plugin:\n{message}"


def test_an_implementation_that_fails_to_load_fails_with_its_import_error(runs):
    outcome, message = runs["serial"].outcomes()["test_matches_torch_nn_rnn[broken-import]"]
    assert outcome == "failed" and "importing wrong_rnn_missing_module:IMPLEMENTATION failed: ModuleNotFoundError" in message, (
        f"broken-import: {outcome}, message:\n{message}"
    )


def test_an_unknown_name_fails_with_the_registered_names(runs):
    outcome, message = runs["serial"].outcomes()["test_matches_torch_nn_rnn[no-such-impl]"]
    assert outcome == "failed", f"an unknown name should fail the test, but {outcome}"
    for expected in ("unknown implementation 'no-such-impl'", "loop", "wrong-sign", "python -m harness list"):
        assert expected in message, f"the failure should say {expected!r}; it says:\n{message}"


def test_the_fixture_fuzzes_an_implementation_object(runs):
    outcome, message = runs["serial"].outcomes()["test_torch_itself"]
    assert outcome == "passed", f"torch.nn.RNN against itself should pass, but {outcome}:\n{message}"


def test_an_unavailable_implementation_is_skipped_with_its_reason(runs):
    outcome, message = runs["serial"].outcomes()["test_unavailable"]
    assert outcome == "skipped" and "needs-compiler is unavailable here: needs a compiler this machine lacks" in message, (
        f"test_unavailable: {outcome}, message:\n{message}"
    )


def test_the_session_report_has_every_fuzzed_implementation(runs):
    run = runs["serial"]
    assert run.returncode == EXIT_TESTS_FAILED, f"exit {run.returncode}:\n{run.output}"
    document = run.report("report.json")
    verdicts = {name: entry["verdict"] for name, entry in document["implementations"].items()}
    assert verdicts == {"broken-import": "error", "loop": "pass", "needs-compiler": "skipped", "torch-itself": "pass", "wrong-sign": "fail"}, (
        f"report verdicts {verdicts}"
    )
    assert (document["tool"], document["seed"], document["profile"]) == ("rnn-harness", SEED, "ci"), f"report header {document}"
    assert document["implementations"]["loop"]["examples"] == 3, "--rnn-max-examples 3 should give loop 3 examples"
    assert document["implementations"]["torch-itself"]["examples"] == 2, "the fixture's max_examples=2 should override the option"
    assert "rnn-harness" in run.output and "report: " in run.output, f"the terminal summary should show the table and the report:\n{run.output}"


def test_xdist_workers_results_are_merged_into_one_report(runs):
    run = runs["xdist"]
    assert run.returncode == EXIT_OK, f"exit {run.returncode}:\n{run.output}"
    assert "2 workers" in run.output or "gw1" in run.output, f"the run should use two xdist workers:\n{run.output}"
    document = run.report("report.json")
    verdicts = {name: entry["verdict"] for name, entry in document["implementations"].items()}
    assert verdicts == {"torch": "pass", "torch-aten": "pass"}, f"merged report verdicts {verdicts}"
    seeds = {name: entry["seed"] for name, entry in document["implementations"].items()}
    assert set(seeds.values()) == {document["seed"]}, f"every worker should fuzz with the session's seed {document['seed']}: {seeds}"


def test_rnn_impl_imports_only_the_named_plugins(runs):
    for scenario in ("serial", "xdist"):
        leftover = runs[scenario].directory / "marks-import.imported"
        assert not leftover.exists(), f"[{scenario}] a plugin that was not named was imported"


def test_rnn_family_fuzzes_every_implementation_of_the_family(runs):
    run = runs["--rnn-family RNN"]
    assert run.returncode == EXIT_OK, run.output
    collected = sorted(re.findall(r"test_matches_torch_nn_rnn\[([^\]]+)\]", run.output))
    expected = sorted(["linear", "loop", "marks-import", "torch", "torch-aten", "torchscript", "vectorized", "wrong-sign"])
    assert [name for name in collected if name in expected] == expected, f"collected {collected}:\n{run.output}"


def test_an_unknown_family_is_a_usage_error_listing_the_families(runs):
    run = runs["unknown family"]
    assert run.returncode == EXIT_USAGE, f"exit {run.returncode}:\n{run.output}"
    assert "--rnn-family 'NoSuchFamily' is not a family; known families: RNN" in run.output, run.output


def test_the_projects_own_tests_fuzz_only_the_builtins(runs):
    run = runs["project suite"]
    assert run.returncode == EXIT_OK, run.output
    collected = sorted(re.findall(r"test_implementation_matches_torch_on_generated_cases\[([^\]]+)\]", run.output))
    builtins = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())["project"]["entry-points"]["rnn_harness.impls"]
    # compiled and exported (every family) declare minutes per example (example_timeout): fuzzed elsewhere
    expected = sorted(name for name in builtins if not name.startswith(("compiled", "exported")))
    assert collected == expected, f"collected {collected}:\n{run.output}"
    assert not (run.directory / "marks-import.imported").exists(), "the project's tests imported an outside plugin"


def test_results_travel_as_the_real_result_type():
    from harness.campaign_result import Failure, ImplementationResult
    from harness.cases import Case

    case = Case(layout="packed_unsorted", lengths=(2, 1), batch=2, seq_len=2)
    result = ImplementationResult.failed(
        "x", 7, "ci", examples=9, seconds=1.25, examples_to_failure=3, seconds_to_failure=0.5,
        failure=Failure("value", "h_n", "what differs", case, Path("repros/repro_x.py"), 1, ["the explainer broke"]),
        error_budget=4.0, known_failure_cases={"bfloat16 accumulates in float32": 5},
    )
    rebuilt = ImplementationResult.from_json("x", json.loads(json.dumps(result.to_json())))
    assert isinstance(rebuilt, ImplementationResult) and rebuilt.failure.case == case
    assert rebuilt.to_json() == result.to_json()


def test_a_session_without_rnn_options_is_untouched(runs):
    run = runs["without --rnn-impl"]
    assert run.returncode == EXIT_OK, f"exit {run.returncode}:\n{run.output}"
    assert not re.search(r"=+ rnn-harness =+", run.output), f"the plugin should print no summary:\n{run.output}"
    created = sorted(path.name for path in run.directory.iterdir() if path.name != ".benchmarks")  # pytest-benchmark's
    assert created == ["junit.xml", "test_plain.py"], f"the plugin should write nothing, but the directory holds {created}"


def test_a_misspelt_profile_is_a_usage_error(runs):
    run = runs["misspelt profile"]
    assert run.returncode == EXIT_USAGE, f"exit {run.returncode}, but should be {EXIT_USAGE}:\n{run.output}"
    assert "--rnn-profile 'nightly' is not a profile; expected one of ci, quick, default, long" in run.output, run.output
