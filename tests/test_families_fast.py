"""`vectorized` and `torchscript` for LSTM and GRU agree with torch: values and every gradient.

Their backward through time is written by hand (impls/vectorized.py), so autograd's
correctness does not carry over for free. Each case runs the same weights and
inputs through torch.nn.LSTM / GRU and the candidate, backpropagates the same loss
(which reaches output, h_n and c_n with weights that differ per element, so a
gradient routed to the wrong row or step cannot cancel), and compares the
returned tensors, the gradients of the input, h_0 and c_0, and the gradient of
every parameter by its state_dict key.
"""

from __future__ import annotations

import dataclasses

import pytest
import torch
from torch import nn
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence

from harness import Unavailable
from impls.vectorized import VectorizedGRU, VectorizedLSTM

INPUT_SIZE, HIDDEN_SIZE, STEPS, BATCH = 3, 5, 6, 4


def torchscript_factories():
    try:
        from impls.torchscript import TorchScriptGRU, TorchScriptLSTM, compiled_kernels

        compiled_kernels()
    except (ImportError, Unavailable) as reason:  # TorchScript is optional: torchscript-* is then skipped
        return {"LSTM": None, "GRU": None, "reason": str(reason)}
    return {"LSTM": TorchScriptLSTM, "GRU": TorchScriptGRU, "reason": ""}


CANDIDATES = {
    ("vectorized", "LSTM"): lambda: VectorizedLSTM,
    ("vectorized", "GRU"): lambda: VectorizedGRU,
    ("torchscript", "LSTM"): lambda: torchscript_factories()["LSTM"],
    ("torchscript", "GRU"): lambda: torchscript_factories()["GRU"],
}
REFERENCES = {"LSTM": nn.LSTM, "GRU": nn.GRU}


@dataclasses.dataclass(frozen=True)
class Case:
    id: str
    constructor: dict = dataclasses.field(default_factory=dict)
    layout: str = "time_major"  # time_major | batch_first | unbatched | packed_sorted | packed_unsorted
    state: str = "grad"  # grad | constant | none
    input_grad: bool = True
    frozen: tuple[str, ...] = ()  # parameters with requires_grad=False
    train: bool = False
    families: tuple[str, ...] = ("LSTM", "GRU")


CASES = [
    Case("plain"),
    Case("no-bias", {"bias": False}),
    Case("batch-first", {"batch_first": True}, layout="batch_first"),
    Case("unbatched-bidirectional", {"bidirectional": True}, layout="unbatched"),
    Case("two-layers-bidirectional", {"num_layers": 2, "bidirectional": True}),
    Case("packed-sorted", layout="packed_sorted"),
    Case("packed-unsorted-bidirectional", {"bidirectional": True}, layout="packed_unsorted"),
    Case("packed-two-layers-bidirectional-no-bias", {"num_layers": 2, "bidirectional": True, "bias": False}, layout="packed_unsorted"),
    Case("state-constant", state="constant"),
    Case("state-omitted-bidirectional", {"bidirectional": True}, state="none"),
    Case("input-and-state-constant-packed", layout="packed_unsorted", state="constant", input_grad=False),
    Case("frozen-recurrent-weight", frozen=("weight_hh_l0",)),
    Case("frozen-input-weights", {"bidirectional": True}, frozen=("weight_ih_l0", "weight_ih_l0_reverse", "bias_ih_l0")),
    Case("dropout-0-train", {"num_layers": 2, "dropout": 0.0}, train=True),
    Case("dropout-1-train", {"num_layers": 2, "dropout": 1.0, "bidirectional": True}, train=True),
    Case("projection", {"proj_size": 2}, families=("LSTM",)),
    Case("projection-width-1-batch-first", {"proj_size": 1, "batch_first": True}, layout="batch_first", families=("LSTM",)),
    Case("projection-packed-two-layers-bidirectional", {"proj_size": 3, "num_layers": 2, "bidirectional": True}, layout="packed_unsorted", families=("LSTM",)),
    Case("projection-unbatched-state-omitted", {"proj_size": 2, "bidirectional": True}, layout="unbatched", state="none", families=("LSTM",)),
    Case("projection-frozen", {"proj_size": 2}, frozen=("weight_hr_l0",), families=("LSTM",)),
]


