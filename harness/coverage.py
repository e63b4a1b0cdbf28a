"""The covering phase of a campaign, and the account of what a campaign covered.

`CoveringDatabase` wraps the campaign's example database: to Hypothesis it looks as
if the space's covering rows (`harness.covering`) were stored examples, so its reuse
phase runs them before it generates anything, a failing one is shrunk like any other,
and the minimal case is saved in the real database and replayed first next time. A
row is only the start of a choice sequence (the profile); Hypothesis draws the sizes
and values after it from the campaign's seed.

`Coverage` counts, per dimension and value, the cases a campaign drew, and which
feasible pairs and invalid-input triples its judged cases held: the report's
``coverage`` field. A case a declaration set aside covers nothing; the pairs and
triples only such cases can hold (`harness.routing`) are listed apart.
"""

from __future__ import annotations

import dataclasses
import itertools
from typing import Callable, Iterable

from hypothesis.database import ExampleDatabase, choices_to_bytes

from harness.covering import STAGE_COVERING, STAGE_SAMPLED, Space
from harness.routing import Routing, unrouted
from harness.dimensions import STATE_DEFECTS


class CoveringDatabase(ExampleDatabase):
    """The campaign's database (or none) plus the covering rows as stored examples.

    Reads of the test's primary key yield the real entries, then one choice prefix
    per row; Hypothesis sorts them (shortest first, so the rows run before a stored
    failure, which is a full choice sequence) and replays each. Writes go to the real
    database; deleting a row's prefix (Hypothesis deletes every replayed entry that no
    longer fails) is ignored."""

    def __init__(self, inner: ExampleDatabase | None, prefixes: Iterable[tuple[int, ...]]):
        super().__init__()
        self.inner = inner
        self.rows = [choices_to_bytes(prefix) for prefix in prefixes]
        self._row_set = set(self.rows)

    @staticmethod
    def _primary(key: bytes) -> bool:
        return not key.endswith((b".secondary", b".pareto"))

    def fetch(self, key: bytes):
        if self.inner is not None:
            yield from self.inner.fetch(key)
        if self._primary(key):
            yield from self.rows

    def save(self, key: bytes, value: bytes) -> None:
        if self.inner is not None:
            self.inner.save(key, value)

    def delete(self, key: bytes, value: bytes) -> None:
        if self.inner is not None and value not in self._row_set:
            self.inner.delete(key, value)

    def move(self, src: bytes, dest: bytes, value: bytes) -> None:
        if self.inner is not None:
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


class Coverage:
    """What a campaign's cases held, counted as they run."""

    def __init__(self, space: Space, plan: Plan | None = None):
        self.space = space
        self.plan = plan
        self.dimensions = {d.name: {label(v): 0 for v in d.values} for d in space.pairwise_dimensions}
        self.pairs: set = set()
        self.triples: set = set()
        self.cases = 0
        self.set_aside = 0

    def record(self, profile: dict, set_aside: bool = False) -> None:
        """One drawn case: its profile, and whether a declaration set it aside. A
        set-aside case is counted as drawn and covers no pair and no triple."""
        self.cases += 1
        self.set_aside += set_aside
        flat = dict(profile)
        flat["invalid"] = profile.get("defect") is not None
        for name, counts in self.dimensions.items():
            if name in flat:
                text = label(flat[name])
                counts[text] = counts.get(text, 0) + 1
        if set_aside:
            return
        self.pairs |= self.space.pairs_of(profile) & self.space.feasible_pairs
        defect = profile.get("defect")
        if defect is not None:
            self.triples.add((defect, profile.get("layout", "batched"), bool(profile.get("h0_given")) or defect in STATE_DEFECTS))

    @property
    def _routing(self) -> Routing:
        return self.plan.routing if self.plan is not None and self.plan.routing is not None else unrouted(self.space)

    @property
    def pairs_set_aside_only(self) -> set:
        """Feasible pairs that only set-aside cases can hold, and none judged did."""
        return set(self._routing.pairs_set_aside_only) - self.pairs

    @property
    def uncovered(self) -> list[list]:
        """Feasible pairs a judged case could hold and none did."""
        return _pair_rows(self.space.feasible_pairs - self.pairs - self.pairs_set_aside_only)

    def to_json(self) -> dict:
        feasible_triples = set(self.space.invalid_triples)
        triples_aside = set(self._routing.triples_set_aside_only) - self.triples
        covering = 0 if self.plan is None else min(self.plan.covering, self.cases)
        invalid = 0 if self.plan is None else min(self.plan.invalid, self.cases - covering)
        return {
            "pairs_covered": len(self.pairs),
            "pairs_feasible": len(self.space.feasible_pairs),
            "dimensions": self.dimensions,
            "uncovered": self.uncovered,
            "pairs_set_aside_only": _pair_rows(self.pairs_set_aside_only),
            # what ran, in the order it runs: the covering rows, the invalid rows, the rest
            "covering_cases": covering,
            "invalid_input_cases": invalid,
            "sampled_cases": 0 if self.plan is None else min(self.plan.sampled, self.cases - covering - invalid),
            "random_cases": self.cases - covering - invalid,
            "invalid_inputs_covered": len(self.triples & feasible_triples),
            "invalid_inputs_feasible": len(feasible_triples),
            "invalid_inputs_uncovered": sorted([d, l, g] for d, l, g in feasible_triples - self.triples - triples_aside),
            "invalid_inputs_set_aside_only": sorted([d, l, g] for d, l, g in triples_aside),
            "set_aside_cases": self.set_aside,
            "deferred": "" if self.plan is None else self.plan.deferred,
        }


