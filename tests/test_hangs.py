"""A hang costs seconds, not minutes, and a slow implementation is never called hung.

Once a few cases have passed, a case's limit is predicted from the implementation's
own measured time (the full timeout before that, and for implementations that
declare example_timeout); the first case over its limit runs again in a fresh
worker with a longer one before it counts; shrinking runs under tighter predicted
limits, and the minimal case is run again with a longer limit before it is reported
(harness/isolation.py). The tests shrink the floors so that each takes seconds; the
times with the defaults are measured by tools/hang_timing.py (docs/benchmarks.md).

A loaded machine slows every step, so each test states its timeouts, floors and sleeps
as multiples of what the machine does now (`support.timing.machine_now`) or of the
limit the worker itself predicts, never as fixed seconds (docs/reliability.md).
"""

from __future__ import annotations

import dataclasses
import time

import pytest

from faulty import HANGS_WHEN_WIDE, SLOW_WHEN_WIDE, slow_once, slow_when_wide
from harness import Implementation, campaign, findings, isolation, protocol, report
from harness.cases import Case
from harness.isolation import Worker
from harness.oracle import Discrepancy
from harness.tolerance import DEFAULT_MODEL
from support.timing import MachineNow, machine_now

WIDE = Case(input_size=2, hidden_size=5, seq_len=2, batch=2)
"""Wide enough for HANGS_WHEN_WIDE to hang and SLOW_WHEN_WIDE to sleep (hidden_size > 3)."""


def full_timeout(machine: MachineNow) -> float:
    """A timeout that no passing case comes near, on this machine now: at least 3 s, and
    at least 30 warm checks and 10 fresh workers' first calls."""
    return max(3.0, 30 * machine.warm_check, 10 * machine.cold_check)


def test_a_hang_is_shrunk_to_its_minimal_case_without_waiting_out_the_timeout_each_time():
    timeout = full_timeout(machine_now())
    result = campaign.fuzz_implementation(HANGS_WHEN_WIDE, profile="default", seed=0, timeout=timeout, repro_dir=None, database_dir=None)
    assert result.verdict == "fail" and result.failure.kind == "timeout", result.reason or result.failure.summary
    case = result.failure.case
    assert case.hidden_size == 4, f"the hang starts at hidden_size > 3; minimal case:\n{result.failure.summary}"
    assert (case.input_size, case.num_layers, case.seq_len) == (1, 1, 1), f"not minimal:\n{result.failure.summary}"
    # Every run that hung killed its worker. Had each waited out the full timeout, they
    # alone would take restarts x timeout (the first hang's confirmation waits 3x more).
    waiting_out = result.worker_restarts * timeout
    assert result.seconds < waiting_out, (
        f"{result.seconds:.1f}s for {result.examples} examples and {result.worker_restarts} restarts, "
        f"as long as waiting out the {timeout:.3g}s timeout on each ({waiting_out:.1f}s)"
    )
    assert "still did not finish" in result.failure.summary, result.failure.summary


def test_a_slow_correct_implementation_passes():
    # The default timeout: it is the user's definition of a hang, and nothing here exceeds it.
    result = campaign.fuzz_implementation(SLOW_WHEN_WIDE, profile="ci", max_examples=6, seed=1, repro_dir=None, database_dir=None)
    assert result.verdict == "pass", result.failure.summary if result.failure else result.reason