def candidate_class(implementation: str, family: str):
    factory = CANDIDATES[(implementation, family)]()
    if factory is None:
        pytest.skip(f"torchscript is unavailable here: {torchscript_factories()['reason']}")
    return factory


def make_inputs(family: str, case: Case, dtype: torch.dtype, generator: torch.Generator):
    """(input for the module, the tensor to take the input gradient of, initial state or None, its leaves)."""
    options = dict(dtype=dtype, generator=generator)
    directions = 2 if case.constructor.get("bidirectional") else 1
    layers = case.constructor.get("num_layers", 1) * directions
    batch_first = case.constructor.get("batch_first", False)
    widths = [case.constructor.get("proj_size", 0) or HIDDEN_SIZE]
    if family == "LSTM":
        widths.append(HIDDEN_SIZE)
    if case.layout == "unbatched":
        leaf = torch.randn(STEPS, INPUT_SIZE, **options)
        states = [torch.randn(layers, width, **options) for width in widths]
    else:
        shape = (BATCH, STEPS, INPUT_SIZE) if batch_first else (STEPS, BATCH, INPUT_SIZE)
        leaf = torch.randn(shape, **options)
        states = [torch.randn(layers, BATCH, width, **options) for width in widths]
    leaf.requires_grad_(case.input_grad)
    for state in states:
        state.requires_grad_(case.state == "grad")
    module_input = leaf
    if case.layout.startswith("packed"):
        lengths = [6, 6, 3, 1] if case.layout == "packed_sorted" else [3, 6, 1, 5]
        module_input = pack_padded_sequence(leaf, lengths, batch_first=batch_first, enforce_sorted=case.layout == "packed_sorted")
    if case.state == "none":
        return module_input, leaf, None, []
    return module_input, leaf, (tuple(states) if family == "LSTM" else states[0]), states


def run(module: nn.Module, family: str, case: Case, dtype: torch.dtype, seed: int = 0):
    """Forward and backward once; everything that should match torch's, by name."""
    module_input, leaf, state, state_leaves = make_inputs(family, case, dtype, torch.Generator().manual_seed(seed))
    for name in case.frozen:
        module.get_parameter(name).requires_grad_(False)
    module.train(case.train)
    output, final = module(module_input, state)
    output_data = output.data if isinstance(output, PackedSequence) else output
    finals = final if family == "LSTM" else (final,)
    weights = torch.linspace(-1, 2, output_data.numel(), dtype=dtype).view_as(output_data)
    loss = (output_data * weights).sum() + sum((k + 1) * (tensor * tensor).sum() for k, tensor in enumerate(finals))
    loss.backward()
    results = {"output": output_data.detach()}
    results.update({name: tensor.detach() for name, tensor in zip(("h_n", "c_n"), finals)})
    if leaf.requires_grad:
        results["grad input"] = leaf.grad
    for name, tensor in zip(("grad h_0", "grad c_0"), state_leaves):
        if tensor.requires_grad:
            results[name] = tensor.grad
    for name, parameter in module.named_parameters():
        results[f"grad {name}"] = parameter.grad
    return results


def compare(implementation: str, family: str, case: Case, dtype: torch.dtype, **tolerance):
    torch.manual_seed(1)
    reference = REFERENCES[family](INPUT_SIZE, HIDDEN_SIZE, dtype=dtype, **case.constructor)
    candidate = candidate_class(implementation, family)(INPUT_SIZE, HIDDEN_SIZE, dtype=dtype, **case.constructor)
    candidate.load_state_dict(reference.state_dict())
    expected, actual = run(reference, family, case, dtype), run(candidate, family, case, dtype)
    assert actual.keys() == expected.keys()
    for key, value in expected.items():
        if value is None:  # a frozen parameter
            assert actual[key] is None, f"{key}: torch leaves it None, {implementation} computed {actual[key]}"
            continue
        torch.testing.assert_close(actual[key], value, msg=lambda message, key=key: f"{implementation} {family} {case.id}, {key}: {message}", **tolerance)


FAMILY_CASES = [(family, case) for case in CASES for family in case.families]


@pytest.mark.parametrize("family, case", FAMILY_CASES, ids=lambda value: value if isinstance(value, str) else value.id)
def test_vectorized_matches_torch_in_float64(family, case):
    compare("vectorized", family, case, torch.float64)


