"""The seed notebooks' printed examples, as golden cases for every built-in.

The notebooks (/work/shared/seeds/) printed weights, inputs, h_0 and outputs to four
decimals. Each case loads the printed weights into a built-in through a torch-shaped
state dict (strictly) and checks the printed outputs.

Tolerances: an output printed to four decimals is off by up to 5e-5. Where the
notebook printed its weights rounded to four decimals too (but computed with the
unrounded ones), the rounding of up to 5e-5 per weight moves the outputs further;
those cases carry a wider ``atol``, sized to that rounding for their input scale. A
real mistake (a missing bias, an untransposed weight, the wrong direction) moves
outputs by 1e-2 or more.
"""

from __future__ import annotations

import dataclasses

import pytest
import torch

from support import builtin_names, implementation, run

IMPLEMENTATIONS = builtin_names()
PRINT_ROUNDING = 5e-5


@dataclasses.dataclass(frozen=True)
class GoldenCase:
    id: str
    source: str  # the seed file the numbers come from
    constructor: dict
    state_dict: dict[str, list]
    input: list
    output: list
    h_n: list | None = None
    h0: list | None = None
    atol: float = PRINT_ROUNDING


# seed 003: the sequence [3, 4, 5] of one feature, as a batch_first batch of one.
ONE_FEATURE_THREE_STEPS = [[[3.0], [4.0], [5.0]]]
# seed 003: four steps of three features, as a batch_first batch of one.
THREE_FEATURES_FOUR_STEPS = [[[1.0, 1.0, 1.0], [1.0, 2.0, 1.0], [2.0, 3.0, 1.0], [1.0, 3.0, 1.0]]]

# seed 004: input_x of shape (5 steps, batch 1, 4 features) and the fixed h_0.
SEED_004_INPUT = [
    [[-0.0919, -0.1320, -0.2751, -0.2350]],
    [[-1.2034, -1.0190, 0.3157, -1.6036]],
    [[1.8493, 0.0447, 1.5853, -0.5912]],
    [[0.1694, 0.7562, -1.2023, -0.5833]],
    [[-0.4407, -1.9791, 0.7787, -0.7749]],
]
SEED_004_H0 = [[[0.5602, 0.9671, 0.2931]]]
SEED_004_WEIGHTS = {
    "weight_ih_l0": [[0.1324, -0.1374, 0.1583, -0.0295], [0.2466, 0.1375, -0.0664, -0.4668], [0.1318, -0.5112, 0.0759, 0.0384]],
    "weight_hh_l0": [[-0.1270, 0.4721, 0.0385], [0.2394, 0.2443, -0.3406], [-0.2220, 0.5552, -0.5655]],
    "bias_ih_l0": [-0.0392, -0.0458, 0.4095],
    "bias_hh_l0": [-0.0549, 0.1520, -0.0277],
}

