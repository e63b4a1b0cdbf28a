"""torch's own execution paths: decompositions, torch.compile, torch.export, ONNX Runtime.

Each path must really take its route (the decomposition is called, a graph is
compiled, a program exported, a session run) and still be a drop-in: torch's
state_dict keys, load_state_dict and in-place weight changes taking effect,
gradients reaching the parameters where declared, training mode left as it was.
Compiling and exporting are slow (tens of seconds per graph here), so the
compiled and exported checks use one shape family each and reuse it; their
fuzzing runs in long campaigns (docs/found-bugs.md). Every family variant is
registered and a drop-in; each finding declared for a family is pinned here by a
test that fails once torch (or onnxruntime) fixes it. Inductor runs on a cell, LSTM
and GRU by default; two more compiles run with RNN_HARNESS_SLOW_TESTS=1.
"""

from __future__ import annotations

import dataclasses
import os
import sys
from pathlib import Path

import pytest
import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence

from harness import Unavailable, protocol
from harness.campaign import fuzz_implementation
from harness.cases import Case
from harness.isolation import Worker
from harness.tolerance import DEFAULT_MODEL
from impls import machine, torch_decomp
from harness.families import family
from harness.bench.workload import builtin_name
from support import EXECUTION_PATH_FAMILIES, EXECUTION_PATHS, registry

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


@pytest.mark.parametrize("name", EXECUTION_PATHS)
def test_every_path_is_registered_with_torch_state_dict_keys(name):
    implementation = registry().implementation(name)
    torch_class = family(implementation.family).module_class
    keywords = {"input_size": 3, "hidden_size": 4}
    if not family(implementation.family).cell:
        keywords["num_layers"] = 2
    try:
        module = implementation.factory(**keywords)
    except Unavailable:
        pytest.skip(f"{name} is unavailable here")  # onnxruntime without the [onnx] extra: its own test says so
    assert isinstance(module, torch_class), f"{name} should be a {torch_class.__name__} with another forward"
    assert list(module.state_dict(keep_vars=True)) == list(torch_class(**keywords).state_dict())


def test_every_family_the_paths_support_is_registered():
    for base, families in EXECUTION_PATH_FAMILIES.items():
        for family_name in families:
            name = builtin_name(base, family_name)
            assert registry().implementation(name).family == family_name, name


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


@pytest.mark.parametrize("name, factory", [("torch-decomp", "DecomposedRNN"), ("torch-decomp-lstm", "DecomposedLSTM"), ("torch-decomp-gru", "DecomposedGRU")])
def test_decomp_known_failure_still_reproduces(name, factory):
    """torch._decomp drops inter-layer dropout (docs/found-bugs.md), in the one helper
    (_rnn_helper) that RNN, LSTM and GRU share. When torch fixes it this test fails:
    remove the KnownFailure from the paths then."""
    decomposed = getattr(torch_decomp, factory)
    torch.manual_seed(0)
    reference = getattr(nn, candidate_family(name))(3, 4, num_layers=2, dropout=1.0)
    candidate = decomposed(3, 4, num_layers=2, dropout=1.0)
    candidate.load_state_dict(reference.state_dict())
    reference.train(), candidate.train()
    x, _ = inputs(3, 2)
    # dropout=1 zeroes layer 1's input, so torch's output is a function of the biases only.
    assert not torch.allclose(candidate(x)[0], reference(x)[0])
    case = dataclasses.replace(_any_case(), family=candidate_family(name), training=True, dropout=1.0, num_layers=2)
    assert registry().implementation(name).known_failure(case) is not None


def candidate_family(name: str) -> str:
    return registry().implementation(name).family


def _flat(result) -> list:
    if isinstance(result, torch.Tensor):
        return [result]
    if hasattr(result, "batch_sizes"):
        return [result.data]
    return [tensor for part in result for tensor in _flat(part)]


