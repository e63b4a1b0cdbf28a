"""The covering stage of a campaign: the rows it runs first, handed to Hypothesis.

`CoveringDatabase` wraps the campaign's example database: to Hypothesis it looks as
if the space's covering rows (`harness.case_space`) were stored examples, so its reuse
phase runs them before it generates anything, a failing one is shrunk like any other,
and the minimal case is saved in the real database and replayed first next time. A
row is only the start of a choice sequence (the profile); Hypothesis draws the sizes
and values after it from the campaign's seed. `plan` decides which rows a campaign
runs under its budget.
"""

from __future__ import annotations

import dataclasses
from typing import Callable, Iterable

from hypothesis.database import ExampleDatabase, choices_to_bytes

from harness.case_space import STAGE_COVERING, STAGE_SAMPLED, Space
from harness.routing import Routing, unrouted


class CoveringDatabase(ExampleDatabase):
    """The campaign's database (or none) plus the covering rows as stored examples.

    Reads of the test's primary key yield the real entries, then one choice prefix
    per row; Hypothesis sorts them (shortest first, so the rows run before a stored
    failure, which is a full choice sequence) and replays each. Writes go to the real
    database; deleting a row's prefix (Hypothesis deletes every replayed entry that no
    longer fails) is ignored. Hypothesis' Pareto front of scored cases is neither
    stored nor read: replayed first where a campaign has few rows, it would make a
    run's cases depend on the run before, where only failures should carry over."""

    def __init__(self, inner: ExampleDatabase | None, prefixes: Iterable[tuple[int, ...]]):
        super().__init__()
        self.inner = inner
        self.rows = [choices_to_bytes(prefix) for prefix in prefixes]
        self._row_set = set(self.rows)

    @staticmethod
    def _primary(key: bytes) -> bool:
        return not key.endswith((b".secondary", b".pareto"))

    @staticmethod
    def _kept(key: bytes) -> bool:
        return not key.endswith(b".pareto")

    def fetch(self, key: bytes):
        if self.inner is not None and self._kept(key):
            yield from self.inner.fetch(key)
        if self._primary(key):
            yield from self.rows

    def save(self, key: bytes, value: bytes) -> None:
        if self.inner is not None and self._kept(key):
            self.inner.save(key, value)

    def delete(self, key: bytes, value: bytes) -> None:
        if self.inner is not None and self._kept(key) and value not in self._row_set:
            self.inner.delete(key, value)

    def move(self, src: bytes, dest: bytes, value: bytes) -> None:
        if self.inner is not None and self._kept(src) and self._kept(dest):
            self.inner.move(src, dest, value)

    def __repr__(self) -> str:
        return f"CoveringDatabase({self.inner!r}, {len(self.rows)} rows)"


TARGET_MIN_RANDOM = 100
"""Random examples a campaign needs before Hypothesis' own generation, climbing
towards the worst |error| / bound (its target phase), takes half of them."""


@dataclasses.dataclass
class Plan:
    """What a campaign's stored rows are, under its budget."""

    space: Space
    rows: tuple[dict, ...]  # pairwise rows, invalid-input rows, sampled rows, as run
    covering: int  # how many of `rows` are pairwise rows
    invalid: int  # how many are invalid-input rows
    max_examples: int  # what Hypothesis is asked for, the rows included
    deferred: str = ""  # why the covering set does not run in this profile, if it does not
    sampled: int = 0  # how many are sampled rows (the random phase's first part)
    routing: Routing | None = None  # the rows routed around set-aside cases, and what they cannot reach

    @property
    def prefixes(self) -> list[tuple[int, ...]]:
        first = self.covering + self.invalid
        return [self.space.prefix(row, STAGE_COVERING if index < first else STAGE_SAMPLED + index - first) for index, row in enumerate(self.rows)]

    @property
    def generated(self) -> int:
        """Examples left to Hypothesis' own generation."""
        return self.max_examples - len(self.rows)


def plan(space: Space, budget: int, profile: str, covering: bool = True, seed: int = 0, routing: Callable[[], Routing] | None = None) -> Plan:
    """The stored rows of a campaign whose budget is ``budget`` examples.

    The pairwise rows count inside the budget; the invalid-input rows (one call each,
    which raises) are added to it. The random phase that follows starts with sampled
    rows: discrete values drawn independently with their intended frequencies (all
    of it for a random phase under TARGET_MIN_RANDOM, else half), then Hypothesis'
    own generation. A budget smaller than the pairwise rows (an implementation that
    compiles per shape) runs them only in the long profile, where the budget grows
    to hold them; elsewhere the report lists what is left uncovered. ``routing``
    computes the rows routed around the cases declarations set aside (`harness.routing`;
    default: the space's own), called only when the covering phase would run."""
    if not covering:
        return Plan(space, (), 0, 0, budget, "the covering phase was switched off")
    routed = unrouted(space)
    runs_under_budget = lambda rows: budget >= len(rows) or profile == "long"  # noqa: E731
    if routing is not None and runs_under_budget(routed.covering_rows):
        routed = routing()
    if not runs_under_budget(routed.covering_rows):
        return Plan(
            space, (), 0, 0, budget,
            f"its budget of {budget} examples is smaller than its {len(routed.covering_rows)} covering cases: they run under --profile long",
        )
    pairwise, invalid = routed.covering_rows, routed.invalid_rows
    random_share = max(budget, len(pairwise)) - len(pairwise)
    sampled = space.sampled_rows(seed, random_share if random_share < TARGET_MIN_RANDOM else random_share // 2)
    return Plan(
        space, pairwise + invalid + sampled, len(pairwise), len(invalid), max(budget, len(pairwise)) + len(invalid), sampled=len(sampled), routing=routed,
    )
