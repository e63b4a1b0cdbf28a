"""Every built-in of LSTM, GRU, RNNCell, LSTMCell and GRUCell behaves like torch's module.

Each case builds torch's module and the candidate from the same constructor keywords,
loads torch's weights into the candidate, runs both on the same inputs and compares
what a caller can observe: the nesting of what is returned (``(output, (h_n, c_n))``,
``h'``, ``(h', c')``), types, PackedSequence bookkeeping, shapes, dtypes, values,
gradients of the input, of each initial state and of every parameter (by state_dict
key), exception types on bad input, and state_dict keys, loads and attribute names.
nn.RNN itself has its own file, tests/test_builtins_match_torch.py.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any

import pytest
import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence

from support import TOLERANCES, assert_same_gradients, implementation
from support.families import (
    HIDDEN_SIZE,
    INPUT_SIZE,
    assert_same_results,
    backward_through,
    build_family_pair,
    builtins_of_families,
    call,
    family_of,
)

# torch says so, once per process, whenever an LSTM with proj_size runs on CPU.
pytestmark = pytest.mark.filterwarnings("ignore:LSTM with projections is not supported with oneDNN:UserWarning")

LAYERS = builtins_of_families(("LSTM", "GRU"))
CELLS = builtins_of_families(("RNNCell", "LSTMCell", "GRUCell"))
EVERY = LAYERS + CELLS
RTOL, ATOL = TOLERANCES[torch.float32]
PROJ_SIZE = 2


def random(shape, seed: int, dtype: torch.dtype = torch.float32) -> Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(shape, generator=generator, dtype=torch.float64).to(dtype)


def leaf(tensor: Tensor | None) -> Tensor | None:
    return None if tensor is None else tensor.clone().requires_grad_()


def state_leaves(state):
    if state is None or isinstance(state, Tensor):
        return leaf(state)
    return tuple(leaf(s) for s in state)


def named_states(record, candidate_state, reference_state) -> dict:
    """(candidate, reference) pairs of the initial state tensors, by torch's names."""
    if candidate_state is None:
        return {}
    if isinstance(candidate_state, Tensor):
        return {"h_0": (candidate_state, reference_state)}
    return {name: pair for name, pair in zip(record.initial_state_names, zip(candidate_state, reference_state))}


def applicable(names: list[str], cases: list) -> list:
    """pytest params (name, case) for the cases whose constructor keywords the
    family takes (proj_size is LSTM's, nonlinearity RNNCell's)."""
    return [
        pytest.param(name, case, id=f"{name}-{case.id}")
        for name in names
        for case in cases
        if set(case.constructor) <= set(family_of(name).keywords)
    ]


# -- layer families: plain tensors ---------------------------------------------------


@dataclasses.dataclass(frozen=True)
class LayerCase:
    id: str
    constructor: dict[str, Any] = dataclasses.field(default_factory=dict)
    steps: int = 3
    batch: int = 2
    state: bool = False
    unbatched: bool = False
    training: bool = False

    def inputs(self, record, dtype: torch.dtype = torch.float32):
        """(input, initial state or None): the state is h_0, or (h_0, c_0) for LSTM."""
        c = {**record.defaults(), **self.constructor}
        if self.unbatched:
            shape = (self.steps, INPUT_SIZE)
        elif c["batch_first"]:
            shape = (self.batch, self.steps, INPUT_SIZE)
        else:
            shape = (self.steps, self.batch, INPUT_SIZE)
        x = random(shape, seed=10, dtype=dtype)
        if not self.state:
            return x, None
        layers = c["num_layers"] * (2 if c["bidirectional"] else 1)
        outer = (layers,) if self.unbatched else (layers, self.batch)
        h0 = random((*outer, c.get("proj_size") or HIDDEN_SIZE), seed=11, dtype=dtype)
        if record.cell_state:
            return x, (h0, random((*outer, HIDDEN_SIZE), seed=12, dtype=dtype))
        return x, h0


