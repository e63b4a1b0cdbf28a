"""The correct recurrence the mutants start from, cut into small overridable pieces.

`StepwiseRNN` is the loop reference (``impls/loop.py``) with each decision a method of
its own — the cell formula, how the state carries to the next step, how the two
directions are joined, what happens between layers — so that a mutant overrides
only the one piece its mistake lives in and the rest stays demonstrably right.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from harness import DirectionWeights, DropInRNN
from harness.dropin import step_offsets


def cast_weights(weights: DirectionWeights, dtype: torch.dtype) -> DirectionWeights:
    """The same parameters converted to ``dtype`` (differentiably; None stays None)."""
    return DirectionWeights(*(None if w is None else w.to(dtype) for w in weights))


def time_order(steps: int, direction: int) -> range:
    """Steps in the order a direction visits them (1 = reverse)."""
    return range(steps - 1, -1, -1) if direction == 1 else range(steps)


class StepwiseRNN(DropInRNN):
    """A correct drop-in RNN whose every piece can be replaced by a mistake."""

    def forward(self, input, hx: Tensor | None = None):
        prepared = self._prepare(input, hx)
        layer_input = prepared.data
        final_states = []
        for layer in range(self.num_layers):
            direction_outputs = []
            for direction in range(self.num_directions):
                h0 = prepared.hx[layer * self.num_directions + direction]
                output, h_last = self.run_direction(layer_input, prepared.batch_sizes, h0, layer, direction)
                direction_outputs.append(output)
                final_states.append(h_last)
            layer_input = self.between_layers(self.join_directions(direction_outputs), layer)
        return self._restore(prepared, layer_input, self.stack_final_states(final_states))

    def join_directions(self, direction_outputs: list[Tensor]) -> Tensor:
        """One layer's output: forward features first, then reverse ones."""
        return torch.cat(direction_outputs, dim=1)

    def between_layers(self, layer_output: Tensor, layer: int) -> Tensor:
        """Dropout on every layer's output except the last, in training mode only."""
        if self.dropout > 0 and self.training and layer < self.num_layers - 1:
            return F.dropout(layer_output, self.dropout, training=True)
        return layer_output

    def stack_final_states(self, final_states: list[Tensor]) -> Tensor:
        """h_n, layer-major: (l0 forward, l0 reverse, l1 forward, ...)."""
        return torch.stack(final_states)

    def run_direction(self, data, batch_sizes, h0, layer, direction):
        return self.recur(data, batch_sizes, h0, self.direction_weights(layer, direction), direction)

    def recur(self, data, batch_sizes, h0, weights: DirectionWeights, direction: int) -> tuple[Tensor, Tensor]:
        """`run_direction` with the weights already chosen (and possibly cast)."""
        offsets = step_offsets(batch_sizes)
        outputs: list[Tensor | None] = [None] * len(batch_sizes)
        h = h0
        for t in time_order(len(batch_sizes), direction):
            rows = batch_sizes[t]
            h_t = self.cell(data[offsets[t] : offsets[t] + rows], h[:rows], weights)
            outputs[t] = h_t
            h = self.carry(h_t, h)
        return torch.cat(outputs), h

    def cell(self, x_t: Tensor, h_prev: Tensor, weights: DirectionWeights) -> Tensor:
        """h_t = f(x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh)."""
        w_ih, w_hh, b_ih, b_hh = weights
        pre_activation = x_t @ w_ih.T + h_prev @ w_hh.T
        if b_ih is not None:
            pre_activation = pre_activation + b_ih + b_hh
        return self.activation(pre_activation)

    def carry(self, h_t: Tensor, h: Tensor) -> Tensor:
        """The state entering the next step: the rows that just ran take h_t; rows that
        have finished (forward) or not yet started (reverse) keep theirs."""
        return torch.cat([h_t, h[h_t.shape[0] :]])
