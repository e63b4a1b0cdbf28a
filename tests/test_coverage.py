"""Coverage you can prove: every campaign starts with cases that hold every feasible
pair of values of the case space's discrete dimensions, and every applicable invalid
input; then Hypothesis explores at random. The report says what was covered.

The dimensions and their constraints are records in harness/dimensions.py; the space
and its rows are harness/case_space.py; the campaign's covering phase is
harness/covering_stage.py and its account harness/coverage_report.py."""

from __future__ import annotations

import itertools

import pytest
import torch
from hypothesis import HealthCheck, Phase, given, seed, settings
from torch.nn.utils.rnn import PackedSequence

from harness import Implementation, routing, strategies
from harness.declarations import set_aside_declarations
from harness.campaign import fuzz_implementation
from harness.case_space import Space, space_for
from harness.covering_stage import CoveringDatabase, plan
from harness.dimensions import defects_for
from harness.registry import discover
from impls import BUILTIN_EXAMPLES
from impls.loop import LoopGRUCell, LoopLSTM, LoopRNN

FAMILIES = ("RNN", "LSTM", "GRU", "RNNCell", "LSTMCell", "GRUCell")
LOOPS = {"RNN": "loop", "LSTM": "loop-lstm", "GRU": "loop-gru", "RNNCell": "loop-rnncell", "LSTMCell": "loop-lstmcell", "GRUCell": "loop-grucell"}


@pytest.fixture(scope="module")
def registry():
    return discover(builtin_only=True)


def narrow(family: str) -> Implementation:
    """An implementation that declares most of the space out of scope."""
    return Implementation(
        name=f"narrow-{family.lower()}", factory=LoopRNN, family=family, dtypes={torch.float32}, backward=False,
        packed=False, bidirectional=False, max_layers=1, projections=False, nonlinearities={"tanh"},
    )


def spaces(registry):
    yield from ((f"{name}", space_for(registry.implementation(name), ("cpu",))) for name in LOOPS.values())
    yield from ((f"narrow-{family}", Space(narrow(family), ["cpu"])) for family in FAMILIES)


def replayed_cases(implementation: Implementation, rows, space_seed: int = 5) -> list:
    """The cases Hypothesis draws when handed the rows' prefixes as stored examples,
    as a campaign's covering phase does."""
    space = space_for(implementation, ("cpu",))
    drawn = []

    @settings(database=CoveringDatabase(None, [space.prefix(row) for row in rows]), max_examples=len(rows) + 5,
              phases=[Phase.reuse], deadline=None, suppress_health_check=list(HealthCheck))
    @seed(space_seed)
    @given(case=strategies.cases(implementation, devices=["cpu"]))
    def collect(case):
        drawn.append(case)

    collect()
    return drawn


def holds(profile: dict, row: dict) -> bool:
    return all(profile.get(name) == value for name, value in row.items())


@pytest.mark.parametrize("family", FAMILIES)
def test_every_covering_row_is_drawn_as_exactly_the_profile_it_names(registry, family):
    for implementation in (registry.implementation(LOOPS[family]), narrow(family)):
        space = space_for(implementation, ("cpu",))
        rows = space.covering_rows + space.invalid_rows
        profiles = [space.profile_of(case) for case in replayed_cases(implementation, rows)]
        missing = [row for row in rows if not any(holds(profile, row) for profile in profiles)]
        assert not missing, f"{implementation.name}: {len(missing)} of {len(rows)} rows were not drawn as named, e.g. {missing[0]}"


@pytest.mark.parametrize("family", FAMILIES)
def test_covering_rows_are_valid_and_together_hold_every_feasible_pair(registry, family):
    for implementation in (registry.implementation(LOOPS[family]), narrow(family)):
        space = space_for(implementation, ("cpu",))
        held = set()
        for row in space.covering_rows:
            assert row.get("defect") is None, f"a pairwise row is invalid: {row}"
            assert space.allowed(row), f"{row} breaks {list(space.violations(row))}"
            held |= space.pairs_of(row)
        for row in space.invalid_rows:
            assert space.allowed(row), f"{row} breaks {list(space.violations(row))}"
            held |= space.pairs_of(row)
        assert space.feasible_pairs <= held, sorted(space.feasible_pairs - held)[:5]