@pytest.mark.filterwarnings("ignore:LSTM with projections is not supported with oneDNN")
@pytest.mark.parametrize(
    "family_name, constructor",
    [("LSTM", {}), ("LSTM", {"proj_size": 2}), ("GRU", {})],
    ids=["lstm", "lstm-projections", "gru"],
)
def test_decomp_runs_the_lstm_and_gru_decompositions(decomposition_calls, family_name, constructor):
    decomposed = getattr(torch_decomp, f"Decomposed{family_name}")
    packet = getattr(torch.ops.aten, family_name.lower())
    torch.manual_seed(0)
    reference = getattr(nn, family_name)(3, 4, num_layers=2, bidirectional=True, **constructor)
    candidate = decomposed(3, 4, num_layers=2, bidirectional=True, **constructor)
    candidate.load_state_dict(reference.state_dict())
    x, _ = inputs(5, 3)
    results = {}
    for who, module in (("torch", reference), ("decomposed", candidate)):
        leaf = x.clone().requires_grad_()
        flat = _flat(module(leaf))
        sum(t.sum() * (i + 1) for i, t in enumerate(flat)).backward()
        results[who] = flat + [leaf.grad] + [p.grad for p in module.parameters()]
    for got, expected in zip(results["decomposed"], results["torch"], strict=True):
        torch.testing.assert_close(got, expected, rtol=RTOL, atol=ATOL)
    assert decomposition_calls == [packet.input]
    packed = pack_padded_sequence(x, torch.tensor([5, 2, 4]), enforce_sorted=False)
    for got, expected in zip(_flat(candidate(packed)), _flat(reference(packed)), strict=True):
        torch.testing.assert_close(got, expected, rtol=RTOL, atol=ATOL)
    assert decomposition_calls == [packet.input, packet.data]


@pytest.mark.parametrize("kernel", ["rnn_tanh_cell", "rnn_relu_cell", "lstm_cell", "gru_cell"])
def test_the_cell_kernels_have_no_decomposition_so_no_decomp_cell_variants(kernel):
    """nn.*Cell call these; they are CompositeImplicitAutograd in C++ and torch._decomp
    has no entry for them, so a torch-decomp cell would be eager torch. If torch adds
    one, this fails: add the cell variants to impls/torch_decomp.py then."""
    from torch._decomp import decomposition_table

    overload = getattr(torch.ops.aten, kernel).default
    assert overload not in decomposition_table
    assert torch._C._dispatch_has_kernel_for_dispatch_key(overload.name(), "CompositeImplicitAutograd")


def test_decomp_lstm_onednn_empty_batch_known_failure_still_reproduces():
    """torch._decomp sends an inference LSTM to oneDNN even on an empty batch."""
    torch.manual_seed(0)
    reference, candidate = nn.LSTM(3, 4), torch_decomp.DecomposedLSTM(3, 4)
    candidate.load_state_dict(reference.state_dict())
    empty = torch.randn(2, 0, 3)
    assert reference(empty)[0].shape == (2, 0, 4)
    with pytest.raises(RuntimeError, match="could not execute a primitive"):
        candidate(empty)
    case = dataclasses.replace(_any_case(), family="LSTM", batch=0, seq_len=2, backward=False)
    assert registry().implementation("torch-decomp-lstm").known_failure(case) is torch_decomp.ONEDNN_EMPTY_BATCH
    with_grad = dataclasses.replace(case, backward=True)
    assert registry().implementation("torch-decomp-lstm").known_failure(with_grad) is None, "with grad the decomposition does not use oneDNN"


# nn.LSTM(1, 1), eval, forward only, one unbatched step in bfloat16: the minimal case
# of the finding on CPUs whose oneDNN has no bfloat16 (docs/found-bugs.md, 12).
BFLOAT16_LSTM = Case(family="LSTM", dtype="bfloat16", layout="unbatched", seq_len=1, backward=False)
NO_ONEDNN_BFLOAT16 = "oneDNN has no bfloat16 on this CPU (torch.ops.mkldnn._is_mkldnn_bf16_supported() is False)"


