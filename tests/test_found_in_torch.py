"""Differences the fuzzer found in torch itself, pinned: each stays a finding for as
long as torch has the bug, and stays declared (a KnownFailure with its reason) so a
campaign over the built-ins reports it instead of failing on it. docs/found-bugs.md
has the write-ups."""

from __future__ import annotations

import dataclasses

import pytest

from harness.cases import Case, defects_for
from harness.isolation import Worker
from harness.oracle import Discrepancy
from harness.tolerance import DEFAULT_MODEL
from impls import torch_aten, torch_native

# nn.LSTM, packed, every sequence of the same length: oneDNN's path on the CPU.
ONEDNN_PACKED = Case(family="LSTM", input_size=3, hidden_size=4, num_layers=2, layout="packed_sorted", seq_len=3, batch=2, lengths=(3, 3))


@pytest.mark.parametrize("defect", torch_native.ONEDNN_PACKED_UNCHECKED)
def test_lstm_onednn_packed_path_skips_torchs_checks(defect):
    case = dataclasses.replace(ONEDNN_PACKED, defect=defect)
    # Isolated: some of these corrupt the heap and abort the process running them.
    with Worker(torch_native.LSTM, DEFAULT_MODEL, timeout=120) as worker:
        with pytest.raises(Discrepancy) as found:
            worker.request("check", case)
    assert found.value.kind in ("exception_type", "crash"), found.value.summary
    assert torch_native.LSTM.known_failure(case) is torch_native.LSTM_ONEDNN_PACKED
    # torch's own ATen kernel raises on the same input, as torch documents
    with Worker(torch_aten.LSTM, DEFAULT_MODEL, timeout=120) as worker:
        worker.request("check", case)


def test_the_onednn_declaration_is_no_wider_than_the_bug():
    for narrower in (
        dataclasses.replace(ONEDNN_PACKED, lengths=(3, 2), defect="wrong_width"),  # unequal lengths: ATen's path
        dataclasses.replace(ONEDNN_PACKED, dtype="float64", defect="wrong_width"),  # float64: ATen's path
        dataclasses.replace(ONEDNN_PACKED, hidden_size=4, proj_size=2, defect="wrong_width"),  # projections: ATen's path
        dataclasses.replace(ONEDNN_PACKED, defect="h0_wrong_hidden"),  # oneDNN checks this one
        dataclasses.replace(ONEDNN_PACKED, layout="batched", lengths=None, defect="wrong_width"),  # a Tensor is checked
    ):
        assert torch_native.LSTM.known_failure(narrower) is None, narrower.describe()


ATEN_SHORT_C0 = """
import torch
from torch.nn.utils.rnn import pack_padded_sequence
torch.backends.mkldnn.enabled = False  # ATen's own kernel
lstm = torch.nn.LSTM(3, 4, num_layers=2)
packed = pack_padded_sequence(torch.randn(3, 2, 3), torch.tensor([3, 2]))
h_0, c_0 = torch.zeros(2, 2, 4), torch.zeros(1, 2, 4)  # c_0 for one layer of two
try:
    lstm(packed, (h_0, c_0))
except RuntimeError:
    print("raised RuntimeError")
"""


def test_aten_lstm_crashes_on_a_packed_batch_with_a_short_c0():
    """torch's reference kernel itself dies here, so the fuzzer does not draw this
    defect (harness.cases.defects_for). When torch raises instead, this test fails:
    then let defects_for draw c0_one_layer for packed input again."""
    import subprocess
    import sys

    run = subprocess.run([sys.executable, "-c", ATEN_SHORT_C0], capture_output=True, text=True, timeout=120)
    assert run.returncode != 0 and "raised RuntimeError" not in run.stdout, (run.returncode, run.stdout, run.stderr[-500:])
    assert "c0_one_layer" not in defects_for(dataclasses.replace(ONEDNN_PACKED, lengths=(3, 2)))
    assert "c0_one_layer" in defects_for(dataclasses.replace(ONEDNN_PACKED, layout="batched", lengths=None))
