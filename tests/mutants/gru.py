"""GRU mutants: where the reset gate and b_hn go, which way the update gate
interpolates, gate layouts from other frameworks, and h_n."""

from __future__ import annotations

import torch

from harness.dropin import DropInGRU, step_offsets
from ._base import time_order
from ._family_base import StepwiseLayer, gate_products


class _GRU(StepwiseLayer, DropInGRU):
    """A correct GRU to derive mistakes from."""

    def gru_formula(self, i_r, i_z, i_n, h_r, h_z, h_n, h):
        """torch's update from the six gate blocks: n = tanh(i_n + r * h_n)."""
        r = self.elementwise("sigmoid", i_r + h_r)
        z = self.elementwise("sigmoid", i_z + h_z)
        n = self.elementwise("tanh", i_n + r * h_n)
        return ((1 - z) * n + z * h,)


class BiasesFolded(_GRU):
    """Folds b_hh into b_ih, so b_hn sits outside the reset product.

    Adding the two bias vectors once (``b_ih + b_hh``) is exact for nn.RNN and
    nn.LSTM and a common speed-up; for a GRU it turns r * (h W_hn^T + b_hn) into
    r * (h W_hn^T) + b_hn. Exposed by: bias=True (with b_hn nonzero and r < 1).
    """

    def cell(self, x_t, states, weights, w_hr):
        folded = None if weights.b_ih is None else weights.b_ih + weights.b_hh
        gi, gh = gate_products(x_t, states[0], weights._replace(b_ih=None, b_hh=None))
        if folded is not None:
            gi = gi + folded
        return self.formula(gi, gh, states, w_hr)


class ResetBeforeHiddenProduct(_GRU):
    """Applies the reset gate to h before the hidden product: n = tanh(i_n + (r*h) W_hn^T + b_hn).

    This is the GRU of the original paper, of ONNX's default ``linear_before_reset=0``
    and of TensorFlow 1's GRUCell; torch (like cuDNN) resets after the product.
    Exposed by: any input with h nonzero (h_0 given, or after the first step).
    """

    def cell(self, x_t, states, weights, w_hr):
        h = states[0]
        w_ih, w_hh, b_ih, b_hh = weights
        H = self.hidden_size
        gi = x_t @ w_ih.T + (0 if b_ih is None else b_ih)
        h_rz = h @ w_hh[: 2 * H].T + (0 if b_hh is None else b_hh[: 2 * H])
        i_r, i_z, i_n = gi.chunk(3, dim=-1)
        h_r, h_z = h_rz.chunk(2, dim=-1)
        r = self.elementwise("sigmoid", i_r + h_r)
        z = self.elementwise("sigmoid", i_z + h_z)
        n = self.elementwise("tanh", i_n + (r * h) @ w_hh[2 * H :].T + (0 if b_hh is None else b_hh[2 * H :]))
        return ((1 - z) * n + z * h,)


class UpdateGateInverted(_GRU):
    """Interpolates the other way: h' = z * n + (1 - z) * h.

    Both conventions are in the literature (Chung et al. 2014 write this one);
    torch's is h' = (1 - z) * n + z * h. Exposed by: any input.
    """

    def formula(self, gi, gh, states, w_hr):
        i_r, i_z, i_n = gi.chunk(3, dim=-1)
        h_r, h_z, h_n = gh.chunk(3, dim=-1)
        r = self.elementwise("sigmoid", i_r + h_r)
        z = self.elementwise("sigmoid", i_z + h_z)
        n = self.elementwise("tanh", i_n + r * h_n)
        return (z * n + (1 - z) * states[0],)


class GateOrderKeras(_GRU):
    """Reads the gate blocks in Keras' order z, r, h instead of torch's r, z, n.

    Keras and TensorFlow stack the GRU kernel as update, reset, candidate; a weight
    converter or a port keeps that slicing. Exposed by: any input.
    """

    def formula(self, gi, gh, states, w_hr):
        i_z, i_r, i_n = gi.chunk(3, dim=-1)
        h_z, h_r, h_n = gh.chunk(3, dim=-1)
        return self.gru_formula(i_r, i_z, i_n, h_r, h_z, h_n, states[0])