GOLDEN_CASES = [
    GoldenCase(
        "one feature, hidden 1, no bias",
        source="003_f7ab64904c05b781.txt (Basic Example)",
        constructor=dict(input_size=1, hidden_size=1, bias=False, batch_first=True),
        state_dict={"weight_ih_l0": [[-0.8769]], "weight_hh_l0": [[-0.8218]]},
        input=ONE_FEATURE_THREE_STEPS,
        output=[[[-0.9897], [-0.9909], [-0.9984]]],
        h_n=[[[-0.9984]]],
    ),
    GoldenCase(
        "three features, hidden 2",
        source="003_f7ab64904c05b781.txt (Increasing Hidden Size)",
        constructor=dict(input_size=3, hidden_size=2, batch_first=True),
        state_dict={
            "weight_ih_l0": [[0.5886, -0.0840, 0.1099], [-0.1125, 0.0505, -0.1764]],
            "weight_hh_l0": [[0.1692, 0.4006], [0.4108, 0.7006]],
            "bias_ih_l0": [0.5332, 0.4121],
            "bias_hh_l0": [-0.5042, -0.1715],
        },
        input=THREE_FEATURES_FOUR_STEPS,
        output=[[[0.5673, 0.0021], [0.5759, 0.2795], [0.8547, 0.3994], [0.6527, 0.6255]]],
        h_n=[[[0.6527, 0.6255]]],
        atol=3e-4,  # inputs up to 3 times weights rounded by 5e-5, near tanh's linear part
    ),
    GoldenCase(
        "bidirectional, hidden 2",
        source="003_f7ab64904c05b781.txt (Building a Bi-Directional RNN)",
        constructor=dict(input_size=3, hidden_size=2, batch_first=True, bidirectional=True),
        state_dict={
            "weight_ih_l0": [[-0.6735, 0.2324, 0.5187], [-0.5421, -0.4331, 0.1564]],
            "weight_hh_l0": [[0.5985, 0.5866], [-0.0808, 0.6500]],
            "bias_ih_l0": [0.5015, -0.3184],
            "bias_hh_l0": [0.1460, 0.4912],
            "weight_ih_l0_reverse": [[0.4697, -0.3869, -0.4899], [0.4505, 0.4845, -0.3718]],
            "weight_hh_l0_reverse": [[0.3995, 0.3990], [-0.0386, -0.3703]],
            "bias_ih_l0_reverse": [-0.3801, -0.4178],
            "bias_hh_l0_reverse": [-0.3645, 0.4508],
        },
        input=THREE_FEATURES_FOUR_STEPS,
        output=[
            [
                [0.6201, -0.5690, -0.8503, 0.3732],
                [0.7594, -0.9050, -0.9095, 0.6461],
                [0.4136, -0.9911, -0.9002, 0.9371],
                [0.6942, -0.9752, -0.9584, 0.9163],
            ]
        ],
        # forward direction ends at the last step, reverse at the first
        h_n=[[[0.6942, -0.9752]], [[-0.8503, 0.3732]]],
        atol=2e-4,
    ),
    GoldenCase(
        "two stacked layers, hidden 3",
        source="003_f7ab64904c05b781.txt (Stacked RNNs)",
        constructor=dict(input_size=3, hidden_size=3, num_layers=2, batch_first=True),
        state_dict={
            "weight_ih_l0": [[-0.0067, 0.5169, -0.4285], [0.4447, -0.5474, 0.3089], [-0.1507, 0.2443, 0.1886]],
            "weight_hh_l0": [[-0.1682, -0.2060, -0.0155], [-0.2151, -0.5301, -0.4871], [-0.4436, -0.2902, -0.5667]],
            "bias_ih_l0": [-0.0591, -0.4937, 0.2946],
            "bias_hh_l0": [-0.1003, 0.4496, 0.4387],
            "weight_ih_l1": [[0.2131, 0.1153, 0.4454], [-0.3610, 0.0018, -0.3609], [-0.4575, 0.0097, -0.0236]],
            "weight_hh_l1": [[0.0889, -0.0294, -0.3185], [0.1371, 0.1975, 0.5522], [0.3690, 0.3262, -0.1692]],
            "bias_ih_l1": [0.1758, -0.5126, 0.3801],
            "bias_hh_l1": [0.3563, -0.0351, 0.2165],
        },
        input=THREE_FEATURES_FOUR_STEPS,
        output=[[[0.7045, -0.6622, 0.5480], [0.6306, -0.5797, 0.3353], [0.7372, -0.7367, 0.2066], [0.7282, -0.7595, 0.2329]]],
        # layer 0 ends in its own last state, layer 1 in the last output
        h_n=[[[0.7242, -0.8361, 0.7038]], [[0.7282, -0.7595, 0.2329]]],
        atol=2e-4,
    ),
    GoldenCase(
        "fixed h_0, nn.RNN's printed output",
        source="004_82a1f0190f99ec57.txt (S1: After 1st forward pass)",
        constructor=dict(input_size=4, hidden_size=3),
        state_dict=SEED_004_WEIGHTS,
        input=SEED_004_INPUT,
        h0=SEED_004_H0,
        output=[[[0.2655, 0.4333, 0.5745]], [[0.1750, 0.3546, 0.5104]], [[0.5212, 0.6005, 0.5152]], [[-0.1111, 0.6044, -0.1680]], [[0.5069, 0.2106, 0.9488]]],
        h_n=[[[0.5069, 0.2106, 0.9488]]],
        atol=2e-4,  # nn.RNN used the unrounded weights
    ),
    GoldenCase(
        "fixed h_0, Linear-based cell's printed output",
        source="004_82a1f0190f99ec57.txt (S2: After 1st forward pass)",
        constructor=dict(input_size=4, hidden_size=3),
        state_dict=SEED_004_WEIGHTS,
        input=SEED_004_INPUT,
        h0=SEED_004_H0,
        # The Linear cell was given exactly these four-decimal weights; only the
        # input and the print are rounded, so this case holds tighter.
        output=[[[0.2655, 0.4332, 0.5744]], [[0.1750, 0.3546, 0.5104]], [[0.5211, 0.6004, 0.5151]], [[-0.1111, 0.6044, -0.1681]], [[0.5069, 0.2105, 0.9489]]],
        h_n=[[[0.5069, 0.2105, 0.9489]]],
        atol=1e-4,
    ),
]


@pytest.mark.parametrize("case", GOLDEN_CASES, ids=lambda case: case.id)
@pytest.mark.parametrize("name", IMPLEMENTATIONS)
def test_printed_outputs_are_reproduced(name, case):
    module = implementation(name).factory(**case.constructor)
    module.load_state_dict({key: torch.tensor(value) for key, value in case.state_dict.items()}, strict=True)
    h0 = None if case.h0 is None else torch.tensor(case.h0)
    with torch.no_grad():
        output, h_n = run(module, torch.tensor(case.input), h0)
    context = f"{name}: {case.id} [{case.source}]"
    torch.testing.assert_close(output, torch.tensor(case.output), rtol=0, atol=case.atol, msg=lambda m: f"[{context}] output: {m}")
    if case.h_n is not None:
        torch.testing.assert_close(h_n, torch.tensor(case.h_n), rtol=0, atol=case.atol, msg=lambda m: f"[{context}] h_n: {m}")


