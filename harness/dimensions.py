"""The discrete dimensions of the case space, one record each, and the rules between them.

A `Dimension` says everything about one dimension: its values (narrowed by what an
implementation declares), how a drawn `Case` is classified into them, the
`Constraint`s it owns, and which families it applies to. `DIMENSIONS` lists them in
the order a case's choices are drawn. Every reader goes through these records: the
space and its covering rows (`harness.case_space`), the strategies
(`harness.strategies`), the coverage count (`harness.coverage_report`) and the
invalid-input rules (`defects_for`). A new dimension is one more record.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Mapping

from harness.cases import DEFECTS, DTYPE_NAMES, DTYPE_ORDER, NONCONTIGUOUS, SECOND_CALLS, Case, available_devices
from harness.families import Family

GRAD_MODES = ("backward", "forward_only", "no_grad", "backward_parameters")
REGIMES = ("default", "saturating", "chaotic", "small")
BATCH_CLASSES = ("one", "few", "empty", "coincidence", "wide")
SEQUENCE_CLASSES = ("one", "short", "long")
STATE_DEFECTS = frozenset(d for d in DEFECTS if d.startswith(("h0", "c0")) or d == "state_not_tuple")
ONE_ROW_DEFECTS = frozenset(d for d in DEFECTS if d.endswith("one_row"))
ONE_LAYER_DEFECTS = frozenset(d for d in DEFECTS if d.endswith("one_layer"))
CELL_STATE_DEFECTS = frozenset(d for d in DEFECTS if d.startswith("c0") or d == "state_not_tuple")
LAYER_ONLY_DEFECTS = frozenset(("input_1d", "input_4d", "empty_sequence", "h0_one_layer", "c0_one_layer"))
CELL_ONLY_DEFECTS = frozenset(("input_0d", "input_3d"))
DEFECT_SIZES: dict[str, Callable[[Case], bool]] = {
    # a one-feature defect needs a width of two or more to shrink to one
    "input_one_feature": lambda case: case.input_size > 1,
    "h0_one_feature": lambda case: case.state_width > 1,
    "c0_one_feature": lambda case: case.hidden_size > 1,
}
"""The defects whose applicability depends on sizes, which no profile fixes."""
INVALID_WEIGHT = 9
"""A randomly drawn case is valid INVALID_WEIGHT times in INVALID_WEIGHT + 1."""
REGIME_GAINS = {"default": 1.0, "saturating": 8.0, "chaotic": 3.0, "small": 0.1}
RELU_GAINS = {"default": 1.0, "saturating": 1.5, "chaotic": 1.25, "small": 0.1}
"""relu has no saturation: large gains only overflow, so its gains stay near 1 (but
distinct, so a case's regime can be read back from it)."""


@dataclasses.dataclass(frozen=True)
class Scope:
    """What narrows a dimension's values: the implementation's declarations, the
    devices asked for, and whether invalid inputs are drawn at all."""

    implementation: Any  # harness.implementation.Implementation
    devices: tuple[str, ...] | None = None
    invalid: bool = True

    @property
    def family(self) -> Family:
        return self.implementation.family_record

    @property
    def max_layers(self) -> int:
        return 1 if self.family.cell else min(4, self.implementation.max_layers or 4)


class Values:
    """A (partial) profile as a constraint reads it: a value drawn, else one fixed by
    a declaration, else None (not assigned yet, or no such dimension here)."""

    def __init__(self, profile: Mapping, fixed: Mapping | None = None):
        self.profile, self.fixed = profile, fixed or {}

    def __call__(self, name: str):
        return self.profile[name] if name in self.profile else self.fixed.get(name)

    def drawn(self, name: str) -> bool:
        """Whether the profile draws ``name`` (an open dimension), so a repair may change it."""
        return name in self.profile and name not in self.fixed

    def single_stack(self) -> bool:
        """One layer in one direction (never true for a cell, which has no layers dimension)."""
        return self("layers") == "one" and self("bidirectional") is False


@dataclasses.dataclass(frozen=True)
class Constraint:
    """A rule among dimensions' values: which it reads, when a (partial) profile
    breaks it, and the changes that repair a randomly drawn profile that does."""

    reason: str
    reads: frozenset[str]
    broken: Callable[[Values], bool]
    repair: Callable[[Values], dict]


@dataclasses.dataclass(frozen=True)
class Dimension:
    """One discrete dimension of the case space.

    ``values``: a tuple, or what a `Scope` allows: the implementation's declared
    capabilities narrow them, and a dimension left one value is a constant (the
    first is the simplest, where shrinking heads). ``weights``: how often a random draw picks each (None:
    uniform), or a function of the values. ``classify``: the value a `Case` holds.
    ``applies``: the families it exists for. ``constraints``: the rules it owns.
    ``realize``: for a dimension the strategy's sizes do not already draw, the case
    holding a value (`harness.strategies` applies it after drawing the rest)."""

    name: str
    values: tuple | Callable[[Scope], tuple]
    classify: Callable[[Case], Any]
    weights: tuple[int, ...] | Callable[[tuple], tuple[int, ...]] | None = None
    applies: Callable[[Family], bool] = lambda family: True
    constraints: tuple[Constraint, ...] = ()
    realize: Callable[[Case, Any], Case] | None = None

    def values_in(self, scope: Scope) -> tuple:
        return self.values(scope) if callable(self.values) else self.values

    def weights_of(self, values: tuple) -> tuple[int, ...] | None:
        return self.weights(values) if callable(self.weights) else self.weights


# -- classification ----------------------------------------------------------------


def grad_mode(case: Case) -> str:
    if case.no_grad:
        return "no_grad"
    if case.backward:
        return "backward" if case.input_grad else "backward_parameters"
    return "forward_only"


def gains_for(family: Family, nonlinearity: str) -> dict[str, float]:
    """The weight gain of each regime for a family and nonlinearity."""
    return RELU_GAINS if nonlinearity == "relu" and family.nonlinearity else REGIME_GAINS


def regime(case: Case) -> str:
    for name, gain in gains_for(case.family_record, case.nonlinearity).items():
        if gain == case.weight_gain:
            return name
    return "other"


def coincident_batch(family: Family, hidden_size: int, num_layers: int, num_directions: int) -> int:
    """The batch at which a state with swapped axes has the right shape: the hidden
    size for a cell, num_layers * num_directions for a layer."""
    return hidden_size if family.cell else num_layers * num_directions


def batch_class(case: Case) -> str:
    if case.layout == "unbatched":
        return "one"
    if case.batch == 0:
        return "empty"
    if case.batch == 1:
        return "one"
    if case.batch == coincident_batch(case.family_record, case.hidden_size, case.num_layers, case.num_directions):
        return "coincidence"
    if case.batch > 16:
        return "wide"
    return "few"


def sequence_class(seq_len: int) -> str:
    if seq_len == 1:
        return "one"
    return "long" if seq_len > 64 else "short"


# -- the invalid-input rules ---------------------------------------------------------


def family_defects(family: Family) -> tuple[str, ...]:
    """The invalid-input defects that can apply to some case of this family, in DEFECTS order."""
    def applies(defect: str) -> bool:
        if defect in CELL_STATE_DEFECTS and not family.cell_state:
            return False
        return defect not in (LAYER_ONLY_DEFECTS if family.cell else CELL_ONLY_DEFECTS)

    return tuple(defect for defect in DEFECTS if applies(defect))


def _stacked(v: Values, otherwise: dict) -> dict:
    """More than one layer or direction, where the profile draws them; else ``otherwise``."""
    if v.drawn("layers"):
        return {"layers": "several"}
    if v.drawn("bidirectional"):
        return {"bidirectional": True}
    return otherwise


def _packed(v: Values) -> bool:
    return v("layout") is not None and v("layout").startswith("packed")


DEFECT_CONSTRAINTS = (
    # A repair goes through these in order, after the valid cases' constraints.
    Constraint(
        "an empty sequence cannot be packed", frozenset({"defect", "layout"}),
        lambda v: v("defect") == "empty_sequence" and _packed(v),
        lambda v: {"layout": "batched"},
    ),
    Constraint(
        "a one-row state defect needs a batch of two rows or more", frozenset({"defect", "layout", "batch"}),
        lambda v: v("defect") in ONE_ROW_DEFECTS and (v("layout") == "unbatched" or v("batch") in ("one", "empty")),
        lambda v: {"layout": "batched", "batch": "few"} if v("layout") == "unbatched" else {"batch": "few"},
    ),
    Constraint(
        "an unbatched input has no batch to get wrong", frozenset({"defect", "layout"}),
        lambda v: v("defect") == "h0_wrong_batch" and v("layout") == "unbatched",
        lambda v: {"layout": "batched", "batch": "few"},
    ),
    Constraint(
        "a state defect passes a state", frozenset({"defect", "h0_given"}),
        lambda v: v("defect") in STATE_DEFECTS and v("h0_given") is False,
        lambda v: {"h0_given": True},
    ),
    Constraint(
        "a one-layer state defect needs more than one layer or direction", frozenset({"defect", "layers", "bidirectional"}),
        lambda v: v("defect") in ONE_LAYER_DEFECTS and v.single_stack(),
        lambda v: _stacked(v, {"defect": "wrong_width"}),
    ),
)

BATCH_CONSTRAINTS = (
    Constraint(
        "an unbatched input has one row", frozenset({"layout", "batch"}),
        lambda v: v("layout") == "unbatched" and v("batch") not in (None, "one"),
        lambda v: {"batch": "one"},
    ),
    Constraint(
        "a PackedSequence holds at least one sequence", frozenset({"layout", "batch"}),
        lambda v: _packed(v) and v("batch") == "empty",
        lambda v: {"batch": "one"},
    ),
    Constraint(
        "a coincident batch (num_layers * num_directions rows) needs more than one layer or direction",
        frozenset({"batch", "layers", "bidirectional"}),
        lambda v: v("batch") == "coincidence" and v.single_stack(),
        lambda v: _stacked(v, {"batch": "few"}),
    ),
)


def _any_size(case: Case) -> bool:
    return True


def defects_for(case: Case) -> tuple[str, ...]:
    """The deliberate defects that make sense for this (valid) case, in DEFECTS order:
    those of its family whose constraints the case holding it keeps, and whose sizes it has."""
    rules = next(dimension for dimension in DIMENSIONS if dimension.name == "defect").constraints
    applicable = []
    for defect in family_defects(case.family_record):
        invalid = dataclasses.replace(case, defect=defect)
        v = Values(classify(invalid))
        if not any(rule.broken(v) for rule in rules) and DEFECT_SIZES.get(defect, _any_size)(invalid):
            applicable.append(defect)
    return tuple(applicable)


# -- the records --------------------------------------------------------------------


def _layers_only(family: Family) -> bool:
    return not family.cell


def _dtypes(scope: Scope) -> tuple:
    from harness.implementation import ALL_DTYPES

    declared = scope.implementation.dtypes or ALL_DTYPES
    return tuple(name for name in DTYPE_ORDER if any(DTYPE_NAMES[d] == name for d in declared))


def _devices(scope: Scope) -> tuple:
    declared = scope.implementation.devices
    return tuple(d for d in (scope.devices or available_devices()) if declared is None or d in declared)


def _layouts(scope: Scope) -> tuple:
    layouts = ("batched",) + (("unbatched",) if scope.implementation.unbatched else ())
    if scope.implementation.packed and not scope.family.cell:
        layouts += ("packed_sorted", "packed_unsorted")
    return layouts


def _nonlinearities(scope: Scope) -> tuple:
    declared = scope.implementation.nonlinearities
    return tuple(n for n in ("tanh", "relu") if declared is None or n in declared)


DIMENSIONS: tuple[Dimension, ...] = (
    # The order of a case's choices: Hypothesis replays stored rows sorted by their
    # choices, so the defect goes first (every valid row sorts before every invalid
    # one), then what makes a case costly (steps, layers, directions, rows): the cheap
    # rows run first, and the first failure is a cheap one.
    Dimension(
        "defect", lambda scope: (None,) + (family_defects(scope.family) if scope.invalid else ()), lambda case: case.defect,
        weights=lambda values: (INVALID_WEIGHT * (len(values) - 1),) + (1,) * (len(values) - 1), constraints=DEFECT_CONSTRAINTS,
    ),
    Dimension("sequence", SEQUENCE_CLASSES, lambda case: sequence_class(case.seq_len), (1, 3, 1), _layers_only),
    Dimension(
        "layers", lambda scope: ("one", "several") if scope.max_layers > 1 else ("one",),
        lambda case: "one" if case.num_layers == 1 else "several", applies=_layers_only,
    ),
    Dimension(
        "bidirectional", lambda scope: (False, True) if scope.implementation.bidirectional else (False,),
        lambda case: case.bidirectional, applies=_layers_only,
    ),
    Dimension("batch", BATCH_CLASSES, batch_class, (1, 2, 1, 1, 1), constraints=BATCH_CONSTRAINTS),
    Dimension("device", _devices, lambda case: case.device),
    Dimension("dtype", _dtypes, lambda case: str(case.dtype)),
    Dimension("layout", _layouts, lambda case: case.layout),
    Dimension("grad_mode", lambda scope: GRAD_MODES if scope.implementation.backward else ("forward_only", "no_grad"), grad_mode),
    Dimension("second_call", SECOND_CALLS, lambda case: case.second_call),
    Dimension("training", (False, True), lambda case: case.training),
    # a state defect passes a state, whatever h0_given says
    Dimension("h0_given", (False, True), lambda case: case.h0_given or case.defect in STATE_DEFECTS),
    Dimension("noncontiguous", NONCONTIGUOUS, lambda case: case.noncontiguous),
    Dimension("regime", REGIMES, regime),
    Dimension("exact_zeros", (False, True), lambda case: case.exact_zeros),
    Dimension("bias", (True, False), lambda case: case.bias),
    Dimension("nonlinearity", _nonlinearities, lambda case: case.nonlinearity, applies=lambda family: family.nonlinearity),
    Dimension("batch_first", (False, True), lambda case: case.batch_first, applies=_layers_only),
    Dimension(
        "projection", lambda scope: ("none", "projected") if scope.implementation.projections else ("none",),
        lambda case: "projected" if case.proj_size else "none", (3, 1), lambda family: not family.cell and family.projections,
    ),
    Dimension("dropout", ("zero", "nonzero"), lambda case: "zero" if case.dropout == 0 else "nonzero", applies=_layers_only),
    # Square means input_size == hidden_size > 1 (at 1 x 1 every matrix is square and
    # none is informative), so the minimal case of either class has input_size 1.
    Dimension("input_width", ("other", "square"), lambda case: "square" if case.input_size == case.hidden_size > 1 else "other", (4, 1)),
)


def dimensions_of(family: Family) -> tuple[Dimension, ...]:
    """The records that apply to a family, in `DIMENSIONS` order (read when called,
    so a record added to `DIMENSIONS` is seen)."""
    return tuple(dimension for dimension in DIMENSIONS if dimension.applies(family))


def classify(case: Case) -> dict:
    """The value of every dimension of its family that ``case`` holds, in `DIMENSIONS` order."""
    return {dimension.name: dimension.classify(case) for dimension in dimensions_of(case.family_record)}
