"""LSTM mutants: gate layouts from other frameworks, the forget gate, the cell state
c, the projection (``proj_size``), and the ``(h_n, c_n)`` tuple."""

from __future__ import annotations

import torch
from torch.nn.utils.rnn import PackedSequence

from harness.dropin import DropInLSTM, step_offsets
from ._base import time_order
from ._family_base import StepwiseLayer, gate_products


class _LSTM(StepwiseLayer, DropInLSTM):
    """A correct LSTM to derive mistakes from."""


def lstm_formula(module, i, f, g, o, c, w_hr, *, cell_activation="tanh", tanh_on_c=True):
    """The LSTM update from the four pre-activations, with the two knobs mutants turn."""
    sigmoid = lambda x: module.elementwise("sigmoid", x)  # noqa: E731
    c_next = sigmoid(f) * c + sigmoid(i) * module.elementwise(cell_activation, g)
    h_next = sigmoid(o) * (module.elementwise("tanh", c_next) if tanh_on_c else c_next)
    return (h_next if w_hr is None else h_next @ w_hr.T), c_next


class GateOrderOnnx(_LSTM):
    """Reads the gate blocks in ONNX's order i, o, f, c instead of torch's i, f, g, o.

    A port of an ONNX (or an exporter's) LSTM keeps ONNX's documented ``iofc``
    layout when slicing torch's stacked weights. Exposed by: any input (with
    hidden_size >= 1 the four blocks hold different weights).
    """

    def formula(self, gi, gh, states, w_hr):
        i, o, f, g = (gi + gh).chunk(4, dim=-1)
        return lstm_formula(self, i, f, g, o, states[1], w_hr)


class GateOrderTensorflow(_LSTM):
    """Reads the gate blocks in TensorFlow's order i, j (the cell input), f, o.

    tf.nn.rnn_cell.BasicLSTMCell splits its kernel as ``i, j, f, o``; code ported
    from it slices torch's i, f, g, o blocks the same way. Exposed by: any input.
    """

    def formula(self, gi, gh, states, w_hr):
        i, g, f, o = (gi + gh).chunk(4, dim=-1)
        return lstm_formula(self, i, f, g, o, states[1], w_hr)


class ForgetBiasPlusOne(_LSTM):
    """Adds 1 to the forget gate's pre-activation on every step.

    TensorFlow's BasicLSTMCell adds ``forget_bias=1.0`` at run time (and Keras'
    ``unit_forget_bias`` folds a 1 into the bias); a port keeps the constant while
    also loading torch's trained biases. Exposed by: any input.
    """

    def formula(self, gi, gh, states, w_hr):
        i, f, g, o = (gi + gh).chunk(4, dim=-1)
        return lstm_formula(self, i, f + 1.0, g, o, states[1], w_hr)


class SingleBias(_LSTM):
    """Adds b_ih and leaves out b_hh, as if the LSTM had one bias vector.

    Keras and TensorFlow LSTMs have a single bias; a weight converter maps it to
    ``bias_ih`` and the forward never reads ``bias_hh``. Exposed by: bias=True (a
    value difference, and b_hh gets no gradient).
    """

    def cell(self, x_t, states, weights, w_hr):
        gi, gh = gate_products(x_t, states[0], weights._replace(b_hh=None, b_ih=None))
        if weights.b_ih is not None:
            gi = gi + weights.b_ih
        return self.formula(gi, gh, states, w_hr)


class SigmoidCellGate(_LSTM):
    """Squashes the cell input g with a sigmoid, like the three other gates.

    "Four gates, four sigmoids": the candidate g = tanh(...) is written as one
    ``torch.sigmoid(gates)`` over all four blocks. Exposed by: any input.
    """

    def formula(self, gi, gh, states, w_hr):
        i, f, g, o = (gi + gh).chunk(4, dim=-1)
        return lstm_formula(self, i, f, g, o, states[1], w_hr, cell_activation="sigmoid")


class NoTanhOnCellState(_LSTM):
    """Applies the output gate to c itself instead of to tanh(c): h = o * c.

    The second tanh is easy to drop when writing h = o * tanh(c) from memory.
    Exposed by: any input (c is small at first, so values differ by little at the
    first steps and more as c grows).
    """

    def formula(self, gi, gh, states, w_hr):
        i, f, g, o = (gi + gh).chunk(4, dim=-1)
        return lstm_formula(self, i, f, g, o, states[1], w_hr, tanh_on_c=False)