def _pair_rows(pairs) -> list[list]:
    """Pairs as the report writes them: ``[DIM, VALUE, DIM, VALUE]``, sorted."""
    return sorted(([a, label(x), b, label(y)] for (a, x), (b, y) in pairs), key=lambda row: [str(item) for item in row])


def label(value) -> str:
    """A dimension value as the report writes it (JSON keys are strings)."""
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def summary_line(coverage: dict) -> str:
    """One line: "covered 412/412 feasible value pairs; 37 covering cases, 263 random"."""
    text = f"covered {coverage['pairs_covered']}/{coverage['pairs_feasible']} feasible value pairs"
    if coverage.get("pairs_set_aside_only"):
        text += f" ({len(coverage['pairs_set_aside_only'])} reachable only through set-aside cases)"
    text += f"; {coverage['covering_cases']} covering cases, {coverage['random_cases']} random"
    if coverage.get("sampled_cases"):
        text += f" ({coverage['sampled_cases']} of them sampled)"
    if coverage["invalid_inputs_feasible"]:
        text += f"; {coverage['invalid_inputs_covered']}/{coverage['invalid_inputs_feasible']} invalid inputs"
        if coverage.get("invalid_inputs_set_aside_only"):
            text += f" ({len(coverage['invalid_inputs_set_aside_only'])} only through set-aside cases)"
    if coverage.get("deferred"):
        text += f" ({coverage['deferred']})"
    return text


def dimension_table(name: str, coverage: dict) -> str:
    """The per-dimension counts of one implementation's campaign, as ``--coverage`` prints them."""
    lines = [f"{name}: {summary_line(coverage)}"]
    width = max((len(d) for d in coverage["dimensions"]), default=0)
    for dimension, counts in coverage["dimensions"].items():
        cells = ", ".join(f"{value} {count}" for value, count in counts.items())
        lines.append(f"  {dimension:<{width}}  {cells}")
    if coverage["uncovered"]:
        shown = "; ".join(f"{a}={x} x {b}={y}" for a, x, b, y in itertools.islice(coverage["uncovered"], 8))
        more = len(coverage["uncovered"]) - 8
        lines.append(f"  uncovered: {shown}" + (f" and {more} more" if more > 0 else ""))
    return "\n".join(lines)


def merge(documents: list[dict]) -> dict | None:
    """The coverage of one campaign split into seed shards (each shard's cases are
    over the same space): a pair is covered if a judged case of any shard held it,
    and reachable only through set-aside cases if some shard's routing found it so."""
    if not documents:
        return None
    first = documents[0]
    pairs_missing, pairs_aside = _missing(documents, "uncovered", "pairs_set_aside_only")
    triples_missing, triples_aside = _missing(documents, "invalid_inputs_uncovered", "invalid_inputs_set_aside_only")
    dimensions: dict[str, dict] = {}
    for document in documents:
        for name, counts in document["dimensions"].items():
            merged = dimensions.setdefault(name, {})
            for value, count in counts.items():
                merged[value] = merged.get(value, 0) + count
    total = {key: sum(d.get(key, 0) for d in documents) for key in ("covering_cases", "invalid_input_cases", "sampled_cases", "random_cases", "set_aside_cases")}
    rows = lambda items: sorted((list(row) for row in items), key=lambda row: [str(item) for item in row])  # noqa: E731
    return {
        "pairs_covered": first["pairs_feasible"] - len(pairs_missing),
        "pairs_feasible": first["pairs_feasible"],
        "dimensions": dimensions,
        "uncovered": rows(pairs_missing - pairs_aside),
        "pairs_set_aside_only": rows(pairs_aside),
        **total,
        "invalid_inputs_covered": first["invalid_inputs_feasible"] - len(triples_missing),
        "invalid_inputs_feasible": first["invalid_inputs_feasible"],
        "invalid_inputs_uncovered": rows(triples_missing - triples_aside),
        "invalid_inputs_set_aside_only": rows(triples_aside),
        "deferred": next((d["deferred"] for d in documents if d["deferred"]), ""),
    }


def _missing(documents: list[dict], uncovered: str, set_aside_only: str) -> tuple[set, set]:
    """What no shard judged, and which of it some shard's routing found reachable only
    through set-aside cases."""
    missing, aside = None, set()
    for document in documents:
        mine = {tuple(row) for row in document[set_aside_only]} if set_aside_only in document else set()
        unjudged = {tuple(row) for row in document[uncovered]} | mine
        missing = unjudged if missing is None else missing & unjudged
        aside |= mine
    return missing, aside & missing
