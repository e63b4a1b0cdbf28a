"""Coverage is what was judged: a case that a declaration sets aside (a `KnownFailure`
with ``kinds=None``) checks nothing, so it covers no pair and no invalid input. The
covering phase routes its rows around such cases, so every pair that some judgeable
case can hold is judged, and the report lists apart the pairs only set-aside cases
can hold.

The routing is harness/routing.py; the account is harness/coverage_report.py."""

from __future__ import annotations

import pytest

from harness import Implementation, KnownFailure, strategies
from harness.campaign import fuzz_implementation
from harness.case_space import space_for
from harness.coverage_report import Coverage, merge
from harness.covering_stage import plan
from harness.declarations import set_aside_declarations
from harness.registry import discover
from harness.routing import route
from impls.loop import LoopGRUCell

TRAINING_UNSUPPORTED = KnownFailure(when=lambda case: case.training, reason="training mode is not implemented")
"""Sets aside every case in training mode: half the case space."""

TORCH_CRASHES_ON = ["h0_wrong_rank", "unbatched", True]
SEEDS = (0, 1, 949701652)
"""In a worker (the default): torch itself crashes on some invalid cell inputs (docs/found-bugs.md)."""


class WrongOnOneBiasFreeRow(LoopGRUCell):
    """A GRUCell that doubles its result for a single row without bias: a bug on one
    pair of values, batch=one x bias=no."""

    def forward(self, input, hx=None):
        result = super().forward(input, hx)
        one_row = input.dim() == 1 or input.shape[0] == 1
        return result * 2 if one_row and not self.bias else result


@pytest.fixture(scope="module")
def registry():
    return discover(builtin_only=True)


def plugin(factory=LoopGRUCell, known_failures=(TRAINING_UNSUPPORTED,)) -> Implementation:
    return Implementation(name=f"{factory.__name__.lower()}-no-training", factory=factory, family="GRUCell", known_failures=known_failures)


def labelled(pair) -> list:
    (a, x), (b, y) = pair
    label = lambda value: "yes" if value is True else "no" if value is False else str(value)  # noqa: E731
    return [a, label(x), b, label(y)]


def test_a_set_aside_case_is_counted_as_drawn_and_covers_nothing():
    space = space_for(plugin(), ("cpu",))
    account = Coverage(space)
    valid, invalid = space.covering_rows[0], space.invalid_rows[0]
    account.record(valid, set_aside=True)
    account.record(invalid, set_aside=True)
    document = account.to_json()
    assert document["pairs_covered"] == 0 and document["invalid_inputs_covered"] == 0
    assert document["set_aside_cases"] == 2 and sum(document["dimensions"]["bias"].values()) == 2
    account.record(valid)
    assert account.to_json()["pairs_covered"] == len(space.pairs_of(valid) & space.feasible_pairs)


def test_the_covering_rows_route_around_whole_case_known_failures():
    implementation = plugin()
    space = space_for(implementation, ("cpu",))
    routing = route(space, strategies.cases(implementation, devices=["cpu"]), set_aside_declarations(implementation))
    assert not any(row["training"] for row in routing.covering_rows + routing.invalid_rows)
    # What training=yes pairs with is reachable only through set-aside cases; everything else is held.
    assert routing.pairs_set_aside_only == {pair for pair in space.feasible_pairs if ("training", True) in pair}
    held = set().union(*(space.pairs_of(row) for row in routing.covering_rows + routing.invalid_rows))
    assert space.feasible_pairs - routing.pairs_set_aside_only <= held
    assert routing.triples_set_aside_only == frozenset()


def test_a_declaration_that_only_narrows_a_check_routes_nothing():
    aliasing = KnownFailure(when=lambda case: case.training, reason="returns h_n as a view", kinds={"aliasing"})
    assert set_aside_declarations(plugin(known_failures=(aliasing,))) == set_aside_declarations(plugin(known_failures=())), (
        "only torch's own undefined behaviour, as for any implementation of the family"
    )


@pytest.mark.parametrize("campaign_seed", SEEDS)
def test_known_failures_over_half_the_space_leave_every_other_pair_judged(campaign_seed):
    implementation = plugin()
    result = fuzz_implementation(implementation, profile="default", seed=campaign_seed, repro_dir=None, database=None)
    assert result.verdict == "pass", result.reason
    coverage = result.coverage
    space = space_for(implementation, ("cpu",))
    aside = [labelled(pair) for pair in space.feasible_pairs if ("training", True) in pair]
    assert sorted(coverage["pairs_set_aside_only"]) == sorted(aside)
    assert coverage["pairs_covered"] == coverage["pairs_feasible"] - len(aside) and coverage["uncovered"] == []
    # Where torch itself crashed (its undefined behaviour on a 1-D input with a 2-D
    # state, docs/found-bugs.md), the case was set aside as it ran and judged nothing.
    assert coverage["invalid_inputs_uncovered"] in ([], [TORCH_CRASHES_ON])
    assert coverage["set_aside_cases"] > 0, "the random phase still draws training cases, and sets them aside"


