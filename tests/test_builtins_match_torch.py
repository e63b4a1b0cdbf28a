"""Every built-in implementation behaves exactly like torch.nn.RNN.

Each case builds torch.nn.RNN and the candidate from the same constructor keywords,
loads torch's weights into the candidate, runs both on the same inputs and compares
everything a caller can observe: return types, shapes, dtypes, devices, values,
PackedSequence bookkeeping, gradients of input, h_0 and every parameter, and that
the inputs are left untouched.
"""

from __future__ import annotations

import contextlib
import dataclasses
from typing import Any

import pytest
import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence

from support import (
    HIDDEN_SIZE,
    INPUT_SIZE,
    TOLERANCES,
    assert_same_gradients,
    assert_same_result,
    assert_same_weights,
    backward_with,
    build_pair,
    builtin_names,
    implementation,
    run,
)

IMPLEMENTATIONS = builtin_names()
RTOL, ATOL = TOLERANCES[torch.float32]

AUTOGRAD_MODES = {"with grad": contextlib.nullcontext, "no_grad": torch.no_grad}


def random(shape, seed: int, dtype: torch.dtype = torch.float32) -> Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(shape, generator=generator, dtype=torch.float64).to(dtype)


# -- plain tensors: one row per configuration --------------------------------------


@dataclasses.dataclass(frozen=True)
class Case:
    id: str
    constructor: dict[str, Any] = dataclasses.field(default_factory=dict)
    steps: int = 3
    batch: int = 2
    h0: bool = False
    unbatched: bool = False
    training: bool = False

    @property
    def num_states(self) -> int:
        return self.constructor.get("num_layers", 1) * (2 if self.constructor.get("bidirectional") else 1)

    def input_shape(self) -> tuple[int, ...]:
        if self.unbatched:
            return (self.steps, INPUT_SIZE)
        if self.constructor.get("batch_first"):
            return (self.batch, self.steps, INPUT_SIZE)
        return (self.steps, self.batch, INPUT_SIZE)

    def h0_shape(self) -> tuple[int, ...]:
        if self.unbatched:
            return (self.num_states, HIDDEN_SIZE)
        return (self.num_states, self.batch, HIDDEN_SIZE)

    def inputs(self, dtype: torch.dtype = torch.float32) -> tuple[Tensor, Tensor | None]:
        x = random(self.input_shape(), seed=10, dtype=dtype)
        h0 = random(self.h0_shape(), seed=11, dtype=dtype) if self.h0 else None
        return x, h0


CASES = [
    Case("tanh"),
    Case("relu", {"nonlinearity": "relu"}),
    Case("no bias", {"bias": False}),
    Case("relu no bias with h_0", {"nonlinearity": "relu", "bias": False}, h0=True),
    Case("batch_first", {"batch_first": True}),
    Case("batch_first with h_0", {"batch_first": True}, h0=True),
    Case("2 layers", {"num_layers": 2}),
    Case("3 layers relu", {"num_layers": 3, "nonlinearity": "relu"}, h0=True),
    Case("4 layers", {"num_layers": 4}, h0=True),
    Case("bidirectional", {"bidirectional": True}),
    Case("bidirectional with h_0", {"bidirectional": True}, h0=True),
    Case("bidirectional 3 layers batch_first", {"bidirectional": True, "num_layers": 3, "batch_first": True}, h0=True),
    Case("one step", {"num_layers": 2}, steps=1, h0=True),
    Case("batch of 1", {"bidirectional": True}, batch=1, h0=True),
    Case("unbatched", unbatched=True),
    Case("unbatched with h_0", unbatched=True, h0=True),
    Case("unbatched batch_first bidirectional 2 layers", {"batch_first": True, "bidirectional": True, "num_layers": 2}, unbatched=True, h0=True),
    Case("dropout 0 in training", {"num_layers": 2, "dropout": 0.0}, training=True, h0=True),
    # p=1 zeroes every layer's input after the first: deterministic, and a candidate
    # that skips dropout (or applies it after the last layer) gives other numbers.
    Case("dropout 1 in training", {"num_layers": 3, "dropout": 1.0}, training=True, h0=True),
    Case("dropout 1 in training bidirectional", {"num_layers": 2, "dropout": 1.0, "bidirectional": True}, training=True),
    Case("dropout 0.5 in eval", {"num_layers": 2, "dropout": 0.5}, training=False, h0=True),
    Case("dropout 1 in eval", {"num_layers": 3, "dropout": 1.0}, training=False),
    Case("batch of 0 rows", {"num_layers": 2, "bidirectional": True}, batch=0),
    Case("batch of 0 rows with h_0", {"batch_first": True}, batch=0, h0=True),
]


