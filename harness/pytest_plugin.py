"""pytest plugin: run rnn-harness's differential fuzzer inside any pytest session.

pytest loads it wherever rnn-harness is installed (entry point group ``pytest11``),
so importing it is cheap: it adds ``--rnn-*`` options, the `rnn_harness_fuzz`
fixture and a report writer, and imports torch and Hypothesis only when a test
fuzzes. ``python -m pytest --pyargs harness.suite --rnn-impl NAME`` runs the shipped
suite (`harness.suite`) against any registered implementation.

Each fuzzed implementation's result travels as a JSON user property on its test
report, which is how pytest-xdist carries data from workers to the controller; the
controller merges them into one ``--rnn-report`` file, in the format of
`harness.report.write_json`.
"""

from __future__ import annotations

import contextlib

import functools
import json
import os
import random
from pathlib import Path
from typing import Any

import pytest

RESULT_PROPERTY = "rnn_harness_result"
"""The user property holding one implementation's result as JSON."""

FALLBACK_PROFILE = "ci"
_SEED_KEY = "rnn_harness_seed"  # in xdist's workerinput: the controller's seed
_CAMPAIGN = pytest.StashKey["Campaign"]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup(
        "rnn-harness", "rnn-harness: differential fuzzing of re-implementations of torch's recurrent modules (RNN, LSTM, GRU and their cells)"
    )
    group.addoption(
        "--rnn-impl", action="append", default=[], metavar="NAME", dest="rnn_impl",
        help="implementation for harness.suite to fuzz (repeatable); `python -m harness list` shows the names",
    )
    group.addoption(
        "--rnn-family", default=None, metavar="FAMILY", dest="rnn_family",
        help="fuzz every installed implementation of this family (RNN, ...) in harness.suite; with --rnn-impl, checks that each is one",
    )
    group.addoption(
        "--rnn-profile", default=None, metavar="PROFILE", dest="rnn_profile",
        help="fuzzing profile: ci (40 examples), quick (100), default (300) or long (5000); "
        f"default: $HYPOTHESIS_PROFILE if it names one of these, else {FALLBACK_PROFILE}",
    )
    group.addoption(
        "--rnn-max-examples", type=int, default=None, metavar="N", dest="rnn_max_examples",
        help="override the profile's example count",
    )
    group.addoption(
        "--rnn-seed", type=int, default=None, metavar="S", dest="rnn_seed",
        help="seed for every implementation fuzzed in this session (default: random, shown in the report)",
    )
    group.addoption(
        "--rnn-report", type=Path, default=None, metavar="PATH", dest="rnn_report",
        help="write one JSON report of every implementation fuzzed in this session (merged across xdist workers)",
    )
    group.addoption(
        "--rnn-repro-dir", type=Path, default=None, metavar="DIR", dest="rnn_repro_dir",
        help="where repro scripts for failures go (default: rnn-harness-repros, as for python -m harness fuzz)",
    )
    group.addoption(
        "--rnn-database", default=None, metavar="URL", dest="rnn_database",
        help="where failures are kept and replayed first: a directory path, or redis://HOST:PORT/DB "
        "(default: .hypothesis/rnn-harness, as for python -m harness fuzz --database)",
    )


def chosen_profile(config: pytest.Config) -> str:
    """The session's fuzzing profile: --rnn-profile, else $HYPOTHESIS_PROFILE when it
    names one of ours, else ci."""
    from harness.campaign import PROFILES

    chosen = config.getoption("rnn_profile")
    if chosen is not None:
        if chosen not in PROFILES:
            raise pytest.UsageError(f"--rnn-profile {chosen!r} is not a profile; expected one of {', '.join(PROFILES)}")
        return chosen
    from_environment = os.environ.get("HYPOTHESIS_PROFILE")
    return from_environment if from_environment in PROFILES else FALLBACK_PROFILE