def test_decomp_lstm_bfloat16_without_onednn_bfloat16_known_failure_still_reproduces():
    """Where oneDNN has no bfloat16 instructions, eager nn.LSTM runs ATen's kernel and
    torch._decomp still picks oneDNN, which cannot build the primitive. On CPUs with
    them (AVX-512 BF16) both take oneDNN: tests/test_other_cpus.py runs this test again
    under ONEDNN_MAX_CPU_ISA=AVX2, where the condition holds."""
    if not machine.onednn_on():
        pytest.skip("torch has no oneDNN here (or it is switched off): the decomposition runs ATen's ops, as eager torch does")
    if machine.onednn_bfloat16():
        pytest.skip(
            "oneDNN has bfloat16 on this CPU (torch.ops.mkldnn._is_mkldnn_bf16_supported() is True): eager nn.LSTM and "
            "the decomposition both run oneDNN and agree (the next test); tests/test_other_cpus.py runs this one under "
            "ONEDNN_MAX_CPU_ISA=AVX2"
        )
    torch.manual_seed(0)
    reference = nn.LSTM(1, 1, dtype=torch.bfloat16).eval()
    candidate = torch_decomp.DecomposedLSTM(1, 1, dtype=torch.bfloat16).eval()
    candidate.load_state_dict(reference.state_dict())
    x = torch.randn(1, 1, dtype=torch.bfloat16)
    reference(x)  # eager torch checks the CPU and runs ATen's kernel
    with pytest.raises(RuntimeError, match="could not create a primitive descriptor for the LSTM forward"):
        candidate(x)
    for name in ("torch-decomp-lstm", "compiled-lstm"):  # Inductor lowers with the same decomposition
        assert registry().implementation(name).known_failure(BFLOAT16_LSTM) is not None, name
    assert registry().implementation("torch-decomp-lstm").known_failure(BFLOAT16_LSTM) is torch_decomp.ONEDNN_BFLOAT16_UNSUPPORTED
    with_input_grad = dataclasses.replace(BFLOAT16_LSTM, backward=True)
    assert registry().implementation("torch-decomp-lstm").known_failure(with_input_grad) is None, "an input that needs grad keeps the decomposition off oneDNN"


def test_decomp_lstm_bfloat16_declaration_follows_what_onednn_reports(monkeypatch):
    """The declaration is decided at run time: it covers the case exactly where oneDNN
    says it has no bfloat16, and where it has, the case runs and must agree with torch."""
    implementation = registry().implementation("torch-decomp-lstm")
    monkeypatch.setattr(machine, "onednn_bfloat16", lambda: False)
    expected = torch_decomp.ONEDNN_BFLOAT16_UNSUPPORTED if machine.onednn_on() else None
    assert implementation.known_failure(BFLOAT16_LSTM) is expected
    monkeypatch.setattr(machine, "onednn_bfloat16", lambda: True)
    assert implementation.known_failure(BFLOAT16_LSTM) is None
    monkeypatch.undo()
    if machine.onednn_bfloat16():
        with Worker(implementation, DEFAULT_MODEL, timeout=120) as worker:
            worker.request(protocol.Check(BFLOAT16_LSTM))  # raises Discrepancy if the two oneDNN runs disagreed