def test_the_rows_are_few_next_to_the_pairs_they_cover(registry):
    # No fewer than the product of the two largest domains can cover the pairs (5
    # batch classes x 4 layouts, dtypes, ...): 20 for a layer, 20 for a cell.
    # Constrained IPOG gets within 1.3 times that; random draws need hundreds.
    for name, most in (("loop", 26), ("loop-lstm", 26), ("loop-rnncell", 24)):
        space = space_for(registry.implementation(name), ("cpu",))
        assert len(space.feasible_pairs) > 700
        assert len(space.covering_rows) <= most, f"{name}: {len(space.covering_rows)} rows"


@pytest.mark.parametrize("family", FAMILIES)
def test_random_draws_hold_only_feasible_pairs(registry, family):
    """The feasibility computation is sound: no case the strategy can draw holds a
    pair it calls infeasible (else the report could never reach 100%)."""
    implementation = registry.implementation(LOOPS[family])
    space = space_for(implementation, ("cpu",))

    @settings(max_examples=150, database=None, deadline=None, suppress_health_check=list(HealthCheck), phases=[Phase.generate])
    @seed(11)
    @given(case=strategies.cases(implementation, devices=["cpu"]))
    def check(case):
        profile = space.profile_of(case)
        assert space.allowed(profile), f"{case.describe()} breaks {list(space.violations(profile))}"
        assert space.pairs_of(profile) <= space.feasible_pairs, sorted(space.pairs_of(profile) - space.feasible_pairs)
        if case.defect is not None:
            assert case.defect in defects_for(case.__class__(**{**case.__dict__, "defect": None}))

    check()


def test_infeasible_pairs_are_the_ones_no_valid_case_holds(registry):
    space = space_for(registry.implementation("loop"), ("cpu",))

    def feasible(a, b) -> bool:
        return (a, b) in space.feasible_pairs or (b, a) in space.feasible_pairs

    assert feasible(("layout", "unbatched"), ("batch", "one"))
    assert not feasible(("layout", "unbatched"), ("batch", "wide"))  # an unbatched input is one row
    assert not feasible(("layout", "packed_sorted"), ("batch", "empty"))  # nothing to pack
    assert feasible(("bidirectional", False), ("batch", "coincidence"))  # with several layers
    # Declared out of scope: a single-layer, one-direction implementation has no
    # coincident batch at all, and no bfloat16 if it declares float32 only.
    narrow_space = Space(narrow("RNN"), ["cpu"])
    values = {(name, value) for pair in narrow_space.feasible_pairs for name, value in pair}
    assert ("batch", "coincidence") not in values
    assert not any(name == "dtype" for name, _ in values)


@pytest.mark.parametrize("family", FAMILIES)
def test_every_applicable_defect_is_tried_with_every_layout_and_state_form(registry, family):
    implementation = registry.implementation(LOOPS[family])
    space = space_for(implementation, ("cpu",))
    triples = set(space.invalid_triples)
    # Every defect that applies to some case of the family, with every layout...
    defects = {d for d, _, _ in triples}
    layouts = space.by_name["layout"].values
    assert {"wrong_width", "dtype_mismatch", "h0_wrong_hidden"} <= defects
    for defect in defects:
        assert {layout for d, layout, _ in triples if d == defect} == {
            layout for layout in layouts if space.completable({"defect": defect, "layout": layout})
        }
    # ... and a state defect always passes a state, an input defect with and without one.
    assert all(given for d, _, given in triples if d.startswith("h0"))
    assert {given for d, _, given in triples if d == "wrong_width"} == {False, True}
    assert ("empty_sequence", "packed_sorted", False) not in triples


def test_every_eager_builtin_budget_holds_its_covering_set(registry):
    """A built-in's default campaign runs its whole covering set (the compile and
    export paths, a few examples each, run it under --profile long)."""
    for name in registry.names:
        implementation = registry.implementation(name)
        space = space_for(implementation, ("cpu",))
        budget = implementation.example_budget(300)
        the_plan = plan(space, budget, "default")
        if implementation.example_timeout is None:
            assert not the_plan.deferred, f"{name}: {the_plan.deferred}"
            assert budget >= len(space.covering_rows)
        else:
            assert plan(space, implementation.example_budget(5000), "long").rows, name
    assert min(BUILTIN_EXAMPLES.values()) >= 26


# -- the campaign ----------------------------------------------------------------------