def pytest_configure(config: pytest.Config) -> None:
    if config.getoption("rnn_profile") is not None:
        chosen_profile(config)  # a misspelt profile is a usage error before any test runs
    max_examples = config.getoption("rnn_max_examples")
    if max_examples is not None and max_examples < 1:
        raise pytest.UsageError(f"--rnn-max-examples must be at least 1, got {max_examples}")
    if config.getoption("rnn_database") is not None:
        from harness import database

        try:
            database.check_reachable(database.parse(config.getoption("rnn_database")))
        except database.DatabaseError as error:
            raise pytest.UsageError(f"--rnn-database: {error}") from None
    if config.getoption("rnn_family") is not None:
        _check_family(config.getoption("rnn_family"), config.getoption("rnn_impl"))
    workerinput = getattr(config, "workerinput", None)
    if workerinput is not None and _SEED_KEY in workerinput:
        seed = workerinput[_SEED_KEY]  # one seed for the whole session, across workers
    else:
        seed = config.getoption("rnn_seed")
        seed = random.randrange(2**31) if seed is None else seed
    campaign = Campaign(config, seed)
    config.stash[_CAMPAIGN] = campaign
    config.pluginmanager.register(campaign, "rnn-harness-campaign")


def _check_family(family: str, names: list[str]) -> None:
    """--rnn-family names a known family, and every --rnn-impl is of it."""
    from harness.families import FAMILY_NAMES

    if family not in FAMILY_NAMES:
        raise pytest.UsageError(f"--rnn-family {family!r} is not a family; known families: {', '.join(FAMILY_NAMES)}")
    for name in dict.fromkeys(names):
        implementation = _resolve(name, fail=lambda message: None)
        actual = getattr(implementation, "family", family)  # unknown or broken: its own test says why
        if actual != family:
            raise pytest.UsageError(
                f"--rnn-impl {name} is of family {actual}, not {family}; drop --rnn-family {family} "
                "or pick an implementation of that family (`python -m harness list` shows each one's family)"
            )


def implementations_of_family(family: str) -> list[str]:
    """Every installed implementation of one family (imports every plugin to read it)."""
    registry = _registry_of_everything()
    return [name for name in registry.names if registry.implementation(name).family == family]


class Campaign:
    """The session's settings and the results recorded so far (on the controller:
    from every worker)."""

    def __init__(self, config: pytest.Config, seed: int) -> None:
        self.config = config
        self.seed = seed
        self.results: dict[str, Any] = {}  # name -> ImplementationResult
        self.devices: list[str] = []
        self.report_path: Path | None = None

    def fuzz_settings(self) -> dict[str, Any]:
        """Keyword arguments for `fuzz_implementation` from the command line."""
        settings: dict[str, Any] = {"profile": chosen_profile(self.config), "seed": self.seed}
        if self.config.getoption("rnn_max_examples") is not None:
            settings["max_examples"] = self.config.getoption("rnn_max_examples")
        if self.config.getoption("rnn_repro_dir") is not None:
            settings["repro_dir"] = self.config.getoption("rnn_repro_dir")
        if self.config.getoption("rnn_database") is not None:
            settings["database"] = self.config.getoption("rnn_database")
        return settings

    # -- hooks ---------------------------------------------------------------------

    @pytest.hookimpl(optionalhook=True)
    def pytest_configure_node(self, node) -> None:
        """pytest-xdist, on the controller: hand each worker the session's seed."""
        node.workerinput[_SEED_KEY] = self.seed

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        for key, value in report.user_properties:
            if key == RESULT_PROPERTY:
                from harness.campaign_result import ImplementationResult

                recorded = json.loads(value)
                self.results[recorded["name"]] = ImplementationResult.from_json(recorded["name"], recorded["result"])
                self.devices += [device for device in recorded["devices"] if device not in self.devices]

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        path = self.config.getoption("rnn_report")
        if path is None or hasattr(self.config, "workerinput"):
            return
        from harness import report

        self.report_path = self.config.invocation_params.dir / path
        results = [self.results[name] for name in sorted(self.results)]
        devices = self.devices or ["cpu"]
        report.write_json(self.report_path, results, seed=self.seed, profile=chosen_profile(self.config), devices=devices)

    def pytest_terminal_summary(self, terminalreporter) -> None:
        if not self.results and self.report_path is None:
            return
        from harness import report

        terminalreporter.section("rnn-harness")
        if self.results:
            terminalreporter.write_line(report.summary_table([self.results[name] for name in sorted(self.results)]))
        if self.report_path is not None:
            terminalreporter.write_line(f"report: {self.report_path}")