LAYER_CASES = [
    LayerCase("defaults"),
    LayerCase("with state", state=True),
    LayerCase("no bias", {"bias": False}, state=True),
    LayerCase("batch_first with state", {"batch_first": True}, state=True),
    LayerCase("3 layers", {"num_layers": 3}, state=True),
    LayerCase("bidirectional 2 layers batch_first", {"bidirectional": True, "num_layers": 2, "batch_first": True}, state=True),
    LayerCase("one step", {"num_layers": 2}, steps=1, state=True),
    LayerCase("unbatched", unbatched=True),
    LayerCase("unbatched bidirectional 2 layers with state", {"bidirectional": True, "num_layers": 2}, unbatched=True, state=True),
    LayerCase("batch of 0 rows", {"bidirectional": True}, batch=0),
    LayerCase("batch of 0 rows with state", {"batch_first": True}, batch=0, state=True),
    LayerCase("dropout 1 in training", {"num_layers": 3, "dropout": 1.0}, training=True, state=True),
    LayerCase("dropout 0.5 in eval", {"num_layers": 2, "dropout": 0.5}, state=True),
    # LSTM's projections: h (and so each layer's output) is proj_size wide, c is not.
    LayerCase("proj_size", {"proj_size": PROJ_SIZE}),
    LayerCase("proj_size with state", {"proj_size": PROJ_SIZE}, state=True),
    LayerCase("proj_size bidirectional 2 layers", {"proj_size": PROJ_SIZE, "bidirectional": True, "num_layers": 2}, state=True),
    LayerCase("proj_size 1 batch_first no bias", {"proj_size": 1, "batch_first": True, "bias": False}, state=True),
    LayerCase("proj_size unbatched", {"proj_size": PROJ_SIZE, "num_layers": 2}, unbatched=True, state=True),
]


def run_layer_case(name: str, case: LayerCase, dtype=torch.float32):
    record = family_of(name)
    reference, candidate = build_family_pair(name, case.constructor, dtype=dtype)
    reference.train(case.training)
    candidate.train(case.training)
    x, state = case.inputs(record, dtype)
    leaves = {side: (leaf(x), state_leaves(state)) for side in ("candidate", "reference")}
    expected = call(reference, *leaves["reference"])
    actual = call(candidate, *leaves["candidate"])
    return record, reference, candidate, expected, actual, (x, state), leaves


@pytest.mark.parametrize(("name", "case"), applicable(LAYERS, LAYER_CASES))
def test_layer_values_and_gradients_match_torch(name, case):
    record, reference, candidate, expected, actual, (x, state), leaves = run_layer_case(name, case)
    context = f"{name}: {case.id}"
    assert_same_results(actual, expected, record, context, rtol=RTOL, atol=ATOL)
    given_x, given_state = leaves["candidate"]
    torch.testing.assert_close(given_x.detach(), x, rtol=0, atol=0, msg=lambda m: f"[{context}] input was modified: {m}")
    assert_state_untouched(record, given_state, state, context)
    backward_through(expected, record)
    backward_through(actual, record)
    inputs = {"input": (given_x, leaves["reference"][0]), **named_states(record, given_state, leaves["reference"][1])}
    assert_same_gradients(candidate, reference, inputs, context, rtol=RTOL, atol=ATOL)


def assert_state_untouched(record, given, original, context: str) -> None:
    for label, (got, want) in named_states(record, given, original).items():
        torch.testing.assert_close(got.detach(), want, rtol=0, atol=0, msg=lambda m, label=label: f"[{context}] {label} was modified: {m}")


@pytest.mark.parametrize("name", LAYERS)
def test_layer_under_no_grad_matches_torch(name):
    record = family_of(name)
    case = dtype_case(record)
    reference, candidate = build_family_pair(name, case.constructor)
    x, state = case.inputs(record)
    given = state_leaves(state)
    with torch.no_grad():
        expected, actual = call(reference, x, state), call(candidate, x, given)
    assert_same_results(actual, expected, record, f"{name}: no_grad", rtol=RTOL, atol=ATOL)
    assert_state_untouched(record, given, state, f"{name}: no_grad")


# -- layer families: PackedSequence ---------------------------------------------------


