"""`loop`: the textbook recurrence, one time step at a time.

h_t = f(x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh), written to be obviously right
rather than fast: no hoisting, no fusing, no in-place writes.
"""

import torch

from harness import DropInRNN, Implementation
from harness.dropin import step_offsets


class LoopRNN(DropInRNN):
    def run_direction(self, data, batch_sizes, h0, layer, direction):
        w_ih, w_hh, b_ih, b_hh = self.direction_weights(layer, direction)
        offsets = step_offsets(batch_sizes)
        steps = range(len(batch_sizes))
        outputs = [None] * len(batch_sizes)
        h = h0
        for t in reversed(steps) if direction == 1 else steps:
            rows = batch_sizes[t]
            x_t = data[offsets[t] : offsets[t] + rows]
            pre_activation = x_t @ w_ih.T + h[:rows] @ w_hh.T
            if b_ih is not None:
                pre_activation = pre_activation + b_ih + b_hh
            h_t = self.activation(pre_activation)
            outputs[t] = h_t
            # Rows past `rows` have finished (forward) or not started (reverse):
            # their state carries over unchanged.
            h = torch.cat([h_t, h[rows:]])
        return torch.cat(outputs), h


IMPLEMENTATION = Implementation(
    name="loop",
    factory=LoopRNN,
    family="RNN",
    description="per-step Python loop over the textbook formula (the readable reference)",
)
