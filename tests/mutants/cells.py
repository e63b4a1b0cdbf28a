"""RNNCell, LSTMCell and GRUCell mutants: unbatched 1-D input, the missing state,
batch 0, the ``(h', c')`` tuple, and the caller's hx."""

from __future__ import annotations

import torch

from harness.dropin import DropInGRUCell, DropInLSTMCell, DropInRNNCell
from ._family_base import StepwiseCell


class UnbatchedReturnsBatch(StepwiseCell, DropInRNNCell):
    """Treats 1-D input as a batch of one and returns h' of shape (1, hidden).

    ``input.unsqueeze(0)`` on the way in, no ``squeeze(0)`` on the way out.
    Exposed by: 1-D input.
    """

    def forward(self, input, hx=None):
        if input.dim() == 1:
            return super().forward(input.unsqueeze(0), None if hx is None else hx.unsqueeze(0))
        return super().forward(input, hx)


class StateUpdatedInPlace(StepwiseCell, DropInRNNCell):
    """Writes h' into the caller's hx and returns it, to save an allocation.

    ``hx.copy_(h_next); return hx``: the caller's tensor changes under it (and with
    autograd on a leaf h, the in-place write raises). Exposed by: hx passed.
    """

    def step(self, input, state):
        h_next = super().step(input, state)
        return state.copy_(h_next)


class LSTMCellStateSwapped(StepwiseCell, DropInLSTMCell):
    """Returns ``(c', h')`` instead of ``(h', c')``.

    The formula computes c' first and the tuple follows that order. Exposed by: any
    input.
    """

    def step(self, input, state):
        h_next, c_next = super().step(input, state)
        return c_next, h_next


class LSTMCellIgnoresC(StepwiseCell, DropInLSTMCell):
    """Unpacks only h from hx and starts c from zeros on every call.

    ``h = hx[0]`` where ``h, c = hx`` was meant; with hx=None the cell is right, so
    a loop that never passes c (or passes zeros) does not notice. Exposed by: hx
    passed with a nonzero c.
    """

    def step(self, input, state):
        h, c = state
        return super().step(input, (h, torch.zeros_like(c)))


class LSTMCellUnbatchedKeepsBatchInC(StepwiseCell, DropInLSTMCell):
    """For 1-D input, squeezes the batch dimension out of h' but not out of c'.

    Extended from RNNCell code, where h' was the only state to squeeze. Exposed by:
    1-D input (c' is (1, hidden)).
    """

    def forward(self, input, hx=None):
        if input.dim() != 1:
            return super().forward(input, hx)
        hx = None if hx is None else tuple(state.unsqueeze(0) for state in hx)
        h_next, c_next = super().forward(input.unsqueeze(0), hx)
        return h_next.squeeze(0), c_next


class GRUCellStacksRows(StepwiseCell, DropInGRUCell):
    """Runs each row of the batch on its own and stacks the results.

    A per-sample loop, ``torch.stack([cell(x, h) for x, h in zip(input, hx)])``,
    gives the same numbers for any batch of at least one row; ``torch.stack`` of no
    tensors raises. Exposed by: a batch of 0 rows.
    """

    def step(self, input, state):
        rows = [super(GRUCellStacksRows, self).step(x.unsqueeze(0), h.unsqueeze(0)).squeeze(0) for x, h in zip(input, state)]
        return torch.stack(rows)


class GRUCellDefaultStateInputWide(StepwiseCell, DropInGRUCell):
    """With hx=None, creates the zero state input_size wide instead of hidden_size wide.

    ``torch.zeros(input.size(0), input.size(1))``: right whenever the two sizes are
    equal, as in many examples. Exposed by: hx=None with input_size != hidden_size
    (it raises where torch does not).
    """

    def forward(self, input, hx=None):
        if hx is None:
            hx = torch.zeros(input.shape, dtype=input.dtype, device=input.device)
        return super().forward(input, hx)
