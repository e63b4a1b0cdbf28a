"""Correct variants: implementations that differ from torch in rounding only (a
different precision inside, a different order of the same sums). The fuzzer must
pass them, or its tolerance is too tight to be useful."""

from __future__ import annotations

import torch
from torch import Tensor

from harness.dropin import ELEMENTWISE, step_offsets
from harness.tolerance import DEFAULT_MODEL, UNIT_ROUNDOFF
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


def patterned_function(name: str, x: Tensor, units: float, floor: float) -> Tensor:
    """``name`` of ``x``, with an error that oscillates smoothly along x, as a minimax
    polynomial's does: f(x) + units * cos(29.7 x + 0.3) * u * max(|f(x)|, floor), u
    the unit roundoff of x's dtype, evaluated in float64 and rounded once to x's dtype."""
    exact = ELEMENTWISE[name](x.detach().double())
    u = UNIT_ROUNDOFF[x.dtype]
    shifted = exact + units * torch.cos(29.7 * x.detach().double() + 0.3) * u * exact.abs().clamp_min(floor)
    return shifted.to(x.dtype)


class DerivativeFromOutput(torch.autograd.Function):
    """An activation whose backward is the derivative from the output the forward
    returned (1 - y^2, y (1 - y)), as torch and most libraries compute it. A subclass's
    forward computes y, then returns ``cls.saved(ctx, y, name, arguments)`` with the
    number of its arguments, so backward answers None for all but x."""

    @staticmethod
    def saved(ctx, y, name, arguments):
        ctx.save_for_backward(y)
        ctx.name, ctx.arguments = name, arguments
        return y

    @staticmethod
    def backward(ctx, grad):
        (y,) = ctx.saved_tensors
        derivative = 1 - y * y if ctx.name == "tanh" else y * (1 - y)
        return (grad * derivative,) + (None,) * (ctx.arguments - 1)


class PatternedActivation(DerivativeFromOutput):
    """Forward: `patterned_function`; backward from the output."""

    @staticmethod
    def forward(ctx, x, name, units, floor):
        return DerivativeFromOutput.saved(ctx, patterned_function(name, x, units, floor), name, 4)


class ApproximateActivations(StepwiseRNN):
    """tanh and sigmoid as a port to another library computes them: a few ulps off,
    by the whole budget the error model grants (`ErrorModel.activation_ulps`), in a
    pattern that oscillates along x the way a polynomial approximation's error does
    (not the activation probe's noise), in units of the roundoff of x's dtype, half
    precision included. relu stays exact, as in every library. This is onnxruntime's
    arithmetic in the limit the model allows (its MLAS tanh: 5.2)."""

    def elementwise(self, name, x):
        budget = DEFAULT_MODEL.activation_budget(name, x.dtype)
        if budget is None:
            return super().elementwise(name, x)
        ulps, floor = budget
        # One unit of the budget goes to the final rounding to x's dtype.
        return PatternedActivation.apply(x, name, ulps - 1, floor)


class BlockedFusedGemm(StepwiseRNN):
    """Both products accumulated block by block (8 columns at a time, last block
    first) into a buffer that starts from the summed biases, each block one fused
    ``addmm`` (C + A B in one kernel): a different association of every sum, as a
    tiled GEMM in another library makes."""

    BLOCK = 8

    def cell(self, x_t, h_prev, weights):
        w_ih, w_hh, b_ih, b_hh = weights
        rows = x_t.shape[0]
        if b_ih is None:
            accumulated = x_t.new_zeros(rows, w_hh.shape[0])
        else:
            accumulated = (b_hh + b_ih).expand(rows, -1)
        for matrix, vector in ((w_hh, h_prev), (w_ih, x_t)):
            for start in reversed(range(0, matrix.shape[1], self.BLOCK)):
                block = slice(start, start + self.BLOCK)
                accumulated = torch.addmm(accumulated, vector[:, block], matrix[:, block].T)
        return self.activation(accumulated)


