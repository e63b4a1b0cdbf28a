"""Mutants that get the stacking of layers wrong: what the next layer reads, and
where and when dropout between layers applies."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from harness.dropin import step_offsets
from ._base import StepwiseRNN, time_order


class EveryLayerReadsInput(StepwiseRNN):
    """Feeds the original input to every layer instead of the previous layer's output
    (the stacking notebook's hand-written loop).

    Only the last layer's output is returned, so the model "works". Exposed by:
    num_layers >= 2 — silently when input_size == hidden_size * num_directions, as
    a shape error (which torch never raises) otherwise.
    """

    def forward(self, input, hx=None):
        prepared = self._prepare(input, hx)
        final_states = []
        for layer in range(self.num_layers):
            direction_outputs = []
            for direction in range(self.num_directions):
                h0 = prepared.hx[layer * self.num_directions + direction]
                output, h_last = self.run_direction(prepared.data, prepared.batch_sizes, h0, layer, direction)
                direction_outputs.append(output)
                final_states.append(h_last)
            layer_output = self.join_directions(direction_outputs)
        return self._restore(prepared, layer_output, torch.stack(final_states))


class StepOutputsAliasOneBuffer(StepwiseRNN):
    """Updates the state in place and records views of it, so every step's output
    ends up equal to the last step's (the stacking notebook's ``append`` without
    ``.clone()``).

    Exposed by: seq_len >= 2 (outputs); with autograd, even seq_len == 1 fails in
    backward because the in-place write clobbers a tensor saved for the gradient.
    """

    def recur(self, data, batch_sizes, h0, weights, direction):
        offsets = step_offsets(batch_sizes)
        outputs = [None] * len(batch_sizes)
        h = h0.clone()
        for t in time_order(len(batch_sizes), direction):
            rows = batch_sizes[t]
            h[:rows] = self.cell(data[offsets[t] : offsets[t] + rows], h[:rows], weights)
            outputs[t] = h[:rows]
        return torch.cat(outputs), h


class DropoutInEvalMode(StepwiseRNN):
    """Calls ``F.dropout(x, p)`` between layers without passing ``training``.

    The functional form defaults to ``training=True``, unlike the module, so dropout
    keeps firing after ``model.eval()``. Exposed by: eval mode with dropout > 0 and
    num_layers >= 2.
    """

    def between_layers(self, layer_output, layer):
        if self.dropout > 0 and layer < self.num_layers - 1:
            return F.dropout(layer_output, self.dropout)
        return layer_output


class DropoutAfterLastLayer(StepwiseRNN):
    """Applies dropout after every layer, the last one included.

    torch's ``dropout`` argument means "between layers"; a reader of "adds dropout on
    the outputs of each RNN layer" drops the exception. Exposed by: training mode with
    dropout > 0 (then it differs even for num_layers == 1).
    """

    def between_layers(self, layer_output, layer):
        if self.dropout > 0 and self.training:
            return F.dropout(layer_output, self.dropout, training=True)
        return layer_output
