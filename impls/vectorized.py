"""`vectorized`: the input projection hoisted out of the recurrence.

For each layer and direction, x_t W_ih^T + b_ih + b_hh is one matrix product over
all time steps at once; only h_{t-1} W_hh^T stays sequential, as one fused
``addmm`` per step. Without autograd the steps write straight into a preallocated
output; with autograd they are collected and joined once.
"""

import torch
import torch.nn.functional as F

from harness import DropInRNN, Implementation
from harness.dropin import step_offsets


class VectorizedRNN(DropInRNN):
    def run_direction(self, data, batch_sizes, h0, layer, direction):
        w_ih, w_hh, b_ih, b_hh = self.direction_weights(layer, direction)
        projected = F.linear(data, w_ih, None if b_ih is None else b_ih + b_hh)
        order = range(len(batch_sizes) - 1, -1, -1) if direction == 1 else range(len(batch_sizes))
        offsets = step_offsets(batch_sizes)
        w_hh_t = w_hh.t()
        needs_graph = torch.is_grad_enabled() and (
            projected.requires_grad or w_hh.requires_grad or h0.requires_grad
        )
        if needs_graph:
            return self._run_with_graph(projected, batch_sizes, offsets, order, h0, w_hh_t)
        return self._run_in_place(projected, batch_sizes, offsets, order, h0, w_hh_t)

    def _run_in_place(self, projected, batch_sizes, offsets, order, h0, w_hh_t):
        output = torch.empty_like(projected)
        activate_ = torch.tanh_ if self.nonlinearity == "tanh" else torch.relu_
        h = h0.clone()
        for t in order:
            rows, start = batch_sizes[t], offsets[t]
            step_output = output[start : start + rows]
            torch.addmm(projected[start : start + rows], h[:rows], w_hh_t, out=step_output)
            activate_(step_output)
            h[:rows] = step_output
        return output, h

    def _run_with_graph(self, projected, batch_sizes, offsets, order, h0, w_hh_t):
        outputs = [None] * len(batch_sizes)
        h = h0
        for t in order:
            rows, start = batch_sizes[t], offsets[t]
            h_t = self.activation(torch.addmm(projected[start : start + rows], h[:rows], w_hh_t))
            outputs[t] = h_t
            h = h_t if rows == h.shape[0] else torch.cat([h_t, h[rows:]])
        return torch.cat(outputs), h


IMPLEMENTATION = Implementation(
    name="vectorized",
    factory=VectorizedRNN,
    family="RNN",
    description="input projection hoisted into one GEMM per layer and direction; addmm per step",
)
