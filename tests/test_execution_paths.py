"""torch's own execution paths: decompositions, torch.compile, torch.export, ONNX Runtime.

Each path must really take its route (the decomposition is called, a graph is
compiled, a program exported, a session run) and still be a drop-in: torch's
state_dict keys, load_state_dict and in-place weight changes taking effect,
gradients reaching the parameters where declared, training mode left as it was.
Compiling and exporting are slow (tens of seconds per graph here), so the
compiled and exported checks use one shape family each and reuse it; their
fuzzing runs in long campaigns (docs/found-bugs.md).
"""

from __future__ import annotations

import dataclasses
import sys

import pytest
import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence

from harness import Unavailable
from harness.campaign import fuzz_implementation
from impls import torch_decomp
from support import EXECUTION_PATHS, registry

RTOL = ATOL = 1e-5


def torch_and(factory, seed=0, **constructor):
    torch.manual_seed(seed)
    reference = nn.RNN(3, 4, **constructor)
    candidate = factory(3, 4, **constructor)
    candidate.load_state_dict(reference.state_dict())
    return reference, candidate


def inputs(steps, batch, seed=1):
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(steps, batch, 3, generator=generator), torch.randn(2, batch, 4, generator=generator)


def assert_same(got, expected, what=""):
    for name, g, e in zip(("output", "h_n"), got, expected):
        g = g.data if hasattr(g, "batch_sizes") else g
        e = e.data if hasattr(e, "batch_sizes") else e
        torch.testing.assert_close(g, e, rtol=RTOL, atol=ATOL, msg=lambda m: f"{name} {what}: {m}")


def test_every_path_is_registered_with_torch_state_dict_keys():
    for name in EXECUTION_PATHS:
        implementation = registry().implementation(name)
        try:
            module = implementation.factory(input_size=3, hidden_size=4, num_layers=2)
        except Unavailable:
            continue  # onnxruntime without the [onnx] extra: its own test below says so
        assert isinstance(module, nn.RNN), f"{name} should be a torch.nn.RNN with another forward"
        assert list(module.state_dict(keep_vars=True)) == list(nn.RNN(3, 4, num_layers=2).state_dict())


# -- torch-decomp ---------------------------------------------------------------------


@pytest.fixture
def decomposition_calls(monkeypatch):
    """Wrap torch._decomp's recurrent decompositions to record which overloads run."""
    from torch._decomp import decomposition_table

    calls = []
    for packet in torch_decomp.RECURRENT_KERNELS.values():
        for overload in (packet.input, packet.data):
            original = decomposition_table[overload]

            def spy(*args, _overload=overload, _original=original, **kwargs):
                calls.append(_overload)
                return _original(*args, **kwargs)

            monkeypatch.setitem(decomposition_table, overload, spy)
    return calls


@pytest.mark.parametrize("nonlinearity", ["tanh", "relu"])
def test_decomp_runs_torchs_decomposition_for_padded_and_packed_input(decomposition_calls, nonlinearity):
    reference, candidate = torch_and(torch_decomp.DecomposedRNN, num_layers=2, nonlinearity=nonlinearity, bidirectional=True)
    x, _ = inputs(5, 3)
    assert_same(candidate(x), reference(x), "padded")
    packet = torch.ops.aten.rnn_tanh if nonlinearity == "tanh" else torch.ops.aten.rnn_relu
    assert decomposition_calls == [packet.input]
    packed = pack_padded_sequence(x, torch.tensor([5, 2, 4]), enforce_sorted=False)
    assert_same(candidate(packed), reference(packed), "packed")
    assert decomposition_calls == [packet.input, packet.data]