def run_case(name: str, case: Case, autograd_mode: str = "with grad"):
    """Run torch and the candidate on the case; return the pair of results and inputs."""
    reference, candidate = build_pair(name, case.constructor)
    reference.train(case.training)
    candidate.train(case.training)
    x, h0 = case.inputs()
    leaves = {}
    for side in ("candidate", "reference"):
        leaves[side] = (
            x.clone().requires_grad_(),
            None if h0 is None else h0.clone().requires_grad_(),
        )
    with AUTOGRAD_MODES[autograd_mode]():
        expected = run(reference, *leaves["reference"])
        actual = run(candidate, *leaves["candidate"])
    return reference, candidate, expected, actual, (x, h0), leaves


@pytest.mark.parametrize("autograd_mode", list(AUTOGRAD_MODES))
@pytest.mark.parametrize("case", CASES, ids=lambda case: case.id)
@pytest.mark.parametrize("name", IMPLEMENTATIONS)
def test_forward_matches_torch_and_leaves_inputs_untouched(name, case, autograd_mode):
    _, _, expected, actual, (x, h0), leaves = run_case(name, case, autograd_mode)
    context = f"{name}: {case.id}, {autograd_mode}"
    assert_same_result(actual, expected, context, rtol=RTOL, atol=ATOL)
    given_x, given_h0 = leaves["candidate"]
    torch.testing.assert_close(given_x.detach(), x, rtol=0, atol=0, msg=lambda m: f"[{context}] input was modified: {m}")
    if h0 is not None:
        torch.testing.assert_close(given_h0.detach(), h0, rtol=0, atol=0, msg=lambda m: f"[{context}] h_0 was modified: {m}")


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.id)
@pytest.mark.parametrize("name", IMPLEMENTATIONS)
def test_gradients_match_torch(name, case):
    reference, candidate, expected, actual, _, leaves = run_case(name, case)
    backward_with(expected)
    backward_with(actual)
    (x, h0), (reference_x, reference_h0) = leaves["candidate"], leaves["reference"]
    assert_same_gradients(
        candidate,
        reference,
        {"input": (x, reference_x), "h_0": (h0, reference_h0)},
        f"{name}: {case.id}",
        rtol=RTOL,
        atol=ATOL,
    )


# -- PackedSequence: torch sorts by length and permutes h_0 to match ----------------


@dataclasses.dataclass(frozen=True)
class PackedCase:
    id: str
    lengths: tuple[int, ...]
    enforce_sorted: bool
    constructor: dict[str, Any] = dataclasses.field(default_factory=dict)
    h0: bool = False

    def num_states(self) -> int:
        return self.constructor.get("num_layers", 1) * (2 if self.constructor.get("bidirectional") else 1)


PACKED_CASES = [
    PackedCase("sorted", (3, 2, 2, 1), enforce_sorted=True),
    PackedCase("sorted with h_0", (3, 2, 2, 1), enforce_sorted=True, h0=True),
    PackedCase("sorted equal lengths", (3, 3), enforce_sorted=True, h0=True),
    PackedCase("unsorted with h_0", (2, 3, 1, 3), enforce_sorted=False, h0=True),
    PackedCase("unsorted without h_0", (1, 3, 2), enforce_sorted=False),
    PackedCase("unsorted bidirectional 2 layers with h_0", (2, 4, 1, 3), enforce_sorted=False, constructor={"bidirectional": True, "num_layers": 2}, h0=True),
    PackedCase("unsorted relu batch_first with h_0", (1, 2, 3), enforce_sorted=False, constructor={"nonlinearity": "relu", "batch_first": True}, h0=True),
    PackedCase("unsorted dropout 1 in training", (2, 3), enforce_sorted=False, constructor={"num_layers": 2, "dropout": 1.0}, h0=True),
]


