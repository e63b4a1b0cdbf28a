"""The correct LSTM, GRU and cell recurrences the family mutants start from, cut into
small overridable pieces.

`StepwiseLayer` is the loop reference (``impls/loop.py``) for any layer family, with
each decision a method of its own — the gate products, the cell formula, how the
state carries to the next step — so that a mutant overrides only the piece its
mistake lives in. `StepwiseCell` does the same for a cell's single step. Both are
mixins over a drop-in shell: ``class Mutant(StepwiseLayer, DropInLSTM)``.
"""

from __future__ import annotations

import torch
from torch import Tensor

from harness import DirectionWeights
from harness.step_formulas import family_step
from harness.dropin import step_offsets
from ._base import time_order


def gate_products(x: Tensor, h: Tensor, weights: DirectionWeights) -> tuple[Tensor, Tensor]:
    """gi = x W_ih^T + b_ih and gh = h W_hh^T + b_hh, every gate block at once."""
    w_ih, w_hh, b_ih, b_hh = weights
    gi, gh = x @ w_ih.T, h @ w_hh.T
    if b_ih is not None:
        gi, gh = gi + b_ih, gh + b_hh
    return gi, gh


class StepwiseLayer:
    """A correct `run_direction` for LSTM and GRU whose every piece can be replaced by a
    mistake. States travel as tuples: ``(h,)`` or ``(h, c)``."""

    def run_direction(self, data, batch_sizes, state, layer, direction):
        states = tuple(state) if self.family.cell_state else (state,)
        weights = self.direction_weights(layer, direction)
        output, final = self.recur(data, batch_sizes, states, weights, self.projection_weight(layer, direction), direction)
        return output, (final if self.family.cell_state else final[0])

    def recur(self, data, batch_sizes, states, weights, w_hr, direction):
        """`run_direction` with the weights already chosen (and possibly cast)."""
        offsets = step_offsets(batch_sizes)
        outputs: list[Tensor | None] = [None] * len(batch_sizes)
        for t in time_order(len(batch_sizes), direction):
            rows = batch_sizes[t]
            new = self.cell(data[offsets[t] : offsets[t] + rows], tuple(s[:rows] for s in states), weights, w_hr)
            outputs[t] = new[0]
            states = self.carry(new, states)
        return torch.cat(outputs), states

    def cell(self, x_t: Tensor, states: tuple[Tensor, ...], weights: DirectionWeights, w_hr: Tensor | None) -> tuple[Tensor, ...]:
        gi, gh = gate_products(x_t, states[0], weights)
        return self.formula(gi, gh, states, w_hr)

    def formula(self, gi: Tensor, gh: Tensor, states: tuple[Tensor, ...], w_hr: Tensor | None) -> tuple[Tensor, ...]:
        """The family's cell formula (harness/step_formulas.py): the next ``(h,)`` or ``(h, c)``."""
        return family_step(self.family.name, gi, gh, states, self.nonlinearity, w_hr, self.elementwise)

    def carry(self, new: tuple[Tensor, ...], states: tuple[Tensor, ...]) -> tuple[Tensor, ...]:
        """The rows that just ran take the new state; rows that have finished (forward)
        or not yet started (reverse) keep theirs."""
        return tuple(torch.cat([n, s[n.shape[0] :]]) for n, s in zip(new, states))


class StepwiseCell:
    """A correct `step` for RNNCell, LSTMCell and GRUCell, in overridable pieces."""

    def step(self, input, state):
        states = tuple(state) if self.family.cell_state else (state,)
        gi, gh = gate_products(input, states[0], self.cell_weights())
        new = self.formula(gi, gh, states)
        return new if self.family.cell_state else new[0]

    def formula(self, gi: Tensor, gh: Tensor, states: tuple[Tensor, ...]) -> tuple[Tensor, ...]:
        return family_step(self.family.name, gi, gh, states, self.nonlinearity, None, self.elementwise)
