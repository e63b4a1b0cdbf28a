"""The ``fuzz`` command's profiles and defaults, the checks its options get before any
campaign runs, and the options that make a command replay a campaign exactly."""

from __future__ import annotations

from pathlib import Path

from hypothesis import HealthCheck, Phase, settings

from harness import database as examples_database
from harness.implementation import DEFAULT_PROFILE_EXAMPLES
from harness.usage import UsageError

PROFILES = {
    # name: (max_examples, what it is for)
    "ci": (40, "the pytest run in CI: every built-in, a couple of minutes in all"),
    "quick": (100, "a smoke test while developing"),
    "default": (DEFAULT_PROFILE_EXAMPLES, "python -m harness fuzz: every built-in within two minutes on 2 cores"),
    "long": (5000, "campaigns: the zero-false-alarm run"),
}
DEFAULT_DATABASE = Path(".hypothesis") / "rnn-harness"
DEFAULT_REPRO_DIR = Path("rnn-harness-repros")
DEFAULT_TIMEOUT = 30.0
"""Seconds one example may take in the worker before the candidate counts as hung."""


def register_profiles() -> None:
    """Register our Hypothesis settings profiles (called by the CLI and conftest)."""
    for name, (max_examples, _) in PROFILES.items():
        settings.register_profile(
            f"rnn-harness-{name}",
            max_examples=max_examples,
            deadline=None,  # example cost varies 100x with the shape; time is not a bug
            # filter_too_much: an implementation's known failures may set many cases aside.
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
            print_blob=False,
            report_multiple_bugs=False,  # one minimal failure per implementation, then stop
            # No explain phase: it reruns variations of the minimal example after
            # shrinking, and the last failing call must be the minimal one we report.
            phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.target, Phase.shrink],
        )


def replay_arguments(*, max_examples=None, timeout=DEFAULT_TIMEOUT, isolate=True, devices=None, database=DEFAULT_DATABASE) -> tuple[str, ...]:
    """The ``fuzz`` options, beyond --profile and --seed, that make a command run the
    same campaign: each one that differs from its default."""
    words: list[str] = []
    if max_examples is not None:
        words += ["--max-examples", str(max_examples)]
    if timeout != DEFAULT_TIMEOUT:
        words += ["--timeout", f"{timeout:g}"]
    if not isolate:
        words.append("--no-isolation")
    for device in devices or ():
        words += ["--device", device]
    if database is not None and str(database) != str(DEFAULT_DATABASE):
        words += ["--database", str(database)]
    return tuple(words)


def check_arguments(args) -> examples_database.Location:
    """The checks a local and a cluster run share; returns the database location."""
    if args.max_examples is not None and args.max_examples < 1:
        raise UsageError("--max-examples must be at least 1")
    if not args.timeout > 0:
        raise UsageError("--timeout must be a positive number of seconds")
    if getattr(args, "time_budget", None) is not None and args.time_budget < 0:
        raise UsageError("--time-budget must be a number of seconds, or 0 for none")
    try:
        location = examples_database.parse(DEFAULT_DATABASE if args.database is None else args.database)
        examples_database.check_reachable(location)
    except examples_database.DatabaseError as error:
        raise UsageError(str(error)) from None
    return location
