"""The drop-in contract a result is held to before any value is compared: the types,
shapes, dtypes, devices and PackedSequence metadata torch returns, and the memory a
result and the inputs may share (aliasing) or must leave untouched (mutation)."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor
from torch.nn.utils.rnn import PackedSequence

from harness.cases import Case
from harness.oracle.results import Discrepancy, RunResult


def returned_tensors(case: Case, raw: Any) -> dict[str, Any]:
    """What forward returned, by the family's result names (structure already checked)."""
    family = case.family_record
    if family.cell:
        return dict(zip(family.result_names, raw if family.cell_state else (raw,)))
    output, state = raw
    return dict(zip(family.result_names, (output, *(state if family.cell_state else (state,)))))


def expected_shapes(case: Case) -> dict[str, tuple[int, ...]]:
    """torch's shapes for each returned tensor (a PackedSequence output: its data)."""
    family = case.family_record
    B, H, R = case.batch, case.hidden_size, case.state_width
    if family.cell:
        shape = (H,) if case.layout == "unbatched" else (B, H)
        return {name: shape for name in family.result_names}
    D, L, T = case.num_directions, case.num_layers, case.seq_len
    if case.layout == "unbatched":
        shapes = {"output": (T, D * R), "h_n": (L * D, R), "c_n": (L * D, H)}
    else:
        if case.packed:
            output = (sum(case.lengths), D * R)
        else:
            output = (B, T, D * R) if case.batch_first else (T, B, D * R)
        shapes = {"output": output, "h_n": (L * D, B, R), "c_n": (L * D, B, H)}
    return {name: shapes[name] for name in family.result_names}


def check_structure(case: Case, raw: Any, given_input) -> None:
    """Types, shapes, dtypes, devices and PackedSequence metadata, exactly as torch returns them."""
    family = case.family_record
    expected = family.return_signature()

    def wrong(what: str) -> Discrepancy:
        return Discrepancy("type", "return value", f"forward returned {what}, but torch.nn.{family.name} returns {expected}")

    def describe(value) -> str:
        if isinstance(value, tuple):
            return f"a tuple of {len(value)} ({', '.join(type(v).__name__ for v in value)})"
        return f"a {type(value).__name__}"

    if family.cell:
        if family.cell_state:
            if not isinstance(raw, tuple) or len(raw) != 2 or not all(isinstance(v, Tensor) for v in raw):
                raise wrong(describe(raw))
        elif not isinstance(raw, Tensor) or isinstance(raw, PackedSequence):
            raise wrong(describe(raw))
    else:
        if not isinstance(raw, tuple) or len(raw) != 2:
            raise wrong(describe(raw))
        output, state = raw
        expected_type = PackedSequence if case.packed else Tensor
        if not isinstance(output, expected_type) or (expected_type is Tensor and isinstance(output, PackedSequence)):
            raise Discrepancy("type", "output", f"output is a {type(output).__name__}, but torch returns a {expected_type.__name__} for {case.layout} input")
        if family.cell_state:
            if not isinstance(state, tuple) or len(state) != 2 or not all(isinstance(v, Tensor) for v in state):
                raise Discrepancy("type", "h_n", f"the state is {describe(state)}, but torch.nn.{family.name} returns a tuple (h_n, c_n) of Tensors")
        elif not isinstance(state, Tensor):
            raise Discrepancy("type", "h_n", f"h_n is {describe(state)}, but torch.nn.{family.name} returns a Tensor")
    shapes = expected_shapes(case)
    for name, value in returned_tensors(case, raw).items():
        label, tensor = (name + ".data", value.data) if isinstance(value, PackedSequence) else (name, value)
        shape = shapes[name]
        if tuple(tensor.shape) != shape:
            raise Discrepancy("shape", name, f"{label}.shape={tuple(tensor.shape)}, but torch gives {shape}")
        if tensor.dtype != case.torch_dtype:
            raise Discrepancy("dtype", name, f"{label}.dtype={tensor.dtype}, but torch gives {case.torch_dtype}")
        if tensor.device != torch.device(case.device) and tensor.device.type != torch.device(case.device).type:
            raise Discrepancy("device", name, f"{label} is on {tensor.device}, but torch returns it on {case.device}")
    if case.packed:
        output = raw[0]
        for field in ("batch_sizes", "sorted_indices", "unsorted_indices"):
            got, want = getattr(output, field), getattr(given_input, field)
            same = (got is None and want is None) or (got is not None and want is not None and torch.equal(got.cpu(), want.cpu()))
            if not same:
                raise Discrepancy("packed_metadata", f"output.{field}", f"output.{field}={got}, but torch returns {want} (the input's)")


def shared_storages(tensors: dict[str, Tensor | None]) -> set[frozenset[str]]:
    """Pairs of names whose tensors share memory."""
    pointers = {}
    for name, tensor in tensors.items():
        if tensor is not None and tensor.numel() > 0:
            pointers[name] = tensor.untyped_storage().data_ptr()
    names = sorted(pointers)
    return {frozenset((a, b)) for i, a in enumerate(names) for b in names[i + 1 :] if pointers[a] == pointers[b]}


def alias_view(case: Case, run: RunResult) -> dict[str, Tensor | None]:
    view = {}
    for name, value in returned_tensors(case, run.raw).items():
        view[name] = value.data if isinstance(value, PackedSequence) else value
    view["input"] = run.input.data if isinstance(run.input, PackedSequence) else run.input
    for name, state in zip(case.family_record.initial_state_names, run.initial or ()):
        view[name] = state
    return view


def input_snapshot(x, hx) -> list[Tensor]:
    data = x.data if isinstance(x, PackedSequence) else x
    states = [] if hx is None else (list(hx) if isinstance(hx, tuple) else [hx])
    return [data.detach().clone()] + [state.detach().clone() for state in states]