def test_a_slow_case_after_a_hang_is_not_reported_as_the_hang(tmp_path):
    timeout = full_timeout(machine_now())
    first = Case(input_size=7, hidden_size=9, seq_len=5, batch=3)
    slow = slow_when_wide(tmp_path / "seconds", 0.0)
    with Worker(slow, DEFAULT_MODEL, timeout) as worker:
        for _ in range(3):  # the first call warms the worker up; the others are measured
            worker.request(protocol.Check(Case()))
        worker.first_hang = first  # as if a larger case had exceeded the full timeout
        limit = worker.limit_for(WIDE)
        assert limit < timeout / 3, f"after a hang, a small case's limit should follow its measured time, not stay near the {timeout:.3g}s timeout: {limit:.3g}s"
        # Over the shortened limit, well within the longer one the minimal case is re-run with.
        (tmp_path / "seconds").write_text(repr(1.5 * limit))
        try:
            worker.request(protocol.Check(WIDE))
        except Discrepancy as found:
            assert found.kind == "timeout" and not found.evidence["full_timeout"]
            reported_case, reported = findings.confirm_hang(worker, WIDE, found)
        else:
            raise AssertionError(f"a case that sleeps {1.5 * limit:.3g}s should exceed the shortened limit {limit:.3g}s")
    # Run again with a longer limit, the slow case finished: the case reported is the one
    # that exceeded the full timeout, and the report says the limit was the full one.
    assert reported_case is first and reported.evidence["full_timeout"], reported.summary
    assert f"within {timeout:.3g}s" in reported.summary and "not a minimal one" in reported.summary, reported.summary


def test_a_case_over_the_timeout_that_finishes_when_run_again_is_slow_not_hung(tmp_path):
    # A loaded machine can make one long case take several times its usual time: the
    # first case over the full timeout is run again, fresh, with SLOW_CONFIRM_FACTOR
    # times as long, and finishing there is an answer like any other.
    timeout = 3 * machine_now().cold_check  # a fresh worker's first call fits in a third of it
    seconds = 1.5 * timeout  # over the timeout, within SLOW_CONFIRM_FACTOR x it with a fresh worker's first call
    with Worker(slow_when_wide(tmp_path / "seconds", seconds), DEFAULT_MODEL, timeout=timeout) as worker:
        worker.request(protocol.Check(Case()))  # the worker's lazy setup, inside no limit that matters
        worker.request(protocol.Check(WIDE))
        assert len(worker.slow_cases) == 1 and worker.slow_cases[0] >= seconds, (timeout, worker.slow_cases)
        assert worker.first_hang is None, "slow is not hung: shrinking keeps the full timeout"


def test_a_plugin_slow_on_its_first_call_passes_and_slow_cases_are_reported(tmp_path):
    # Its first call ever sleeps past the 5 s timeout (the calibration before the first
    # case makes that call, and is killed at the timeout); every later one is quick:
    # slow, not hung.
    result = campaign.fuzz_implementation(
        slow_once(tmp_path / "called-once", seconds=6.0), profile="ci", max_examples=3, seed=1, timeout=5.0, repro_dir=None, database_dir=None,
    )
    assert result.verdict == "pass" and result.examples == 3, result.failure.summary if result.failure else result.reason
    result.slow_cases = [6.2]
    assert result.to_json()["slow_cases"] == [6.2]
    assert "exceeded the time limit and then finished when run again" in report.summary_table([result])


def test_before_the_first_case_the_smallest_case_like_it_is_timed():
    """So the first case's limit is predicted, even when the first case is the one that
    hangs (a covering set may well start with a wide case)."""
    wide = dataclasses.replace(WIDE, dtype="float64", layout="unbatched")
    smallest = isolation.calibration_case(wide)
    assert (smallest.hidden_size, smallest.seq_len, smallest.batch, smallest.layout, smallest.dtype) == (1, 1, 1, "batched", "float64")
    with Worker(SLOW_WHEN_WIDE, DEFAULT_MODEL, timeout=120) as worker:
        assert worker.limit_for(wide) == 120, "nothing measured yet"
        worker.request(protocol.Check(Case(input_size=2, hidden_size=2, seq_len=2, batch=2)))
        assert worker.calibrated and worker.measured >= 1, "the calibration's warm run is measured"
        assert worker.limit_for(wide) < 120


