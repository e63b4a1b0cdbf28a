"""Helpers for comparing a built-in of any family with torch's own module: build both
with identical weights, flatten what they return, compare, and backpropagate."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import PackedSequence

from harness.families import Family, family
from support import EXECUTION_PATHS, assert_same_weights, implementation, registry

INPUT_SIZE = 3
HIDDEN_SIZE = 4


def builtins_of_families(families: tuple[str, ...]) -> list[str]:
    """Registered built-ins of the given families, sorted by name; torch's execution
    paths (compiled, exported, ...) are checked in tests/test_execution_paths.py."""
    return sorted(
        name for name, plugin in registry().loaded.items()
        if plugin.found.builtin and plugin.implementation.family in families and name not in EXECUTION_PATHS
    )


def family_of(name: str) -> Family:
    return family(implementation(name).family)


def build_family_pair(name: str, constructor: Mapping[str, Any], *, seed: int = 0, dtype: torch.dtype = torch.float32) -> tuple[nn.Module, nn.Module]:
    """torch's module of ``name``'s family and the candidate, both built from
    ``constructor``, the candidate loaded strictly from torch's state_dict."""
    record = family_of(name)
    torch.manual_seed(seed)
    keywords = {"input_size": INPUT_SIZE, "hidden_size": HIDDEN_SIZE, **constructor}
    reference = record.module_class(**keywords, dtype=dtype)
    candidate = implementation(name).factory(**keywords, dtype=dtype)
    candidate.load_state_dict(reference.state_dict(), strict=True)
    assert_same_weights(candidate, reference, f"{name} after load_state_dict")
    return reference, candidate


def call(module: nn.Module, input, state):
    return module(input) if state is None else module(input, state)


def flatten(result, record: Family, case: str) -> dict[str, Tensor]:
    """What forward returned, by torch's names (``output``, ``h_n``, ``c_n`` or
    ``h'``, ``c'``), checking the nesting is torch's."""
    names = record.result_names
    if record.cell:
        if record.cell_state:
            assert type(result) is tuple and len(result) == 2, f"[{case}] returned {type(result).__name__}; torch returns {record.return_signature()}"
            return dict(zip(names, result))
        assert isinstance(result, Tensor), f"[{case}] returned {type(result).__name__}; torch returns {record.return_signature()}"
        return {names[0]: result}
    assert type(result) is tuple and len(result) == 2, f"[{case}] returned {type(result).__name__}; torch returns {record.return_signature()}"
    output, state = result
    if record.cell_state:
        assert type(state) is tuple and len(state) == 2, f"[{case}] state is {type(state).__name__}; torch returns {record.return_signature()}"
        flat = {"output": output, "h_n": state[0], "c_n": state[1]}
    else:
        flat = {"output": output, "h_n": state}
    return flat


def assert_same_results(actual, expected, record: Family, case: str, *, rtol: float, atol: float) -> None:
    """Same nesting, types, PackedSequence bookkeeping, devices, shapes, dtypes and values."""
    got, want = flatten(actual, record, case), flatten(expected, record, case)
    for label, expected_value in want.items():
        value = got[label]
        assert type(value) is type(expected_value), f"[{case}] {label} is a {type(value).__name__}, but torch returns a {type(expected_value).__name__}"
        if isinstance(expected_value, PackedSequence):
            for field in ("batch_sizes", "sorted_indices", "unsorted_indices"):
                mine, theirs = getattr(value, field), getattr(expected_value, field)
                if theirs is None:
                    assert mine is None, f"[{case}] {label}.{field}={mine}, but torch gives None"
                else:
                    torch.testing.assert_close(mine, theirs, rtol=0, atol=0, msg=lambda m, f=field: f"[{case}] {label}.{f}: {m}")
            value, expected_value = value.data, expected_value.data
        assert value.device == expected_value.device, f"[{case}] {label}.device={value.device}, but torch gives {expected_value.device}"
        assert value.dtype == expected_value.dtype, f"[{case}] {label}.dtype={value.dtype}, but torch gives {expected_value.dtype}"
        assert value.shape == expected_value.shape, f"[{case}] {label}.shape={tuple(value.shape)}, but torch gives {tuple(expected_value.shape)}"
        torch.testing.assert_close(value, expected_value, rtol=rtol, atol=atol, msg=lambda m, label=label: f"[{case}] {label}: {m}")


def backward_through(result, record: Family, seed: int = 1) -> None:
    """Backpropagate a fixed random upstream gradient into every returned tensor."""
    generator = torch.Generator().manual_seed(seed)
    tensors = [t.data if isinstance(t, PackedSequence) else t for t in flatten(result, record, "backward").values()]
    upstream = [torch.randn(t.shape, generator=generator, dtype=torch.float64).to(t.dtype) for t in tensors]
    torch.autograd.backward(tensors, upstream)
