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
