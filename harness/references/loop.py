"""The textbook recurrence, one time step at a time, for every family: the modules the
activation probes perturb (harness/probes.py), registered as the ``loop*`` built-ins.

Each step computes ``gi = x_t W_ih^T + b_ih`` and ``gh = h_{t-1} W_hh^T + b_hh`` and
hands them to the family's formula in harness/step_formulas.py. Written to be obviously right
rather than fast: no hoisting, no fusing, no in-place writes.
"""

import torch

from harness.step_formulas import family_step
from harness.dropin import DropInGRU, DropInGRUCell, DropInLSTM, DropInLSTMCell, DropInRNN, DropInRNNCell, step_offsets


def _functions(module):
    """The elementwise hook for harness.step_formulas: RNN's single nonlinearity goes through
    ``activation`` (which plugins of the nn.RNN era override), the gates through
    ``elementwise``."""
    if module.family.nonlinearity:
        return lambda name, x: module.activation(x)
    return module.elementwise


def _projections(x, h, weights):
    w_ih, w_hh, b_ih, b_hh = weights
    gi, gh = x @ w_ih.T, h @ w_hh.T
    if b_ih is not None:
        gi, gh = gi + b_ih, gh + b_hh
    return gi, gh


class LoopLayer:
    """`run_direction` for any layer family (mixed into a drop-in shell)."""

    def run_direction(self, data, batch_sizes, state, layer, direction):
        weights = self.direction_weights(layer, direction)
        w_hr = self.projection_weight(layer, direction)
        states = list(state) if self.family.cell_state else [state]
        offsets = step_offsets(batch_sizes)
        steps = range(len(batch_sizes))
        outputs = [None] * len(batch_sizes)
        for t in reversed(steps) if direction == 1 else steps:
            rows = batch_sizes[t]
            gi, gh = _projections(data[offsets[t] : offsets[t] + rows], states[0][:rows], weights)
            new = family_step(self.family.name, gi, gh, tuple(s[:rows] for s in states), self.nonlinearity, w_hr, _functions(self))
            outputs[t] = new[0]
            # Rows past `rows` have finished (forward) or not started (reverse):
            # their state carries over unchanged.
            states = [torch.cat([n, s[rows:]]) for n, s in zip(new, states)]
        final = tuple(states) if self.family.cell_state else states[0]
        return torch.cat(outputs), final


class LoopCell:
    """`step` for any cell family (mixed into a drop-in cell shell)."""

    def step(self, input, state):
        states = tuple(state) if self.family.cell_state else (state,)
        gi, gh = _projections(input, states[0], self.cell_weights())
        new = family_step(self.family.name, gi, gh, states, self.nonlinearity, None, _functions(self))
        return new if self.family.cell_state else new[0]


class LoopRNN(LoopLayer, DropInRNN):
    pass


class LoopLSTM(LoopLayer, DropInLSTM):
    pass


class LoopGRU(LoopLayer, DropInGRU):
    pass


class LoopRNNCell(LoopCell, DropInRNNCell):
    pass


class LoopLSTMCell(LoopCell, DropInLSTMCell):
    pass


class LoopGRUCell(LoopCell, DropInGRUCell):
    pass