def test_decomp_gradients_flow_through_the_decomposition(decomposition_calls):
    reference, candidate = torch_and(torch_decomp.DecomposedRNN)
    x, _ = inputs(4, 2)
    for module in (reference, candidate):
        output, h_n = module(x)
        (output.sum() + h_n.sum()).backward()
    assert decomposition_calls, "the decomposition did not run"
    for key, parameter in reference.state_dict(keep_vars=True).items():
        torch.testing.assert_close(candidate.state_dict(keep_vars=True)[key].grad, parameter.grad, rtol=RTOL, atol=ATOL)


def test_decomp_known_failure_still_reproduces():
    """torch._decomp drops inter-layer dropout (docs/found-bugs.md). When torch fixes
    it this test fails: remove the KnownFailure from the three paths then."""
    reference, candidate = torch_and(torch_decomp.DecomposedRNN, num_layers=2, dropout=1.0)
    reference.train(), candidate.train()
    x, _ = inputs(3, 2)
    # dropout=1 zeroes layer 1's input, so torch's output is a function of the biases only.
    assert not torch.allclose(candidate(x)[0], reference(x)[0])
    case = dataclasses.replace(_any_case(), training=True, dropout=1.0, num_layers=2)
    assert registry().implementation("torch-decomp").known_failure(case) is not None


def _any_case():
    from harness.cases import Case

    return Case()


# -- compiled ---------------------------------------------------------------------------


def test_compiled_compiles_once_for_new_batches_and_follows_weight_changes():
    from impls import compiled

    if compiled.compiler_problem():
        pytest.skip(compiled.compiler_problem())
    counters = torch._dynamo.utils.counters
    graphs_before = counters["stats"]["unique_graphs"]
    # One layer, two steps: the smallest graph (compiling costs tens of seconds).
    reference, candidate = torch_and(compiled.CompiledRNN)
    # Batches unequal to every static size: with dynamic=True, Dynamo gives equal
    # sizes one symbol (duck sizing), so a batch of 3 here (= input_size) would be
    # specialized to 3 and the next batch recompile.
    x, h0 = inputs(2, 6)
    x, h0 = x, h0[:1]
    with torch.no_grad():
        assert_same(candidate(x, h0), reference(x, h0), "first call")
        assert counters["stats"]["unique_graphs"] == graphs_before + 1, "torch.compile produced no graph: it ran eager"
        x7, h7 = inputs(2, 7, seed=2)
        assert_same(candidate(x7, h7[:1]), reference(x7, h7[:1]), "new batch")
        assert counters["stats"]["unique_graphs"] == graphs_before + 1, "a new batch size recompiled: the batch is not dynamic"
        for module in (reference, candidate):
            module.weight_hh_l0.mul_(-0.5)  # optimizer-style, in place
        assert_same(candidate(x, h0), reference(x, h0), "after an in-place weight change")
        other = nn.RNN(3, 4)
        reference.load_state_dict(other.state_dict()), candidate.load_state_dict(other.state_dict())
        assert_same(candidate(x, h0), reference(x, h0), "after load_state_dict")
    assert counters["stats"]["unique_graphs"] == graphs_before + 1, "a weight change recompiled"
    assert candidate.training, "the compiled module's mode must stay as the caller set it"


def test_compiled_is_unavailable_without_a_compiler(monkeypatch):
    from impls import compiled

    monkeypatch.setattr(compiled, "compiler_problem", lambda: "no C++ compiler here")
    with pytest.raises(Unavailable, match="no C\\+\\+ compiler"):
        compiled.CompiledRNN(3, 4)


# -- exported ---------------------------------------------------------------------------