# -- the fixture -----------------------------------------------------------------------


@functools.cache
def _registry_of_everything():
    from harness.registry import discover

    return discover()


@functools.cache
def _registry_of(name: str):
    """Only this plugin is imported: another plugin's import-time code never runs here."""
    from harness.registry import discover

    return discover([name])


def _resolve(name: str, *, fail=None):
    """The registered implementation called `name`, or a test failure saying why not;
    a plugin that fails to load comes back as its `BrokenPlugin`."""
    from harness.registry import DuplicateImplementationError, UnknownImplementationError

    fail = fail or (lambda message: pytest.fail(message, pytrace=False))
    try:
        registry = _registry_of(name)
    except DuplicateImplementationError as error:
        return fail(str(error))
    except UnknownImplementationError as error:
        return fail(f"{error} Is the package that registers it installed in this environment?")
    if name in registry.loaded:
        return registry.implementation(name)
    return next(broken for broken in registry.broken if broken.name == name)


@pytest.fixture
def rnn_harness_fuzz(request: pytest.FixtureRequest, record_property):
    """``fuzz(name_or_implementation, **options)``: fuzz one implementation against
    torch's module of its family, record its result for ``--rnn-report``, and fail the test with the
    explanation (what differs, where, the repro script) if it differs from torch;
    skip the test if the implementation is unavailable here. Returns the
    `ImplementationResult`. ``options`` override the command line's settings; they
    are `harness.campaign.fuzz_implementation`'s keywords (profile, max_examples,
    seed, repro_dir, database, devices).
    """
    campaign: Campaign = request.config.stash[_CAMPAIGN]

    def fuzz(implementation, **options):
        from harness import cases, report
        from harness.campaign import fuzz_implementation
        from harness.campaign_result import ImplementationResult
        from harness.registry import BrokenPlugin

        settings = {**campaign.fuzz_settings(), **options}
        if isinstance(implementation, str):
            implementation = _resolve(implementation)
        if isinstance(implementation, BrokenPlugin):
            result = ImplementationResult.error(implementation.name, settings["seed"], settings["profile"], implementation.error)
        else:
            with _statistics(request):
                result = fuzz_implementation(implementation, **settings)
        devices = settings.get("devices") or cases.available_devices()
        record_property(RESULT_PROPERTY, json.dumps({"name": result.name, "devices": devices, "result": result.to_json()}))
        if result.verdict == "skipped":
            pytest.skip(f"{result.name} is unavailable here: {result.reason}")
        if result.verdict != "pass":
            pytest.fail(report.failure_text(result), pytrace=False)
        return result

    return fuzz


@contextlib.contextmanager
def _statistics(request: pytest.FixtureRequest):
    """With ``--hypothesis-show-statistics``, the campaign's statistics (phases, and
    one event per dimension value each case held) under the test that ran it, as
    Hypothesis shows them for its own @given tests: the campaign's @given runs inside
    this fixture, where Hypothesis' plugin does not collect them itself."""
    try:
        show = request.config.getoption("--hypothesis-show-statistics")
    except ValueError:  # Hypothesis' pytest plugin is not loaded
        show = False
    if not show:
        yield
        return
    from hypothesis.statistics import collector, describe_statistics

    def note(statistics) -> None:
        statistics["nodeid"] = request.node.nodeid
        request.node.hypothesis_statistics = describe_statistics(statistics)

    with collector.with_value(note):
        yield
