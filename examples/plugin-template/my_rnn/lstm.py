"""MyLSTM: torch.nn.LSTM's recurrence, projections (``proj_size``) included.

`harness.DropInLSTM` does for nn.LSTM what `harness.DropInRNN` does for nn.RNN (see
rnn.py): constructor, torch-named parameters (``weight_hr_l0`` with projections),
every input layout, ``(h_0, c_0)`` and their checks, stacking, dropout. What is left
is `run_direction`, with a state that is a pair: ``h`` (``proj_size`` wide when
projecting, else ``hidden_size``) and ``c`` (always ``hidden_size``).

The elementwise functions go through ``self.elementwise(name, x)`` rather than
``torch.sigmoid``/``torch.tanh`` directly: the same arithmetic, and the name lets the
harness's error model run this very formula with slightly perturbed activations when
it needs to know how far rounding alone can move the result.
"""

import torch

from harness import DropInLSTM, packed_from_padded, padded_from_packed, reverse_padded


class MyLSTM(DropInLSTM):
    def run_direction(self, data, batch_sizes, state, layer, direction):
        """One layer, one direction (1 = reverse), over the packed form of the input.

        ``state`` is ``(h0, c0)``; return every step's output (h, in ``data``'s
        layout) and ``(h_n, c_n)``, each sequence's state after its own last step.
        """
        w_ih, w_hh, b_ih, b_hh = self.direction_weights(layer, direction)
        w_hr = self.projection_weight(layer, direction)  # (proj_size, hidden_size), or None
        inputs, lengths = padded_from_packed(data, batch_sizes)  # (T, B, F), (B,)
        if direction == 1:
            inputs = reverse_padded(inputs, lengths)
        input_part = inputs @ w_ih.T  # every gate's input part, all steps at once
        if b_ih is not None:
            input_part = input_part + b_ih
        h, c = state
        outputs = []
        for t in range(inputs.shape[0]):
            gates = input_part[t] + h @ w_hh.T
            if b_hh is not None:
                gates = gates + b_hh
            # torch stacks the four gate blocks in the order input, forget, cell, output.
            i, f, g, o = gates.chunk(4, dim=1)
            c_t = self.elementwise("sigmoid", f) * c + self.elementwise("sigmoid", i) * self.elementwise("tanh", g)
            h_t = self.elementwise("sigmoid", o) * self.elementwise("tanh", c_t)
            if w_hr is not None:
                h_t = h_t @ w_hr.T  # the output and the recurrent state are both projected
            outputs.append(h_t)
            running = (t < lengths).unsqueeze(1)  # finished sequences keep h and c
            h, c = torch.where(running, h_t, h), torch.where(running, c_t, c)
        output = torch.stack(outputs) if outputs else input_part.new_zeros(0, h.shape[0], h.shape[1])
        if direction == 1:
            output = reverse_padded(output, lengths)
        return packed_from_padded(output, batch_sizes), (h, c)