def test_decomp_lstm_packed_state_known_failure_still_reproduces():
    """nn.LSTM does not check a PackedSequence's state; aten.lstm.data's kernel does,
    its decomposition does not: an h_0 with one sequence too many is taken."""
    torch.manual_seed(0)
    reference, candidate = nn.LSTM(3, 4), torch_decomp.DecomposedLSTM(3, 4)
    candidate.load_state_dict(reference.state_dict())
    # Unequal lengths: equal ones would go to oneDNN in torch, which does not check either.
    packed = pack_padded_sequence(torch.randn(2, 3, 3), torch.tensor([2, 2, 1]))
    state = (torch.zeros(1, 4, 4), torch.zeros(1, 4, 4))  # batch 4, the input has 3
    with pytest.raises(RuntimeError):
        reference(packed, state)
    candidate(packed, state)  # returns normally
    case = dataclasses.replace(
        _any_case(), family="LSTM", layout="packed_sorted", seq_len=2, batch=3, lengths=(2, 2, 1), h0_given=True, defect="h0_wrong_batch",
    )
    assert registry().implementation("torch-decomp-lstm").known_failure(case) is torch_decomp.PACKED_LSTM_STATE_UNCHECKED


def test_decomp_lstm_packed_4d_state_raises_assertion_error_not_runtime_error():
    """Found by the covering phase's invalid inputs (every defect with every layout):
    a 4-D h_0 with a PackedSequence. torch's aten.lstm.data refuses it with a
    RuntimeError; its decomposition reads the extra dimension as parameters."""
    torch.manual_seed(0)
    reference, candidate = nn.LSTM(3, 4), torch_decomp.DecomposedLSTM(3, 4)
    candidate.load_state_dict(reference.state_dict())
    packed = pack_padded_sequence(torch.randn(2, 3, 3), torch.tensor([2, 2, 1]))
    state = (torch.zeros(1, 1, 3, 4), torch.zeros(1, 3, 4))
    with pytest.raises(RuntimeError):
        reference(packed, state)
    with pytest.raises(AssertionError, match="not divisible by group_size"):
        candidate(packed, state)
    case = dataclasses.replace(
        _any_case(), family="LSTM", layout="packed_sorted", seq_len=1, batch=1, lengths=(1,), h0_given=True, defect="h0_wrong_rank",
    )
    assert registry().implementation("torch-decomp-lstm").known_failure(case) is torch_decomp.PACKED_LSTM_STATE_UNCHECKED


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


SLOW = pytest.mark.skipif(
    not os.environ.get("RNN_HARNESS_SLOW_TESTS"),
    reason="compiles with Inductor (20-60 s here); set RNN_HARNESS_SLOW_TESTS=1 to run it",
)


@pytest.fixture
def compiler():
    from impls import compiled

    if compiled.compiler_problem():
        pytest.skip(compiled.compiler_problem())
    return compiled


def graphs_and_breaks() -> tuple[int, int]:
    counters = torch._dynamo.utils.counters
    return counters["stats"]["unique_graphs"], sum(counters["graph_break"].values())


@pytest.mark.parametrize("family_name", ["RNN", "LSTM", "GRU", "RNNCell", "LSTMCell", "GRUCell"])
def test_dynamo_traces_each_familys_forward_whole_with_the_settings_compiled_uses(compiler, family_name):
    """No graph break, hence no silent eager fallback, for any family (allow_rnn is what
    makes the layers traceable). Traced with explain (no Inductor): seconds, not minutes;
    the tests around this one run Inductor itself on a cell, LSTM and GRU."""
    torch_class = family(family_name).module_class
    module = torch_class(3, 4)
    x = torch.randn(6, 3) if family(family_name).cell else torch.randn(2, 6, 3)
    with compiler.dynamo_settings():
        explanation = torch._dynamo.explain(module.forward)(x)
    assert (explanation.graph_count, explanation.graph_break_count) == (1, 0), explanation.break_reasons


@SLOW
def test_compiled_cell_compiles_one_graph_with_a_dynamic_batch(compiler):
    torch.manual_seed(0)
    reference, candidate = nn.LSTMCell(3, 4), compiler.CompiledLSTMCell(3, 4)
    candidate.load_state_dict(reference.state_dict())
    graphs, breaks = graphs_and_breaks()
    with torch.no_grad():
        for batch in (6, 7):  # unequal to every static size (duck sizing, see above)
            x = torch.randn(batch, 3)
            for got, expected in zip(_flat(candidate(x)), _flat(reference(x)), strict=True):
                torch.testing.assert_close(got, expected, rtol=RTOL, atol=ATOL)
    assert graphs_and_breaks() == (graphs + 1, breaks), "expected one graph for both batches and no graph break"