@pytest.mark.parametrize("campaign_seed", SEEDS)
def test_a_bug_on_a_pair_the_plain_rows_reach_only_through_set_aside_cases_is_found_under_every_seed(campaign_seed):
    """The plain covering rows hold batch=one x bias=no only in training mode, which
    the plugin declares unsupported: routed, a judged row holds it."""
    implementation = plugin(WrongOnOneBiasFreeRow)
    space = space_for(implementation, ("cpu",))
    plain = [row for row in space.covering_rows if row["batch"] == "one" and row["bias"] is False]
    assert plain and all(row["training"] for row in plain), "the premise: only set-aside rows hold the pair"
    result = fuzz_implementation(implementation, profile="default", seed=campaign_seed, repro_dir=None, database=None)
    assert result.verdict == "fail", f"passed under seed {campaign_seed}: {result.coverage}"
    the_plan = plan(space, result.example_budget, "default", routing=lambda: route(space, strategies.cases(implementation, devices=["cpu"]), set_aside_declarations(implementation)))
    # Unrouted, the covering rows holding the pair were set aside, and the random phase
    # found it (seeds 0-4: at the 44th to 51st judged example, after the invalid inputs).
    assert result.examples_to_failure <= the_plan.covering, "found by the covering rows"
    assert not result.failure.case.training and not result.failure.case.bias


def test_every_builtin_with_whole_case_known_failures_runs_its_routed_covering_set_in_the_default_budget(registry):
    for name in registry.names:
        implementation = registry.implementation(name)
        declarations = set_aside_declarations(implementation)
        if not declarations or implementation.example_timeout is not None:
            continue  # nothing routed; or a compile or export path, whose covering set runs under --profile long
        space = space_for(implementation, ("cpu",))
        routed = lambda: route(space, strategies.cases(implementation, devices=["cpu"]), declarations)  # noqa: E731
        the_plan = plan(space, implementation.example_budget(300), "default", routing=routed)
        assert not the_plan.deferred, f"{name}: {the_plan.deferred}"


def test_a_case_whose_sizes_a_declaration_sets_aside_is_drawn_again_in_a_covering_row():
    """A declaration may read what a row does not fix (here the hidden size): the
    covering row's sizes are drawn again, so its pairs are still judged."""
    tiny = KnownFailure(when=lambda case: case.hidden_size <= 2, reason="hidden sizes of 1 and 2 are not implemented")
    result = fuzz_implementation(plugin(known_failures=(tiny,)), profile="default", seed=5, repro_dir=None, database=None)
    assert result.verdict == "pass", result.reason
    coverage = result.coverage
    assert coverage["pairs_covered"] == coverage["pairs_feasible"] and coverage["pairs_set_aside_only"] == []
    assert coverage["invalid_inputs_uncovered"] in ([], [TORCH_CRASHES_ON])


def test_a_predicate_that_raises_while_the_rows_are_routed_is_the_plugins_error():
    broken = KnownFailure(when=lambda case: case.no_such_field, reason="a typo")
    result = fuzz_implementation(plugin(known_failures=(broken,)), profile="default", seed=0, repro_dir=None, database=None)
    assert result.verdict == "error"
    assert "known_failures[0] (reason 'a typo'): its `when` predicate raised" in result.reason and "no_such_field" in result.reason


def test_merged_shards_cover_a_pair_any_shard_judged_and_keep_what_only_set_aside_cases_reach():
    base = {
        "pairs_feasible": 3, "dimensions": {"bias": {"yes": 1}}, "covering_cases": 0, "invalid_input_cases": 0, "sampled_cases": 0,
        "random_cases": 1, "set_aside_cases": 0, "invalid_inputs_feasible": 2, "deferred": "",
    }
    a, b, c = ["bias", "no", "batch", "one"], ["bias", "yes", "batch", "one"], ["training", "yes", "batch", "one"]
    t1, t2 = ["wrong_width", "batched", "no"], ["input_0d", "batched", "no"]
    covering_shard = {**base, "uncovered": [a], "pairs_set_aside_only": [c], "invalid_inputs_uncovered": [], "invalid_inputs_set_aside_only": [t2]}
    random_shard = {**base, "uncovered": [b, c], "invalid_inputs_uncovered": [t1, t2]}  # no covering phase: no routing
    merged = merge([covering_shard, random_shard])
    assert merged["pairs_covered"] == 2 and merged["uncovered"] == [] and merged["pairs_set_aside_only"] == [c]
    assert merged["invalid_inputs_covered"] == 1 and merged["invalid_inputs_uncovered"] == [] and merged["invalid_inputs_set_aside_only"] == [t2]
    assert merged["dimensions"]["bias"]["yes"] == 2
