"""MyRNN: the Elman recurrence h_t = tanh(x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh).

`harness.DropInRNN` does everything about torch.nn.RNN that is not the recurrence:
the constructor and its checks, parameters under torch's names (``weight_ih_l0``,
``bias_hh_l1_reverse``, ...), every input layout (batch_first, unbatched,
PackedSequence), stacking layers and directions, dropout between layers. A subclass
writes `run_direction`: one layer in one direction. Replace its body with your own.
"""

import torch

from harness import DropInRNN
from harness.dropin import step_offsets


class MyRNN(DropInRNN):
    def run_direction(self, data, batch_sizes, h0, layer, direction):
        """One layer, one direction (1 = reverse), over the packed form of the input.

        ``data`` holds the time steps one after another, ``batch_sizes[t]`` rows for
        step t (the sequences still running, longest first). ``h0`` is the initial
        state of every sequence. Return every step's output, in ``data``'s layout,
        and each sequence's final state.
        """
        w_ih, w_hh, b_ih, b_hh = self.direction_weights(layer, direction)
        # The input's part does not depend on the state: one matmul for all steps.
        input_part = data @ w_ih.T
        if b_ih is not None:
            input_part = input_part + b_ih
        offsets = step_offsets(batch_sizes)
        steps = range(len(batch_sizes))
        outputs = [None] * len(batch_sizes)
        h = h0
        for t in reversed(steps) if direction == 1 else steps:
            rows = batch_sizes[t]
            recurrent_part = h[:rows] @ w_hh.T
            if b_hh is not None:
                recurrent_part = recurrent_part + b_hh
            h_t = self.activation(input_part[offsets[t] : offsets[t] + rows] + recurrent_part)
            outputs[t] = h_t
            # Sequences past `rows` have ended (forward) or not yet begun (reverse):
            # their state is carried over unchanged.
            h = torch.cat([h_t, h[rows:]])
        return torch.cat(outputs), h
