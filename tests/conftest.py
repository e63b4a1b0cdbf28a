"""Hypothesis profiles for the test run. The fuzzing profile is the rnn-harness pytest
plugin's (harness/pytest_plugin.py): --rnn-profile, else $HYPOTHESIS_PROFILE when it
names one of ours, else ci, which keeps the suite fast; pass --rnn-profile default or
long for campaigns."""

import pytest

from harness.campaign import register_profiles
from harness.pytest_plugin import chosen_profile


def pytest_configure(config):
    register_profiles()


@pytest.fixture(scope="session")
def fuzz_profile(request) -> str:
    return chosen_profile(request.config)
