"""`vectorized` agrees with torch.nn.RNN in float64: outputs and every gradient.

Its backward through time is written by hand (impls/vectorized.py), so autograd's
correctness does not carry over for free. Each case runs the same weights and
inputs through torch and `vectorized`, backpropagates the same loss, and compares
the output, h_n, the gradients of the input and h0, and the gradient of every
parameter by its state_dict key.
"""

from __future__ import annotations

import dataclasses

import pytest
import torch
from torch import nn
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence

from impls.vectorized import VectorizedRNN

INPUT_SIZE, HIDDEN_SIZE, STEPS, BATCH = 3, 5, 6, 4


@dataclasses.dataclass(frozen=True)
class Case:
    id: str
    constructor: dict = dataclasses.field(default_factory=dict)
    layout: str = "time_major"  # time_major | batch_first | unbatched | packed_sorted | packed_unsorted
    h0: str = "grad"  # grad | constant | none
    input_grad: bool = True
    frozen: tuple[str, ...] = ()  # parameters with requires_grad=False
    train: bool = False


CASES = [
    Case("tanh"),
    Case("relu", {"nonlinearity": "relu"}),
    Case("no-bias", {"bias": False}),
    Case("batch-first", {"batch_first": True}, layout="batch_first"),
    Case("unbatched", layout="unbatched"),
    Case("unbatched-bidirectional", {"bidirectional": True}, layout="unbatched"),
    Case("bidirectional", {"bidirectional": True}),
    Case("two-layers-bidirectional-relu", {"num_layers": 2, "bidirectional": True, "nonlinearity": "relu"}),
    Case("three-layers-batch-first", {"num_layers": 3, "batch_first": True}, layout="batch_first"),
    Case("packed-sorted", layout="packed_sorted"),
    Case("packed-unsorted", layout="packed_unsorted"),
    Case("packed-unsorted-bidirectional", {"bidirectional": True}, layout="packed_unsorted"),
    Case("packed-two-layers-bidirectional-relu", {"num_layers": 2, "bidirectional": True, "nonlinearity": "relu"}, layout="packed_unsorted"),
    Case("packed-batch-first-no-bias", {"batch_first": True, "bias": False}, layout="packed_unsorted"),
    Case("h0-constant", h0="constant"),
    Case("h0-omitted-bidirectional", {"bidirectional": True}, h0="none"),
    Case("input-constant", input_grad=False),
    Case("input-and-h0-constant-packed", layout="packed_unsorted", h0="constant", input_grad=False),
    Case("frozen-recurrent-weight", frozen=("weight_hh_l0",)),
    Case("frozen-input-weights-bidirectional", {"bidirectional": True}, frozen=("weight_ih_l0", "weight_ih_l0_reverse", "bias_ih_l0")),
    Case("dropout-0-train", {"num_layers": 2, "dropout": 0.0}, train=True),
    Case("dropout-1-train", {"num_layers": 2, "dropout": 1.0, "bidirectional": True}, train=True),
]


def make_inputs(case: Case, generator: torch.Generator):
    """(input for the module, the tensor to take the input gradient of, h0 or None)."""
    options = dict(dtype=torch.float64, generator=generator)
    num_directions = 2 if case.constructor.get("bidirectional") else 1
    states = case.constructor.get("num_layers", 1) * num_directions
    batch_first = case.constructor.get("batch_first", False)
    if case.layout == "unbatched":
        leaf = torch.randn(STEPS, INPUT_SIZE, **options)
        h0 = torch.randn(states, HIDDEN_SIZE, **options)
    else:
        shape = (BATCH, STEPS, INPUT_SIZE) if batch_first else (STEPS, BATCH, INPUT_SIZE)
        leaf = torch.randn(shape, **options)
        h0 = torch.randn(states, BATCH, HIDDEN_SIZE, **options)
    leaf.requires_grad_(case.input_grad)
    h0.requires_grad_(case.h0 == "grad")
    module_input = leaf
    if case.layout.startswith("packed"):
        lengths = [6, 6, 3, 1] if case.layout == "packed_sorted" else [3, 6, 1, 5]
        module_input = pack_padded_sequence(leaf, lengths, batch_first=batch_first, enforce_sorted=case.layout == "packed_sorted")
    return module_input, leaf, (None if case.h0 == "none" else h0)


