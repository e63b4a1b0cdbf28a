"""Shared helpers for the specification tests: build a candidate beside torch with
identical weights, run both, and compare results with messages that name the case."""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import PackedSequence

from harness import Implementation, discover

INPUT_SIZE = 3
HIDDEN_SIZE = 4

# (rtol, atol) per dtype: float32/float64 differ from torch only by summation order;
# the half types are compared with a float64 run of torch on the same weights.
TOLERANCES = {
    torch.float64: (1e-7, 1e-7),
    torch.float32: (1e-5, 1e-5),
    torch.float16: (1e-2, 1e-2),
    torch.bfloat16: (4e-2, 4e-2),
}


@functools.cache
def registry():
    """The built-ins, discovered once per test process. Only they are imported: this
    project's tests check its own implementations, whatever else is installed."""
    return discover(builtin_only=True)


EXECUTION_PATH_FAMILIES = {
    "torch-decomp": ("RNN", "LSTM", "GRU"),  # the cells have no torch._decomp entry
    "compiled": ("RNN", "LSTM", "GRU", "RNNCell", "LSTMCell", "GRUCell"),
    "exported": ("RNN", "LSTM", "GRU", "RNNCell", "LSTMCell", "GRUCell"),
    "onnxruntime": ("RNN", "LSTM", "GRU", "RNNCell", "LSTMCell", "GRUCell"),
}
EXECUTION_PATHS = tuple(
    base if family == "RNN" else f"{base}-{family.lower()}"
    for base, families in EXECUTION_PATH_FAMILIES.items() for family in families
)
"""torch's own execution paths: they run torch's forward through a decomposition, a
compiler, an exporter or ONNX Runtime, declare what they cannot take, and some
compile per shape (minutes). tests/test_execution_paths.py checks them within their
declared limits; the hand-written specification below is for re-implementations."""


def builtin_names(family: str | None = "RNN", *, execution_paths: bool = False) -> list[str]:
    """The registered built-ins of one family (every family with None), sorted, for
    parametrising (ids are the names); torch's execution paths only if asked for."""
    return [
        name for name, plugin in registry().loaded.items()
        if plugin.found.builtin and (family is None or plugin.implementation.family == family)
        and (execution_paths or name not in EXECUTION_PATHS)
    ]


def implementation(name: str) -> Implementation:
    return registry().implementation(name)


def build_pair(
    name: str, constructor: Mapping[str, Any], *, seed: int = 0, dtype: torch.dtype = torch.float32
) -> tuple[nn.Module, nn.Module]:
    """torch.nn.RNN and the candidate ``name``, both built from ``constructor``, with
    the candidate loaded from torch's state_dict and checked to hold the same weights."""
    torch.manual_seed(seed)
    keywords = {"input_size": INPUT_SIZE, "hidden_size": HIDDEN_SIZE, **constructor}
    reference = nn.RNN(**keywords, dtype=dtype)
    candidate = implementation(name).factory(**keywords, dtype=dtype)
    candidate.load_state_dict(reference.state_dict(), strict=True)
    assert_same_weights(candidate, reference, f"{name} after load_state_dict")
    return reference, candidate


def assert_same_weights(candidate: nn.Module, reference: nn.Module, case: str) -> None:
    """The two modules hold bit-identical parameters under the same state_dict keys."""
    candidate_state = candidate.state_dict()
    reference_state = reference.state_dict()
    assert list(candidate_state) == list(reference_state), (
        f"[{case}] state_dict keys {list(candidate_state)}, but torch has {list(reference_state)}"
    )
    for key, expected in reference_state.items():
        torch.testing.assert_close(candidate_state[key], expected, rtol=0, atol=0, msg=lambda m, key=key: f"[{case}] weight {key}: {m}")


def run(module: nn.Module, input, h0: Tensor | None):
    return module(input) if h0 is None else module(input, h0)


def assert_same_result(actual, expected, case: str, *, rtol: float, atol: float) -> None:
    """Compare ``(output, h_n)`` pairs: type, shape, dtype, device, values; and, for
    packed output, the PackedSequence bookkeeping."""
    assert type(actual) is type(expected) and len(actual) == len(expected) == 2, (
        f"[{case}] returned {type(actual).__name__} of {len(actual)}, but torch returns a tuple (output, h_n)"
    )
    (output, h_n), (expected_output, expected_h_n) = actual, expected
    assert type(output) is type(expected_output), (
        f"[{case}] output is a {type(output).__name__}, but torch returns a {type(expected_output).__name__}"
    )
    if isinstance(expected_output, PackedSequence):
        for field in ("batch_sizes", "sorted_indices", "unsorted_indices"):
            got, want = getattr(output, field), getattr(expected_output, field)
            if want is None:
                assert got is None, f"[{case}] output.{field}={got}, but torch gives None"
            else:
                torch.testing.assert_close(got, want, rtol=0, atol=0, msg=lambda m, f=field: f"[{case}] output.{f}: {m}")
        output, expected_output = output.data, expected_output.data
    for label, got, want in (("output", output, expected_output), ("h_n", h_n, expected_h_n)):
        assert isinstance(got, Tensor), f"[{case}] {label} is a {type(got).__name__}, not a Tensor"
        assert got.device == want.device, f"[{case}] {label}.device={got.device}, but torch gives {want.device}"
        assert got.dtype == want.dtype, f"[{case}] {label}.dtype={got.dtype}, but torch gives {want.dtype}"
        assert got.shape == want.shape, f"[{case}] {label}.shape={tuple(got.shape)}, but torch gives {tuple(want.shape)}"
        torch.testing.assert_close(got, want, rtol=rtol, atol=atol, msg=lambda m, label=label: f"[{case}] {label}: {m}")


def assert_same_gradients(
    candidate: nn.Module,
    reference: nn.Module,
    inputs: Mapping[str, tuple[Tensor | None, Tensor | None]],
    case: str,
    *,
    rtol: float,
    atol: float,
) -> None:
    """Gradients of every parameter, matched by state_dict key, and of each named
    (candidate, reference) input pair."""
    reference_parameters = reference.state_dict(keep_vars=True)
    candidate_parameters = candidate.state_dict(keep_vars=True)
    pairs = {f"parameter {key}": (candidate_parameters[key], reference_parameters[key]) for key in reference_parameters}
    pairs.update(inputs)
    for label, (got, want) in pairs.items():
        if want is None:
            continue
        assert want.grad is not None, f"[{case}] torch produced no gradient for {label}"
        assert got.grad is not None, f"[{case}] no gradient for {label}; torch has one"
        torch.testing.assert_close(got.grad, want.grad, rtol=rtol, atol=atol, msg=lambda m, label=label: f"[{case}] grad of {label}: {m}")


def outputs_as_tensors(result) -> list[Tensor]:
    output, h_n = result
    return [output.data if isinstance(output, PackedSequence) else output, h_n]


def backward_with(result, seed: int = 1) -> None:
    """Backpropagate a fixed random upstream gradient into both outputs."""
    generator = torch.Generator().manual_seed(seed)
    tensors = outputs_as_tensors(result)
    upstream = [torch.randn(t.shape, generator=generator, dtype=torch.float64).to(t.dtype) for t in tensors]
    torch.autograd.backward(tensors, upstream)