def test_a_default_campaign_reports_every_feasible_pair_covered(registry):
    result = fuzz_implementation(registry.implementation("loop-grucell"), profile="default", seed=3, repro_dir=None, database=None)
    assert result.verdict == "pass", result.reason
    coverage = result.coverage
    assert coverage["pairs_covered"] == coverage["pairs_feasible"] > 500
    assert coverage["uncovered"] == []
    assert coverage["invalid_inputs_covered"] == coverage["invalid_inputs_feasible"] > 20
    implementation = registry.implementation("loop-grucell")
    routed = routing.routing_for(space_for(implementation, ("cpu",)), strategies.cases(implementation, devices=["cpu"]), set_aside_declarations(implementation))
    assert coverage["covering_cases"] == len(routed.covering_rows), "its covering rows, routed around torch's undefined behaviour"
    assert coverage["random_cases"] > 0
    assert sum(coverage["dimensions"]["layout"].values()) == result.examples


def test_a_campaign_stopped_by_a_failure_reports_what_it_covered_by_then():
    mutant = Implementation(name="cached-weights", factory=CachesWeightsUnderNoGrad, family="RNN")
    result = fuzz_implementation(mutant, profile="default", seed=0, repro_dir=None, database=None, isolate=False)
    assert result.verdict == "fail"
    coverage = result.coverage
    assert 0 < coverage["pairs_covered"] < coverage["pairs_feasible"]
    assert len(coverage["uncovered"]) == coverage["pairs_feasible"] - coverage["pairs_covered"]


def test_a_budget_too_small_for_the_covering_set_says_which_pairs_it_leaves(registry):
    result = fuzz_implementation(registry.implementation("loop"), max_examples=5, seed=0, repro_dir=None, database=None)
    assert result.verdict == "pass"
    assert "run under --profile long" in result.coverage["deferred"]
    assert result.coverage["uncovered"], "five random cases cannot cover a thousand pairs"


def test_the_random_phase_starts_with_sampled_rows_drawn_with_their_intended_frequencies(registry):
    """Hypothesis' own generation favours simple values and variations of earlier
    examples: on some seeds a plugin's 274 random cases held not one batch_first,
    batched case of several rows and steps (one in 20 is expected). The random phase
    therefore starts with rows whose values are drawn independently, each with its
    intended frequency, in the order drawn."""
    space = space_for(registry.implementation("loop"), ("cpu",))
    the_plan = plan(space, 300, "default", seed=7)
    random_share = 300 - len(space.covering_rows)
    assert the_plan.sampled == random_share // 2 and the_plan.generated == random_share - the_plan.sampled
    rows = space.sampled_rows(7, 2000)
    assert rows[: the_plan.sampled] == the_plan.rows[-the_plan.sampled:]
    share = lambda name, value: sum(row[name] == value for row in rows) / len(rows)  # noqa: E731
    assert 0.2 < share("grad_mode", "no_grad") < 0.3 and 0.07 < 1 - share("defect", None) < 0.13
    # Stored in the order drawn: the stage choice comes first, 1 + i for the i-th.
    prefixes = the_plan.prefixes
    assert [p[0] for p in prefixes[-the_plan.sampled:]] == list(range(1, the_plan.sampled + 1))
    assert {p[0] for p in prefixes[: -the_plan.sampled]} == {0}
    # A small random phase (a built-in's few dozen) is all sampled rows.
    small = plan(space, 40, "default", seed=7)
    assert small.sampled == 40 - len(space.covering_rows) and small.generated == 0


# -- the two plugins of the issue: a bug in a pair the random phase rarely draws ----------


class CachesWeightsUnderNoGrad(LoopRNN):
    """Pre-packs its weights on the first call under no_grad and never refreshes them:
    "inference weights". Wrong only under no_grad after the weights changed."""

    def forward(self, input, hx=None):
        if torch.is_grad_enabled():
            return super().forward(input, hx)
        if not hasattr(self, "_packed"):
            self._packed = {name: p.detach().clone() for name, p in self.named_parameters()}
        current = {name: p.detach().clone() for name, p in self.named_parameters()}
        for name, p in self.named_parameters():
            p.data.copy_(self._packed[name])
        try:
            return super().forward(input, hx)
        finally:
            for name, p in self.named_parameters():
                p.data.copy_(current[name])


class WrongErrorForPackedDtype(LoopRNN):
    """Checks a PackedSequence's dtype itself and raises RuntimeError where torch
    raises ValueError."""

    def forward(self, input, hx=None):
        if isinstance(input, PackedSequence) and input.data.dtype != self.weight_ih_l0.dtype:
            raise RuntimeError(f"expected {self.weight_ih_l0.dtype} input, got {input.data.dtype}")
        return super().forward(input, hx)