# -- facts the notebooks state, checked on every built-in ---------------------------


@pytest.mark.parametrize("name", IMPLEMENTATIONS)
def test_four_layers_have_square_weights_above_the_first(name):
    # seed 000 (Layers number): input 2, hidden 10, 4 layers; weight_ih_l1 is 10x10.
    module = implementation(name).factory(input_size=2, hidden_size=10, num_layers=4)
    shapes = {key: tuple(value.shape) for key, value in module.state_dict().items()}
    expected = {}
    for layer in range(4):
        expected[f"weight_ih_l{layer}"] = (10, 2) if layer == 0 else (10, 10)
        expected[f"weight_hh_l{layer}"] = (10, 10)
        expected[f"bias_ih_l{layer}"] = (10,)
        expected[f"bias_hh_l{layer}"] = (10,)
    assert shapes == expected, f"[{name}] parameter shapes {shapes}, but torch has {expected}"


@pytest.mark.parametrize(
    "batch_first, expected_output, expected_h_n",
    [(False, (5, 7, 10), (1, 7, 10)), (True, (5, 7, 10), (1, 5, 10))],
    ids=["time-major", "batch_first"],
)
@pytest.mark.parametrize("name", IMPLEMENTATIONS)
def test_batch_first_decides_which_dimension_is_the_batch(name, batch_first, expected_output, expected_h_n):
    # seed 000 (Batch dimention): the same (5, 7, 3) tensor is 7 sequences of 5 steps
    # time-major, and 5 sequences of 7 steps with batch_first.
    module = implementation(name).factory(input_size=3, hidden_size=10, batch_first=batch_first)
    with torch.no_grad():
        output, h_n = module(torch.zeros(5, 7, 3))
    assert tuple(output.shape) == expected_output, f"[{name}, batch_first={batch_first}] output.shape={tuple(output.shape)}, but should be {expected_output}"
    assert tuple(h_n.shape) == expected_h_n, f"[{name}, batch_first={batch_first}] h_n.shape={tuple(h_n.shape)}, but should be {expected_h_n}"


@pytest.mark.parametrize("name", IMPLEMENTATIONS)
def test_two_layers_equal_two_single_layers_chained(name):
    # seed 001 (Reproduce as set of RNN): layer 1 reads layer 0's outputs, not x.
    # Sizes from the notebook: 3 steps, batch 3, input 2, hidden 3.
    torch.manual_seed(1)
    factory = implementation(name).factory
    stacked = factory(input_size=2, hidden_size=3, num_layers=2)
    first, second = factory(input_size=2, hidden_size=3), factory(input_size=3, hidden_size=3)
    weights = stacked.state_dict()
    for layer, module in ((0, first), (1, second)):
        module.load_state_dict({key.replace(f"_l{layer}", "_l0"): value for key, value in weights.items() if key.endswith(f"_l{layer}")})
    x = torch.randn(3, 3, 2)
    with torch.no_grad():
        output, h_n = stacked(x)
        first_output, first_h_n = first(x)
        chained_output, second_h_n = second(first_output)
    torch.testing.assert_close(output, chained_output, msg=lambda m: f"[{name}] 2-layer output vs layers chained: {m}")
    torch.testing.assert_close(h_n, torch.cat([first_h_n, second_h_n]), msg=lambda m: f"[{name}] 2-layer h_n vs layers chained: {m}")


def textbook_rnn(x, w_1, b_1, w_2, b_2):
    """seed 002's formula, batch_first: h_t = tanh(x_t W_1^T + b_1 + h_{t-1} W_2^T + b_2)."""
    h = torch.zeros(x.shape[0], w_1.shape[0], dtype=x.dtype)
    states = []
    for t in range(x.shape[1]):
        h = torch.tanh(x[:, t] @ w_1.T + b_1 + h @ w_2.T + b_2)
        states.append(h)
    return torch.stack(states, dim=1)


@pytest.mark.parametrize("name", IMPLEMENTATIONS)
def test_matches_the_textbook_formula_with_positive_weights(name):
    # seed 002: 10 samples, 15 steps, 5 features, state 3, batch_first, and weights
    # from torch.rand (all positive, so tanh saturates: pre-activations near 3-4).
    generator = torch.Generator().manual_seed(2)
    x = torch.rand(10, 15, 5, generator=generator, dtype=torch.float64)
    w_1, b_1 = torch.rand(3, 5, generator=generator, dtype=torch.float64), torch.rand(3, generator=generator, dtype=torch.float64)
    w_2, b_2 = torch.rand(3, 3, generator=generator, dtype=torch.float64), torch.rand(3, generator=generator, dtype=torch.float64)
    module = implementation(name).factory(5, 3, batch_first=True, dtype=torch.float64)
    module.load_state_dict({"weight_ih_l0": w_1, "weight_hh_l0": w_2, "bias_ih_l0": b_1, "bias_hh_l0": b_2}, strict=True)
    with torch.no_grad():
        output, _ = module(x)
    torch.testing.assert_close(output, textbook_rnn(x, w_1, b_1, w_2, b_2), msg=lambda m: f"[{name}] vs the textbook formula: {m}")