class ResetGateMissing(_GRU):
    """Computes the candidate without the reset gate: n = tanh(i_n + h_n).

    The reset gate is computed (and gets gradients through nothing) but the
    candidate adds the hidden block as in a plain RNN. Exposed by: any input with
    h nonzero.
    """

    def formula(self, gi, gh, states, w_hr):
        i_r, i_z, i_n = gi.chunk(3, dim=-1)
        h_r, h_z, h_n = gh.chunk(3, dim=-1)
        z = self.elementwise("sigmoid", i_z + h_z)
        n = self.elementwise("tanh", i_n + h_n)
        return ((1 - z) * n + z * states[0],)


class FinalStateFromLastOutput(_GRU):
    """Returns as h_n each layer's output at the last time step, ``output[-1]``.

    For a plain forward GRU that is h_n; for the reverse direction h_n is the
    output at step 0, and for a packed batch a shorter sequence's last output is
    not at the last step (its padded row there is zero). Exposed by:
    bidirectional=True, or packed input with unequal lengths.
    """

    def run_direction(self, data, batch_sizes, state, layer, direction):
        output, _ = super().run_direction(data, batch_sizes, state, layer, direction)
        rows = batch_sizes[-1]
        last = output[output.shape[0] - rows :]
        return output, torch.cat([last, last.new_zeros(batch_sizes[0] - rows, last.shape[1])])


class FinalStateAfterPadding(_GRU):
    """Runs every row over the padded length, so a shorter sequence's h_n is the state
    after its padding.

    The padded batch is run as if every sequence had the maximum length (the
    padding is zeros, "so it should not matter"). The output at real steps is
    right in the forward direction; h_n of shorter sequences is not, and the
    reverse direction starts on padding. Exposed by: packed input with unequal
    lengths.
    """

    def recur(self, data, batch_sizes, states, weights, w_hr, direction):
        offsets = step_offsets(batch_sizes)
        (h,) = states
        outputs = [None] * len(batch_sizes)
        for t in time_order(len(batch_sizes), direction):
            rows = batch_sizes[t]
            x = data[offsets[t] : offsets[t] + rows]
            padded = torch.cat([x, x.new_zeros(h.shape[0] - rows, x.shape[1])])
            (h,) = self.cell(padded, (h,), weights, w_hr)
            outputs[t] = h[:rows]
        return torch.cat(outputs), (h,)


class InitialStateUpdatedInPlace(_GRU):
    """Without autograd, updates the state in place, h.mul_(z).add_((1 - z) * n),
    on the caller's h_0.

    An inference fast path saves the allocation per step; h starts as the state
    passed in, which is a view of the caller's ``hx``. Results are right, the
    caller's h_0 is not. Exposed by: h_0 passed under ``torch.no_grad()``.
    """

    def recur(self, data, batch_sizes, states, weights, w_hr, direction):
        if torch.is_grad_enabled():
            return super().recur(data, batch_sizes, states, weights, w_hr, direction)
        offsets = step_offsets(batch_sizes)
        (h,) = states
        outputs = [None] * len(batch_sizes)
        for t in time_order(len(batch_sizes), direction):
            rows = batch_sizes[t]
            h_rows = h[:rows]
            gi, gh = gate_products(data[offsets[t] : offsets[t] + rows], h_rows, weights)
            i_r, i_z, i_n = gi.chunk(3, dim=-1)
            h_r, h_z, h_n = gh.chunk(3, dim=-1)
            r = torch.sigmoid(i_r + h_r)
            z = torch.sigmoid(i_z + h_z)
            n = torch.tanh(i_n + r * h_n)
            h_rows.mul_(z).add_((1 - z) * n)
            outputs[t] = h_rows.clone()
        return torch.cat(outputs), (h,)
