"""The discrete case space of one implementation, and a small set of cases covering it.

Every `Case` has a *profile*: one value for each discrete dimension (layout, grad
mode, dtype, batch-size class, ...). The dimensions and the constraints between their
values (no empty batch for a packed input, a batch of ``num_layers * num_directions``
rows needs more than one layer or direction, ...) are the records of
`harness.dimensions`. `Space` holds those an implementation's declarations leave
open, and:

- ``feasible_pairs()``: every pair of values of two dimensions that some valid case
  holds;
- ``covering_rows()``: a few profiles that together hold every feasible pair (IPOG,
  `harness.pairwise`, deterministic);
- ``invalid_rows()``: one profile per applicable invalid-input defect x layout x
  state form;
- ``profile_of(case)``: which values a drawn case holds, for the coverage report.

`harness.strategies.cases` draws the profile first, one integer choice per
dimension, so a row is also the start of a Hypothesis choice sequence
(``prefix(row)``): `harness.covering_stage` hands those prefixes to Hypothesis, which
runs them before it generates anything and shrinks a failing one like any other.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import random
from typing import Mapping

from harness.cases import Case
from harness.dimensions import STATE_DEFECTS, Scope, Values, dimensions_of
from harness.pairwise import ipog

IPOG_ORDERS = 16
"""Dimension orders the covering construction tries; the smallest result is kept."""

STAGE_COVERING, STAGE_SAMPLED, STAGE_LAST = 0, 1, 2**20
"""The strategy's first choice orders the stored rows, since Hypothesis replays them
in the order of their choices: 0 for a covering row, 1 + i for the i-th sampled row
(so they run in the order they were drawn, not sorted by their values). It has no
other effect; Hypothesis' own generation draws anything in 0..STAGE_LAST."""


@dataclasses.dataclass(frozen=True)
class Axis:
    """A dimension as one space holds it: its values under the implementation's
    declarations (the first is the simplest, where shrinking heads) and how often a
    random draw picks each."""

    name: str
    values: tuple
    weights: tuple[int, ...] | None = None  # random draws; None: uniform

    @property
    def choices(self) -> tuple:
        """What the strategy's one integer choice indexes: each value repeated by its weight."""
        if self.weights is None:
            return self.values
        return tuple(value for value, weight in zip(self.values, self.weights) for _ in range(weight))

    def index(self, value) -> int:
        """The integer choice that draws ``value`` (its first occurrence)."""
        return self.choices.index(value)