def test_compiled_lstm_inference_known_failure_still_reproduces(compiler):
    """The TypeError comes from code Inductor generated, so the compiled path ran.
    When torch fixes it this fails: remove ONEDNN_INFERENCE_CRASH then."""
    graphs, breaks = graphs_and_breaks()
    torch.manual_seed(0)
    reference, candidate = nn.LSTM(3, 4), compiler.CompiledLSTM(3, 4)
    candidate.load_state_dict(reference.state_dict())
    x = torch.randn(2, 6, 3)  # the parameters require grad, the input does not
    with pytest.raises(TypeError, match="mkldnn_rnn_layer"):
        candidate(x)
    assert graphs_and_breaks()[1] == breaks
    with torch.no_grad():  # the same call without grad mode compiles and agrees with torch
        for got, expected in zip(_flat(candidate(x)), _flat(reference(x)), strict=True):
            torch.testing.assert_close(got, expected, rtol=RTOL, atol=ATOL)
    assert graphs_and_breaks()[1] == breaks and graphs_and_breaks()[0] > graphs
    case = dataclasses.replace(_any_case(), family="LSTM", num_layers=2, seq_len=2, batch=6, backward=False)
    implementation = registry().implementation("compiled-lstm")
    assert implementation.known_failure(case) is compiler.ONEDNN_INFERENCE_CRASH
    assert implementation.known_failure(dataclasses.replace(case, no_grad=True)) is None
    assert implementation.known_failure(dataclasses.replace(case, backward=True)) is None


def test_compiled_gru_returns_h_n_inside_output_as_compiled_rnn_does(compiler):
    """One unidirectional layer: Inductor returns h_n as a view of output's storage
    (eager torch does not). When torch fixes it this fails: narrow H_N_ALIASES_OUTPUT."""
    torch.manual_seed(0)
    reference, candidate = nn.GRU(3, 4), compiler.CompiledGRU(3, 4)
    candidate.load_state_dict(reference.state_dict())
    graphs, breaks = graphs_and_breaks()
    x = torch.randn(2, 6, 3)
    with torch.no_grad():
        output, h_n = candidate(x)
        assert_same((output, h_n), reference(x), "compiled GRU")
    assert graphs_and_breaks() == (graphs + 1, breaks), "torch.compile produced no graph, or broke it"
    assert h_n.untyped_storage().data_ptr() == output.untyped_storage().data_ptr()
    reference_output, reference_h_n = reference(x)
    assert reference_h_n.untyped_storage().data_ptr() != reference_output.untyped_storage().data_ptr()
    case = dataclasses.replace(_any_case(), family="GRU", seq_len=2, batch=6)
    assert registry().implementation("compiled-gru").known_failure(case) is compiler.H_N_ALIASES_OUTPUT


def test_compiled_lstm_packed_known_failure_still_reproduces(compiler):
    """Equal-length packed input with an h_0/c_0 one sequence too many: torch's ATen
    kernel (the harness's reference) raises, the compiled module returns."""
    from impls.torch_aten import AtenLSTM

    torch.manual_seed(0)
    reference, candidate = AtenLSTM(3, 4), compiler.CompiledLSTM(3, 4)
    candidate.load_state_dict(reference.state_dict())
    packed = pack_padded_sequence(torch.randn(2, 3, 3), torch.tensor([2, 2, 2]))
    state = (torch.zeros(1, 4, 4), torch.zeros(1, 4, 4))
    with pytest.raises(RuntimeError):
        reference(packed, state)
    candidate(packed, state)  # returns normally
    case = dataclasses.replace(
        _any_case(), family="LSTM", num_layers=2, layout="packed_sorted", seq_len=2, batch=3, lengths=(2, 2, 2), h0_given=True, defect="h0_wrong_batch",
    )
    assert registry().implementation("compiled-lstm").known_failure(case) is compiler.PACKED_LSTM_UNCHECKED


