"""Mutants that get the arithmetic's type wrong: the nonlinearity, the precision it
runs in, or the dtype it hands back."""

from __future__ import annotations

import torch

from ._base import StepwiseRNN, cast_weights


class NonlinearityIgnored(StepwiseRNN):
    """Always applies tanh; ``nonlinearity="relu"`` is accepted, stored and unused.

    Exposed by: nonlinearity="relu".
    """

    def activation(self, pre_activation):
        return torch.tanh(pre_activation)


class Float32Inside(StepwiseRNN):
    """Runs the recurrence in float32 whatever the dtype, then casts back.

    "float32 is fast enough and the GEMM library is tuned for it." For float64 the
    result keeps float32's rounding error, about 1e-7 relative and growing with the
    sequence. Exposed by: dtype=float64, with a tolerance near float64's.
    """

    def run_direction(self, data, batch_sizes, h0, layer, direction):
        weights = cast_weights(self.direction_weights(layer, direction), torch.float32)
        output, h_last = self.recur(data.float(), batch_sizes, h0.float(), weights, direction)
        return output.to(data.dtype), h_last.to(data.dtype)


class HalfPrecisionUpcastKept(StepwiseRNN):
    """Computes float16 and bfloat16 input in float32 for accuracy and returns the
    float32 result without casting it back.

    The values are better than torch's; the dtype is not what torch returns (and the
    next float16 layer rejects it). Exposed by: dtype=float16 or bfloat16.
    """

    def run_direction(self, data, batch_sizes, h0, layer, direction):
        if data.dtype not in (torch.float16, torch.bfloat16):
            return super().run_direction(data, batch_sizes, h0, layer, direction)
        weights = cast_weights(self.direction_weights(layer, direction), torch.float32)
        return self.recur(data.float(), batch_sizes, h0.float(), weights, direction)