@dataclasses.dataclass(frozen=True)
class PackedCase:
    id: str
    lengths: tuple[int, ...]
    enforce_sorted: bool
    constructor: dict[str, Any] = dataclasses.field(default_factory=dict)
    state: bool = False


PACKED_CASES = [
    PackedCase("sorted", (3, 2, 2, 1), enforce_sorted=True),
    PackedCase("unsorted with state", (2, 3, 1, 3), enforce_sorted=False, state=True),
    PackedCase("unsorted bidirectional 2 layers with state", (2, 4, 1, 3), False, {"bidirectional": True, "num_layers": 2}, state=True),
    PackedCase("unsorted proj_size bidirectional with state", (1, 3, 2), False, {"bidirectional": True, "proj_size": PROJ_SIZE}, state=True),
]


@pytest.mark.parametrize(("name", "case"), applicable(LAYERS, PACKED_CASES))
def test_packed_sequence_matches_torch(name, case):
    record = family_of(name)
    reference, candidate = build_family_pair(name, case.constructor)
    padded = random((max(case.lengths), len(case.lengths), INPUT_SIZE), seed=20)
    state = LayerCase("", case.constructor, batch=len(case.lengths), state=case.state).inputs(record)[1]
    results, leaves = {}, {}
    for side, module in (("reference", reference), ("candidate", candidate)):
        side_padded, side_state = leaf(padded), state_leaves(state)
        # pack_padded_sequence ignores the module's batch_first: time-major here.
        packed = pack_padded_sequence(side_padded, torch.tensor(case.lengths), enforce_sorted=case.enforce_sorted)
        results[side] = call(module, packed, side_state)
        leaves[side] = (side_padded, side_state)
    context = f"{name}: packed {case.id}"
    assert_same_results(results["candidate"], results["reference"], record, context, rtol=RTOL, atol=ATOL)
    backward_through(results["reference"], record)
    backward_through(results["candidate"], record)
    inputs = {"padded input": (leaves["candidate"][0], leaves["reference"][0]), **named_states(record, leaves["candidate"][1], leaves["reference"][1])}
    assert_same_gradients(candidate, reference, inputs, context, rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("batch_first", [False, True], ids=["time-major", "batch_first"])
@pytest.mark.parametrize("name", LAYERS)
def test_transposed_input_and_state_match_torch(name, batch_first):
    record = family_of(name)
    constructor = {"num_layers": 2, "bidirectional": True, "batch_first": batch_first}
    reference, candidate = build_family_pair(name, constructor)
    x, state = LayerCase("", constructor, state=True).inputs(record)
    states = state if record.cell_state else (state,)
    results, leaves = {}, {}
    for side, module in (("reference", reference), ("candidate", candidate)):
        x_base = x.transpose(0, 1).contiguous().requires_grad_()
        state_bases = [s.transpose(1, 2).contiguous().requires_grad_() for s in states]
        views = tuple(base.transpose(1, 2) for base in state_bases)
        assert not x_base.transpose(0, 1).is_contiguous()
        results[side] = call(module, x_base.transpose(0, 1), views if record.cell_state else views[0])
        leaves[side] = (x_base, state_bases)
    context = f"{name}: transposed input and state, {'batch_first' if batch_first else 'time-major'}"
    assert_same_results(results["candidate"], results["reference"], record, context, rtol=RTOL, atol=ATOL)
    backward_through(results["reference"], record)
    backward_through(results["candidate"], record)
    inputs = {"input": (leaves["candidate"][0], leaves["reference"][0])}
    inputs.update(named_states(record, tuple(leaves["candidate"][1]), tuple(leaves["reference"][1])))
    assert_same_gradients(candidate, reference, inputs, context, rtol=RTOL, atol=ATOL)


# -- cells ----------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class CellCase:
    id: str
    constructor: dict[str, Any] = dataclasses.field(default_factory=dict)
    batch: int | None = 2
    """None: unbatched 1-D input (and state)."""
    state: bool = False

    def inputs(self, record, dtype: torch.dtype = torch.float32):
        outer = () if self.batch is None else (self.batch,)
        x = random((*outer, INPUT_SIZE), seed=40, dtype=dtype)
        if not self.state:
            return x, None
        h = random((*outer, HIDDEN_SIZE), seed=41, dtype=dtype)
        return x, ((h, random((*outer, HIDDEN_SIZE), seed=42, dtype=dtype)) if record.cell_state else h)


CELL_CASES = [
    CellCase("batched"),
    CellCase("batched with state", state=True),
    CellCase("no bias with state", {"bias": False}, state=True),
    CellCase("relu with state", {"nonlinearity": "relu"}, state=True),
    CellCase("batch of 1", batch=1, state=True),
    CellCase("1-D input", batch=None),
    CellCase("1-D input with state", batch=None, state=True),
    CellCase("batch of 0 rows", batch=0),
    CellCase("batch of 0 rows with state", batch=0, state=True),
]


@pytest.mark.parametrize(("name", "case"), applicable(CELLS, CELL_CASES))
def test_cell_values_and_gradients_match_torch(name, case):
    record = family_of(name)
    reference, candidate = build_family_pair(name, case.constructor)
    x, state = case.inputs(record)
    leaves = {side: (leaf(x), state_leaves(state)) for side in ("candidate", "reference")}
    expected = call(reference, *leaves["reference"])
    actual = call(candidate, *leaves["candidate"])
    context = f"{name}: {case.id}"
    assert_same_results(actual, expected, record, context, rtol=RTOL, atol=ATOL)
    given_x, given_state = leaves["candidate"]
    assert_state_untouched(record, given_state, state, context)
    backward_through(expected, record)
    backward_through(actual, record)
    inputs = {"input": (given_x, leaves["reference"][0]), **named_states(record, given_state, leaves["reference"][1])}
    assert_same_gradients(candidate, reference, inputs, context, rtol=RTOL, atol=ATOL)


# -- every family: dtypes and weight changes ---------------------------------------------

DTYPES = {"float64": torch.float64, "float16": torch.float16, "bfloat16": torch.bfloat16}


def dtype_case(record):
    if record.cell:
        return CellCase("dtype", state=True)
    return LayerCase("dtype", {"num_layers": 2, "bidirectional": True, **({"proj_size": PROJ_SIZE} if record.projections else {})}, state=True)


def to_double(result):
    if isinstance(result, Tensor):
        return result.double()
    return tuple(to_double(part) for part in result)


@pytest.mark.parametrize("dtype_name", list(DTYPES))
@pytest.mark.parametrize("name", EVERY)
def test_each_dtype_matches_a_float64_run_of_torch(name, dtype_name):
    """The candidate runs in the dtype and returns it; its values are compared with
    torch run in float64 on the very same (already rounded) weights and inputs."""
    dtype, record = DTYPES[dtype_name], family_of(name)
    case = dtype_case(record)
    declined = implementation(name).unsupported_reason({**case.constructor, "dtype": dtype})
    if declined is not None:
        pytest.skip(f"{name} declares it: {declined}")  # the declaration itself is tested in test_declared_limits.py
    same_dtype_torch, candidate = build_family_pair(name, case.constructor, dtype=dtype)
    float64_torch = record.module_class(INPUT_SIZE, HIDDEN_SIZE, **case.constructor, dtype=torch.float64)
    float64_torch.load_state_dict({key: value.double() for key, value in same_dtype_torch.state_dict().items()})
    x, state = case.inputs(record, dtype)
    actual = call(candidate, x, state)
    expected = call(float64_torch, x.double(), to_double(state))
    context = f"{name} in {dtype_name}"
    for label, value in zip(record.result_names, flatten_tensors(actual)):
        assert value.dtype == dtype, f"[{context}] {label}.dtype={value.dtype}, but torch returns the module's dtype {dtype}"
    rtol, atol = TOLERANCES[dtype]
    assert_same_results(to_double(actual), expected, record, f"{context} vs torch in float64", rtol=rtol, atol=atol)


def flatten_tensors(result) -> list[Tensor]:
    if isinstance(result, Tensor):
        return [result]
    return [tensor for part in result for tensor in flatten_tensors(part)]


def sgd_step(module: nn.Module, seed: int) -> None:
    """One in-place optimizer step with the same made-up gradient on both sides, keyed
    by state_dict name (the parameters a user's optimizer would hold)."""
    parameters = module.state_dict(keep_vars=True)
    for offset, parameter in enumerate(parameters.values()):
        parameter.grad = random(parameter.shape, seed=seed + offset)
    torch.optim.SGD(list(parameters.values()), lr=0.5).step()


@pytest.mark.parametrize("name", EVERY)
def test_optimizer_step_takes_effect_on_the_next_call(name):
    record = family_of(name)
    case = dtype_case(record)
    reference, candidate = build_family_pair(name, case.constructor)
    x, state = case.inputs(record)
    before = call(candidate, x, state)
    for module in (reference, candidate):
        sgd_step(module, seed=100)
    expected, actual = call(reference, x, state), call(candidate, x, state)
    assert not torch.allclose(flatten_tensors(expected)[0], flatten_tensors(before)[0]), "the step should change torch's result"
    assert_same_results(actual, expected, record, f"{name}: after an optimizer step", rtol=RTOL, atol=ATOL)


# -- state_dict: keys, round trips, load errors, attribute names ------------------------------


def constructors_of(name: str) -> list[dict]:
    record = family_of(name)
    if record.cell:
        return [{}, {"bias": False}]
    shapes = [{}, {"bias": False, "num_layers": 2, "bidirectional": True}]
    if record.projections:
        shapes.append({"proj_size": PROJ_SIZE, "num_layers": 2, "bidirectional": True})
    return shapes


@pytest.mark.parametrize("name", EVERY)
def test_state_dict_has_torchs_keys_and_round_trips(name):
    record = family_of(name)
    for constructor in constructors_of(name):
        reference, candidate = build_family_pair(name, constructor)  # torch -> candidate, strict
        context = f"{name} {constructor}"
        state = candidate.state_dict()
        assert list(state) == list(reference.state_dict()), f"[{context}] keys {list(state)}, torch's {list(reference.state_dict())}"
        assert {key: tuple(value.shape) for key, value in state.items()} == record.parameter_shapes({"input_size": INPUT_SIZE, "hidden_size": HIDDEN_SIZE, **constructor})
        # candidate -> a fresh torch module, strict, and the values survive the trip
        fresh = record.module_class(INPUT_SIZE, HIDDEN_SIZE, **constructor)
        fresh.load_state_dict(state, strict=True)
        for key, value in fresh.state_dict().items():
            torch.testing.assert_close(value, reference.state_dict()[key], rtol=0, atol=0)
        # torch's attribute names reach the very parameters the optimizer updates
        for key, parameter in candidate.state_dict(keep_vars=True).items():
            assert getattr(candidate, key) is parameter, f"[{context}] {name}.{key} is not the parameter under state_dict key {key}"
        assert sorted(map(id, candidate.parameters())) == sorted(map(id, candidate.state_dict(keep_vars=True).values()))


@pytest.mark.parametrize("name", EVERY)
def test_load_errors_name_torchs_keys(name):
    record = family_of(name)
    constructor = constructors_of(name)[-1]
    reference, candidate = build_family_pair(name, constructor)
    state = reference.state_dict()
    state.pop(list(state)[1])
    state["unexpected_weight"] = torch.zeros(1)
    with pytest.raises(RuntimeError) as expected:
        reference.load_state_dict(state)
    with pytest.raises(RuntimeError) as actual:
        candidate.load_state_dict(state)
    strip = lambda text: re.sub(r"loading state_dict for \w+", "loading state_dict", str(text))  # noqa: E731
    assert strip(actual.value) == strip(expected.value)
    assert candidate.load_state_dict(state, strict=False) == reference.load_state_dict(state, strict=False), record.name


# -- bad input: torch's exception types -------------------------------------------------


def layer_bad_calls(record) -> dict[str, tuple]:
    """(input, state) pairs torch rejects, for a module built with the defaults."""
    x = torch.randn(3, 2, INPUT_SIZE)
    h = torch.randn(1, 2, HIDDEN_SIZE)

    def state(h_part, c_part=None):
        return (h_part, torch.randn(1, 2, HIDDEN_SIZE) if c_part is None else c_part) if record.cell_state else h_part

    calls = {
        "input 5 wide": (torch.randn(3, 2, 5), None),
        "4-D input": (torch.randn(3, 2, 1, INPUT_SIZE), None),
        "h_0 5 wide": (x, state(torch.randn(1, 2, 5))),
        "h_0 batch 3": (x, state(torch.randn(1, 3, HIDDEN_SIZE))),
        "h_0 for 2 layers": (x, state(torch.randn(2, 2, HIDDEN_SIZE))),
        "2-D h_0 with batched input": (x, state(torch.randn(2, HIDDEN_SIZE), torch.randn(2, HIDDEN_SIZE))),
        "3-D h_0 with unbatched input": (torch.randn(3, INPUT_SIZE), state(h)),
        "float64 input": (x.double(), None),
        "float64 h_0": (x, state(h.double(), torch.randn(1, 2, HIDDEN_SIZE).double())),
        "packed input 5 wide": (pack_padded_sequence(torch.randn(2, 2, 5), [2, 1]), None),
    }
    if record.cell_state:
        calls["c_0 5 wide"] = (x, (h, torch.randn(1, 2, 5)))
        calls["h_0 only, as a Tensor"] = (x, h)
        calls["h_0 only, in a 1-tuple"] = (x, (h,))
    return calls


def cell_bad_calls(record) -> dict[str, tuple]:
    x = torch.randn(2, INPUT_SIZE)

    def state(h_part):
        return (h_part, torch.randn(h_part.shape)) if record.cell_state else h_part

    calls = {
        "3-D input": (torch.randn(2, 2, INPUT_SIZE), None),
        "0-D input": (torch.tensor(1.0), None),
        "input 5 wide": (torch.randn(2, 5), None),
        "state batch 3": (x, state(torch.randn(3, HIDDEN_SIZE))),
        "state 5 wide": (x, state(torch.randn(2, 5))),
        "3-D state": (x, state(torch.randn(1, 2, HIDDEN_SIZE))),
        "float64 input": (x.double(), None),
        "float64 state": (x, state(torch.randn(2, HIDDEN_SIZE).double())),
    }
    if record.cell_state:
        calls["a Tensor for (h, c)"] = (x, torch.randn(2, HIDDEN_SIZE))
        calls["c 5 wide"] = (x, (torch.randn(2, HIDDEN_SIZE), torch.randn(2, 5)))
    return calls


def bad_call_ids(families):
    ids = []
    for name in families:
        record = family_of(name)
        calls = cell_bad_calls(record) if record.cell else layer_bad_calls(record)
        ids += [(name, call_id) for call_id in calls]
    return ids


@pytest.mark.parametrize(("name", "call_id"), bad_call_ids(EVERY), ids=lambda value: value)
def test_bad_input_raises_torchs_exception_type(name, call_id):
    record = family_of(name)
    torch.manual_seed(0)
    calls = cell_bad_calls(record) if record.cell else layer_bad_calls(record)
    input, state = calls[call_id]
    reference = record.module_class(INPUT_SIZE, HIDDEN_SIZE)
    candidate = implementation(name).factory(input_size=INPUT_SIZE, hidden_size=HIDDEN_SIZE)
    with pytest.raises(Exception) as expected:
        call(reference, input, state)
    try:
        call(candidate, input, state)
    except Exception as actual:  # noqa: BLE001 - the type is what we compare
        assert type(actual) is type(expected.value), (
            f"[{name}: {call_id}] raised {type(actual).__name__}: {actual}, but torch raises {type(expected.value).__name__}: {expected.value}"
        )
    else:
        raise AssertionError(f"[{name}: {call_id}] accepted the call, but torch raises {type(expected.value).__name__}: {expected.value}")
