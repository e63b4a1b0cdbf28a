"""The discrete case space of one implementation, and a small set of cases covering it.

Every `Case` has a *profile*: one value for each discrete dimension (layout, grad
mode, dtype, batch-size class, ...). `Space` lists the dimensions that an
implementation's declarations leave open, the constraints between their values (no
empty batch for a packed input, a batch of ``num_layers * num_directions`` rows needs
more than one layer or direction, ...), and:

- ``feasible_pairs()``: every pair of values of two dimensions that some valid case
  holds;
- ``covering_rows()``: a few profiles that together hold every feasible pair (IPOG,
  `harness.pairwise`, deterministic);
- ``invalid_rows()``: one profile per applicable invalid-input defect x layout x
  state form;
- ``profile_of(case)``: which values a drawn case holds, for the coverage report.

`harness.strategies.cases` draws the profile first, one integer choice per
dimension, so a row is also the start of a Hypothesis choice sequence
(``prefix(row)``): `harness.coverage` hands those prefixes to Hypothesis, which
runs them before it generates anything and shrinks a failing one like any other.
"""

from __future__ import annotations

import functools
import itertools
import random
from typing import Mapping

from harness.cases import DTYPE_NAMES, DTYPE_ORDER, NONCONTIGUOUS, SECOND_CALLS, Case, available_devices
from harness.dimensions import (
    BATCH_CLASSES, GRAD_MODES, ONE_LAYER_DEFECTS, ONE_ROW_DEFECTS, REGIMES, SEQUENCE_CLASSES, STATE_DEFECTS, Dimension,
    batch_class, family_defects, grad_mode, regime, sequence_class,
)
from harness.pairwise import ipog

IPOG_ORDERS = 16
"""Dimension orders the covering construction tries; the smallest result is kept."""
INVALID_WEIGHT = 9
"""A randomly drawn case is valid INVALID_WEIGHT times in INVALID_WEIGHT + 1."""

STAGE_COVERING, STAGE_SAMPLED, STAGE_LAST = 0, 1, 2**20
"""The strategy's first choice orders the stored rows, since Hypothesis replays them
in the order of their choices: 0 for a covering row, 1 + i for the i-th sampled row
(so they run in the order they were drawn, not sorted by their values). It has no
other effect; Hypothesis' own generation draws anything in 0..STAGE_LAST."""


