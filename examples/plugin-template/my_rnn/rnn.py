"""MyRNN: the Elman recurrence h_t = tanh(x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh).

`harness.DropInRNN` does everything about torch.nn.RNN that is not the recurrence:
the constructor and its checks, parameters under torch's names (``weight_ih_l0``,
``bias_hh_l1_reverse``, ...), every input layout (batch_first, unbatched,
PackedSequence), stacking layers and directions, dropout between layers. A subclass
writes `run_direction`: one layer in one direction. Replace its body with your own.

This one works on a padded batch ``(T, B, F)`` with each sequence's length, the form
most backends take (`harness.padded_from_packed` and friends convert); to work on the
packed form directly, see `harness.dropin.step_offsets`.
"""

import torch

from harness import DropInRNN, packed_from_padded, padded_from_packed, reverse_padded


class MyRNN(DropInRNN):
    def run_direction(self, data, batch_sizes, h0, layer, direction):
        """One layer, one direction (1 = reverse), over the packed form of the input.

        ``data`` holds the time steps one after another, ``batch_sizes[t]`` rows for
        step t (the sequences still running, longest first). ``h0`` is the initial
        state of every sequence. Return every step's output, in ``data``'s layout,
        and each sequence's final state.
        """
        w_ih, w_hh, b_ih, b_hh = self.direction_weights(layer, direction)
        inputs, lengths = padded_from_packed(data, batch_sizes)  # (T, B, F), (B,)
        if direction == 1:
            # The reverse direction reads each sequence from its own last step.
            inputs = reverse_padded(inputs, lengths)
        # The input's part does not depend on the state: one matmul for all steps.
        input_part = inputs @ w_ih.T
        if b_ih is not None:
            input_part = input_part + b_ih
        outputs = []
        h = h0
        for t in range(inputs.shape[0]):
            recurrent_part = h @ w_hh.T
            if b_hh is not None:
                recurrent_part = recurrent_part + b_hh
            h_t = self.activation(input_part[t] + recurrent_part)
            outputs.append(h_t)
            # A sequence that has ended keeps its state; its outputs past the end
            # are dropped by packed_from_padded.
            h = torch.where((t < lengths).unsqueeze(1), h_t, h)
        output = torch.stack(outputs) if outputs else input_part.new_zeros(0, h0.shape[0], h0.shape[1])
        if direction == 1:
            output = reverse_padded(output, lengths)
        return packed_from_padded(output, batch_sizes), h
