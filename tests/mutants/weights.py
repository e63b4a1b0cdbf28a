"""Mutants with the right formula and the wrong parameters: transposes, biases, and
weights taken from the wrong layer or direction."""

from __future__ import annotations

import torch.nn.functional as F

from harness import DirectionWeights
from ._base import StepwiseRNN


class UntransposedInputWeight(StepwiseRNN):
    """Multiplies by W_ih instead of W_ih^T.

    The paper writes ``x W_ih`` and torch stores W_ih as (hidden, input), so the
    transpose is easy to drop. When input_size == hidden_size the product has the
    right shape and is silently wrong; otherwise it raises a shape error torch never
    raises. Exposed by: any input_size != hidden_size (exception), or equal sizes
    above 1 (values).
    """

    def cell(self, x_t, h_prev, weights):
        w_ih, w_hh, b_ih, b_hh = weights
        pre_activation = x_t @ w_ih + h_prev @ w_hh.T
        if b_ih is not None:
            pre_activation = pre_activation + b_ih + b_hh
        return self.activation(pre_activation)


class UntransposedHiddenWeight(StepwiseRNN):
    """Multiplies the state by W_hh instead of W_hh^T.

    W_hh is square, so no shape error ever points at it; the recurrence runs with the
    transposed matrix. Exposed by: hidden_size >= 2 and a non-zero state entering a
    step (seq_len >= 2, or an h_0).
    """

    def cell(self, x_t, h_prev, weights):
        w_ih, w_hh, b_ih, b_hh = weights
        pre_activation = x_t @ w_ih.T + h_prev @ w_hh
        if b_ih is not None:
            pre_activation = pre_activation + b_ih + b_hh
        return self.activation(pre_activation)


class HiddenBiasDropped(StepwiseRNN):
    """Adds b_ih and forgets b_hh.

    Textbooks write a single bias b; torch has two and a port from the textbook keeps
    one. Exposed by: bias=True (b_hh is never zero after init).
    """

    def cell(self, x_t, h_prev, weights):
        w_ih, w_hh, b_ih, _b_hh = weights
        pre_activation = x_t @ w_ih.T + h_prev @ w_hh.T
        if b_ih is not None:
            pre_activation = pre_activation + b_ih
        return self.activation(pre_activation)


class HiddenBiasAddedTwice(StepwiseRNN):
    """Adds b_hh twice.

    A refactor to two ``F.linear`` calls gives each its own bias, but the input
    projection still receives the merged ``b_ih + b_hh`` from the hoisted version it
    was copied from. Exposed by: bias=True.
    """

    def cell(self, x_t, h_prev, weights):
        w_ih, w_hh, b_ih, b_hh = weights
        merged_bias = None if b_ih is None else b_ih + b_hh
        return self.activation(F.linear(x_t, w_ih, merged_bias) + F.linear(h_prev, w_hh, b_hh))


class ReverseDirectionUsesForwardWeights(StepwiseRNN):
    """Runs the reverse direction with the forward direction's weights.

    The parameter name is built as ``f"weight_ih_l{layer}"`` and the ``_reverse``
    suffix is forgotten; nothing fails, the reverse parameters just never get used
    (nor gradients). Exposed by: bidirectional=True.
    """

    def direction_weights(self, layer, direction):
        return super().direction_weights(layer, 0)


class FirstLayerHiddenWeightEverywhere(StepwiseRNN):
    """Uses layer 0's W_hh in every layer.

    Code grown from a one-layer version reads ``self.weight_hh_l0`` by name; W_hh is
    (hidden, hidden) in every layer, so stacking more layers raises nothing.
    Exposed by: num_layers >= 2.
    """

    def direction_weights(self, layer, direction):
        weights = super().direction_weights(layer, direction)
        return DirectionWeights(weights.w_ih, super().direction_weights(0, direction).w_hh, weights.b_ih, weights.b_hh)
