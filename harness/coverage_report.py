"""The account of what a campaign covered: the report's ``coverage`` field.

`Coverage` counts, per dimension and value, the cases a campaign drew, and which
feasible pairs and invalid-input triples its judged cases held. A case a declaration
set aside covers nothing; the pairs and triples only such cases can hold
(`harness.routing`) are listed apart. `merge` joins the accounts of a campaign split
into seed shards; `summary_line` and `dimension_table` print one.
"""

from __future__ import annotations

import itertools

from harness.case_space import Space
from harness.covering_stage import Plan
from harness.routing import Routing, unrouted


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
        triple = self.space.triple_of(profile)
        if triple is not None:
            self.triples.add(triple)

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