class Space:
    """The discrete dimensions an implementation leaves open, and their constraints."""

    def __init__(self, implementation, devices: list[str] | None = None, invalid: bool = True):
        from harness.implementation import ALL_DTYPES

        family = implementation.family_record
        self.family = family
        self.implementation_name = implementation.name
        self.max_layers = 1 if family.cell else min(4, implementation.max_layers or 4)
        self.defects = family_defects(family) if invalid else ()
        declared = implementation.dtypes or ALL_DTYPES
        dtypes = tuple(name for name in DTYPE_ORDER if any(DTYPE_NAMES[d] == name for d in declared))
        allowed_devices = tuple(d for d in (devices or available_devices()) if implementation.devices is None or d in implementation.devices)
        layouts = ["batched"]
        if implementation.unbatched:
            layouts.append("unbatched")
        if implementation.packed and not family.cell:
            layouts += ["packed_sorted", "packed_unsorted"]
        grad_modes = GRAD_MODES if implementation.backward else ("forward_only", "no_grad")
        candidates = [
            # The defect first: every valid row's choices sort before every invalid one's.
            Dimension("defect", (None,) + self.defects, (INVALID_WEIGHT * len(self.defects),) + (1,) * len(self.defects)),
            Dimension("device", allowed_devices),
            Dimension("dtype", dtypes),
            Dimension("layout", tuple(layouts)),
            Dimension("grad_mode", grad_modes),
            Dimension("second_call", SECOND_CALLS),
            Dimension("training", (False, True)),
            Dimension("h0_given", (False, True)),
            Dimension("noncontiguous", NONCONTIGUOUS),
            Dimension("regime", REGIMES),
            Dimension("exact_zeros", (False, True)),
            Dimension("bias", (True, False)),
        ]
        if family.nonlinearity:
            nonlinearities = tuple(n for n in ("tanh", "relu") if implementation.nonlinearities is None or n in implementation.nonlinearities)
            candidates.append(Dimension("nonlinearity", nonlinearities))
        if not family.cell:
            candidates.append(Dimension("batch_first", (False, True)))
            candidates.append(Dimension("bidirectional", (False, True) if implementation.bidirectional else (False,)))
            candidates.append(Dimension("layers", ("one", "several") if self.max_layers > 1 else ("one",)))
            if family.projections:
                candidates.append(Dimension("projection", ("none", "projected") if implementation.projections else ("none",), (3, 1)))
            candidates.append(Dimension("dropout", ("zero", "nonzero")))
        batch_classes = BATCH_CLASSES
        candidates.append(Dimension("batch", batch_classes, (1, 2, 1, 1, 1)))
        if not family.cell:
            candidates.append(Dimension("sequence", SEQUENCE_CLASSES, (1, 3, 1)))
        # Square means input_size == hidden_size > 1 (at 1 x 1 every matrix is square
        # and none is informative), so the minimal case of either class has input_size 1.
        candidates.append(Dimension("input_width", ("other", "square"), (4, 1)))
        # The order of the choices: Hypothesis replays the rows sorted by their choices,
        # so what makes a case costly (steps, layers, directions, rows) goes first, after
        # the defect: the cheap rows run first, and the first failure is a cheap one.
        costly = ("defect", "sequence", "layers", "bidirectional", "batch")
        candidates.sort(key=lambda d: costly.index(d.name) if d.name in costly else len(costly))
        self.all_dimensions = tuple(candidates)
        # A dimension with one value is a constant: it draws nothing and pairs with nothing.
        self.dimensions = tuple(d for d in candidates if len(d.values) > 1)
        self.fixed = {d.name: d.values[0] for d in candidates if len(d.values) == 1}
        self.by_name = {d.name: d for d in candidates}

    @property
    def signature(self) -> tuple:
        """What the rows depend on: the family, the open dimensions and the constants."""
        return (self.family.name, self.max_layers, self.defects, tuple((d.name, d.values, d.weights) for d in self.all_dimensions))

    # -- constraints -----------------------------------------------------------------

    def value(self, profile: Mapping, name: str):
        """The profile's value of ``name``: drawn, fixed by a declaration, or None if not yet assigned."""
        if name in profile:
            return profile[name]
        return self.fixed.get(name)

    def allowed(self, profile: Mapping) -> bool:
        """False if the (partial) profile breaks a constraint among its assigned values."""
        return not any(True for _ in self.violations(profile))

    def violations(self, profile: Mapping):
        """The names of the constraints the (partial) profile breaks."""
        v = functools.partial(self.value, profile)
        layout, batch, defect = v("layout"), v("batch"), v("defect")
        single_stack = not self.family.cell and v("layers") == "one" and v("bidirectional") is False
        if layout == "unbatched" and batch not in (None, "one"):
            yield "an unbatched input has one row"
        if layout is not None and layout.startswith("packed") and batch == "empty":
            yield "a PackedSequence holds at least one sequence"
        if batch == "coincidence" and single_stack:
            yield "a coincident batch (num_layers * num_directions rows) needs more than one layer or direction"
        if defect is None:
            return
        if defect == "empty_sequence" and layout is not None and layout.startswith("packed"):
            yield "an empty sequence cannot be packed"
        if defect in ONE_ROW_DEFECTS and (layout == "unbatched" or batch in ("one", "empty")):
            yield "a one-row state defect needs a batch of two rows or more"
        if defect == "h0_wrong_batch" and layout == "unbatched":
            yield "an unbatched input has no batch to get wrong"
        if defect in ONE_LAYER_DEFECTS and single_stack:
            yield "a one-layer state defect needs more than one layer or direction"
        if defect in STATE_DEFECTS and v("h0_given") is False:
            yield "a state defect passes a state"

    def repair(self, profile: dict) -> dict:
        """A randomly drawn profile made valid, keeping its rarer values: the defect and
        the layout stay, the batch class, layers or state form give way."""
        profile = dict(profile)
        v = functools.partial(self.value, profile)
        for _ in range(4):
            if self.allowed(profile):
                return profile
            layout, defect = v("layout"), v("defect")
            if layout == "unbatched":
                profile["batch"] = "one"
                if defect in ONE_ROW_DEFECTS or defect == "h0_wrong_batch":
                    profile["layout"] = "batched"
                    profile["batch"] = "few"
            if layout.startswith("packed") and v("batch") == "empty":
                profile["batch"] = "one"
            if defect == "empty_sequence" and layout.startswith("packed"):
                profile["layout"] = "batched"
            if defect in ONE_ROW_DEFECTS and v("batch") in ("one", "empty"):
                profile["batch"] = "few"
            if defect in STATE_DEFECTS:
                profile["h0_given"] = True
            needs_stack = v("batch") == "coincidence" or defect in ONE_LAYER_DEFECTS
            if needs_stack and not self.family.cell and v("layers") == "one" and v("bidirectional") is False:
                if "layers" in profile and len(self.by_name["layers"].values) > 1:
                    profile["layers"] = "several"
                elif "bidirectional" in profile and len(self.by_name["bidirectional"].values) > 1:
                    profile["bidirectional"] = True
                elif defect in ONE_LAYER_DEFECTS:
                    profile["defect"] = "wrong_width"
                else:
                    profile["batch"] = "few"
        if not self.allowed(profile):
            raise AssertionError(f"{self.implementation_name}: could not repair {profile}: {list(self.violations(profile))}")
        return profile

    def completable(self, profile: Mapping, dimensions: tuple[Dimension, ...] | None = None) -> bool:
        """Whether the partial profile extends to a valid one over ``dimensions``."""
        if not self.allowed(profile):
            return False
        # Only the constrained dimensions can make a completion fail.
        remaining = [d for d in (dimensions or self.dimensions) if d.name not in profile and d.name in self.CONSTRAINED]

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
    def pairwise_dimensions(self) -> tuple[Dimension, ...]:
        """The dimensions the pairs are over. The defect enters as ``invalid``, no or
        yes: every defect against every value of every dimension would need hundreds
        of cases; `invalid_rows` tries each defect against what it depends on."""
        dims = []
        for dimension in self.dimensions:
            if dimension.name == "defect":
                dims.append(Dimension("invalid", (False, True)))
            else:
                dims.append(dimension)
        return tuple(dims)

    @property
    def valid_dimensions(self) -> tuple[Dimension, ...]:
        return tuple(d for d in self.pairwise_dimensions if d.name != "invalid")

    CONSTRAINED = ("layout", "batch", "defect", "invalid", "layers", "bidirectional", "h0_given")
    """The only dimensions any constraint reads; the others take any value."""

    def _pair_allowed(self, profile: Mapping) -> bool:
        """Whether a partial pairwise profile extends to a valid case."""
        return self._allowed_constrained(tuple((name, profile[name]) for name in self.CONSTRAINED if name in profile))

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
        profile = {
            "defect": case.defect,
            "device": case.device,
            "dtype": str(case.dtype),
            "layout": case.layout,
            "grad_mode": grad_mode(case),
            "second_call": case.second_call,
            "training": case.training,
            "h0_given": case.h0_given or case.defect in STATE_DEFECTS,
            "noncontiguous": case.noncontiguous,
            "regime": regime(case),
            "exact_zeros": case.exact_zeros,
            "bias": case.bias,
        }
        if self.family.nonlinearity:
            profile["nonlinearity"] = case.nonlinearity
        if not self.family.cell:
            profile["batch_first"] = case.batch_first
            profile["bidirectional"] = case.bidirectional
            profile["layers"] = "one" if case.num_layers == 1 else "several"
            if self.family.projections:
                profile["projection"] = "projected" if case.proj_size else "none"
            profile["dropout"] = "zero" if case.dropout == 0 else "nonzero"
            profile["sequence"] = sequence_class(case.seq_len)
        profile["batch"] = batch_class(case)
        profile["input_width"] = "square" if case.input_size == case.hidden_size > 1 else "other"
        return {name: value for name, value in profile.items() if name in self.by_name}


_SPACES: dict[tuple, Space] = {}


def space_for(implementation, devices: tuple[str, ...] | None = None, invalid: bool = True) -> Space:
    """The space of an implementation. Implementations that leave the same dimensions
    open share one `Space`, so its covering rows are built once per process."""
    space = Space(implementation, list(devices) if devices else None, invalid)
    return _SPACES.setdefault(space.signature, space)
