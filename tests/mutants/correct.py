"""Correct variants: implementations that differ from torch in rounding only (a
different precision inside, a different order of the same sums). The fuzzer must
pass them, or its tolerance is too tight to be useful."""

from __future__ import annotations

import torch

from harness.dropin import step_offsets
from ._base import StepwiseRNN, cast_weights, time_order


class Float64Inside(StepwiseRNN):
    """Runs the recurrence in float64 and casts the results back: more accurate than
    torch for every dtype, and still torch's dtype on the way out."""

    def run_direction(self, data, batch_sizes, h0, layer, direction):
        weights = cast_weights(self.direction_weights(layer, direction), torch.float64)
        output, h_last = self.recur(data.double(), batch_sizes, h0.double(), weights, direction)
        return output.to(data.dtype), h_last.to(data.dtype)


class EinsumOtherOrder(StepwiseRNN):
    """Writes both products as ``einsum`` and adds the four terms in another order:
    (h W_hh^T + b_hh) + (x W_ih^T + b_ih)."""

    def cell(self, x_t, h_prev, weights):
        w_ih, w_hh, b_ih, b_hh = weights
        recurrent = torch.einsum("bj,ij->bi", h_prev, w_hh)
        projected = torch.einsum("bj,ij->bi", x_t, w_ih)
        if b_ih is not None:
            recurrent = recurrent + b_hh
            projected = projected + b_ih
        return self.activation(recurrent + projected)


class HoistedPretransposed(StepwiseRNN):
    """Makes contiguous transposed copies of both weights on every call, hoists the
    input projection over all steps, and adds each bias in its own ``addmm``."""

    def run_direction(self, data, batch_sizes, h0, layer, direction):
        w_ih, w_hh, b_ih, b_hh = self.direction_weights(layer, direction)
        w_ih_t, w_hh_t = w_ih.t().contiguous(), w_hh.t().contiguous()
        projected = data @ w_ih_t if b_ih is None else torch.addmm(b_ih, data, w_ih_t)
        offsets = step_offsets(batch_sizes)
        outputs = [None] * len(batch_sizes)
        h = h0
        for t in time_order(len(batch_sizes), direction):
            rows = batch_sizes[t]
            recurrent = h[:rows] @ w_hh_t if b_hh is None else torch.addmm(b_hh, h[:rows], w_hh_t)
            h_t = self.activation(projected[offsets[t] : offsets[t] + rows] + recurrent)
            outputs[t] = h_t
            h = self.carry(h_t, h)
        return torch.cat(outputs), h