def run(module: nn.Module, case: Case, seed: int = 0):
    """Forward and backward once; everything that should match torch's, by name."""
    module_input, leaf, h0 = make_inputs(case, torch.Generator().manual_seed(seed))
    for name in case.frozen:
        module.get_parameter(name).requires_grad_(False)
    module.train(case.train)
    output, h_n = module(module_input, h0)
    output_data = output.data if isinstance(output, PackedSequence) else output
    # Weights that differ per element, so a gradient routed to the wrong row or
    # step cannot cancel out.
    weights = torch.linspace(-1, 2, output_data.numel(), dtype=torch.float64).view_as(output_data)
    loss = (output_data * weights).sum() + (h_n * h_n).sum()
    loss.backward()
    results = {"output": output_data.detach(), "h_n": h_n.detach()}
    if leaf.requires_grad:
        results["grad input"] = leaf.grad
    if h0 is not None and h0.requires_grad:
        results["grad h0"] = h0.grad
    for name, parameter in module.named_parameters():
        results[f"grad {name}"] = parameter.grad
    return results


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.id)
def test_matches_torch_in_float64(case: Case):
    torch.manual_seed(1)
    reference = nn.RNN(INPUT_SIZE, HIDDEN_SIZE, dtype=torch.float64, **case.constructor)
    candidate = VectorizedRNN(INPUT_SIZE, HIDDEN_SIZE, dtype=torch.float64, **case.constructor)
    candidate.load_state_dict(reference.state_dict())
    expected, actual = run(reference, case), run(candidate, case)
    assert actual.keys() == expected.keys()
    for key, value in expected.items():
        if value is None:  # a frozen parameter
            assert actual[key] is None, f"{key}: torch leaves it None, vectorized computed {actual[key]}"
            continue
        torch.testing.assert_close(actual[key], value, msg=lambda message, key=key: f"{case.id}, {key}: {message}")


def test_no_grad_forward_matches_and_records_nothing():
    torch.manual_seed(2)
    reference = nn.RNN(INPUT_SIZE, HIDDEN_SIZE, num_layers=2, bidirectional=True, dtype=torch.float64)
    candidate = VectorizedRNN(INPUT_SIZE, HIDDEN_SIZE, num_layers=2, bidirectional=True, dtype=torch.float64)
    candidate.load_state_dict(reference.state_dict())
    x = torch.randn(STEPS, BATCH, INPUT_SIZE, dtype=torch.float64)
    with torch.no_grad():
        expected, actual = reference(x), candidate(x)
    assert actual[0].grad_fn is None and actual[1].grad_fn is None
    torch.testing.assert_close(actual, expected)


def test_double_backward_raises_instead_of_being_wrong():
    module = VectorizedRNN(INPUT_SIZE, HIDDEN_SIZE, dtype=torch.float64)
    x = torch.randn(STEPS, BATCH, INPUT_SIZE, dtype=torch.float64, requires_grad=True)
    with pytest.raises(RuntimeError, match="differentiable once only"):
        torch.autograd.grad(module(x)[0].sum(), x, create_graph=True)


def test_output_and_h_n_do_not_share_memory():
    module = VectorizedRNN(INPUT_SIZE, HIDDEN_SIZE)
    output, h_n = module(torch.randn(STEPS, BATCH, INPUT_SIZE))
    h_n.add_(1)  # torch's h_n is its own tensor; writing to it must not touch output
    assert not torch.equal(output[-1], h_n[0])


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32], ids=str)
def test_low_precision_gradients_are_close_to_float64(dtype):
    torch.manual_seed(3)
    reference = VectorizedRNN(INPUT_SIZE, HIDDEN_SIZE, bidirectional=True, dtype=torch.float64)
    candidate = VectorizedRNN(INPUT_SIZE, HIDDEN_SIZE, bidirectional=True, dtype=dtype)
    candidate.load_state_dict(reference.state_dict())
    x = torch.randn(STEPS, BATCH, INPUT_SIZE, dtype=torch.float64)
    expected = run_low_precision(reference, x)
    actual = run_low_precision(candidate, x.to(dtype))
    for key, value in expected.items():
        torch.testing.assert_close(actual[key].double(), value, atol=5e-2, rtol=5e-2, msg=lambda m, key=key: f"{dtype}, {key}: {m}")


def run_low_precision(module: nn.Module, x: torch.Tensor):
    x = x.clone().requires_grad_()
    output, h_n = module(x)
    (output.sum() + h_n.sum()).backward()
    return {"output": output.detach(), "grad input": x.grad, **{name: p.grad for name, p in module.named_parameters()}}


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=str)
def test_half_precision_rounds_like_torch_in_a_chaotic_regime(dtype):
    # Found by the fuzzer (bfloat16, weights x8, 66 steps): with one rounding per
    # step (addmm_) instead of torch's two, the chaotic trajectory left the error
    # model's bound although each step was more accurate. Bitwise equal to torch
    # without bias, where torch's arithmetic is exactly product-then-add.
    torch.manual_seed(6)
    reference = nn.RNN(12, 12, num_layers=2, bias=False, dtype=dtype)
    with torch.no_grad():
        for parameter in reference.parameters():
            parameter.mul_(8)
    candidate = VectorizedRNN(12, 12, num_layers=2, bias=False, dtype=dtype)
    candidate.load_state_dict(reference.state_dict())
    x = torch.randn(66, 12).to(dtype)
    with torch.no_grad():
        torch.testing.assert_close(candidate(x), reference(x), atol=0, rtol=0)
