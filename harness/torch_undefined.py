"""The invalid inputs on which torch's own behaviour is undefined, declared as classes.

On these inputs torch's reference kernel reads or writes past a tensor: the process
may die, raise, or return, and which one changes from process to process. Nothing can
be demanded of a candidate there, so a campaign sets such a case aside before torch
runs (`harness.campaign`), whatever torch would have done in that process, and counts
it under the declaration's label. docs/found-bugs.md has the write-ups, and
``tools/torch_undefined_sweep.py`` the measurement that finds the classes.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from harness.cases import Case


@dataclasses.dataclass(frozen=True)
class UndefinedBehaviour:
    """One class of invalid input on which torch's reference behaves undefinedly.

    ``when`` receives a `harness.Case` and is True exactly for the cases of the class;
    ``reason`` says what torch does there, which function is at fault, and where
    docs/found-bugs.md describes it.
    """

    name: str
    when: Callable[[Case], bool]
    reason: str
    families: frozenset[str]
    """The families whose cases ``when`` may cover: the others' are never tried."""

    def label(self) -> str:
        """How a report counts the cases it set aside."""
        return f"torch's undefined behaviour ({self.name}): {self.reason}"


def _cell_unbatched_one_row_state(case: Case) -> bool:
    # An unbatched input with a 2-D h_0 of one row: the cell's forward unsqueezes the
    # state to 3-D, and with hidden_size 1 the kernel's checks pass on the wrong
    # dimensions. RNNCell computes by broadcasting instead and always returns.
    return case.family in ("GRUCell", "LSTMCell") and case.layout == "unbatched" and case.defect == "h0_wrong_rank" and case.hidden_size == 1


def _lstm_packed_short_c0(case: Case) -> bool:
    # nn.LSTM checks (h_0, c_0) for a Tensor input only, and ATen's packed LSTM takes
    # a layer's c from c_0 without checking that c_0 has as many layers as h_0.
    return case.family == "LSTM" and case.packed and case.defect == "c0_one_layer"


def _lstm_packed_4d_h0(case: Case) -> bool:
    # A 4-D h_0 (1, L*D, B, R): ATen's packed lstm raises RuntimeError ("got an
    # incorrect number of RNN parameters") unless there is one layer and direction and
    # B == R; then the kernel runs on the malformed state. An unsorted batch of more
    # than one row fails before, in nn.LSTM's permutation of h_0's dimension 1 (size 1).
    one_stack = case.num_layers * case.num_directions == 1
    permuted = case.layout == "packed_unsorted" and case.batch > 1
    return case.family == "LSTM" and case.packed and case.defect == "h0_wrong_rank" and one_stack and case.batch == case.state_width and not permuted


DECLARATIONS: tuple[UndefinedBehaviour, ...] = (
    UndefinedBehaviour(
        "cell-unbatched-one-row-state",
        _cell_unbatched_one_row_state,
        "nn.GRUCell and nn.LSTMCell with hidden_size 1, an unbatched (1-D) input and a 2-D h_0 of one row: "
        "the module unsqueezes h_0 to 3-D, ATen's gru_cell/lstm_cell checks pass on the wrong dimensions and the kernel "
        "reads out of bounds; the process crashes (SIGSEGV), or raises RuntimeError, varying between processes "
        "(docs/found-bugs.md, \"a 1-D input with a one-row 2-D state\")",
        frozenset({"GRUCell", "LSTMCell"}),
    ),
    UndefinedBehaviour(
        "lstm-packed-short-c0",
        _lstm_packed_short_c0,
        "nn.LSTM on a PackedSequence with a c_0 for one layer of several: neither nn.LSTM.forward nor ATen's packed "
        "lstm checks c_0's layers, and the kernel reads past c_0; the process crashes "
        "(docs/found-bugs.md, \"nn.LSTM, ATen kernel: a PackedSequence with a malformed state\")",
        frozenset({"LSTM"}),
    ),
    UndefinedBehaviour(
        "lstm-packed-4d-h0",
        _lstm_packed_4d_h0,
        "nn.LSTM of one layer and direction on a PackedSequence with a 4-D h_0 whose batch equals its width: ATen's "
        "packed lstm runs its kernel on it, which reads past it (the process crashes) or fails a broadcast "
        "(RuntimeError), by size (docs/found-bugs.md, \"nn.LSTM, ATen kernel: a PackedSequence with a malformed state\")",
        frozenset({"LSTM"}),
    ),
)
"""Every declared class, by name; `covering` returns the first that covers a case."""


def covering(case: Case) -> UndefinedBehaviour | None:
    """The declaration covering this case, or None where torch's behaviour is defined.
    Valid cases (no defect) are never covered."""
    if case.defect is None:
        return None
    for declaration in DECLARATIONS:
        if case.family in declaration.families and declaration.when(case):
            return declaration
    return None


def families() -> frozenset[str]:
    """The families some declaration may cover."""
    return frozenset().union(*(declaration.families for declaration in DECLARATIONS))
