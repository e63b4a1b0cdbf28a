"""Every built-in rejects what torch.nn.RNN rejects, and looks like it from outside.

For bad calls and bad constructor arguments the candidate raises the same exception
type as torch, with a message that says what was expected. Its state_dict has
torch's keys in torch's order, loads torch's state_dict strictly (and back), and it
has torch's public attributes.
"""

from __future__ import annotations

import dataclasses
import re
import warnings
from collections.abc import Callable
from typing import Any

import pytest
import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence

from support import builtin_names, implementation

IMPLEMENTATIONS = builtin_names()


def raised_by(call: Callable[[], Any]) -> BaseException:
    with pytest.raises(Exception) as caught:
        call()
    return caught.value


def assert_rejected_like_torch(candidate_call, torch_call, expected_message: str, context: str) -> None:
    """Both calls raise; the same exception type; the candidate's message matches
    ``expected_message`` (a regex that torch's own message matches too)."""
    expected = raised_by(torch_call)
    assert re.search(expected_message, str(expected)), (
        f"[{context}] the expected pattern {expected_message!r} does not match torch's own message {str(expected)!r}"
    )
    try:
        candidate_call()
    except Exception as actual:  # noqa: BLE001 - the type is what we compare
        assert type(actual) is type(expected), (
            f"[{context}] raised {type(actual).__name__}: {actual}, but torch raises {type(expected).__name__}: {expected}"
        )
        assert re.search(expected_message, str(actual)), (
            f"[{context}] message {str(actual)!r} does not say what was expected ({expected_message!r}); torch says {str(expected)!r}"
        )
    else:
        raise AssertionError(f"[{context}] accepted the call, but torch raises {type(expected).__name__}: {expected}")


# -- bad calls ----------------------------------------------------------------------

# Every case uses a module built as RNN(input_size=3, hidden_size=4, **constructor).


@dataclasses.dataclass(frozen=True)
class BadCall:
    id: str
    make_arguments: Callable[[], tuple]  # fresh (input, [h_0]) for each side
    expected_message: str
    constructor: dict = dataclasses.field(default_factory=dict)


BAD_CALLS = [
    BadCall("input has 5 features, module expects 3", lambda: (torch.randn(2, 2, 5),), r"input_size.*Expected 3, got 5"),
    BadCall("unbatched input has 5 features", lambda: (torch.randn(2, 5),), r"Expected 3, got 5"),
    BadCall("packed input has 5 features", lambda: (pack_padded_sequence(torch.randn(2, 2, 5), [2, 1]),), r"Expected 3, got 5"),
    BadCall("h_0 batch 3 for input batch 2", lambda: (torch.randn(2, 2, 3), torch.randn(1, 3, 4)), r"Expected hidden size \(1, 2, 4\), got \[1, 3, 4\]"),
    BadCall("h_0 hidden 5, module has 4", lambda: (torch.randn(2, 2, 3), torch.randn(1, 2, 5)), r"Expected hidden size \(1, 2, 4\)"),
    BadCall(
        "h_0 for 1 layer, module has 2 bidirectional",
        lambda: (torch.randn(2, 2, 3), torch.randn(1, 2, 4)),
        r"Expected hidden size \(4, 2, 4\)",
        {"num_layers": 2, "bidirectional": True},
    ),
    BadCall("unbatched h_0 for 2 states, module has 1", lambda: (torch.randn(2, 3), torch.randn(2, 4)), r"Expected hidden size"),
    BadCall("packed h_0 batch 3 for 2 sequences", lambda: (pack_padded_sequence(torch.randn(2, 2, 3), [2, 1]), torch.randn(1, 3, 4)), r"Expected hidden size \(1, 2, 4\)"),
    BadCall("2-D h_0 with batched input", lambda: (torch.randn(2, 2, 3), torch.randn(2, 4)), r"3-D"),
    BadCall("3-D h_0 with unbatched input", lambda: (torch.randn(2, 3), torch.randn(1, 1, 4)), r"2-D"),
    BadCall("1-D input", lambda: (torch.randn(3),), r"2D or 3D, got 1D"),
    BadCall("4-D input", lambda: (torch.randn(2, 2, 2, 3),), r"2D or 3D, got 4D"),
    BadCall("0 time steps", lambda: (torch.randn(0, 2, 3),), r"sequence length to be larger than 0"),
    BadCall("0 time steps, batch_first", lambda: (torch.randn(2, 0, 3),), r"sequence length to be larger than 0", {"batch_first": True}),
    BadCall("0 time steps, unbatched", lambda: (torch.randn(0, 3),), r"sequence length to be larger than 0"),
    BadCall("float64 input, float32 weights", lambda: (torch.randn(2, 2, 3, dtype=torch.float64),), r"float64.*float32"),
    BadCall("float16 unbatched input, float32 weights", lambda: (torch.randn(2, 3, dtype=torch.float16),), r"float16.*float32"),
    BadCall("float64 h_0, float32 input and weights", lambda: (torch.randn(2, 2, 3), torch.randn(1, 2, 4, dtype=torch.float64)), r"(?i)double|float64"),
]


