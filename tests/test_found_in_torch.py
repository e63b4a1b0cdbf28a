"""Differences the fuzzer found in torch itself, pinned: each stays a finding for as
long as torch has the bug, and stays declared (a KnownFailure with its reason) so a
campaign over the built-ins reports it instead of failing on it. docs/found-bugs.md
has the write-ups."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from harness import protocol
from harness.cases import Case
from harness.isolation import Worker
from harness.oracle import Discrepancy
from harness.tolerance import DEFAULT_MODEL
from support.torch_crashes import crashes_in_some_try
from impls import machine, torch_aten, torch_native

# nn.LSTM, packed, every sequence of the same length: oneDNN's path on the CPU.
ONEDNN_PACKED = Case(family="LSTM", input_size=3, hidden_size=4, num_layers=2, layout="packed_sorted", seq_len=3, batch=2, lengths=(3, 3))


@pytest.mark.parametrize("defect", [d for d in torch_native.ONEDNN_PACKED_UNCHECKED if d != "c0_one_row"])
def test_lstm_onednn_packed_path_skips_torchs_checks(defect):
    if not machine.onednn_on():
        pytest.skip("torch has no oneDNN here (or it is switched off): nn.LSTM runs ATen's kernel, which checks the state")
    case = dataclasses.replace(ONEDNN_PACKED, defect=defect)
    # Isolated: some of these corrupt the heap and abort the process running them.
    with Worker(torch_native.LSTM, DEFAULT_MODEL, timeout=120) as worker:
        with pytest.raises(Discrepancy) as found:
            worker.request(protocol.Check(case))
    assert found.value.kind in ("exception_type", "crash"), found.value.summary
    assert torch_native.LSTM.known_failure(case) is torch_native.LSTM_ONEDNN_PACKED
    # torch's own ATen kernel raises on the same input, as torch documents
    with Worker(torch_aten.LSTM, DEFAULT_MODEL, timeout=120) as worker:
        worker.request(protocol.Check(case))


def test_the_onednn_declaration_is_no_wider_than_the_bug():
    for narrower in (
        dataclasses.replace(ONEDNN_PACKED, lengths=(3, 2), defect="wrong_width"),  # unequal lengths: ATen's path
        dataclasses.replace(ONEDNN_PACKED, dtype="float64", defect="wrong_width"),  # float64: ATen's path
        dataclasses.replace(ONEDNN_PACKED, hidden_size=4, proj_size=2, defect="wrong_width"),  # projections: ATen's path
        dataclasses.replace(ONEDNN_PACKED, defect="h0_wrong_hidden"),  # oneDNN checks this one
        dataclasses.replace(ONEDNN_PACKED, layout="batched", lengths=None, defect="wrong_width"),  # a Tensor is checked
    ):
        assert torch_native.LSTM.known_failure(narrower) is None, narrower.describe()


def test_the_onednn_declaration_follows_what_onednn_reports(monkeypatch):
    """bfloat16 goes to oneDNN only where oneDNN has bfloat16 instructions (eager
    nn.LSTM asks it); float16 never in the invalid-input check, which runs with
    autograd. Decided at run time, so a declaration written on an AVX-512 machine holds
    on an AVX2 one."""
    bfloat16 = dataclasses.replace(ONEDNN_PACKED, dtype="bfloat16", defect="wrong_width")
    float16 = dataclasses.replace(ONEDNN_PACKED, dtype="float16", defect="wrong_width")
    monkeypatch.setattr(machine, "onednn_bfloat16", lambda: False)
    monkeypatch.setattr(machine, "onednn_float16", lambda: True)
    assert torch_native.LSTM.known_failure(bfloat16) is None, "ATen's kernel runs bfloat16 here, and checks"
    assert torch_native.LSTM.known_failure(float16) is None, "float16 goes to oneDNN only without autograd"
    monkeypatch.setattr(machine, "onednn_bfloat16", lambda: True)
    expected = torch_native.LSTM_ONEDNN_PACKED if machine.onednn_on() else None
    assert torch_native.LSTM.known_failure(bfloat16) is expected
    monkeypatch.setattr(torch.backends.mkldnn, "enabled", False)
    assert torch_native.LSTM.known_failure(dataclasses.replace(bfloat16, dtype="float32")) is None, "oneDNN switched off: ATen's kernel"


def test_the_bfloat16_packed_case_agrees_with_the_declaration_on_this_machine():
    """Where the declaration covers bfloat16 the oneDNN path must skip the check, and
    where it does not, nn.LSTM must behave as ATen's kernel does."""
    case = dataclasses.replace(ONEDNN_PACKED, dtype="bfloat16", defect="wrong_width")
    with Worker(torch_native.LSTM, DEFAULT_MODEL, timeout=120) as worker:
        if torch_native.LSTM.known_failure(case) is None:
            worker.request(protocol.Check(case))
        else:
            with pytest.raises(Discrepancy):
                worker.request(protocol.Check(case))


ATEN_PACKED_CRASHES = {
    # cells: a 1-D input with a 2-D state of one row, where hidden_size is 1, passes
    # torch's checks once unsqueezed and the kernel reads past the state
    "GRUCell, unbatched input, 2-D h_0": Case(family="GRUCell", layout="unbatched", h0_given=True, defect="h0_wrong_rank"),
    "LSTMCell, unbatched input, 2-D h_0": Case(family="LSTMCell", layout="unbatched", h0_given=True, defect="h0_wrong_rank"),
    "short c_0, unequal lengths": dataclasses.replace(ONEDNN_PACKED, lengths=(3, 2), defect="c0_one_layer"),
    "short c_0, equal lengths": dataclasses.replace(ONEDNN_PACKED, defect="c0_one_layer"),
    "4-D h_0": Case(family="LSTM", layout="packed_sorted", lengths=(1,), defect="h0_wrong_rank"),
}


@pytest.mark.parametrize("case", ATEN_PACKED_CRASHES.values(), ids=ATEN_PACKED_CRASHES.keys())
def test_torch_crashes_on_a_malformed_state(case):
    """torch's reference kernel itself dies here. A campaign sets these classes aside
    before torch runs, by their declarations in harness/torch_undefined.py
    (tests/test_torch_undefined.py). When torch raises instead, this test fails: then
    update docs/found-bugs.md and the declaration."""
    with Worker(torch_aten.LSTM, DEFAULT_MODEL, timeout=120) as worker:  # the reference is the case's family's
        crashed, outcomes = crashes_in_some_try(worker, case)
        assert crashed, f"torch returned {outcomes} five times: no longer the crash in docs/found-bugs.md"
        # the worker comes back for the next case
        assert worker.request(protocol.ReferenceOutcome(dataclasses.replace(case, defect="wrong_width"))) == "RuntimeError"


def test_aten_lstm_takes_a_one_row_c0_for_a_sorted_packed_batch():
    """ATen's packed LSTM broadcasts a c_0 of one row over the batch where a Tensor
    input (or an unsorted PackedSequence, whose permutation fails) raises. torch then
    demands nothing there, so neither does the oracle; oneDNN's path on the same
    input corrupts the heap (ONEDNN_PACKED_UNCHECKED)."""
    from harness.oracle import reference_outcome

    sorted_packed = dataclasses.replace(ONEDNN_PACKED, lengths=(3, 2), defect="c0_one_row", dtype="float64")
    assert reference_outcome(sorted_packed) is None
    assert reference_outcome(dataclasses.replace(sorted_packed, layout="batched", lengths=None)) == "RuntimeError"
