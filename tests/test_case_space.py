"""One case space: each discrete dimension is one record (harness/dimensions.py), and
everything that reads the space reads those records: the covering rows
(harness/case_space.py), the strategies' draws (harness/strategies.py), the coverage
report (harness/coverage_report.py) and the invalid-input rules (`defects_for`).

A dimension made up here, in one record with one constraint, reaches all of them."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import HealthCheck, Phase, given, seed, settings

from harness import dimensions, strategies
from harness.campaign import fuzz_implementation
from harness.case_space import Space, space_for
from harness.covering_stage import CoveringDatabase
from harness.dimensions import Constraint, Dimension, classify, defects_for, dimensions_of
from harness.families import FAMILIES
from harness.registry import discover

SEED_PARITY = Dimension(
    "seed_parity", ("even", "odd"), lambda case: "odd" if case.seed % 2 else "even",
    constraints=(
        Constraint(
            "an odd seed passes a state (made up for this test)", frozenset({"seed_parity", "h0_given"}),
            lambda v: v("seed_parity") == "odd" and v("h0_given") is False,
            lambda v: {"h0_given": True},
        ),
    ),
    realize=lambda case, value: dataclasses.replace(case, seed=case.seed - case.seed % 2 + (value == "odd")),
)
"""A made-up dimension: whether a case's value seed is odd, and an odd one only with h_0 given."""


@pytest.fixture(scope="module")
def registry():
    return discover(builtin_only=True)


@pytest.fixture
def seed_parity(monkeypatch):
    """The made-up dimension, added to the case space by its one record."""
    monkeypatch.setattr(dimensions, "DIMENSIONS", dimensions.DIMENSIONS + (SEED_PARITY,))


def loop(family: str) -> str:
    """The built-in loop reference of a family."""
    return "loop" if family == "RNN" else f"loop-{family.lower()}"


def replayed(implementation, rows) -> list:
    """The cases the strategy draws from the rows' prefixes, as the covering stage hands them to Hypothesis."""
    space = space_for(implementation, ("cpu",))
    drawn = []

    @settings(database=CoveringDatabase(None, [space.prefix(row) for row in rows]), max_examples=len(rows) + 5,
              phases=[Phase.reuse], deadline=None, suppress_health_check=list(HealthCheck))
    @seed(3)
    @given(case=strategies.cases(implementation, devices=["cpu"]))
    def collect(case):
        drawn.append(case)

    collect()
    return drawn


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_a_space_holds_exactly_the_records_of_its_family(registry, family):
    space = Space(registry.implementation(loop(family)), ["cpu"])
    assert [axis.name for axis in space.all_dimensions] == [record.name for record in dimensions_of(FAMILIES[family])]
    assert space.constraints, "the constraints come from the records"


def test_a_made_up_dimension_flows_into_the_covering_rows(registry, seed_parity):
    space = space_for(registry.implementation("loop"), ("cpu",))
    assert "seed_parity" in space.prefix_names
    assert "seed_parity" in space.constrained and "h0_given" in space.constrained
    pairs = {pair for pair in space.feasible_pairs if "seed_parity" in (pair[0][0], pair[1][0])}
    assert pairs, "the made-up dimension pairs with the others"
    assert (("h0_given", False), ("seed_parity", "odd")) not in space.feasible_pairs, "its constraint rules a pair out"
    held = set().union(*(space.pairs_of(row) for row in space.covering_rows + space.invalid_rows))
    assert pairs <= held, f"covering rows miss {sorted(pairs - held)}"
    assert all(space.allowed(row) for row in space.covering_rows + space.invalid_rows)
    assert {row["seed_parity"] for row in space.covering_rows} == {"even", "odd"}


def test_a_made_up_dimension_flows_into_the_strategies_draws(registry, seed_parity):
    implementation = registry.implementation("loop-lstm")
    space = space_for(implementation, ("cpu",))
    rows = space.covering_rows + space.invalid_rows
    drawn = replayed(implementation, rows)
    for row in rows:
        assert any(all(space.profile_of(case).get(name) == value for name, value in row.items()) for case in drawn), f"row {row} was not drawn as named"
    odd = [case for case in drawn if case.seed % 2]
    assert odd and all(case.h0_given for case in odd), "an odd seed is drawn with h_0 given"
    # a random draw is repaired by the made-up constraint too
    assert all(space.repair({**row, "seed_parity": "odd", "h0_given": False})["h0_given"] for row in space.covering_rows)


def test_a_made_up_dimension_flows_into_the_coverage_report(registry, seed_parity):
    result = fuzz_implementation(
        registry.implementation("loop-grucell"), profile="ci", max_examples=40, seed=4242, isolate=False,
        database=None, repro_dir=None, devices=["cpu"],
    )
    assert result.verdict == "pass", result.reason
    counts = result.coverage["dimensions"]["seed_parity"]
    assert counts["even"] > 0 and counts["odd"] > 0
    assert result.coverage["pairs_covered"] == result.coverage["pairs_feasible"]
    assert not [row for row in result.coverage["uncovered"] if "seed_parity" in row]


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_the_invalid_input_rules_are_the_defect_records_constraints(registry, family):
    # defects_for and the space's invalid rows read the same rules: every defect a
    # drawn valid case admits is one the space lists for its family, and the case
    # holding it breaks none of the space's constraints.
    implementation = registry.implementation(loop(family))
    space = space_for(implementation, ("cpu",))
    for case in replayed(implementation, space.covering_rows):
        for defect in defects_for(case):
            assert defect in space.defects
            profile = {name: value for name, value in classify(dataclasses.replace(case, defect=defect)).items() if name in space.by_name}
            assert space.allowed(profile), f"{defect} on {case}: {list(space.violations(profile))}"
