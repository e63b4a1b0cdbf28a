"""Shared helpers for the specification tests: build a candidate beside torch with
identical weights, run both, and compare results with messages that name the case."""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor, nn

from harness import Implementation, discover
from harness.families import family

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


def assert_same_weights(candidate: nn.Module, reference: nn.Module, case: str) -> None:
    """The two modules hold bit-identical parameters under the same state_dict keys."""
    candidate_state = candidate.state_dict()
    reference_state = reference.state_dict()
    assert list(candidate_state) == list(reference_state), (
        f"[{case}] state_dict keys {list(candidate_state)}, but torch has {list(reference_state)}"
    )
    for key, expected in reference_state.items():
        torch.testing.assert_close(candidate_state[key], expected, rtol=0, atol=0, msg=lambda m, key=key: f"[{case}] weight {key}: {m}")


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


# nn.RNN's names for the family-generic helpers in support/families.py.


def build_pair(name: str, constructor: Mapping[str, Any], *, seed: int = 0, dtype: torch.dtype = torch.float32) -> tuple[nn.Module, nn.Module]:
    """torch.nn.RNN and the candidate ``name``, both built from ``constructor``, with
    the candidate loaded from torch's state_dict and checked to hold the same weights."""
    from support.families import build_family_pair

    return build_family_pair(name, constructor, seed=seed, dtype=dtype)


def run(module: nn.Module, input, h0: Tensor | None):
    from support.families import call

    return call(module, input, h0)


def assert_same_result(actual, expected, case: str, *, rtol: float, atol: float) -> None:
    """Compare ``(output, h_n)`` pairs: nesting, type, shape, dtype, device, values;
    and, for packed output, the PackedSequence bookkeeping."""
    from support.families import assert_same_results

    assert_same_results(actual, expected, family("RNN"), case, rtol=rtol, atol=atol)


def backward_with(result, seed: int = 1) -> None:
    """Backpropagate a fixed random upstream gradient into output and h_n."""
    from support.families import backward_through

    backward_through(result, family("RNN"), seed)
