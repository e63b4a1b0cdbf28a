"""Mutants that get the reverse direction or variable-length (packed) batches wrong:
time order, which half of the features is which, and recurring over padding."""

from __future__ import annotations

import torch
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence, pad_packed_sequence

from harness.dropin import step_offsets
from ._base import StepwiseRNN, time_order


class ReverseOutputsInVisitOrder(StepwiseRNN):
    """Stores the reverse direction's outputs in the order it visits the steps.

    ``outputs.append(h_t)`` while walking from the last step to the first leaves the
    reverse outputs backwards in time; h_n is still right. Exposed by:
    bidirectional=True with seq_len >= 2.
    """

    def recur(self, data, batch_sizes, h0, weights, direction):
        offsets = step_offsets(batch_sizes)
        outputs = []
        h = h0
        for t in time_order(len(batch_sizes), direction):
            rows = batch_sizes[t]
            h_t = self.cell(data[offsets[t] : offsets[t] + rows], h[:rows], weights)
            outputs.append(h_t)
            h = self.carry(h_t, h)
        return torch.cat(outputs), h


class DirectionsJoinedReverseFirst(StepwiseRNN):
    """Puts the reverse direction's features before the forward ones.

    Shapes cannot tell ``cat([backward, forward])`` from ``cat([forward, backward])``.
    Exposed by: bidirectional=True.
    """

    def join_directions(self, direction_outputs):
        return torch.cat(direction_outputs[::-1], dim=1)


def run_over_padding(rnn: StepwiseRNN, data, batch_sizes, h0, weights, direction):
    """Unpack to a zero-padded (steps, batch, features) tensor, run every row for every
    step, pack the result again: the shortcut both mutants below take for a packed
    batch of unequal lengths (an equal-length batch runs the plain loop)."""
    packed_input = PackedSequence(data, torch.tensor(batch_sizes))
    padded, lengths = pad_packed_sequence(packed_input)
    outputs = [None] * padded.shape[0]
    h = h0
    for t in time_order(padded.shape[0], direction):
        h = rnn.cell(padded[t], h, weights)
        outputs[t] = h
    return pack_padded_sequence(torch.stack(outputs), lengths).data, h


class FinalStateAfterPadding(StepwiseRNN):
    """Lets shorter packed sequences keep running over their padding in the forward
    direction, so their h_n is the state after the padded steps.

    The output at valid steps is untouched (padding comes after them), so a check of
    the output alone passes. Exposed by: PackedSequence with unequal lengths.
    """

    def recur(self, data, batch_sizes, h0, weights, direction):
        if direction == 0 and len(set(batch_sizes)) > 1:
            return run_over_padding(self, data, batch_sizes, h0, weights, direction)
        return super().recur(data, batch_sizes, h0, weights, direction)


class ReverseStartsOnPadding(StepwiseRNN):
    """Runs the reverse direction from the padded maximum length, so shorter
    sequences start their reverse pass on padding instead of on their own last step.

    Exposed by: bidirectional=True with a PackedSequence of unequal lengths.
    """

    def recur(self, data, batch_sizes, h0, weights, direction):
        if direction == 1 and len(set(batch_sizes)) > 1:
            return run_over_padding(self, data, batch_sizes, h0, weights, direction)
        return super().recur(data, batch_sizes, h0, weights, direction)