# float32 and the scripted loop on a few cases: the backward is shared, the forward loop is the same source.
FEW = ["two-layers-bidirectional", "packed-unsorted-bidirectional", "state-omitted-bidirectional", "projection-packed-two-layers-bidirectional"]


@pytest.mark.parametrize("family, case", [(f, c) for f, c in FAMILY_CASES if c.id in FEW], ids=lambda value: value if isinstance(value, str) else value.id)
def test_vectorized_matches_torch_in_float32(family, case):
    compare("vectorized", family, case, torch.float32, atol=2e-5, rtol=2e-5)


@pytest.mark.parametrize("family, case", [(f, c) for f, c in FAMILY_CASES if c.id in FEW], ids=lambda value: value if isinstance(value, str) else value.id)
def test_torchscript_matches_torch_in_float64(family, case):
    compare("torchscript", family, case, torch.float64)


@pytest.mark.parametrize("family", ["LSTM", "GRU"])
def test_no_grad_forward_matches_and_records_nothing(family):
    torch.manual_seed(2)
    constructor = {"num_layers": 2, "bidirectional": True, **({"proj_size": 2} if family == "LSTM" else {})}
    reference = REFERENCES[family](INPUT_SIZE, HIDDEN_SIZE, dtype=torch.float64, **constructor)
    candidate = candidate_class("vectorized", family)(INPUT_SIZE, HIDDEN_SIZE, dtype=torch.float64, **constructor)
    candidate.load_state_dict(reference.state_dict())
    x = torch.randn(STEPS, BATCH, INPUT_SIZE, dtype=torch.float64)
    with torch.no_grad():
        expected, actual = reference(x), candidate(x)
    for tensor in [actual[0], *(actual[1] if family == "LSTM" else (actual[1],))]:
        assert tensor.grad_fn is None
    torch.testing.assert_close(actual, expected)


@pytest.mark.parametrize("family", ["LSTM", "GRU"])
def test_double_backward_raises_instead_of_being_wrong(family):
    module = candidate_class("vectorized", family)(INPUT_SIZE, HIDDEN_SIZE, dtype=torch.float64)
    x = torch.randn(STEPS, BATCH, INPUT_SIZE, dtype=torch.float64, requires_grad=True)
    with pytest.raises(RuntimeError, match="differentiable once only"):
        torch.autograd.grad(module(x)[0].sum(), x, create_graph=True)


@pytest.mark.parametrize("family", ["LSTM", "GRU"])
def test_final_state_does_not_share_memory_with_output(family):
    module = candidate_class("vectorized", family)(INPUT_SIZE, HIDDEN_SIZE)
    output, final = module(torch.randn(STEPS, BATCH, INPUT_SIZE))
    h_n = final[0] if family == "LSTM" else final
    h_n.add_(1)  # torch's h_n is its own tensor; writing to it must not touch output
    assert not torch.equal(output[-1], h_n[0])


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=str)
@pytest.mark.parametrize("family", ["LSTM", "GRU"])
def test_half_precision_gradients_are_close_to_float64(family, dtype):
    torch.manual_seed(3)
    constructor = {"bidirectional": True, **({"proj_size": 3} if family == "LSTM" else {})}
    reference = candidate_class("vectorized", family)(INPUT_SIZE, HIDDEN_SIZE, dtype=torch.float64, **constructor)
    candidate = candidate_class("vectorized", family)(INPUT_SIZE, HIDDEN_SIZE, dtype=dtype, **constructor)
    candidate.load_state_dict(reference.state_dict())
    x = torch.randn(STEPS, BATCH, INPUT_SIZE, dtype=torch.float64)
    expected, actual = run_plain(reference, x), run_plain(candidate, x.to(dtype))
    for key, value in expected.items():
        torch.testing.assert_close(actual[key].double(), value, atol=5e-2, rtol=5e-2, msg=lambda m, key=key: f"{dtype}, {key}: {m}")


def run_plain(module: nn.Module, x: torch.Tensor):
    x = x.clone().requires_grad_()
    output, final = module(x)
    h_n = final[0] if isinstance(final, tuple) else final
    (output.sum() + h_n.sum()).backward()
    return {"output": output.detach(), "grad input": x.grad, **{name: p.grad for name, p in module.named_parameters()}}