class InitialCellStateIgnored(_LSTM):
    """Starts c from zeros whatever c_0 the caller passes; h_0 is used.

    Code extended from an nn.RNN re-implementation threads h_0 through and creates
    c with ``torch.zeros_like``. Exposed by: a (h_0, c_0) tuple passed.
    """

    def run_direction(self, data, batch_sizes, state, layer, direction):
        h0, c0 = state
        return super().run_direction(data, batch_sizes, (h0, torch.zeros_like(c0)), layer, direction)


class CellStateRunsOverPadding(_LSTM):
    """Runs every row on every step over zero padding and masks h for finished rows,
    but not c.

    The padded-batch version of packed input: ``h = mask * h_new + (1 - mask) * h``
    is written for h and forgotten for c, so a shorter sequence's c keeps changing
    over its padding (and, in the reverse direction, starts from it). Exposed by:
    packed input with unequal lengths (c_n, and in the reverse direction output
    and h_n too).
    """

    def recur(self, data, batch_sizes, states, weights, w_hr, direction):
        offsets = step_offsets(batch_sizes)
        h, c = states
        batch = h.shape[0]
        outputs = [None] * len(batch_sizes)
        for t in time_order(len(batch_sizes), direction):
            rows = batch_sizes[t]
            x = data[offsets[t] : offsets[t] + rows]
            padded = torch.cat([x, x.new_zeros(batch - rows, x.shape[1])])
            h_new, c_new = self.cell(padded, (h, c), weights, w_hr)
            outputs[t] = h_new[:rows]
            h = torch.cat([h_new[:rows], h[rows:]])
            c = c_new
        return torch.cat(outputs), (h, c)


class StateTupleSwapped(_LSTM):
    """Returns ``(output, (c_n, h_n))``.

    The formula computes c before h, and the tuple is built in the order the two
    were computed. Exposed by: any input (values differ; with proj_size the shapes
    do).
    """

    def forward(self, input, hx=None):
        output, (h_n, c_n) = super().forward(input, hx)
        return output, (c_n, h_n)


class FinalStateUnprojected(_LSTM):
    """Returns as h_n the state before the projection, o * tanh(c), of hidden_size.

    The loop keeps the unprojected h for h_n because "h_n is the hidden state" and
    the projection is seen as part of the output. Exposed by: proj_size > 0 (h_n
    is hidden_size wide instead of proj_size).
    """

    def recur(self, data, batch_sizes, states, weights, w_hr, direction):
        if w_hr is None:
            return super().recur(data, batch_sizes, states, weights, w_hr, direction)
        h0, c0 = states
        raw0 = h0.new_zeros(h0.shape[0], self.hidden_size)
        output, (_, c_n, raw_n) = super().recur(data, batch_sizes, (h0, c0, raw0), weights, w_hr, direction)
        return output, (raw_n, c_n)

    def formula(self, gi, gh, states, w_hr):
        if w_hr is None:
            return super().formula(gi, gh, states, w_hr)
        raw, c_next = super().formula(gi, gh, states[:2], None)
        return raw @ w_hr.T, c_next, raw


class ReverseUsesForwardProjection(_LSTM):
    """Projects the reverse direction with the forward direction's W_hr.

    ``getattr(self, f"weight_hr_l{layer}")`` misses the ``_reverse`` suffix that the
    other four weights got right. Exposed by: bidirectional=True with proj_size > 0.
    """

    def run_direction(self, data, batch_sizes, state, layer, direction):
        weights = self.direction_weights(layer, direction)
        output, final = self.recur(data, batch_sizes, tuple(state), weights, self.projection_weight(layer, 0), direction)
        return output, final


class FinalCellStateNotUnsorted(_LSTM):
    """Puts h_n back in the caller's row order for an unsorted packed batch, but not c_n.

    Extended from nn.RNN code, where h_n was the only state to unsort. Exposed by:
    a PackedSequence built with enforce_sorted=False whose lengths are not sorted.
    """

    def _restore(self, prepared, output, finals):
        packed = prepared.packed
        if packed is None or packed.unsorted_indices is None:
            return super()._restore(prepared, output, finals)
        h_n, c_n = finals
        result = PackedSequence(output, packed.batch_sizes, packed.sorted_indices, packed.unsorted_indices)
        return result, (h_n.index_select(1, packed.unsorted_indices), c_n)


class UnbatchedFinalCellStateKeepsBatch(_LSTM):
    """For unbatched 2-D input, squeezes the batch dimension out of h_n but not c_n.

    Extended from nn.RNN code, where h_n was the only state to squeeze. Exposed by:
    unbatched input (c_n is 3-D, ``(layers*directions, 1, hidden)``).
    """

    def _restore(self, prepared, output, finals):
        result, (h_n, c_n) = super()._restore(prepared, output, finals)
        if prepared.unbatched:
            c_n = finals[1]
        return result, (h_n, c_n)