class DropsCellStateOnUnbatched(LoopLSTM):
    """An LSTM that ignores c_0 when the input is unbatched and h_0 is given."""

    def forward(self, input, hx=None):
        if hx is not None and not isinstance(input, PackedSequence) and input.dim() == 2:
            hx = (hx[0], torch.zeros_like(hx[1]))
        return super().forward(input, hx)


class WrongSingleRowWithoutBias(LoopGRUCell):
    """A GRUCell whose one-row, bias-free path (a special case for latency) scales its
    result: a bug in one pair, batch=one x bias=no."""

    def forward(self, input, hx=None):
        result = super().forward(input, hx)
        if not self.bias and (input.dim() == 1 or input.shape[0] == 1):
            return result * 1.5
        return result


PAIR_BUGS = [
    ("RNN", CachesWeightsUnderNoGrad),
    ("RNN", WrongErrorForPackedDtype),
    ("LSTM", DropsCellStateOnUnbatched),
    ("GRUCell", WrongSingleRowWithoutBias),
]
SEEDS = (0, 1, 2, 949701652, 142796933)


@pytest.mark.parametrize("family, factory", PAIR_BUGS, ids=[factory.__name__ for _, factory in PAIR_BUGS])
@pytest.mark.parametrize("campaign_seed", SEEDS)
def test_a_bug_in_one_pair_of_values_is_found_under_every_seed_within_the_covering_set(family, factory, campaign_seed):
    implementation = Implementation(name=factory.__name__, factory=factory, family=family)
    space = space_for(implementation, ("cpu",))
    rows = len(space.covering_rows) + len(space.invalid_rows)
    result = fuzz_implementation(implementation, profile="default", seed=campaign_seed, repro_dir=None, database=None, isolate=False)
    assert result.verdict == "fail", f"{factory.__name__} passed under seed {campaign_seed}"
    assert result.examples_to_failure <= rows, f"found at example {result.examples_to_failure}, after the {rows} covering cases"


def test_a_covering_failure_is_shrunk_stored_and_replayed_first(tmp_path):
    implementation = Implementation(name="cached-weights", factory=CachesWeightsUnderNoGrad, family="RNN")
    database = tmp_path / "db"
    first = fuzz_implementation(implementation, profile="default", seed=4, repro_dir=tmp_path / "repros", database=database, isolate=False)
    assert first.verdict == "fail" and first.failure is not None
    case = first.failure.case
    # Shrunk: the pair that matters stays, everything else went to its simplest.
    assert case.no_grad and case.second_call != "none"
    assert case.hidden_size <= 2 and case.input_size <= 2 and case.num_layers == 1 and case.seq_len <= 2
    assert case.layout == "batched" and case.dtype == "float32" and not case.bidirectional
    assert first.failure.repro_path is not None and first.failure.repro_path.exists()
    assert any(database.rglob("*")), "the minimal case is stored"
    again = fuzz_implementation(implementation, profile="default", seed=99, repro_dir=None, database=database, isolate=False)
    assert again.verdict == "fail" and again.failure.case == case


def test_the_covering_database_passes_writes_through_and_keeps_its_rows(tmp_path):
    from hypothesis.database import InMemoryExampleDatabase

    inner = InMemoryExampleDatabase()
    inner.save(b"key", b"stored")
    database = CoveringDatabase(inner, [(0, 1), (2, 3)])
    assert list(database.fetch(b"key"))[0] == b"stored" and len(list(database.fetch(b"key"))) == 3
    assert list(database.fetch(b"key.secondary")) == []
    for row in database.rows:
        database.delete(b"key", row)
    database.delete(b"key", b"stored")
    assert len(list(database.fetch(b"key"))) == 2 and list(inner.fetch(b"key")) == []
    database.save(b"key", b"new")
    assert list(inner.fetch(b"key")) == [b"new"]


def test_the_covering_database_neither_keeps_nor_replays_hypothesis_pareto_front():
    """Only failures carry over from one run to the next: Hypothesis' Pareto front of
    scored cases, replayed first where a campaign has few rows, would make a run's
    cases depend on the run before."""
    from hypothesis.database import InMemoryExampleDatabase

    inner = InMemoryExampleDatabase()
    inner.save(b"key.pareto", b"from an older version")
    database = CoveringDatabase(inner, [(0, 1)])
    database.save(b"key.pareto", b"scored")
    database.move(b"key", b"key.pareto", b"stored")
    assert list(database.fetch(b"key.pareto")) == []
    assert list(inner.fetch(b"key.pareto")) == [b"from an older version"]