def test_a_hang_is_confirmed_with_a_longer_limit_before_it_counts():
    timeout = 3 * machine_now().cold_check  # no passing case comes near it: a fresh worker's first call fits in a third
    with Worker(HANGS_WHEN_WIDE, DEFAULT_MODEL, timeout=timeout) as worker:
        worker.request(protocol.Check(Case()))
        try:
            worker.request(protocol.Check(WIDE))
        except Discrepancy as found:
            assert found.kind == "timeout" and found.evidence["full_timeout"] and found.evidence["confirmed"]
            longer = isolation.SLOW_CONFIRM_FACTOR * timeout
            assert f"nor within {longer:.3g}s when run again in a fresh worker" in found.summary, found.summary
        else:
            raise AssertionError("a case that spins forever must be reported as a hang")
    assert worker.first_hang is not None and not worker.slow_cases, worker.slow_cases


@pytest.fixture
def small_floors(monkeypatch) -> MachineNow:
    """The predicted limits' floors made small, so a test waits a second, not the
    default 5 s + 15 s (which a loaded machine needs, and tools/hang_timing.py measures):
    the first limit at least what a fresh worker's first call takes now, the second run's
    three times that."""
    machine = machine_now()
    floor = max(0.4, machine.cold_check)
    monkeypatch.setattr(isolation, "FIRST_LIMIT_FLOOR", floor)
    monkeypatch.setattr(isolation, "FIRST_CONFIRM_FLOOR", 3 * floor)
    return machine


def warmed_up(worker: Worker) -> Worker:
    for _ in range(1 + isolation.MEASURED_BEFORE_PREDICTING):  # the first call is cold, not measured
        worker.request(protocol.Check(Case()))
    return worker


def test_after_a_few_passing_cases_a_hang_is_noticed_at_a_predicted_limit_not_the_timeout(small_floors):
    timeout = 120
    with warmed_up(Worker(HANGS_WHEN_WIDE, DEFAULT_MODEL, timeout=timeout)) as worker:
        limit = worker.limit_for(WIDE)
        assert limit < timeout / 10, f"the cases that passed predict a limit of seconds; it was {limit:.3g}s, not a fraction of the {timeout} s timeout"
        started = time.perf_counter()
        with pytest.raises(Discrepancy) as raised:
            worker.request(protocol.Check(WIDE))
        spent = time.perf_counter() - started
    found = raised.value
    assert found.kind == "timeout" and found.evidence["confirmed"] and not found.evidence["full_timeout"], found.summary
    # Two runs, each killed at its limit, and a fresh worker for the second.
    bound = found.evidence["limit"] + found.evidence["confirm_limit"] + 2 * small_floors.cold_check
    assert found.evidence["confirm_limit"] < timeout and spent < bound, f"{spent:.1f}s: the confirmation is bounded by the predicted limit ({bound:.1f}s), not the timeout"
    assert worker.first_hang == WIDE and "predicts from the cases that passed" in found.summary, found.summary


def test_a_case_slow_only_against_its_prediction_finishes_when_run_again_and_passes(small_floors, tmp_path):
    with warmed_up(Worker(slow_when_wide(tmp_path / "seconds", 0.0), DEFAULT_MODEL, timeout=120)) as worker:
        limit = worker.limit_for(WIDE)
        assert limit < worker.timeout, "predicted"
        # Over the predicted limit, within the second run's: at least three times it, from
        # a fresh worker whose first call takes at most the limit's floor.
        (tmp_path / "seconds").write_text(repr(1.5 * limit))
        worker.request(protocol.Check(WIDE))
    assert worker.first_hang is None and len(worker.slow_cases) == 1, (limit, worker.first_hang, worker.slow_cases)


def test_an_implementation_that_compiles_per_shape_keeps_the_full_timeout():
    """example_timeout says the cost does not follow the size (torch.compile, torch.export):
    no limit is predicted for it, so a compile is never called a hang."""
    compiles = Implementation(name="compiles-per-shape", factory=HANGS_WHEN_WIDE.factory, example_timeout=600)
    with warmed_up(Worker(compiles, DEFAULT_MODEL, timeout=600)) as worker:
        assert worker.limit_for(Case(input_size=2, hidden_size=3, seq_len=9, batch=4)) == 600