class Space:
    """The discrete dimensions an implementation leaves open, and their constraints,
    read from the records of `harness.dimensions`."""

    def __init__(self, implementation, devices: list[str] | None = None, invalid: bool = True):
        scope = Scope(implementation, tuple(devices) if devices else None, invalid)
        family = implementation.family_record
        self.family = family
        self.implementation_name = implementation.name
        self.max_layers = scope.max_layers
        self.records = dimensions_of(family)
        candidates = [Axis(record.name, values, record.weights_of(values)) for record in self.records for values in [record.values_in(scope)]]
        self.all_dimensions = tuple(candidates)
        # A dimension with one value is a constant: it draws nothing and pairs with nothing.
        self.dimensions = tuple(d for d in candidates if len(d.values) > 1)
        self.fixed = {d.name: d.values[0] for d in candidates if len(d.values) == 1}
        self.by_name = {d.name: d for d in candidates}
        self.defects = tuple(value for value in self.by_name["defect"].values if value is not None)
        # The records' constraints, the valid cases' first and the defect's last: a
        # random draw is repaired in this order, since a defect applies to a case that is
        # otherwise valid.
        valid = [rule for record in self.records if record.name != "defect" for rule in record.constraints]
        invalid = [rule for record in self.records if record.name == "defect" for rule in record.constraints]
        self.constraints = tuple(valid + invalid)
        # The only dimensions any constraint reads (``invalid`` stands for the defect in
        # pairs); the others take any value.
        self.constrained = frozenset({"invalid"}.union(*(rule.reads for rule in self.constraints)))

    @property
    def signature(self) -> tuple:
        """What the rows depend on: the family, the open dimensions, the constants and the constraints."""
        axes = tuple((d.name, d.values, d.weights) for d in self.all_dimensions)
        return (self.family.name, self.max_layers, self.defects, axes, tuple(rule.reason for rule in self.constraints))

    # -- constraints -----------------------------------------------------------------

    def value(self, profile: Mapping, name: str):
        """The profile's value of ``name``: drawn, fixed by a declaration, or None if not yet assigned."""
        return Values(profile, self.fixed)(name)

    def allowed(self, profile: Mapping) -> bool:
        """False if the (partial) profile breaks a constraint among its assigned values."""
        return not any(True for _ in self.violations(profile))

    def violations(self, profile: Mapping):
        """The reasons of the constraints the (partial) profile breaks."""
        v = Values(profile, self.fixed)
        return (rule.reason for rule in self.constraints if rule.broken(v))

    REPAIR_ROUNDS = 4
    """Passes over the constraints a repair makes at most (one change may break another rule)."""

    def repair(self, profile: dict) -> dict:
        """A randomly drawn profile made valid: each broken constraint, in order, makes
        its changes, keeping the rarer values (the defect and the layout stay, the batch
        class, layers or state form give way)."""
        profile = dict(profile)
        v = Values(profile, self.fixed)
        for _ in range(self.REPAIR_ROUNDS):
            if self.allowed(profile):
                return profile
            for rule in self.constraints:
                if rule.broken(v):
                    profile.update(rule.repair(v))
        if not self.allowed(profile):
            raise AssertionError(f"{self.implementation_name}: could not repair {profile}: {list(self.violations(profile))}")
        return profile

    def completable(self, profile: Mapping, dimensions: tuple[Axis, ...] | None = None) -> bool:
        """Whether the partial profile extends to a valid one over ``dimensions``."""
        if not self.allowed(profile):
            return False
        # Only the constrained dimensions can make a completion fail.
        remaining = [d for d in (dimensions or self.dimensions) if d.name not in profile and d.name in self.constrained]

        def extend(partial: dict, index: int) -> bool:
            if index == len(remaining):
                return True
            dimension = remaining[index]
            for value in dimension.values:
                partial[dimension.name] = value
                if self.allowed(partial) and extend(partial, index + 1):
                    del partial[dimension.name]
                    return True
            del partial[dimension.name]
            return False

        return extend(dict(profile), 0)

    # -- pairs -----------------------------------------------------------------------

    @property
    def pairwise_dimensions(self) -> tuple[Axis, ...]:
        """The dimensions the pairs are over. The defect enters as ``invalid``, no or
        yes: every defect against every value of every dimension would need hundreds
        of cases; `invalid_rows` tries each defect against what it depends on."""
        dims = []
        for dimension in self.dimensions:
            if dimension.name == "defect":
                dims.append(Axis("invalid", (False, True)))
            else:
                dims.append(dimension)
        return tuple(dims)

    @property
    def valid_dimensions(self) -> tuple[Axis, ...]:
        return tuple(d for d in self.pairwise_dimensions if d.name != "invalid")

    def _pair_allowed(self, profile: Mapping) -> bool:
        """Whether a partial pairwise profile extends to a valid case."""
        return self._allowed_constrained(tuple((name, profile[name]) for name in sorted(self.constrained) if name in profile))

    @functools.lru_cache(maxsize=None)
    def _allowed_constrained(self, items: tuple) -> bool:
        profile = dict(items)
        invalid = profile.pop("invalid", None)
        if invalid is None or invalid is False:
            return self.completable({**profile, "defect": None} if invalid is False else profile)
        return any(self.completable({**profile, "defect": defect}) for defect in self.defects)

    @functools.cached_property
    def feasible_pairs(self) -> frozenset[tuple]:
        """Every ((dimension, value), (dimension, value)) pair some valid case holds,
        dimensions in `pairwise_dimensions` order."""
        pairs = set()
        for a, b in itertools.combinations(self.pairwise_dimensions, 2):
            for x in a.values:
                for y in b.values:
                    if self._pair_allowed({a.name: x, b.name: y}):
                        pairs.add(((a.name, x), (b.name, y)))
        return frozenset(pairs)

    def pairs_of(self, profile: Mapping) -> set[tuple]:
        """The pairs a (complete) profile holds, over the pairwise dimensions. An
        invalid case holds only its pairs with ``invalid=yes``: it raises before it
        computes anything, so it checks no combination of the other values."""
        flat = dict(profile)
        invalid = flat.get("defect") is not None
        flat["invalid"] = invalid
        names = [d.name for d in self.pairwise_dimensions]
        pairs = {((a, flat[a]), (b, flat[b])) for a, b in itertools.combinations(names, 2) if a in flat and b in flat}
        if invalid:
            pairs = {pair for pair in pairs if pair[0][0] == "invalid" or pair[1][0] == "invalid"}
        return pairs

    @functools.cached_property
    def covering_rows(self) -> tuple[dict, ...]:
        """`rows_holding` every feasible pair of valid values (``invalid=yes``: `invalid_rows`)."""
        return self.rows_holding(self.feasible_pairs)

    def rows_holding(self, pairs) -> tuple[dict, ...]:
        """Few valid profiles that together hold ``pairs`` (feasible, valid values):
        IPOG (`harness.pairwise`) under this space's constraints, the dimensions largest
        domain first. The ties are ordered a few ways, seeded by the family's name (the
        same pairs always give the same rows), and the smallest result wins. A
        dimension a row leaves open takes its simplest allowed value."""
        shuffler = random.Random(f"rnn-harness covering {self.family.name}")
        best = None
        for _ in range(IPOG_ORDERS):
            order = list(self.valid_dimensions)
            shuffler.shuffle(order)
            order.sort(key=lambda dimension: -len(dimension.values))
            rows = ipog([(d.name, d.values) for d in order], pairs, lambda row: self._pair_allowed({**row, "invalid": False}), self._pair_key)
            if best is None or len(rows) < len(best):
                best = rows
        profiles = tuple(self._filled({**row, "defect": None}) for row in best)
        return tuple({name: profile[name] for name in self.prefix_names} for profile in profiles)

    def _filled(self, row: dict) -> dict:
        """A row with every dimension it left open set to the simplest value that keeps it valid."""
        row = dict(row)
        for dimension in self.dimensions:
            if dimension.name not in row:
                row[dimension.name] = next(value for value in dimension.values if self.completable({**row, dimension.name: value}))
        return row

    @property
    def prefix_names(self) -> tuple[str, ...]:
        return tuple(d.name for d in self.dimensions)

    @functools.cached_property
    def _position(self) -> dict[str, int]:
        return {d.name: i for i, d in enumerate(self.pairwise_dimensions)}

    def _pair_key(self, a: tuple, b: tuple) -> tuple:
        return (a, b) if self._position[a[0]] < self._position[b[0]] else (b, a)

    # -- invalid input ---------------------------------------------------------------

    @functools.cached_property
    def invalid_triples(self) -> tuple[tuple[str, str, bool], ...]:
        """Every applicable (defect, layout, h_0 given) triple."""
        triples = []
        for defect in self.defects:
            for layout in self.by_name["layout"].values:
                for given in (False, True):
                    if self.completable({"defect": defect, "layout": layout, "h0_given": given}):
                        triples.append((defect, layout, given))
        return tuple(triples)

    @functools.cached_property
    def invalid_rows(self) -> tuple[dict, ...]:
        """One profile per invalid triple: the triple, and for every other dimension a
        value that keeps the profile valid, chosen so that together the rows hold every
        feasible pair of ``invalid=yes`` with another value (else the simplest)."""
        uncovered = {pair for pair in self.feasible_pairs if pair[0] == ("invalid", True)}
        rows = []
        for defect, layout, given in self.invalid_triples:
            row = {"defect": defect, "layout": layout, "h0_given": given}
            for dimension in self.dimensions:
                if dimension.name in row:
                    continue
                allowed = [value for value in dimension.values if self.completable({**row, dimension.name: value})]
                wanted = [value for value in allowed if self._pair_key(("invalid", True), (dimension.name, value)) in uncovered]
                row[dimension.name] = (wanted or allowed)[0]
            uncovered -= self.pairs_of(row)
            rows.append({name: row[name] for name in self.prefix_names})
        return tuple(rows)

    def prefix(self, profile: Mapping, stage: int = STAGE_COVERING) -> tuple[int, ...]:
        """The strategy's integer choices that draw this profile: the stage, then one
        choice per dimension."""
        return (stage,) + tuple(dimension.index(profile[dimension.name]) for dimension in self.dimensions)

    def sampled_rows(self, seed: int, count: int) -> tuple[dict, ...]:
        """``count`` profiles drawn at random, each dimension on its own with the
        weights of a random draw (a quarter no_grad, one case in ten invalid, ...), then
        repaired: the frequencies Hypothesis' own generation, which favours simple
        values and variations of earlier examples, does not give. Seeded."""
        generator = random.Random(f"rnn-harness sampled {seed}")
        rows = []
        for _ in range(count):
            drawn = {dimension.name: generator.choice(dimension.choices) for dimension in self.dimensions}
            rows.append(self.repair(drawn))
        return tuple(rows)

    # -- what a case holds -------------------------------------------------------------

    def profile_of(self, case: Case) -> dict:
        """The value of every dimension (constants included) that ``case`` holds."""
        return {record.name: record.classify(case) for record in self.records}

    def triple_of(self, profile: Mapping) -> tuple[str, str, bool] | None:
        """The invalid-input triple (defect, layout, h_0 given) a profile holds, or None for a valid one."""
        defect = profile.get("defect")
        if defect is None:
            return None
        return (defect, profile.get("layout", "batched"), bool(profile.get("h0_given")) or defect in STATE_DEFECTS)


_SPACES: dict[tuple, Space] = {}


def space_for(implementation, devices: tuple[str, ...] | None = None, invalid: bool = True) -> Space:
    """The space of an implementation. Implementations that leave the same dimensions
    open share one `Space`, so its covering rows are built once per process."""
    space = Space(implementation, list(devices) if devices else None, invalid)
    return _SPACES.setdefault(space.signature, space)