def test_exported_program_serves_new_batches_and_new_weights_with_gradients():
    from impls import exported

    reference, candidate = torch_and(exported.ExportedRNN, nonlinearity="relu", batch_first=False)
    x, h0 = inputs(3, 2)
    h0 = h0[:1]
    exports = exported.PROGRAMS.exports
    assert_same(candidate(x, h0), reference(x, h0), "first call")
    assert exported.PROGRAMS.exports == exports + 1
    x4, h4 = inputs(3, 4, seed=2)
    assert_same(candidate(x4, h4[:1]), reference(x4, h4[:1]), "new batch")
    assert exported.PROGRAMS.exports == exports + 1, "a new batch size re-exported: the batch is not dynamic"
    with torch.no_grad():
        for module in (reference, candidate):
            module.weight_ih_l0.mul_(2.0)
    for module in (reference, candidate):
        output, h_n = module(x, h0)
        (output.sum() + 2 * h_n.sum()).backward()
    assert_same(candidate(x, h0), reference(x, h0), "after an in-place weight change")
    for key, parameter in reference.state_dict(keep_vars=True).items():
        torch.testing.assert_close(candidate.state_dict(keep_vars=True)[key].grad, parameter.grad, rtol=RTOL, atol=ATOL)
    # Another module of the same structure reuses the program with its own weights.
    reference2, candidate2 = torch_and(exported.ExportedRNN, seed=5, nonlinearity="relu")
    assert_same(candidate2(x, h0), reference2(x, h0), "a second module")
    assert exported.PROGRAMS.exports == exports + 1


def test_exported_refuses_packed_input_with_a_sentence():
    from impls import exported

    module = exported.ExportedRNN(3, 4)
    packed = pack_padded_sequence(torch.randn(3, 2, 3), torch.tensor([3, 1]))
    with pytest.raises(TypeError, match="PackedSequence"):
        module(packed)


# -- onnxruntime -------------------------------------------------------------------------


def test_onnxruntime_reexports_when_weights_change_and_keeps_the_mode():
    from impls import onnx_runtime

    if onnx_runtime.onnxruntime_problem():
        pytest.skip(onnx_runtime.onnxruntime_problem())
    reference, candidate = torch_and(onnx_runtime.OnnxRuntimeRNN, num_layers=2, dropout=0.5)
    reference.eval(), candidate.eval()
    x, h0 = inputs(5, 3)
    with torch.no_grad():
        assert_same(candidate(x, h0), reference(x, h0), "first call")
        x2, h2 = inputs(7, 1, seed=3)
        assert_same(candidate(x2, h2), reference(x2, h2), "another length and batch")
        for module in (reference, candidate):
            module.bias_hh_l1.add_(0.5)
        assert_same(candidate(x, h0), reference(x, h0), "after an in-place weight change")
        other = nn.RNN(3, 4, num_layers=2, dropout=0.5)
        reference.load_state_dict(other.state_dict()), candidate.load_state_dict(other.state_dict())
        assert_same(candidate(x, h0), reference(x, h0), "after load_state_dict")
    assert not candidate.training, "exporting must not switch the module to training mode"


def test_onnxruntime_is_unavailable_with_the_install_command(monkeypatch):
    from impls import onnx_runtime

    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import onnxruntime -> ImportError
    onnx_runtime.onnxruntime_problem.cache_clear()
    try:
        with pytest.raises(Unavailable, match=r"pip install \"rnn-harness\[onnx\]\""):
            onnx_runtime.OnnxRuntimeRNN(3, 4)
    finally:
        onnx_runtime.onnxruntime_problem.cache_clear()


# -- the harness around slow paths -------------------------------------------------------


def test_a_slow_paths_budget_caps_the_profile_and_is_reported(tmp_path):
    slow = dataclasses.replace(registry().implementation("torch"), name="torch-slow", default_examples=3)
    assert slow.limits()["default_examples"] == "3"
    result = fuzz_implementation(slow, profile="ci", seed=0, repro_dir=tmp_path, database_dir=None, isolate=False)
    assert result.verdict == "pass"
    assert result.examples <= 3 and result.example_budget == 3 and result.budget_capped
    assert result.to_json()["example_budget"] == 3
    explicit = fuzz_implementation(slow, profile="ci", max_examples=5, seed=0, repro_dir=tmp_path, database_dir=None, isolate=False)
    assert explicit.example_budget == 5 and not explicit.budget_capped, "--max-examples overrides the cap"
