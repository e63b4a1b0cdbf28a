"""Lazy widening: every probe that can only widen a bound (the float32 probe of a
float64 case, the sensitivity and kink pairs, the activation, order and tipping
probes) runs only where the candidate is out of the bounds without it, and the
verdict is the one running them all gives (harness/oracle/verdict.py).

Each candidate of a catalogue (the mutants, the correct variants, the families'
mutants and variants, misbehaving plugins, the built-ins) is checked on the same
drawn cases both ways: `oracle.check` with ``lazy_probes`` (the campaigns' way) and
without (every probe on every case, the margins tools/error_margins.py reports)."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import HealthCheck, Phase, given, seed, settings

from harness import Implementation, campaign, oracle, strategies
from harness.cases import Case
from harness.oracle.session import Session
from harness.tolerance import DEFAULT_MODEL
from faulty import NotAModule, RaisesOnPacked, ReturnsAList
from mutants import CORRECT_VARIANTS, FAMILY_CORRECT_VARIANTS, FAMILY_MUTANTS, MUTANTS
from support import registry

BUILTINS = [
    "loop", "loop-lstm", "loop-gru", "loop-rnncell", "loop-lstmcell", "loop-grucell",
    "vectorized", "vectorized-lstm", "vectorized-gru", "linear", "linear-lstm", "linear-gru", "torch-aten-lstm",
]
MISBEHAVING = [
    Implementation(name="faulty-raises", factory=RaisesOnPacked),
    Implementation(name="faulty-returns-list", factory=ReturnsAList),
    Implementation(name="faulty-not-a-module", factory=NotAModule),
]
CATALOGUE = [*MUTANTS, *FAMILY_MUTANTS, *MISBEHAVING]
PASSING = [*CORRECT_VARIANTS, *FAMILY_CORRECT_VARIANTS]
SEEDS = (0, 1)


def verdict(implementation, case, lazy_probes: bool):
    """("held", margins) or ("differs", kind, subject, message, evidence). Torch's
    generator starts from the case's seed, for the mutants that draw from it."""
    torch.manual_seed(case.seed)
    try:
        return ("held", oracle.check(implementation, case, DEFAULT_MODEL, lazy_probes=lazy_probes))
    except oracle.Discrepancy as discrepancy:
        return ("differs", discrepancy.kind, discrepancy.subject, str(discrepancy), repr(discrepancy.evidence))


def assert_same_verdict(implementation, case) -> None:
    eager = verdict(implementation, case, lazy_probes=False)
    lazy = verdict(implementation, case, lazy_probes=True)
    assert eager[0] == lazy[0], f"{implementation.name} on {case.to_json()}: every probe gives {eager[:4]}, lazily {lazy[:4]}"
    if eager[0] == "differs":
        assert lazy == eager, f"{implementation.name} on {case.to_json()}: the lazy finding differs from the eager one"
        return
    # A narrower bound compares at least as much (in the same order: each call's values,
    # then its gradients), each element against less room.
    lazy_margins = iter(lazy[1].compared)
    for margin in eager[1].compared:
        assert any(
            (other.kind, other.name) == (margin.kind, margin.name) and other.ratio >= margin.ratio for other in lazy_margins
        ), f"{implementation.name} on {case.to_json()}: {margin} has no margin at least as large lazily ({lazy[1]})"