@pytest.mark.parametrize("autograd_mode", list(AUTOGRAD_MODES))
@pytest.mark.parametrize("case", PACKED_CASES, ids=lambda case: case.id)
@pytest.mark.parametrize("name", IMPLEMENTATIONS)
def test_packed_sequence_matches_torch(name, case, autograd_mode):
    reference, candidate = build_pair(name, case.constructor)
    training = case.constructor.get("dropout", 0) > 0
    reference.train(training)
    candidate.train(training)
    padded = random((max(case.lengths), len(case.lengths), INPUT_SIZE), seed=20)
    h0 = random((case.num_states(), len(case.lengths), HIDDEN_SIZE), seed=21) if case.h0 else None
    leaves = {}
    results = {}
    for side, module in (("reference", reference), ("candidate", candidate)):
        side_padded = padded.clone().requires_grad_()
        side_h0 = None if h0 is None else h0.clone().requires_grad_()
        with AUTOGRAD_MODES[autograd_mode]():
            # pack_padded_sequence ignores the module's batch_first: time-major here.
            packed = pack_padded_sequence(side_padded, torch.tensor(case.lengths), enforce_sorted=case.enforce_sorted)
            results[side] = run(module, packed, side_h0)
        leaves[side] = (side_padded, side_h0)
    context = f"{name}: packed {case.id}, {autograd_mode}"
    assert_same_result(results["candidate"], results["reference"], context, rtol=RTOL, atol=ATOL)
    if h0 is not None:
        torch.testing.assert_close(leaves["candidate"][1].detach(), h0, rtol=0, atol=0, msg=lambda m: f"[{context}] h_0 was modified: {m}")
    if autograd_mode == "with grad":
        backward_with(results["reference"])
        backward_with(results["candidate"])
        (x, given_h0), (reference_x, reference_h0) = leaves["candidate"], leaves["reference"]
        assert_same_gradients(
            candidate, reference, {"padded input": (x, reference_x), "h_0": (given_h0, reference_h0)}, context, rtol=RTOL, atol=ATOL
        )


# -- non-contiguous input and h_0 ---------------------------------------------------

# Each layout makes a view of the given shape out of a larger leaf tensor (the leaf is
# what gradients are compared on). Shapes here are time-major (steps, batch, features)
# before batch_first is applied by the caller.


def transposed(shape, seed):
    base = random((shape[1], shape[0], *shape[2:]), seed).requires_grad_()
    return base, base.transpose(0, 1)


def every_other_row(shape, seed):
    base = random((shape[0] * 2, *shape[1:]), seed).requires_grad_()
    return base, base[::2]


def every_other_feature(shape, seed):
    base = random((*shape[:-1], shape[-1] * 2), seed).requires_grad_()
    return base, base[..., 1::2]


def offset_in_storage(shape, seed):
    count = 1
    for size in shape:
        count *= size
    base = random((count + 11,), seed).requires_grad_()
    return base, base[7 : 7 + count].view(shape)


def broadcast_rows(shape, seed):
    """Stride 0 along the middle dimension: every batch row is the same memory."""
    base = random((shape[0], 1, *shape[2:]), seed).requires_grad_()
    return base, base.expand(shape)


LAYOUTS = {
    "transposed": transposed,
    "every other row": every_other_row,
    "every other feature": every_other_feature,
    "offset into larger storage": offset_in_storage,
    "broadcast rows (stride 0)": broadcast_rows,
}


@pytest.mark.parametrize("batch_first", [False, True], ids=["time-major", "batch_first"])
@pytest.mark.parametrize("layout", list(LAYOUTS))
@pytest.mark.parametrize("name", IMPLEMENTATIONS)
def test_non_contiguous_input_and_h0_match_torch(name, layout, batch_first):
    constructor = {"num_layers": 2, "bidirectional": True, "batch_first": batch_first}
    reference, candidate = build_pair(name, constructor)
    steps, batch = 3, 2
    outer = (batch, steps) if batch_first else (steps, batch)
    make_view = LAYOUTS[layout]
    results, leaves = {}, {}
    for side, module in (("reference", reference), ("candidate", candidate)):
        x_base, x = make_view((*outer, INPUT_SIZE), seed=30)
        h0_base, h0 = make_view((4, batch, HIDDEN_SIZE), seed=31)
        assert not x.is_contiguous() or layout == "offset into larger storage"
        results[side] = run(module, x, h0)
        leaves[side] = (x_base, h0_base)
    context = f"{name}: {layout} input and h_0, {'batch_first' if batch_first else 'time-major'}"
    assert_same_result(results["candidate"], results["reference"], context, rtol=RTOL, atol=ATOL)
    backward_with(results["reference"])
    backward_with(results["candidate"])
    (x_base, h0_base), (reference_x_base, reference_h0_base) = leaves["candidate"], leaves["reference"]
    assert_same_gradients(
        candidate, reference, {"input": (x_base, reference_x_base), "h_0": (h0_base, reference_h0_base)}, context, rtol=RTOL, atol=ATOL
    )