@SLOW
def test_compiled_rnncell_half_backward_known_failure_still_reproduces(compiler):
    """Inductor's float16 and bfloat16 backward for RNNCell and LSTMCell does not compile (about two minutes)
    in the AVX-512 code it generates; its AVX2 and scalar code compile (ATEN_CPU_CAPABILITY=avx2 or default)."""
    import subprocess

    if not machine.inductor_avx512():
        pytest.skip(
            f"Inductor generates {machine.inductor_vector_isa() or 'scalar'} code here, not AVX-512: the half-precision "
            "backward compiles and HALF_CELL_BACKWARD_CPP_ERROR covers nothing (test_half_cell_backward_declaration_follows_inductors_isa)"
        )

    script = Path(__file__).parents[1] / "docs" / "found-bugs" / "repro_compiled_rnncell_half_backward.py"
    child = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=600)
    assert child.returncode == 1, (child.returncode, child.stdout, child.stderr[-2000:])
    case = dataclasses.replace(_any_case(), family="RNNCell", dtype="float16", batch=5)
    assert registry().implementation("compiled-rnncell").known_failure(case) is compiler.HALF_CELL_BACKWARD_CPP_ERROR
    assert registry().implementation("compiled-rnncell").known_failure(dataclasses.replace(case, backward=False)) is None
    bfloat16 = subprocess.run([sys.executable, str(script), "LSTMCell", "bfloat16"], capture_output=True, text=True, timeout=600)
    assert bfloat16.returncode == 1, (bfloat16.returncode, bfloat16.stdout, bfloat16.stderr[-2000:])
    lstm_cell = dataclasses.replace(case, family="LSTMCell", dtype="bfloat16")
    assert registry().implementation("compiled-lstmcell").known_failure(lstm_cell) is compiler.HALF_CELL_BACKWARD_CPP_ERROR


def test_half_cell_backward_declaration_follows_inductors_isa(monkeypatch):
    """Decided at run time from the vector ISA Inductor picks, not from the CPU the
    finding was made on."""
    from impls import compiled

    case = Case(family="RNNCell", dtype="float16", batch=5)
    implementation = registry().implementation("compiled-rnncell")
    for isa, covered in (("avx512 avx512_vnni", True), ("avx512 avx512_vnni amx_tile", True), ("avx2", False), ("", False)):
        monkeypatch.setattr(machine, "inductor_vector_isa", lambda isa=isa: isa)
        expected = compiled.HALF_CELL_BACKWARD_CPP_ERROR if covered else None
        assert implementation.known_failure(case) is expected, f"Inductor ISA {isa!r}"


def test_compiled_declares_the_gpu_only_where_inductor_can_compile_for_it(monkeypatch):
    """Triton generates Inductor's GPU code and CPU wheels lack it: decided when the
    plugin loads, from what this machine has."""
    from impls import compiled

    monkeypatch.setattr(machine, "inductor_targets_cuda", lambda: False)
    assert compiled._compiled("RNN", compiled.CompiledRNN).devices == frozenset({"cpu"})
    monkeypatch.setattr(machine, "inductor_targets_cuda", lambda: True)
    assert compiled._compiled("RNN", compiled.CompiledRNN).devices is None


