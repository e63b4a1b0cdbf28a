"""Hypothesis profiles for the test run: `ci` (the default here) keeps the suite
fast; set HYPOTHESIS_PROFILE=default or long (or pass --rnn-profile) for campaigns."""

import os

import pytest

from harness.campaign import PROFILES, register_profiles


def pytest_addoption(parser):
    parser.addoption(
        "--rnn-profile",
        choices=list(PROFILES),
        default=None,
        help="rnn-harness fuzzing profile for tests/test_fuzz_builtins.py (default: $HYPOTHESIS_PROFILE or ci)",
    )


def pytest_configure(config):
    register_profiles()


@pytest.fixture(scope="session")
def fuzz_profile(request) -> str:
    chosen = request.config.getoption("--rnn-profile") or os.environ.get("HYPOTHESIS_PROFILE", "ci")
    return chosen if chosen in PROFILES else "ci"