@pytest.mark.parametrize("case", BAD_CALLS, ids=lambda case: case.id)
@pytest.mark.parametrize("name", IMPLEMENTATIONS)
def test_bad_call_raises_like_torch(name, case):
    torch.manual_seed(0)
    reference = nn.RNN(3, 4, **case.constructor)
    candidate = implementation(name).factory(3, 4, **case.constructor)
    assert_rejected_like_torch(
        lambda: candidate(*case.make_arguments()),
        lambda: reference(*case.make_arguments()),
        case.expected_message,
        f"{name}: {case.id}",
    )


# -- bad constructor arguments ------------------------------------------------------

BAD_CONSTRUCTORS = {
    "nonlinearity sigmoid": ({"nonlinearity": "sigmoid"}, r"nonlinearity.*tanh.*relu"),
    "dropout -0.1": ({"dropout": -0.1}, r"dropout.*\[0, 1\]"),
    "dropout 1.5": ({"dropout": 1.5}, r"dropout.*\[0, 1\]"),
    "dropout as a string": ({"dropout": "0.5"}, r"dropout.*number"),
    "dropout True": ({"dropout": True}, r"dropout.*number"),
    "hidden_size 0": ({"hidden_size": 0}, r"hidden_size must be greater than zero"),
    "hidden_size -1": ({"hidden_size": -1}, r"hidden_size must be greater than zero"),
    "hidden_size 4.0": ({"hidden_size": 4.0}, r"hidden_size.*int"),
    "input_size 0": ({"input_size": 0}, r"input_size must be greater than zero"),
    "num_layers 0": ({"num_layers": 0}, r"num_layers must be greater than zero"),
    "bias 1": ({"bias": 1}, r"bias should be of type bool, got: int"),
    "bias 'yes'": ({"bias": "yes"}, r"bias should be of type bool, got: str"),
    "batch_first 1": ({"batch_first": 1}, r"batch_first should be of type bool"),
}


@pytest.mark.parametrize("case_id", list(BAD_CONSTRUCTORS))
@pytest.mark.parametrize("name", IMPLEMENTATIONS)
def test_bad_constructor_argument_raises_like_torch(name, case_id):
    overrides, expected_message = BAD_CONSTRUCTORS[case_id]
    arguments = {"input_size": 3, "hidden_size": 4, **overrides}
    factory = implementation(name).factory
    assert_rejected_like_torch(lambda: factory(**arguments), lambda: nn.RNN(**arguments), expected_message, f"{name}: {case_id}")


@pytest.mark.parametrize("name", IMPLEMENTATIONS)
def test_dropout_with_one_layer_warns_like_torch(name):
    with pytest.warns(UserWarning, match=r"num_layers greater than 1") as torch_warnings:
        nn.RNN(3, 4, dropout=0.5)
    with warnings.catch_warnings(record=True) as candidate_warnings:
        warnings.simplefilter("always")
        implementation(name).factory(3, 4, dropout=0.5)
    categories = [warning.category for warning in candidate_warnings if "num_layers" in str(warning.message)]
    assert categories == [torch_warnings[0].category], (
        f"[{name}] dropout=0.5 with num_layers=1 warned {[str(w.message) for w in candidate_warnings]}, "
        f"but torch warns once: {torch_warnings[0].message}"
    )


