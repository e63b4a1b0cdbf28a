"""What an implementation declares about itself is respected and reported, never hidden.

Capability limits keep cases out of the campaign; an error budget widens the bound
and marks the result approximate; known failures set matching cases aside with
their reason.
"""

from __future__ import annotations

import dataclasses

import pytest
import torch

from harness import Implementation, KnownFailure
from harness.cases import Case
from harness.campaign import fuzz_implementation
from harness.oracle import Discrepancy, check
from harness.tolerance import DEFAULT_MODEL
from mutants import MUTANTS


def mutant(name: str) -> Implementation:
    return next(entry for entry in MUTANTS if entry.name == name)


def test_capability_limit_keeps_the_failing_configuration_out():
    # relu is this mutant's only defect; declaring tanh-only makes it a correct implementation.
    declared = dataclasses.replace(mutant("mutant-relu-ignored"), nonlinearities={"tanh"})
    result = fuzz_implementation(declared, profile="ci", seed=0, repro_dir=None, database_dir=None)
    assert result.verdict == "pass", result.failure and result.failure.summary


def test_known_failure_sets_matching_cases_aside_and_reports_them():
    reason = "relu not implemented yet (issue #12)"
    declared = dataclasses.replace(
        mutant("mutant-relu-ignored"),
        known_failures=(KnownFailure(when=lambda case: case.nonlinearity == "relu", reason=reason),),
    )
    result = fuzz_implementation(declared, profile="ci", seed=0, repro_dir=None, database_dir=None)
    assert result.verdict == "pass"
    assert result.known_failure_cases.get(reason, 0) > 0
    assert result.to_json()["known_failure_cases"] == result.known_failure_cases
    assert declared.limits()["known_failures"] == "1"


def test_error_budget_widens_the_bound_and_is_reported():
    tame = Case(input_size=3, hidden_size=5, seq_len=4, batch=2, dtype="float64", backward=False)
    exact = mutant("mutant-float32-inside")
    with pytest.raises(Discrepancy):
        check(exact, tame)
    # float32 arithmetic is ~2**29 float64 ulps; a budget that large accepts it.
    approximate = dataclasses.replace(exact, error_budget=2.0**30)
    check(approximate, tame, DEFAULT_MODEL.scaled(approximate.error_budget))
    assert approximate.limits()["approximate"].startswith("bound x")
    result = fuzz_implementation(approximate, profile="ci", max_examples=5, seed=0, repro_dir=None, database_dir=None)
    assert result.to_json()["approximate"] is True


def test_error_budget_below_one_is_rejected():
    with pytest.raises(ValueError, match="error_budget must be at least 1"):
        Implementation(name="x", factory=torch.nn.RNN, error_budget=0.5)


# -- a known failure of one check only -----------------------------------------------------

from impls.loop import LoopRNN  # noqa: E402


class AliasesHN(LoopRNN):
    """Correct values, but for one unidirectional layer on padded time-major input
    h_n is a view of output's last step (what torch.compile returns)."""

    shift = 0.0

    def forward(self, input, hx=None):
        output, h_n = super().forward(input, hx)
        output = output + self.shift if self.shift else output
        if self.num_layers == 1 and not self.bidirectional and isinstance(input, torch.Tensor) and input.dim() == 3 and not self.batch_first and output.shape[0] > 0:
            h_n = output[-1:]
        return output, h_n


class AliasesHNAndShiftsOutput(AliasesHN):
    shift = 1e-2  # and every output off by 0.01: a value finding no declaration covers


ONE_LAYER = lambda case: case.num_layers == 1 and not case.bidirectional  # noqa: E731
ALIASING_ONLY = KnownFailure(when=ONE_LAYER, reason="h_n is a view of output", kinds={"aliasing"})


def test_a_check_level_known_failure_keeps_every_other_check():
    undeclared = Implementation(name="aliases-h-n", factory=AliasesHN)
    result = fuzz_implementation(undeclared, profile="ci", seed=0, repro_dir=None, database_dir=None)
    assert result.verdict == "fail" and result.failure.kind == "aliasing", "undeclared, the aliasing is a finding"

    declared = dataclasses.replace(undeclared, known_failures=(ALIASING_ONLY,))
    result = fuzz_implementation(declared, profile="ci", seed=0, repro_dir=None, database_dir=None)
    assert result.verdict == "pass", result.failure and result.failure.summary
    assert result.known_failure_cases.get("[aliasing check only] h_n is a view of output", 0) > 0, result.known_failure_cases

    wrong = Implementation(name="aliases-h-n-and-shifts", factory=AliasesHNAndShiftsOutput, known_failures=(ALIASING_ONLY,))
    result = fuzz_implementation(wrong, profile="ci", seed=0, repro_dir=None, database_dir=None)
    assert result.verdict == "fail" and result.failure.kind == "value", "the declared cases are still checked for values"
    assert ONE_LAYER(result.failure.case), "and the minimal case may be one the declaration covers"


def test_the_simplest_case_still_runs_under_a_check_level_known_failure():
    case = Case()  # one layer, one direction: what a slow path's single example should be
    assert ONE_LAYER(case)
    check(Implementation(name="aliases-h-n", factory=AliasesHN), dataclasses.replace(case, seq_len=3), DEFAULT_MODEL, waive=frozenset({"aliasing"}))
    with pytest.raises(Discrepancy, match="share memory"):
        check(Implementation(name="aliases-h-n", factory=AliasesHN), dataclasses.replace(case, seq_len=3), DEFAULT_MODEL)


@pytest.mark.parametrize("kinds", [set(), {"value"}, {"aliasing", "gradient"}])
def test_only_separate_checks_can_be_set_aside_alone(kinds):
    with pytest.raises(ValueError, match="aliasing"):
        KnownFailure(when=ONE_LAYER, reason="r", kinds=kinds)