class Float32AccumulatedHalf(StepwiseRNN):
    """float16/bfloat16: each step computed in float32 (both products, the biases and
    tanh, one rounding at the end) and the new state rounded to the half type, as
    mixed-precision kernels do. torch rounds each product to the half type before
    adding. Other dtypes: the textbook cell."""

    def cell(self, x_t, h_prev, weights):
        if x_t.dtype not in (torch.float16, torch.bfloat16):
            return super().cell(x_t, h_prev, weights)
        return super().cell(x_t.float(), h_prev.float(), cast_weights(weights, torch.float32)).to(x_t.dtype)


def tanh_from_sigmoid(x: Tensor) -> Tensor:
    """tanh(x) as onnxruntime's RNN operator computes it, ``2 * Sigmoid(2 * x) - 1``
    with its scalar sigmoid (1 / (1 + exp(-v)) for v >= 0, exp(v) / (1 + exp(v))
    below), in x's dtype (half precision: in float32, rounded once). Measured against
    the operator itself, 99.8% of float32 results are bit for bit the same. The
    identity is exact, the arithmetic is not: where tanh is near 0 the sigmoid is near
    1/2, and its rounding, a few units of roundoff of 1/2, survives the subtraction of
    1 as an absolute error: 3 units of roundoff at most, but relative to a small tanh
    unbounded (1,700 units at |x| = 1e-3). No gradient (see `TanhFromSigmoid`)."""
    if x.dtype in (torch.float16, torch.bfloat16):
        return tanh_from_sigmoid(x.float()).to(x.dtype)
    v = 2 * x
    e = torch.exp(-v.abs())  # exp(-v) above 0, exp(v) below: never overflows
    sigmoid = torch.where(v >= 0, 1 / (1 + e), e / (1 + e))
    return 2 * sigmoid - 1


class TanhFromSigmoid(torch.autograd.Function):
    """Forward: `tanh_from_sigmoid`. Backward: 1 - y^2 from the output, as torch's
    tanh backward (onnxruntime has none; differentiating the formula itself would lose
    the derivative at x = 0, where |v| has none)."""

    @staticmethod
    def forward(ctx, x):
        y = tanh_from_sigmoid(x.detach())
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, grad):
        (y,) = ctx.saved_tensors
        return grad * (1 - y * y)


class OnnxRnnOperatorArithmetic(StepwiseRNN):
    """The arithmetic of onnxruntime's CPU kernel for ONNX's ``RNN`` operator
    (onnxruntime/core/providers/cpu/rnn/rnn.cc, rnn_activation_functors.h), which
    torch.onnx maps nn.RNN to: per layer and direction, one GEMM for every step's
    input projection accumulated onto the two biases summed first, (b_ih + b_hh) +
    x W_ih^T; per step, h W_hh^T (zero where there is no initial state), plus that
    projection; then its scalar tanh, ``2 * Sigmoid(2 * x) - 1``, which is accurate to
    3 units of roundoff absolute, not relative (`tanh_from_sigmoid`). relu is exact,
    as there. It stands in for the onnxruntime built-in where the built-in cannot go
    (float64, packed input, gradients)."""

    def run_direction(self, data, batch_sizes, h0, layer, direction):
        w_ih, w_hh, b_ih, b_hh = self.direction_weights(layer, direction)
        projected = data @ w_ih.T if b_ih is None else torch.addmm(b_ih + b_hh, data, w_ih.T)
        offsets = step_offsets(batch_sizes)
        outputs = [None] * len(batch_sizes)
        h = h0
        for t in time_order(len(batch_sizes), direction):
            rows = batch_sizes[t]
            h_t = self.activation(h[:rows] @ w_hh.T + projected[offsets[t] : offsets[t] + rows])
            outputs[t] = h_t
            h = self.carry(h_t, h)
        return torch.cat(outputs), h

    def elementwise(self, name, x):
        if name == "tanh":
            return TanhFromSigmoid.apply(x)
        return super().elementwise(name, x)