# -- dtypes -------------------------------------------------------------------------

DTYPES = {"float64": torch.float64, "float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
DTYPE_CONSTRUCTORS = {
    "2 layers bidirectional": {"num_layers": 2, "bidirectional": True},
    "relu batch_first": {"nonlinearity": "relu", "batch_first": True},
}


@pytest.mark.parametrize("constructor_id", list(DTYPE_CONSTRUCTORS))
@pytest.mark.parametrize("dtype_name", list(DTYPES))
@pytest.mark.parametrize("name", IMPLEMENTATIONS)
def test_each_dtype_matches_a_float64_run_of_torch(name, dtype_name, constructor_id):
    """The candidate runs in the dtype and returns it; its values are compared with
    torch run in float64 on the very same (already rounded) weights and inputs, with
    a tolerance for the dtype's precision."""
    dtype, constructor = DTYPES[dtype_name], DTYPE_CONSTRUCTORS[constructor_id]
    declined = implementation(name).unsupported_reason({**constructor, "dtype": dtype})
    if declined is not None:
        pytest.skip(f"{name} declares it: {declined}")  # the declaration itself is tested in test_declared_limits.py
    same_dtype_torch, candidate = build_pair(name, constructor, dtype=dtype)
    float64_torch = nn.RNN(INPUT_SIZE, HIDDEN_SIZE, **constructor, dtype=torch.float64)
    float64_torch.load_state_dict({key: value.double() for key, value in same_dtype_torch.state_dict().items()})
    case = Case(constructor_id, constructor, h0=True)
    x, h0 = case.inputs(dtype)
    actual = run(candidate, x, h0)
    reference = run(float64_torch, x.double(), h0.double())
    context = f"{name}: {constructor_id} in {dtype_name}"
    for label, got in zip(("output", "h_n"), actual):
        assert got.dtype == dtype, f"[{context}] {label}.dtype={got.dtype}, but torch returns the module's dtype {dtype}"
    rtol, atol = TOLERANCES[dtype]
    assert_same_result(tuple(t.double() for t in actual), reference, f"{context} vs torch in float64", rtol=rtol, atol=atol)


# -- weights changed between calls --------------------------------------------------

WEIGHT_CHANGE_CONSTRUCTOR = {"num_layers": 2, "bidirectional": True}


def sgd_step(module: nn.Module, seed: int) -> None:
    """One in-place optimizer step with the same made-up gradient on both sides,
    keyed by state_dict name, so the update does not depend on backward."""
    parameters = module.state_dict(keep_vars=True)
    for offset, (key, parameter) in enumerate(parameters.items()):
        parameter.grad = random(parameter.shape, seed=seed + offset)
    optimizer = torch.optim.SGD(list(parameters.values()), lr=0.5)
    optimizer.step()
    optimizer.zero_grad()


def load_new_weights(module: nn.Module, seed: int) -> None:
    torch.manual_seed(seed)
    donor = nn.RNN(INPUT_SIZE, HIDDEN_SIZE, **WEIGHT_CHANGE_CONSTRUCTOR)
    module.load_state_dict(donor.state_dict())


WEIGHT_CHANGES = {"optimizer step": sgd_step, "load_state_dict": load_new_weights}


@pytest.mark.parametrize("autograd_mode", list(AUTOGRAD_MODES))
@pytest.mark.parametrize("change", list(WEIGHT_CHANGES))
@pytest.mark.parametrize("name", IMPLEMENTATIONS)
def test_changed_weights_take_effect_on_the_next_call(name, change, autograd_mode):
    reference, candidate = build_pair(name, WEIGHT_CHANGE_CONSTRUCTOR)
    x, h0 = Case("", WEIGHT_CHANGE_CONSTRUCTOR, h0=True).inputs()
    context = f"{name}: after {change}, {autograd_mode}"
    with AUTOGRAD_MODES[autograd_mode]():
        before = run(candidate, x, h0)  # a first call, so any cache would be warm
        for module in (reference, candidate):
            WEIGHT_CHANGES[change](module, seed=100)
        assert_same_weights(candidate, reference, context)
        expected = run(reference, x, h0)
        actual = run(candidate, x, h0)
    assert not torch.allclose(expected[0], before[0]), "the weight change should change torch's output"
    assert_same_result(actual, expected, context, rtol=RTOL, atol=ATOL)
    if autograd_mode == "with grad":
        backward_with(expected)
        backward_with(actual)
        assert_same_gradients(candidate, reference, {}, context, rtol=RTOL, atol=ATOL)