@SLOW
def test_compiled_lstm_with_gradients_matches_torch(compiler):
    torch.manual_seed(0)
    reference, candidate = nn.LSTM(3, 4, num_layers=2), compiler.CompiledLSTM(3, 4, num_layers=2)
    candidate.load_state_dict(reference.state_dict())
    graphs, breaks = graphs_and_breaks()
    results = {}
    for who, module in (("torch", reference), ("compiled", candidate)):
        leaf = torch.randn(2, 6, 3, generator=torch.Generator().manual_seed(1)).requires_grad_()
        flat = _flat(module(leaf))
        sum(t.sum() * (i + 1) for i, t in enumerate(flat)).backward()
        results[who] = flat + [leaf.grad] + [p.grad for p in module.parameters()]
    for got, expected in zip(results["compiled"], results["torch"], strict=True):
        torch.testing.assert_close(got, expected, rtol=RTOL, atol=ATOL)
    assert graphs_and_breaks() == (graphs + 1, breaks)


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


def test_exported_cells_take_state_tuples_unbatched_input_and_a_dynamic_batch():
    from impls import exported

    torch.manual_seed(0)
    reference, candidate = nn.LSTMCell(3, 4), exported.ExportedLSTMCell(3, 4)
    candidate.load_state_dict(reference.state_dict())
    exports = exported.PROGRAMS.exports
    for batch in (2, 5):
        x = torch.randn(batch, 3)
        state = (torch.randn(batch, 4), torch.randn(batch, 4))
        results = {}
        for who, module in (("torch", reference), ("exported", candidate)):
            module.zero_grad()
            flat = _flat(module(x, state))
            (flat[0].sum() + 2 * flat[1].sum()).backward()
            results[who] = flat + [p.grad.clone() for p in module.parameters()]
        for got, expected in zip(results["exported"], results["torch"], strict=True):
            torch.testing.assert_close(got, expected, rtol=RTOL, atol=ATOL)
    assert exported.PROGRAMS.exports == exports + 1, "a new batch re-exported: dimension 0 is not dynamic"
    unbatched = torch.randn(3)
    for got, expected in zip(_flat(candidate(unbatched)), _flat(reference(unbatched)), strict=True):
        torch.testing.assert_close(got, expected, rtol=RTOL, atol=ATOL)
    assert exported.PROGRAMS.exports == exports + 2


def test_exported_lstm_with_projections_and_a_state_tuple():
    from impls import exported

    torch.manual_seed(0)
    keywords = {"proj_size": 2, "batch_first": True}
    reference, candidate = nn.LSTM(3, 4, **keywords), exported.ExportedLSTM(3, 4, **keywords)
    candidate.load_state_dict(reference.state_dict())
    for batch in (2, 3):
        x, state = torch.randn(batch, 2, 3), (torch.randn(1, batch, 2), torch.randn(1, batch, 4))
        for got, expected in zip(_flat(candidate(x, state)), _flat(reference(x, state)), strict=True):
            torch.testing.assert_close(got, expected, rtol=RTOL, atol=ATOL)
    x1 = torch.randn(2, 3)  # unbatched: no batch dimension, and dynamic_shapes must still mirror the tuple
    x1_state = (torch.randn(1, 2), torch.randn(1, 4))
    for got, expected in zip(_flat(candidate(x1, x1_state)), _flat(reference(x1, x1_state)), strict=True):
        torch.testing.assert_close(got, expected, rtol=RTOL, atol=ATOL)


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


@pytest.fixture
def onnx_runtime():
    from impls import onnx_runtime

    if onnx_runtime.onnxruntime_problem():
        pytest.skip(onnx_runtime.onnxruntime_problem())
    return onnx_runtime


