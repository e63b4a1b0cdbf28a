"""The discrete dimensions of the case space beyond a Case's own fields: their values,
and how a drawn case is classified into them (grad mode, value regime, batch-size and
sequence-length class), which `harness.covering` pairs and `harness.coverage` counts."""

from __future__ import annotations

import dataclasses

from harness.cases import DEFECTS, Case
from harness.families import Family

GRAD_MODES = ("backward", "forward_only", "no_grad", "backward_parameters")
REGIMES = ("default", "saturating", "chaotic", "small")
BATCH_CLASSES = ("one", "few", "empty", "coincidence", "wide")
SEQUENCE_CLASSES = ("one", "short", "long")
STATE_DEFECTS = frozenset(d for d in DEFECTS if d.startswith(("h0", "c0")) or d == "state_not_tuple")
ONE_ROW_DEFECTS = frozenset(d for d in DEFECTS if d.endswith("one_row"))
ONE_LAYER_DEFECTS = frozenset(d for d in DEFECTS if d.endswith("one_layer"))


@dataclasses.dataclass(frozen=True)
class Dimension:
    """One discrete dimension: its values (the first is the simplest, where
    shrinking heads) and how often a random draw picks each."""

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


def family_defects(family: Family) -> tuple[str, ...]:
    """The invalid-input defects that can apply to some case of this family, in DEFECTS order."""
    defects = []
    for defect in DEFECTS:
        if (defect.startswith("c0") or defect == "state_not_tuple") and not family.cell_state:
            continue
        if family.cell and defect in ("input_1d", "input_4d", "empty_sequence", "h0_one_layer", "c0_one_layer"):
            continue
        if not family.cell and defect in ("input_0d", "input_3d"):
            continue
        defects.append(defect)
    return tuple(defects)


def grad_mode(case: Case) -> str:
    if case.no_grad:
        return "no_grad"
    if case.backward:
        return "backward" if case.input_grad else "backward_parameters"
    return "forward_only"


REGIME_GAINS = {"default": 1.0, "saturating": 8.0, "chaotic": 3.0, "small": 0.1}
RELU_GAINS = {"default": 1.0, "saturating": 1.5, "chaotic": 1.25, "small": 0.1}
"""relu has no saturation: large gains only overflow, so its gains stay near 1 (but
distinct, so a case's regime can be read back from it)."""


def regime(case: Case) -> str:
    gains = RELU_GAINS if case.nonlinearity == "relu" and case.family_record.nonlinearity else REGIME_GAINS
    for name, gain in gains.items():
        if gain == case.weight_gain:
            return name
    return "other"


def coincident_batch(case_or_sizes) -> int:
    """The batch at which a state with swapped axes has the right shape: the hidden
    size for a cell, num_layers * num_directions for a layer."""
    case = case_or_sizes
    if case.family_record.cell:
        return case.hidden_size
    return case.num_layers * case.num_directions


def batch_class(case: Case) -> str:
    if case.layout == "unbatched":
        return "one"
    if case.batch == 0:
        return "empty"
    if case.batch == 1:
        return "one"
    if case.batch == coincident_batch(case):
        return "coincidence"
    if case.batch > 16:
        return "wide"
    return "few"


def sequence_class(seq_len: int) -> str:
    if seq_len == 1:
        return "one"
    return "long" if seq_len > 64 else "short"
