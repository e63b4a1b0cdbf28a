"""torch-compatible shells around a single-direction recurrence or a single step.

`DropInRNN`, `DropInLSTM` and `DropInGRU` do everything about torch's layer modules
that is not the recurrence itself: constructor checks, parameters under torch's names
and shapes (gates stacked as torch stacks them, LSTM's ``weight_hr`` with
``proj_size``), input layouts (time-major, batch_first, unbatched, PackedSequence),
validation with torch's exception types, layer and direction stacking, dropout
between layers, and putting the results back into torch's shapes. A subclass
supplies `run_direction`; the built-ins do, and an outside plugin may too.

`DropInRNNCell`, `DropInLSTMCell` and `DropInGRUCell` do the same for the cells; a
subclass supplies `step`.

Every layout is reduced to torch's packed form before the recurrence runs: a
``(sum(batch_sizes), features)`` matrix holding time step after time step, with
``batch_sizes[t]`` active rows at step t (a prefix, because packed batches are sorted
by decreasing length). A plain batch is the special case where every step has all
rows, so one code path serves both.

The package: `layers` (the layer shells), `cells` (the cell shells), `shared` (what
they have in common). Import the names from here, or from ``harness``.
"""

from __future__ import annotations

from torch import nn

from harness.step_formulas import ELEMENTWISE
from harness.dropin.cells import DropInCell, DropInGRUCell, DropInLSTMCell, DropInRNNCell
from harness.dropin.layers import DropInGRU, DropInLSTM, DropInRecurrent, DropInRNN
from harness.dropin.shared import DirectionWeights, State, check_constructor_arguments, step_offsets

__all__ = [
    "ELEMENTWISE", "SHELLS", "DirectionWeights", "DropInCell", "DropInGRU", "DropInGRUCell", "DropInLSTM", "DropInLSTMCell",
    "DropInRNN", "DropInRNNCell", "DropInRecurrent", "State", "check_constructor_arguments", "step_offsets",
]

SHELLS: dict[str, type[nn.Module]] = {
    shell.family.name: shell
    for shell in (DropInRNN, DropInLSTM, DropInGRU, DropInRNNCell, DropInLSTMCell, DropInGRUCell)
}
"""The drop-in shell of each family, by family name."""
