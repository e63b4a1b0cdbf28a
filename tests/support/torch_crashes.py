"""Whether torch's reference still crashes on an invalid input where it reads out of
bounds: such a read does not crash every time (a worker once raised, a CI run once
returned), so the question is whether any of a few fresh tries dies."""

from __future__ import annotations

from harness import protocol
from harness.cases import Case
from harness.isolation import Worker
from harness.oracle import Discrepancy

TRIES = 5


def crashes_in_some_try(worker: Worker, case: Case, tries: int = TRIES) -> tuple[bool, list]:
    """(whether torch's reference died on ``case`` in one of ``tries`` runs, each in a
    fresh process after a crash, and the outcomes of the runs that returned)."""
    outcomes = []
    for _ in range(tries):
        try:
            outcomes.append(worker.request(protocol.ReferenceOutcome(case)))
        except Discrepancy as found:
            assert found.kind == "crash", found.summary
            return True, outcomes
    return False, outcomes
