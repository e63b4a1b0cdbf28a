"""Every built-in implementation survives the differential fuzzer.

Parametrised by implementation name, so `pytest -k vectorized` fuzzes one and
pytest-xdist spreads them over cores. The profile comes from --rnn-profile or
$HYPOTHESIS_PROFILE (ci by default: a few dozen examples each). Only the built-ins:
plugins installed beside rnn-harness are fuzzed by the shipped suite,
``python -m pytest --pyargs harness.suite --rnn-impl NAME``, not by this project's tests.
"""

import pytest

from harness.campaign import fuzz_implementation
from support import builtin_names, registry

# Paths that compile or export per shape (an example_timeout declared: minutes per
# example) are fuzzed with few shape-stable examples in test_execution_paths.py and
# in long campaigns (docs/found-bugs.md), not here.
NAMES = [name for name in builtin_names(None, execution_paths=True) if registry().implementation(name).example_timeout is None]


@pytest.mark.parametrize("name", NAMES)
def test_implementation_matches_torch_on_generated_cases(name, fuzz_profile, tmp_path):
    result = fuzz_implementation(registry().implementation(name), profile=fuzz_profile, seed=0, repro_dir=tmp_path)
    if result.verdict == "skipped":
        pytest.skip(f"{name} is unavailable here: {result.reason}")
    explanation = result.failure.summary if result.failure is not None else result.reason
    assert result.verdict == "pass", f"{name}: {result.verdict} after {result.examples} examples\n{explanation}"
    assert result.examples >= 1