# -- state_dict and attributes ------------------------------------------------------

CONFIGS = {
    "1 layer": {},
    "no bias": {"bias": False},
    "3 layers": {"num_layers": 3},
    "bidirectional": {"bidirectional": True},
    "2 layers bidirectional no bias": {"num_layers": 2, "bidirectional": True, "bias": False},
    "everything else set": {"num_layers": 2, "nonlinearity": "relu", "batch_first": True, "dropout": 0.25},
}


@pytest.mark.parametrize("config", list(CONFIGS))
@pytest.mark.parametrize("name", IMPLEMENTATIONS)
def test_state_dict_has_torch_keys_order_and_shapes(name, config):
    expected = {key: tuple(value.shape) for key, value in nn.RNN(3, 4, **CONFIGS[config]).state_dict().items()}
    actual = {key: tuple(value.shape) for key, value in implementation(name).factory(3, 4, **CONFIGS[config]).state_dict().items()}
    assert list(actual) == list(expected), f"[{name}: {config}] state_dict keys {list(actual)}, but torch has {list(expected)}"
    assert actual == expected, f"[{name}: {config}] parameter shapes {actual}, but torch has {expected}"


@pytest.mark.parametrize("config", list(CONFIGS))
@pytest.mark.parametrize("name", IMPLEMENTATIONS)
def test_state_dict_round_trips_with_torch_strictly(name, config):
    torch.manual_seed(0)
    reference = nn.RNN(3, 4, **CONFIGS[config])
    candidate = implementation(name).factory(3, 4, **CONFIGS[config])
    result = candidate.load_state_dict(reference.state_dict(), strict=True)
    assert not result.missing_keys and not result.unexpected_keys, f"[{name}: {config}] loading torch's state_dict: {result}"
    for key, value in reference.state_dict().items():
        torch.testing.assert_close(candidate.state_dict()[key], value, rtol=0, atol=0, msg=lambda m, key=key: f"[{name}: {config}] {key} after loading: {m}")
    # and back: torch accepts the candidate's state_dict as its own
    fresh_torch = nn.RNN(3, 4, **CONFIGS[config])
    fresh_torch.load_state_dict(candidate.state_dict(), strict=True)
    for key, value in reference.state_dict().items():
        torch.testing.assert_close(fresh_torch.state_dict()[key], value, rtol=0, atol=0, msg=lambda m, key=key: f"[{name}: {config}] {key} loaded back into torch: {m}")


# `linear` keeps its weights in nn.Linear submodules; the error must still name
# torch's key ("bias_hh_l0"), not the internal one ("cells.0.hh.bias").
@pytest.mark.parametrize("name", IMPLEMENTATIONS)
def test_load_state_dict_with_a_missing_key_is_rejected_like_torch(name):
    state = nn.RNN(3, 4).state_dict()
    del state["bias_hh_l0"]
    factory = implementation(name).factory
    assert_rejected_like_torch(
        lambda: factory(3, 4).load_state_dict(dict(state), strict=True),
        lambda: nn.RNN(3, 4).load_state_dict(dict(state), strict=True),
        r"Missing key.*bias_hh_l0",
        f"{name}: state_dict without bias_hh_l0",
    )


ATTRIBUTES = ("input_size", "hidden_size", "num_layers", "bias", "batch_first", "dropout", "bidirectional", "nonlinearity")


@pytest.mark.parametrize("config", list(CONFIGS))
@pytest.mark.parametrize("name", IMPLEMENTATIONS)
def test_has_torch_public_attributes(name, config):
    reference = nn.RNN(3, 4, **CONFIGS[config])
    candidate = implementation(name).factory(3, 4, **CONFIGS[config])
    for attribute in ATTRIBUTES:
        assert hasattr(candidate, attribute), f"[{name}: {config}] has no attribute {attribute!r}; torch.nn.RNN has it"
        got, want = getattr(candidate, attribute), getattr(reference, attribute)
        assert (type(got), got) == (type(want), want), (
            f"[{name}: {config}] {attribute}={got!r} ({type(got).__name__}), but torch has {want!r} ({type(want).__name__})"
        )