def both_ways(implementation, examples: int, seed_value: int):
    @seed(seed_value)
    @settings(
        max_examples=examples, database=None, deadline=None, phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(strategies.cases(implementation, devices=["cpu"], invalid=False))
    def run(case):
        assert_same_verdict(implementation, case)

    return run


@pytest.mark.parametrize("seed_value", SEEDS)
@pytest.mark.parametrize("implementation", CATALOGUE, ids=lambda i: i.name)
def test_lazy_probes_give_every_mistake_the_eager_verdict(implementation, seed_value):
    both_ways(implementation, 3, seed_value)()


@pytest.mark.parametrize("seed_value", SEEDS)
@pytest.mark.parametrize("implementation", PASSING, ids=lambda i: i.name)
def test_lazy_probes_give_every_correct_variant_the_eager_verdict(implementation, seed_value):
    both_ways(implementation, 8, seed_value)()


@pytest.mark.parametrize("seed_value", SEEDS)
@pytest.mark.parametrize("name", BUILTINS)
def test_lazy_probes_give_every_builtin_the_eager_verdict(name, seed_value):
    both_ways(registry().implementation(name), 8, seed_value)()


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("backward", [False, True])
def test_a_case_within_the_probes_own_bounds_runs_no_widening_probe(monkeypatch, dtype, backward):
    built = []
    monkeypatch.setattr(Session, "low_probe", lambda self: built.append("float32 probe") if self.dtype == torch.float64 else None)
    sensitivity_probe = Session.sensitivity_probe
    monkeypatch.setattr(Session, "sensitivity_probe", lambda self, index: built.append(f"sensitivity probe {index}") or sensitivity_probe(self, index))
    case = Case(family="LSTM", input_size=3, hidden_size=4, seq_len=5, batch=2, dtype=dtype, backward=backward, seed=3)
    oracle.check(registry().implementation("torch-aten-lstm"), case)
    # float64 gradients are the exception: a float32 probe's overflow there would narrow the bound
    assert built == ([] if dtype == "float32" or not backward else ["float32 probe"])
    built.clear()
    # asked for exact margins, it runs what applies: the sensitivity pair in float32, the float32 probe in float64
    oracle.check(registry().implementation("torch-aten-lstm"), case, exact_margins_from=-math.inf)
    assert built == (["sensitivity probe 0", "sensitivity probe 1"] if dtype == "float32" else ["float32 probe"])


def test_a_case_out_of_the_probes_own_bounds_runs_the_sensitivity_pairs(monkeypatch):
    built = []
    sensitivity_probe = Session.sensitivity_probe
    monkeypatch.setattr(Session, "sensitivity_probe", lambda self, index: built.append(index) or sensitivity_probe(self, index))
    case = Case(family="LSTM", input_size=3, hidden_size=4, seq_len=5, batch=2, seed=3)
    mutant = next(m for m in FAMILY_MUTANTS if m.family == "LSTM")
    with pytest.raises(oracle.Discrepancy):
        oracle.check(mutant, case)
    assert built == [0, 1]


# What the campaign's guided search is told: exact margins wherever they could beat
# the best it has seen (`oracle.check`'s ``exact_margins_from``).

def margins(implementation, case, exact_margins_from: float):
    torch.manual_seed(case.seed)
    return oracle.check(implementation, case, DEFAULT_MODEL, exact_margins_from=exact_margins_from)


def exact_margins(implementation, case):
    """The margins with the float32 probe and the sensitivity and kink pairs run on the
    case whatever its margins, as for float64 cases with gradients."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Session, "sampling_only_relaxes", property(lambda self: False))
        return margins(implementation, case, math.inf)


@pytest.mark.parametrize("name", ["vectorized", "vectorized-lstm", "loop-gru", "loop-rnncell"])
def test_a_worst_margin_that_reaches_the_threshold_is_the_exact_one_and_one_below_it_is_no_smaller(name):
    implementation = registry().implementation(name)
    differed: list[bool] = []

    @seed(4)
    @settings(max_examples=12, database=None, deadline=None, phases=[Phase.generate], suppress_health_check=list(HealthCheck))
    @given(strategies.cases(implementation, devices=["cpu"], invalid=False))
    def run(case):
        narrow, exact = margins(implementation, case, math.inf), exact_margins(implementation, case)
        differed.append(narrow.worst() != exact.worst())
        if exact.worst() is None:
            assert narrow.worst() is None
            return
        assert narrow.worst() >= exact.worst(), f"{case.to_json()}: a narrower bound gave a smaller margin"
        for threshold in (exact.worst(), (exact.worst() + narrow.worst()) / 2, narrow.worst(), math.nextafter(narrow.worst(), math.inf)):
            told = margins(implementation, case, threshold).worst()
            where = f"{case.to_json()}: threshold {threshold!r}, exact {exact.worst()!r}, narrow {narrow.worst()!r}, told {told!r}"
            assert told >= exact.worst(), where
            if told >= threshold:
                assert told == exact.worst(), where
            if narrow.worst() < threshold:
                assert told == narrow.worst(), where

    run()
    assert any(differed), "no drawn case told the narrower bound from the wider one: nothing was tested"


def test_the_search_is_told_only_exact_margins_and_only_those_that_match_or_beat_its_best(monkeypatch):
    implementation = registry().implementation("vectorized-gru")
    told: list[float] = []
    held: list[tuple[Case, float | None]] = []
    monkeypatch.setattr(campaign, "target", lambda value, label: told.append(value))
    result = campaign.fuzz_implementation(
        implementation, profile="default", seed=3, max_examples=260, isolate=False, database=None, repro_dir=None, covering_phase=False,
        on_margins=lambda case, margins: held.append((case, margins.worst())),
    )
    assert result.verdict == "pass"
    assert told and told == sorted(told), "a score lower than the best so far reached the search"
    # Replayed in order (one stage: one search, which starts with no best), a case is
    # scored exactly when its margin matches or beats the best before it.
    scored = iter(told)
    best = -math.inf
    for case, worst in held:
        if worst is None or not math.isfinite(worst):
            continue
        if worst >= best:
            value = next(scored)
            assert value == worst
            assert value == exact_margins(implementation, case).worst(), f"{case.to_json()}: the search was told a margin under a narrower bound"
            best = value


def test_a_stage_without_guided_search_scores_nothing_so_its_cases_do_not_hang_on_margins(monkeypatch):
    """Hypothesis keeps a Pareto front of scored cases, and adding to it draws on the
    random numbers that also draw the cases: scored, two correct implementations of one
    space would be handed different cases on the same seed (4 of 92 alike, before)."""
    told: list[float] = []
    monkeypatch.setattr(campaign, "target", lambda value, label: told.append(value))

    def covering_cases(name: str) -> list[str]:
        held: list[str] = []
        run = campaign.Campaign(
            registry().implementation(name), profile="default", seed=7, isolate=False, database=None, repro_dir=None,
            on_margins=lambda case, margins: held.append(case.to_json()),
        )
        run.run(campaign.COVERING)
        return held

    loop, vectorized = covering_cases("loop-gru"), covering_cases("vectorized-gru")
    assert told == []
    assert len(loop) > 50 and loop == vectorized
