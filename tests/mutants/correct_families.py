"""Correct LSTM, GRU and cell variants that differ from torch in rounding only: one
fused gate GEMM per step, and float64 inside. The fuzzer must pass them."""

from __future__ import annotations

import torch
from torch import Tensor

from harness.step_formulas import gru_step, lstm_step
from harness.dropin import DropInGRU, DropInLSTM, DropInLSTMCell
from ._base import cast_weights
from ._family_base import StepwiseCell, StepwiseLayer
from .correct import DerivativeFromOutput


def _fused_bias(weights):
    return None if weights.b_ih is None else weights.b_ih + weights.b_hh


class FusedGateGemmLSTM(StepwiseLayer, DropInLSTM):
    """Computes all four gates with one GEMM per step, [x, h] @ [W_ih, W_hh]^T, and one
    bias b_ih + b_hh (exact for an LSTM, where both biases only ever add)."""

    def cell(self, x_t, states, weights, w_hr):
        gates = torch.cat([x_t, states[0]], dim=1) @ torch.cat([weights.w_ih, weights.w_hh], dim=1).T
        bias = _fused_bias(weights)
        if bias is not None:
            gates = gates + bias
        return lstm_step(gates, torch.zeros((), dtype=gates.dtype), states[0], states[1], w_hr, self.elementwise)


class FusedGateGemmLSTMCell(StepwiseCell, DropInLSTMCell):
    """LSTMCell with one GEMM per step, [x, h] @ [W_ih, W_hh]^T, and one fused bias."""

    def step(self, input, state):
        h, c = state
        weights = self.cell_weights()
        gates = torch.cat([input, h], dim=1) @ torch.cat([weights.w_ih, weights.w_hh], dim=1).T
        bias = _fused_bias(weights)
        if bias is not None:
            gates = gates + bias
        return lstm_step(gates, torch.zeros((), dtype=gates.dtype), h, c, None, self.elementwise)


class FusedGateGemmGRU(StepwiseLayer, DropInGRU):
    """Computes a GRU step with one GEMM of [x, h] against a block matrix.

    The output has four blocks: the r and z pre-activations (input and hidden
    parts summed by the GEMM itself), the input part of n and the hidden part of n
    kept apart, because the reset gate multiplies only the hidden part (with b_hn).
    """

    def cell(self, x_t, states, weights, w_hr):
        h = states[0]
        w_ih, w_hh, b_ih, b_hh = weights
        H = self.hidden_size
        zeros_ih = w_ih.new_zeros(H, w_ih.shape[1])
        zeros_hh = w_hh.new_zeros(H, w_hh.shape[1])
        block = torch.cat(
            [
                torch.cat([w_ih[: 2 * H], w_hh[: 2 * H]], dim=1),  # r, z: both parts summed
                torch.cat([w_ih[2 * H :], zeros_hh], dim=1),  # n, input part
                torch.cat([zeros_ih, w_hh[2 * H :]], dim=1),  # n, hidden part
            ]
        )
        gates = torch.cat([x_t, h], dim=1) @ block.T
        if b_ih is not None:
            gates = gates + torch.cat([b_ih[: 2 * H] + b_hh[: 2 * H], b_ih[2 * H :], b_hh[2 * H :]])
        rz, i_n, h_n = gates[:, : 2 * H], gates[:, 2 * H : 3 * H], gates[:, 3 * H :]
        # gru_step sums gi and gh per block and multiplies only gh's n block by r.
        gi = torch.cat([rz, i_n], dim=1)
        gh = torch.cat([torch.zeros_like(rz), h_n], dim=1)
        return (gru_step(gi, gh, h, self.elementwise),)


class _Float64Inside(StepwiseLayer):
    """Runs the recurrence in float64 and casts the results back."""

    def run_direction(self, data, batch_sizes, state, layer, direction):
        states = tuple(state) if self.family.cell_state else (state,)
        weights = cast_weights(self.direction_weights(layer, direction), torch.float64)
        w_hr = self.projection_weight(layer, direction)
        w_hr = None if w_hr is None else w_hr.double()
        output, final = self.recur(data.double(), batch_sizes, tuple(s.double() for s in states), weights, w_hr, direction)
        final = tuple(s.to(data.dtype) for s in final)
        return output.to(data.dtype), (final if self.family.cell_state else final[0])


class Float64InsideLSTM(_Float64Inside, DropInLSTM):
    """Runs the LSTM recurrence (and the projection) in float64 and casts the results
    back: more accurate than torch for every dtype, torch's dtype on the way out."""


class Float64InsideGRU(_Float64Inside, DropInGRU):
    """Runs the GRU recurrence in float64 and casts the results back: more accurate
    than torch for every dtype, torch's dtype on the way out."""


def sigmoid_by_formula(x: Tensor) -> Tensor:
    """1 / (1 + exp(-x)) op by op in x's dtype, as onnx's reference evaluator's LSTM and
    GRU operators compute it (onnx/reference/ops/op_lstm.py, on float16 arrays): in the
    half type three roundings, 1.9 units of roundoff at most (tools/activation_accuracy.py).
    Below x = -11.1 float16's exp(-x) overflows and the result is 0, as there."""
    return 1 / (1 + torch.exp(-x))


def tanh_by_formula(x: Tensor) -> Tensor:
    """2 sigmoid(2x) - 1 op by op in x's dtype, with `sigmoid_by_formula`: onnxruntime's
    RNN operator's identity carried into the half type, 4.5 units of roundoff at most
    where |tanh| < 1/2 in absolute terms (tools/activation_accuracy.py), unbounded
    relative to a small result."""
    return 2 * sigmoid_by_formula(2 * x) - 1


ACTIVATION_FORMULAS = {"sigmoid": sigmoid_by_formula, "tanh": tanh_by_formula}


class ActivationByFormula(DerivativeFromOutput):
    """Forward: ``ACTIVATION_FORMULAS[name]``. Backward: the derivative from the output,
    as torch's own backward computes it; differentiating the formula would turn
    float16's overflowed exp(-x) into 0 * inf = NaN."""

    @staticmethod
    def forward(ctx, x, name):
        return DerivativeFromOutput.saved(ctx, ACTIVATION_FORMULAS[name](x), name, 2)


class HalfSigmoidByFormulaLSTM(StepwiseLayer, DropInLSTM):
    """An LSTM port with onnx's reference evaluator's activations: sigmoid computed as
    1 / (1 + exp(-x)) in the half type itself, three roundings (`sigmoid_by_formula`),
    tanh rounded once (numpy's float16 tanh). Declared for float16 and bfloat16."""

    def elementwise(self, name, x):
        if name != "sigmoid":
            return super().elementwise(name, x)
        return ActivationByFormula.apply(x, name)


class HalfActivationsByFormulaGRU(StepwiseLayer, DropInGRU):
    """A GRU port whose sigmoid is 1 / (1 + exp(-x)) and whose tanh is 2 sigmoid(2x) - 1,
    each op rounded to the half type (`tanh_by_formula`): the least accurate half-precision
    activations measured (4.5 units of roundoff). Declared for float16 and bfloat16."""

    def elementwise(self, name, x):
        if name not in ACTIVATION_FORMULAS:
            return super().elementwise(name, x)
        return ActivationByFormula.apply(x, name)