@pytest.mark.parametrize(
    "factory, torch_class, keywords, state_shapes",
    [
        ("OnnxRuntimeLSTM", nn.LSTM, {"num_layers": 2, "bidirectional": True}, [(4, 5, 4), (4, 5, 4)]),
        ("OnnxRuntimeGRU", nn.GRU, {"batch_first": True, "num_layers": 2}, [(2, 3, 4)]),
        ("OnnxRuntimeLSTMCell", nn.LSTMCell, {}, [(3, 4), (3, 4)]),
        ("OnnxRuntimeGRUCell", nn.GRUCell, {}, [(3, 4)]),
        ("OnnxRuntimeRNNCell", nn.RNNCell, {"nonlinearity": "relu"}, [(3, 4)]),
    ],
    ids=["lstm", "gru", "lstmcell", "grucell", "rnncell"],
)
def test_onnxruntime_families_with_and_without_states(onnx_runtime, factory, torch_class, keywords, state_shapes):
    torch.manual_seed(0)
    reference, candidate = torch_class(3, 4, **keywords), getattr(onnx_runtime, factory)(3, 4, **keywords)
    candidate.load_state_dict(reference.state_dict())
    reference.eval(), candidate.eval()
    cell = issubclass(torch_class, nn.RNNCellBase)
    states = [torch.randn(*shape) for shape in state_shapes]
    state = (tuple(states) if len(states) == 2 else states[0])
    calls = [
        (torch.randn(3, 3) if cell else torch.randn(3, 5, 3), state),
        (torch.randn(7, 3) if cell else torch.randn(7, 2, 3), None),  # another batch (and length)
        (torch.randn(3) if cell else torch.randn(5, 3), None),  # unbatched
    ]
    with torch.no_grad():
        for x, hx in calls:
            for got, expected in zip(_flat(candidate(x, hx)), _flat(reference(x, hx)), strict=True):
                torch.testing.assert_close(got, expected, rtol=RTOL, atol=ATOL)
    assert len(candidate._sessions) == 3, "one session per call structure: the batch and length are dynamic"


def test_onnxruntime_lstm_projections_are_refused_by_the_exporter_as_declared(onnx_runtime):
    """When torch.onnx learns projections this fails: drop projections=False then."""
    assert registry().implementation("onnxruntime-lstm").projections is False
    module = onnx_runtime.OnnxRuntimeLSTM(3, 4, proj_size=2).eval()
    with pytest.raises(torch.onnx.errors.SymbolicValueError, match="LSTMs with projections"):
        module(torch.randn(2, 3, 3))


@pytest.mark.parametrize("torch_class", ["LSTM", "GRU"])
def test_onnxruntime_lstm_gru_kernels_abort_on_an_empty_batch(onnx_runtime, torch_class):
    """onnxruntime's LSTM and GRU kernels end the process on a batch of 0 (its RNN
    kernel does not). Run in a child process; when onnxruntime fixes it this fails:
    remove EMPTY_BATCH_ABORTS then."""
    import subprocess

    script = Path(__file__).parents[1] / "docs" / "found-bugs" / "repro_onnxruntime_lstm_gru_empty_batch.py"
    child = subprocess.run([sys.executable, str(script), torch_class], capture_output=True, text=True, timeout=300)
    assert child.returncode != 0 and "terminate called" in child.stderr, (child.returncode, child.stdout, child.stderr[-2000:])
    case = dataclasses.replace(_any_case(), family=torch_class, batch=0, seq_len=1)
    assert registry().implementation(f"onnxruntime-{torch_class.lower()}").known_failure(case) is onnx_runtime.EMPTY_BATCH_ABORTS
    assert registry().implementation("onnxruntime").known_failure(case) is None, "the RNN kernel returns"


@pytest.mark.parametrize("torch_class", ["LSTM", "GRU"])
def test_onnxruntime_exporter_refuses_training_dropout_for_every_layer_family(onnx_runtime, torch_class):
    module = getattr(onnx_runtime, f"OnnxRuntime{torch_class}")(3, 4, num_layers=2, dropout=0.5).train()
    with pytest.raises(torch.onnx.errors.SymbolicValueError, match="[Dd]ropout"):
        module(torch.randn(2, 3, 3))
    case = dataclasses.replace(_any_case(), family=torch_class, num_layers=2, dropout=0.5, training=True)
    assert registry().implementation(f"onnxruntime-{torch_class.lower()}").known_failure(case) is onnx_runtime.TRAINING_DROPOUT_REFUSED
