"""The error model against onnxruntime's RNN operator (issue 21).

torch.onnx maps nn.RNN to ONNX's ``RNN`` operator. onnxruntime's CPU kernel for it
(onnxruntime/core/providers/cpu/rnn/rnn.cc) does not call MLAS's tanh, which the
Tanh operator uses and which is accurate to a few units of roundoff relative to its
result: it computes ``2 * Sigmoid(2 * x) - 1`` with a scalar sigmoid
(rnn_activation_functors.h). That tanh is accurate to 3 units of roundoff in
absolute terms, and relative to a small result it is not accurate at all. A long
campaign flagged a correct port on a case where every output stays below 0.3; the
error model now holds tanh's rounding noise, like sigmoid's, to absolute accuracy
below 1/2 (`harness.tolerance.ACTIVATION_ROUNDING_FLOOR`, docs/error-model.md).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from torch.nn.utils.rnn import PackedSequence, pad_packed_sequence

from harness import Implementation, tolerance
from harness.cases import Case, materialize
from harness.oracle import Discrepancy, check
from harness.oracle.session import Session
from harness.tolerance import ACTIVATION_ROUNDING_FLOOR, DEFAULT_MODEL, UNIT_ROUNDOFF
from mutants import CORRECT_VARIANTS
from mutants.correct import tanh_from_sigmoid
from support import implementation

onnx_runtime = pytest.importorskip("impls.onnx_runtime")
if onnx_runtime.onnxruntime_problem():
    pytest.skip(onnx_runtime.onnxruntime_problem(), allow_module_level=True)

# Long campaign of a port (below), seed 1636754464, example 2,899 of 5,000: flagged on
# the second call at step 4 with |error| 1.34e-6 against a bound of 1.34e-6, where
# torch's own float32 error was 5.34e-8. Layer 2 (w_hh 2.32) amplifies what layers 0
# and 1 hand it; the outputs stay between 2e-4 and 0.3.
ISSUE_21_CASE = Case(
    input_size=1, hidden_size=1, num_layers=3, bias=False, dtype="float32", layout="packed_sorted",
    seq_len=5, batch=1, lengths=(5,), input_scale=0.1, weight_gain=3.0, exact_zeros=True, seed=13,
    backward=False, second_call="optimizer_step",
)
ISSUE_21_CASE_UNPACKED = dataclasses.replace(ISSUE_21_CASE, layout="batched", lengths=None)
"""The same tensors as a plain (T, B, I) input, which the onnxruntime built-in takes."""


def sample_points() -> np.ndarray:
    magnitudes = np.concatenate([np.logspace(-6, 1, 20_000), np.linspace(0, 10, 20_000)]).astype(np.float32)
    return np.concatenate([magnitudes, -magnitudes])


def test_the_rnn_operators_tanh_is_twice_a_sigmoid_minus_one():
    x = sample_points()
    operator = onnx_runtime.rnn_operator_activation(x)
    ours = tanh_from_sigmoid(torch.from_numpy(x)).numpy()
    assert np.mean(ours == operator) > 0.99, "correct-onnx-rnn-operator-arithmetic should be onnxruntime's tanh"


def test_the_rnn_operators_tanh_is_accurate_in_absolute_terms_only():
    # The premise of tanh's floor: a few units of roundoff absolute, far more
    # relative to a small result, and within the budget once the floor is applied.
    x = sample_points()
    exact = np.tanh(x.astype(np.float64))
    error = np.abs(onnx_runtime.rnn_operator_activation(x).astype(np.float64) - exact) / UNIT_ROUNDOFF[torch.float32]
    small = (np.abs(x) > 1e-4) & (np.abs(x) < 1e-2)
    assert error.max() < 3.5
    assert (error[small] / np.abs(exact[small])).max() > 100 * DEFAULT_MODEL.activation_ulps
    units = error / np.maximum(np.abs(exact), ACTIVATION_ROUNDING_FLOOR["tanh"])
    assert units.max() <= DEFAULT_MODEL.activation_ulps / 1.5


class PackedOnnxRuntimeRNN(onnx_runtime.OnnxRuntimeRNN):
    """A port as a new user writes it: nn.RNN exported with torch.onnx and run by
    onnxruntime's RNN operator (the built-in's export, re-exported after every
    weight change), which also takes a PackedSequence by running each sequence on
    its own, unpadded."""

    def forward(self, input, hx=None):
        if not isinstance(input, PackedSequence):
            return super().forward(input, hx)
        padded, lengths = pad_packed_sequence(input)  # (T, B, I), the caller's row order
        if hx is None:
            hx = padded.new_zeros(self.num_layers * (2 if self.bidirectional else 1), padded.shape[1], self.hidden_size)
        output = padded.new_zeros(*padded.shape[:2], self.hidden_size * (2 if self.bidirectional else 1))
        final = torch.empty_like(hx)
        for row, length in enumerate(lengths.tolist()):
            rows_output, rows_final = super().forward(padded[:length, row : row + 1], hx[:, row : row + 1])
            output[:length, row : row + 1] = rows_output
            final[:, row : row + 1] = rows_final
        order = input.sorted_indices if input.sorted_indices is not None else torch.arange(padded.shape[1])
        data = torch.cat([output[t, order[:size]] for t, size in enumerate(input.batch_sizes.tolist())])
        return PackedSequence(data, input.batch_sizes, input.sorted_indices, input.unsorted_indices), final


PACKED_PORT = Implementation(name="onnx-rnn-operator-port", factory=PackedOnnxRuntimeRNN, family="RNN", backward=False, dtypes={torch.float32})


def test_a_port_on_the_rnn_operator_passes_the_issue_21_case():
    check(PACKED_PORT, ISSUE_21_CASE)


def test_the_onnxruntime_builtin_passes_the_issue_21_case():
    check(onnx_runtime.IMPLEMENTATION, ISSUE_21_CASE_UNPACKED)


@pytest.mark.parametrize(
    "name", ["loop", "vectorized", "linear", "correct-approximate-activations", "correct-onnx-rnn-operator-arithmetic"],
)
def test_correct_implementations_pass_the_issue_21_case(name):
    candidate = next((entry for entry in CORRECT_VARIANTS if entry.name == name), None) or implementation(name)
    check(candidate, ISSUE_21_CASE)


def test_the_calibration_variant_is_onnxruntime_on_the_issue_21_case():
    # The variant can go where the built-in cannot (packed input, float64, gradients);
    # on this case it computes the same bits as onnxruntime.
    variant = next(entry for entry in CORRECT_VARIANTS if entry.name == "correct-onnx-rnn-operator-arithmetic")
    tensors = materialize(ISSUE_21_CASE)
    results = []
    for factory in (variant.factory, onnx_runtime.OnnxRuntimeRNN):
        module = factory(**ISSUE_21_CASE.constructor()).eval()
        module.load_state_dict({k: v.float() for k, v in tensors.second_weights.items()})
        with torch.no_grad():
            results.append(module(tensors.padded_input.float())[0])
    assert torch.equal(*results)


def test_without_tanhs_floor_the_issue_21_case_is_a_false_alarm(monkeypatch):
    # The case passes because the model holds tanh's rounding noise to absolute
    # accuracy near 0, not by luck: with a floor of 0 (relative accuracy, as before) it
    # is flagged where the campaign flagged it. (The activation adjoint, the worst
    # pattern of a relative budget, would clear this element on its own: 1.34e-6 against
    # 1.71e-6. It is taken out, so that the floor is measured alone.)
    monkeypatch.setitem(tolerance.ACTIVATION_ROUNDING_FLOOR, "tanh", 0.0)
    monkeypatch.setattr(Session, "activation_adjoint", lambda self: lambda name, index: torch.zeros(len(index), dtype=torch.float64))
    with pytest.raises(Discrepancy) as caught:
        check(onnx_runtime.IMPLEMENTATION, ISSUE_21_CASE_UNPACKED)
    assert "on the second call" in caught.value.summary and "time step 4" in caught.value.summary
