"""`native`: the C++ recurrence, its build and what it declares.

What every built-in must do (layouts, dtypes, invalid input, fuzzing) is checked for
`native`, `native-lstm` and `native-gru` by the shared suites, which parametrise
over the registered built-ins. Here: what is particular to the extension. Its
kernel has two code paths per product (a batch of fewer rows than one register
block projects the whole sequence first; a larger one fuses the projection into
each step), full and partial weight panels, projections, and a build chosen per
instruction set; each is compared with torch, values and every gradient, in
float64.
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence

from harness import Unavailable
from impls import native

MODULES = {"RNN": (nn.RNN, native.NativeRNN), "LSTM": (nn.LSTM, native.NativeLSTM), "GRU": (nn.GRU, native.NativeGRU)}

# batch 1 and 3: fewer rows than a register block (projection hoisted); 9 and 17:
# per-step fused products with a remainder row. Hidden 5: one partial weight
# panel; 40: whole panels and a partial one in every build.
SHAPES = [(1, 5), (3, 40), (9, 5), (17, 40)]


def observe(module, x, state, packed_lengths=None):
    """Output, final states and the gradients of input, initial states and every parameter."""
    x = x.clone().requires_grad_()
    states = tuple(s.clone().requires_grad_() for s in state)
    argument = pack_padded_sequence(x, packed_lengths, enforce_sorted=False) if packed_lengths else x
    output, final = module(argument, states if len(states) > 1 else states[0])
    output = output.data if packed_lengths else output
    finals = final if isinstance(final, tuple) else (final,)
    weights = torch.linspace(-1, 1, output.numel(), dtype=output.dtype).view_as(output)
    loss = (output * weights).sum() + sum((f * f).sum() for f in finals)
    loss.backward()
    return [output, *finals, x.grad, *(s.grad for s in states), *(p.grad for p in module.parameters())]


@pytest.mark.parametrize("batch,hidden", SHAPES, ids=[f"N{b} H{h}" for b, h in SHAPES])
@pytest.mark.parametrize("family", ["RNN", "LSTM", "GRU"])
@pytest.mark.parametrize("packed", [False, True], ids=["padded", "packed"])
def test_both_code_paths_match_torch_with_every_gradient(family, batch, hidden, packed):
    torch_class, native_class = MODULES[family]
    keywords = {"num_layers": 2, "bidirectional": True, "dtype": torch.float64}
    torch.manual_seed(batch * 100 + hidden)
    reference = torch_class(6, hidden, **keywords)
    candidate = native_class(6, hidden, **keywords)
    candidate.load_state_dict(reference.state_dict())
    steps = 7
    x = torch.randn(steps, batch, 6, dtype=torch.float64)
    h0 = torch.randn(4, batch, hidden, dtype=torch.float64)
    state = (h0, torch.randn_like(h0)) if family == "LSTM" else (h0,)
    lengths = [steps - (row % 4) for row in range(batch)] if packed else None
    expected = observe(reference, x, state, lengths)
    actual = observe(candidate, x, state, lengths)
    assert len(actual) == len(expected)
    for index, (got, want) in enumerate(zip(actual, expected)):
        torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-10, msg=lambda m, index=index: f"{family} item {index}: {m}")
    # Without a backward to feed, the kernel keeps the gates in its own scratch rows.
    with torch.no_grad():
        argument = pack_padded_sequence(x, lengths, enforce_sorted=False) if packed else x
        output, final = candidate(argument, state if family == "LSTM" else h0)
    torch.testing.assert_close(output.data if packed else output, expected[0], rtol=1e-10, atol=1e-10)
    for got, want in zip(final if family == "LSTM" else (final,), expected[1:]):
        torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("batch", [2, 9])
def test_lstm_projections_match_torch(batch):
    torch.manual_seed(batch)
    reference = nn.LSTM(5, 12, proj_size=4, num_layers=2, bidirectional=True, dtype=torch.float64)
    candidate = native.NativeLSTM(5, 12, proj_size=4, num_layers=2, bidirectional=True, dtype=torch.float64)
    candidate.load_state_dict(reference.state_dict())
    x = torch.randn(6, batch, 5, dtype=torch.float64)
    state = (torch.randn(4, batch, 4, dtype=torch.float64), torch.randn(4, batch, 12, dtype=torch.float64))
    for got, want in zip(observe(candidate, x, state), observe(reference, x, state)):
        torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-10)


def test_double_backward_is_refused_not_wrong():
    module = native.NativeGRU(3, 4, dtype=torch.float64)
    x = torch.randn(5, 2, 3, dtype=torch.float64, requires_grad=True)
    output, _ = module(x)
    with pytest.raises(RuntimeError, match="double backward"):
        torch.autograd.grad(output.sum(), x, create_graph=True)


def test_half_precision_is_declared_not_run():
    for name in ("IMPLEMENTATION", "LSTM", "GRU"):
        record = getattr(native, name)
        assert set(record.dtypes) == {torch.float32, torch.float64}
        assert record.unsupported_reason({"dtype": torch.float16}) is not None
        assert record.unsupported_reason({"dtype": torch.float32}) is None
    with pytest.raises(TypeError, match="float32 and float64"):
        native.kernel("rnn_forward", torch.bfloat16)


# -- the build ---------------------------------------------------------------------


@pytest.mark.parametrize("capability", ["AVX512", "AVX2", "DEFAULT", "SVE256"])
def test_the_build_follows_torchs_instruction_set_never_the_build_machine(monkeypatch, capability):
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: capability)
    flags = native.build_flags()
    assert "-march=native" not in flags and not any(flag.startswith("-march") for flag in flags)
    assert ("-mavx512f" in flags) == (capability == "AVX512")
    assert ("-mavx2" in flags) == (capability in ("AVX512", "AVX2"))
    expected = capability.lower() if capability in native.ISA_FLAGS else "default"
    assert native.extension_name().startswith(f"rnn_harness_native_{expected}_"), "the cache key names the instruction set"


def test_the_cache_key_changes_with_the_source(monkeypatch, tmp_path):
    before = native.extension_name()
    changed = tmp_path / "native_rnn.cpp"
    changed.write_text(native.SOURCE.read_text() + "\n// changed\n")
    monkeypatch.setattr(native, "SOURCE", changed)
    assert native.extension_name() != before


def test_without_a_compiler_the_built_ins_are_unavailable_with_the_reason(monkeypatch, tmp_path):
    monkeypatch.setenv("TORCH_EXTENSIONS_DIR", str(tmp_path))  # nothing cached there
    monkeypatch.setenv("CXX", "no-such-compiler-rnn-harness")
    with pytest.raises(Unavailable, match="C\\+\\+ compiler"):
        native.build()


CHECK_SCRIPT = """
import torch
from torch import nn
from impls import native
torch.manual_seed(0)
worst = 0.0
for torch_class, native_class in ((nn.LSTM, native.NativeLSTM), (nn.GRU, native.NativeGRU), (nn.RNN, native.NativeRNN)):
    for batch in (1, 9):
        reference = torch_class(7, 37, dtype=torch.float64)
        candidate = native_class(7, 37, dtype=torch.float64)
        candidate.load_state_dict(reference.state_dict())
        x = torch.randn(6, batch, 7, dtype=torch.float64)
        expected, actual = reference(x)[0], candidate(x)[0]
        actual.sum().backward(); expected.sum().backward()
        worst = max(worst, (expected - actual).abs().max().item())
        for a, b in zip(candidate.parameters(), reference.parameters()):
            worst = max(worst, (a.grad - b.grad).abs().max().item())
print(native.instruction_set(), worst)
"""


@pytest.mark.parametrize("capability", ["avx2", "default"])
def test_the_builds_for_other_instruction_sets_compute_the_same(capability, tmp_path):
    """A machine with only AVX2 (or none) gets its own build; run it here by
    lowering torch's capability, as ATEN_CPU_CAPABILITY does."""
    if platform.machine() not in ("x86_64", "AMD64"):
        pytest.skip("AVX2 and the x86-64 baseline are x86 instruction sets")
    if native.build_problem() is not None:
        pytest.skip(native.build_problem())
    environment = {**os.environ, "ATEN_CPU_CAPABILITY": capability}
    result = subprocess.run(
        [sys.executable, "-c", CHECK_SCRIPT], capture_output=True, text=True, env=environment,
        cwd=Path(__file__).parents[1], timeout=600,
    )
    assert result.returncode == 0, result.stderr
    isa, worst = result.stdout.split()
    assert isa == capability.upper()
    assert float(worst) < 1e-10
