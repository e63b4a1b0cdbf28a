"""Mutants that get the arithmetic wrong: the nonlinearity, the precision it runs in,
the dtype it hands back, or a small but real error in the values (an inaccurate tanh,
a dropped 1e-4 bias)."""

from __future__ import annotations

import torch

from ._base import StepwiseRNN, cast_weights
from .correct import PatternedActivation


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


class TanhOff100Ulps(StepwiseRNN):
    """Uses a hand-written tanh that is accurate to 100 units of roundoff instead of the
    library's: a rational approximation with too few terms, 12x past the accuracy the
    error model grants (8). Its error oscillates along x, as an approximation's does.

    A small but real numerical defect. Exposed by: nonlinearity="tanh" in float32 or
    float64, in a tame case where rounding is not amplified.
    """

    UNITS = 100.0
    DTYPES = (torch.float32, torch.float64)  # where the hand-written tanh is used

    def elementwise(self, name, x):
        if name != "tanh" or x.dtype not in self.DTYPES:
            return super().elementwise(name, x)
        return PatternedActivation.apply(x, name, self.UNITS, 0.0)


class SmallBiasDropped(StepwiseRNN):
    """Leaves a constant 1e-4 out of every pre-activation: the port folds b_ih + b_hh
    into one bias and drops a small extra term (a bias initialised to an epsilon that
    its converter did not carry over).

    A small but real defect. Exposed by: bias=True in float32 or float64.
    """

    OFFSET = 1e-4

    def cell(self, x_t, h_prev, weights):
        w_ih, w_hh, b_ih, b_hh = weights
        if b_ih is None:
            return super().cell(x_t, h_prev, weights)
        return self.activation(x_t @ w_ih.T + h_prev @ w_hh.T + b_ih + b_hh - self.OFFSET)
