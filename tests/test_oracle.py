"""The oracle and its error model, stated as facts about concrete cases.

The model must be sound (a correct implementation that rounds differently, or more
accurately, passes even where float32 and float64 torch disagree by O(1)) and tight
(a float64 implementation that silently computes in float32 is caught).
"""

from __future__ import annotations

import dataclasses

import pytest
import torch

from harness import Implementation
from harness.cases import Case, materialize
from harness.oracle import Discrepancy, check, localize_layer
from harness.oracle.session import Session
from harness.tolerance import DEFAULT_MODEL
from mutants import CORRECT_VARIANTS, MUTANTS
from support import implementation

CHAOTIC = Case(input_size=64, hidden_size=64, seq_len=200, batch=2, weight_gain=8.0, dtype="float32", backward=False)
"""The issue's measurement: weights x8, H=64, 200 steps."""


def by_name(catalogue, name) -> Implementation:
    return next(entry for entry in catalogue if entry.name == name)


def run_torch(case: Case, dtype: torch.dtype) -> torch.Tensor:
    tensors = materialize(case)
    module = torch.nn.RNN(**case.constructor(), dtype=dtype)
    module.load_state_dict({k: v.to(dtype) for k, v in tensors.weights.items()})
    with torch.no_grad():
        output, _ = module(tensors.padded_input.to(dtype))
    return output.double()


def test_chaotic_case_makes_float32_and_float64_torch_disagree_by_order_one():
    # The premise of the error model: no fixed atol can judge this case.
    difference = (run_torch(CHAOTIC, torch.float32) - run_torch(CHAOTIC, torch.float64)).abs()
    assert float(difference[:5].max()) < 1e-4, "early steps still agree"
    assert float(difference[-50:].max()) > 0.1, "late steps disagree by O(1)"


@pytest.mark.parametrize("name", ["loop", "vectorized"])
def test_correct_implementation_passes_the_chaotic_case(name):
    # Its float32 rounding differs from torch's, and the chaos amplifies both.
    check(implementation(name), CHAOTIC)
    check(implementation(name), dataclasses.replace(CHAOTIC, dtype="float64"))


@pytest.mark.parametrize("dtype", ["float16", "bfloat16", "float32"])
def test_more_accurate_than_torch_passes(dtype):
    check(by_name(CORRECT_VARIANTS, "correct-float64-inside"), dataclasses.replace(CHAOTIC, dtype=dtype, seq_len=80))


def test_float32_arithmetic_in_a_float64_implementation_is_caught_in_a_tame_case():
    tame = Case(input_size=3, hidden_size=5, seq_len=4, batch=2, dtype="float64", backward=False)
    with pytest.raises(Discrepancy) as caught:
        check(by_name(MUTANTS, "mutant-float32-inside"), tame)
    assert caught.value.kind == "value"
    assert caught.value.evidence["bound"] < 1e-10, "float64 is compared at float64 precision"


def test_bound_follows_the_measured_error_along_the_sequence():
    # Early steps of the chaotic case are held tight, late ones loose or not compared.
    case = dataclasses.replace(CHAOTIC, batch=1)
    reference = run_torch(case, torch.float64).reshape(200, 1, 1, 64)
    probe = run_torch(case, torch.float32).reshape(200, 1, 1, 64)
    valid = torch.ones(200, 1, dtype=torch.bool)
    bound, compare = DEFAULT_MODEL.value_bound(reference, probe, valid, torch.float32, causal=True)
    assert float(bound[0].max()) < 1e-4
    assert bool(compare[:5].all())
    assert not bool(compare[-1].any()), "past the horizon nothing is compared"


def test_value_discrepancy_says_which_tensor_where_and_by_how_much():
    case = Case(input_size=4, hidden_size=4, seq_len=3, batch=2, backward=False)
    with pytest.raises(Discrepancy) as caught:
        check(by_name(MUTANTS, "mutant-untransposed-w-ih"), case)
    summary = caught.value.summary
    for fragment in ("output differs", "time step", "batch row", "feature", "bound", "first divergent step"):
        assert fragment in summary, f"{fragment!r} missing from:\n{summary}"


def test_invalid_input_must_raise_torchs_exception_type():
    case = Case(input_size=3, hidden_size=4, seq_len=2, batch=2, defect="wrong_width")
    check(implementation("loop"), case)  # raises RuntimeError like torch

    class Silent(torch.nn.RNN):
        def forward(self, input, hx=None):
            return super().forward(input[..., : self.input_size], hx)

    with pytest.raises(Discrepancy) as caught:
        check(Implementation(name="silent", factory=Silent), case)
    assert caught.value.kind == "exception_type"
    assert "torch raises RuntimeError" in caught.value.summary


def test_localisation_names_the_first_layer_that_differs():
    case = Case(input_size=3, hidden_size=4, num_layers=3, seq_len=3, batch=2, backward=False)
    assert localize_layer(by_name(MUTANTS, "mutant-layer0-w-hh-everywhere"), case) == 1
    assert localize_layer(by_name(MUTANTS, "mutant-untransposed-w-hh"), case) == 0


# Cases where a correct implementation once exceeded the bound in a long campaign
# (docs/error-model.md says what each one changed in the model).
FORMER_FALSE_ALARMS = {
    "saturating float64, wide input": Case(
        input_size=36, hidden_size=13, dtype="float64", layout="packed_sorted", seq_len=16, batch=1,
        lengths=(16,), weight_gain=8.0, seed=10, second_call="optimizer_step",
    ),
    "chaotic float64, bidirectional, 65 steps": Case(
        input_size=4, hidden_size=25, dtype="float64", bidirectional=True, layout="packed_sorted",
        seq_len=65, batch=2, lengths=(65, 8), weight_gain=8.0, seed=0,
    ),
    "saturating bfloat16, h_n after 16 steps": Case(
        input_size=11, hidden_size=11, dtype="bfloat16", layout="unbatched", seq_len=16, weight_gain=8.0, seed=0,
    ),
    "saturating bfloat16, 65 steps, a unit tips over": Case(
        input_size=11, hidden_size=11, dtype="bfloat16", layout="unbatched", seq_len=65, weight_gain=8.0, seed=0,
    ),
    "saturating float32, second call, torch lands close by luck": Case(
        input_size=18, hidden_size=40, num_layers=2, dtype="float32", layout="packed_sorted", seq_len=18, batch=4,
        lengths=(18, 10, 2, 2), weight_gain=8.0, exact_zeros=True, seed=10, second_call="optimizer_step",
    ),
    # issue 12: onnxruntime's RNN was flagged at step 2, row 18, reverse half, feature 1
    # (its RNN operator's tanh is 2 sigmoid(2x) - 1, not MLAS's: issue 21,
    # tests/test_onnx_rnn_operator.py); correct-approximate-activations stands in for it
    # and, without the activation probe, is flagged at exactly that element.
    "onnxruntime-like tanh, saturating, bidirectional, packed": Case(
        input_size=1, hidden_size=13, bidirectional=True, layout="packed_unsorted", seq_len=12, batch=20,
        lengths=(12, 1, 8, 3, 10, 5, 12, 7, 2, 9, 4, 11, 6, 1, 8, 3, 10, 5, 12, 7), input_scale=0.1,
        weight_gain=8.0, seed=7, backward=False,
    ),
    # correct-approximate-activations (an oscillating few-ulp tanh) beyond four times
    # both activation pairs, until the activation adjoint (docs/error-model.md): the
    # long profile, seed 0, shrunk (1.02 times its bound), and the mutation statistics
    # and CI (APPROXIMATE_ACTIVATIONS_CASE below, 1.21 times).
    "oscillating tanh error, packed, weights x8": Case(
        input_size=3, hidden_size=3, bias=False, layout="packed_unsorted", seq_len=7, batch=17,
        lengths=(7, 1, 1, 1, 1, 1, 5, 5, 5, 6, 6, 6, 1, 1, 1, 1, 1), h0_given=True, h0_scale=0.5, input_scale=0.1,
        weight_gain=8.0, seed=6,
    ),
    "oscillating tanh error, two layers, 65 steps": Case(
        input_size=5, hidden_size=7, num_layers=2, bias=False, dropout=1.0, layout="packed_sorted", seq_len=65, batch=4,
        lengths=(65, 9, 1, 1), h0_given=True, weight_gain=8.0, exact_zeros=True, seed=4, training=True,
    ),
    "relu bfloat16 gradient at a kink": Case(
        input_size=4, hidden_size=7, num_layers=2, nonlinearity="relu", bidirectional=True, dtype="bfloat16",
        layout="packed_sorted", seq_len=5, batch=1, lengths=(5,), h0_given=True, h0_scale=0.5, weight_gain=1.5, seed=9,
    ),
}


@pytest.mark.parametrize("case", list(FORMER_FALSE_ALARMS.values()), ids=list(FORMER_FALSE_ALARMS))
@pytest.mark.parametrize(
    "name",
    ["linear", "loop", "vectorized", "correct-hoisted-pretransposed", "correct-einsum-other-order", "correct-approximate-activations"],
)
def test_former_false_alarm_passes(name, case):
    candidate = by_name(CORRECT_VARIANTS, name) if name.startswith("correct-") else implementation(name)
    check(candidate, case)


# Long campaign, seed 20261126, example 1,519: five of the 17 rows go past the horizon
# in their outputs (row 5 after step 34 of 90, its h 19% off), yet c_n, an unbounded
# sum at 4.5 there, was still compared against a horizon scaled by its own size.
FLOAT16_LSTM_TIPPING_ROWS = Case(
    family="LSTM", input_size=13, hidden_size=10, bias=False, dtype="float16", seq_len=90, batch=17,
    h0_given=True, input_scale=0.1, h0_scale=0.5, weight_gain=8.0, seed=10,
)


@pytest.mark.parametrize("name", ["vectorized-lstm", "torchscript-lstm", "loop-lstm", "linear-lstm"])
def test_final_states_of_a_row_past_the_horizon_are_not_compared(name):
    check(implementation(name), FLOAT16_LSTM_TIPPING_ROWS)


@pytest.mark.parametrize("mutant", ["mutant-lstm-h-c-swapped", "mutant-lstm-c0-ignored"])
def test_final_states_of_the_other_rows_still_are(mutant):
    with pytest.raises(Discrepancy):
        check(by_name(MUTANTS, mutant), FLOAT16_LSTM_TIPPING_ROWS)


def test_rows_past_the_horizon_are_judged_on_the_outputs_scale():
    reference = torch.zeros(3, 2, 1, 4, dtype=torch.float64)
    reference[:, :, :, 0] = 0.9
    probe = reference.clone()
    probe[1, 0, 0, 0] += 0.2  # row 0: 0.2 > 0.05 * (1 + 0.9)
    probe[2, 1, 0, 0] += 0.05  # row 1: within the horizon
    def rows_past(valid):
        error = torch.where(valid.reshape(3, 2, 1, 1), (probe - reference).abs(), torch.zeros_like(probe))
        return DEFAULT_MODEL.rows_past_horizon(reference, error.amax(dim=(0, 2, 3)), valid).tolist()

    valid = torch.ones(3, 2, dtype=torch.bool)
    assert rows_past(valid) == [True, False]
    valid[1, 0] = False  # past a packed row's end nothing counts
    assert rows_past(valid) == [False, False]


# Long campaign, vectorized, seed 7, example 339: float16 relu overflows in torch's own
# forward; its input gradient is 0 (as float64's), vectorized's NaN, and torch's own
# weight gradients are NaN where float64's are finite.
FLOAT16_RELU_OVERFLOW = Case(
    input_size=3, hidden_size=1, num_layers=2, nonlinearity="relu", bias=False, dtype="float16", layout="packed_sorted",
    seq_len=65, batch=1, lengths=(65,), h0_given=True, weight_gain=1.5, exact_zeros=True, seed=5,
)


@pytest.mark.parametrize("name", ["vectorized", "torchscript", "loop", "torch"])
def test_no_gradient_is_compared_once_torchs_own_backward_overflowed(name):
    check(implementation(name), FLOAT16_RELU_OVERFLOW)


def test_gradients_are_still_compared_where_torchs_backward_did_not_overflow():
    # The same case in float32 stays finite: its gradients are judged as ever.
    case = dataclasses.replace(FLOAT16_RELU_OVERFLOW, dtype="float32")
    check(implementation("vectorized"), case)
    with pytest.raises(Discrepancy, match="gradient"):
        check(by_name(MUTANTS, "mutant-state-detached-between-steps"), case)


# Cluster run, vectorized: a bfloat16 h_n element after an optimizer step. torch with
# weights and input moved by +/-1 ulp stays at -0.891, by +2 ulps goes to 0.482;
# vectorized (which adds b_ih + b_hh first) lands at 0.469.
BFLOAT16_TIPPING_H_N = Case(
    input_size=4, hidden_size=2, num_layers=2, bidirectional=True, dtype="bfloat16", seq_len=85, batch=17,
    noncontiguous="transposed", input_scale=0.1, h0_given=True, h0_scale=0.5, weight_gain=3.0, exact_zeros=True,
    seed=7, second_call="optimizer_step",
)


@pytest.mark.parametrize("name", ["vectorized", "torchscript", "loop", "linear"])
def test_an_element_at_a_tipping_point_is_not_compared(name):
    check(implementation(name), BFLOAT16_TIPPING_H_N)


def test_without_the_tipping_probes_the_case_is_a_false_alarm():
    # The activation probes, which run in bfloat16 too, tip this trajectory as well:
    # without them the tipping pair alone is what keeps the case sound.
    without = dataclasses.replace(DEFAULT_MODEL, tipping_perturbation_ulps=0.0, activation_ulps=0.0)
    with pytest.raises(Discrepancy, match="h_n differs on the second call"):
        check(implementation("vectorized"), BFLOAT16_TIPPING_H_N, without)


@pytest.mark.parametrize("mutant", [
    "mutant-h-n-direction-major", "mutant-b-hh-dropped", "mutant-h0-ignored", "mutant-untransposed-w-hh",
    "mutant-assumes-contiguous-input", "mutant-reverse-uses-forward-weights",
])
def test_the_tipping_case_still_catches_mistakes(mutant):
    with pytest.raises(Discrepancy):
        check(by_name(MUTANTS, mutant), BFLOAT16_TIPPING_H_N)


def test_a_few_ulp_tanh_needs_the_activation_probe():
    # The onnxruntime case is sound because of the activation budget, not by luck:
    # without it the same correct candidate is flagged where onnxruntime was.
    case = FORMER_FALSE_ALARMS["onnxruntime-like tanh, saturating, bidirectional, packed"]
    candidate = by_name(CORRECT_VARIANTS, "correct-approximate-activations")
    check(candidate, case)
    with pytest.raises(Discrepancy) as caught:
        check(candidate, case, dataclasses.replace(DEFAULT_MODEL, activation_ulps=0.0))
    assert "time step 2, batch row 18" in caught.value.summary and "reverse half" in caught.value.summary


def test_activation_probe_moves_outputs_by_the_budget():
    # Each tanh output moves by up to activation_ulps units of roundoff (plus the
    # rounding of the result), by a different amount per element, opposite ways in
    # the two probes of the pair.
    from harness.probes import activation_probe_factory

    # The unit is u * max(|y|, floor): below the floor of rounding noise (1/2 for tanh)
    # the budget is absolute.
    x = torch.linspace(-6, 6, 20_000, dtype=torch.float32)
    exact = torch.tanh(x.double())
    _, floor = DEFAULT_MODEL.activation_budget("tanh", torch.float32, systematic=False)
    moved = []
    for sign in (1.0, -1.0):
        probe = activation_probe_factory(DEFAULT_MODEL, seed=0, sign=sign)(input_size=1, hidden_size=1)
        probe.restart_noise()
        moved.append((probe.elementwise("tanh", x).double() - exact) / (2.0**-24 * exact.abs().clamp_min(floor)))
    plus, minus = moved
    budget = DEFAULT_MODEL.activation_ulps
    assert budget * 0.9 < float(plus.abs().max()) <= budget + 2
    assert float((plus + minus).abs().max()) <= 3, "the pair moves each output opposite ways"
    assert float(plus.std()) > budget / 4, "the amount differs from element to element"
    near_zero = exact.abs() < 0.05
    assert float(plus[near_zero].abs().max()) > budget * 0.9, "near 0 the move is absolute: u * budget * floor"


APPROXIMATE_ACTIVATIONS_CASE = FORMER_FALSE_ALARMS["oscillating tanh error, two layers, 65 steps"]
"""Found by CI and by the mutation statistics (seed 0): `correct-approximate-activations`
(tanh 7 units of roundoff times cos(29.7 x + 0.3) off, then rounded) at 1.21 times
its bound, output[15, 0, 0, 3] 3.0e-5 from float64 against a bound of 2.48e-5 made of
four times the activation probes' deviation. Its pattern along x is neither the
probes' random one nor their one-signed one, and on this case it moves that output
further than four times either."""


def test_any_activation_pattern_within_the_budget_is_within_the_bound():
    approximate = by_name(CORRECT_VARIANTS, "correct-approximate-activations")
    assert check(approximate, APPROXIMATE_ACTIVATIONS_CASE).worst() < 1
    # The activation adjoint is what makes room: without it the case is flagged.
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Session, "activation_adjoint", lambda self: lambda name, index: torch.zeros(len(index), dtype=torch.float64))
        with pytest.raises(Discrepancy, match=r"output differs: worst at time step 15, batch row 0, feature 3"):
            check(approximate, APPROXIMATE_ACTIVATIONS_CASE)
    # The room it makes is not enough for a tanh 100 units off on the same case, and
    # the message says what the worst pattern of the budget would have cost.
    with pytest.raises(Discrepancy, match=r"in the worst pattern for this element, move it by"):
        check(by_name(MUTANTS, "mutant-tanh-off-100-ulps"), APPROXIMATE_ACTIVATIONS_CASE)


@pytest.mark.parametrize("family", ["RNN", "GRU", "LSTMCell"])
def test_the_activation_adjoint_is_the_worst_pattern_of_the_budget(family):
    # What `ActivationAdjoint` gives for one output element is reached by the pattern
    # that moves every activation output by its whole allowance with the sign of its
    # gradient, and no pattern within the allowances goes further (to first order:
    # the budget is 8 float32 units, so the second order is 1e-7 of the first).
    from harness.probes import ADJOINT_LOOPS

    cell = family.endswith("Cell")
    case = Case(
        family=family, input_size=3, hidden_size=4, seq_len=1 if cell else 9, batch=2, weight_gain=3.0,
        num_layers=1 if cell else 2, h0_given=True, seed=3,
    )
    keywords = dict(case.constructor(), dtype=torch.float64)

    class Patterned(ADJOINT_LOOPS[family]):
        def elementwise(self, name, x):
            y = super().elementwise(name, x)
            return y if self.pattern is None else y + self.pattern[len(self.shifts) - 1]

    module = Patterned(**keywords).configure(DEFAULT_MODEL, torch.float32)
    module.load_state_dict(materialize(case).weights)
    x, hx = materialize(case).module_input(case, torch.float64, "cpu")

    def element(pattern):
        module.pattern = pattern
        result = module(x, hx)
        return (result if cell and family != "LSTMCell" else result[0])[-1, -1].reshape(-1)[-1]

    plain = element(None)
    gradients = torch.autograd.grad(plain, [shift for shift, _ in module.shifts], allow_unused=True)
    allowances = [allowance for _, allowance in module.shifts]
    worst = sum(float((g.abs() * a).sum()) for g, a in zip(gradients, allowances) if g is not None)
    assert worst > 0
    # `Session.activation_adjoint` gives the same number for the same element.
    session = oracle_session(case)
    index = {"RNN": [8, 1, 0, 3], "GRU": [8, 1, 0, 3], "LSTMCell": [0, 1, 0, 3]}[family]
    name = "h'" if family == "LSTMCell" else "output"
    assert float(session.activation_adjoint()(name, torch.tensor([index]))) == pytest.approx(worst, rel=1e-9)
    signs = [torch.zeros_like(a) if g is None else g.sign() for g, a in zip(gradients, allowances)]
    adversarial = float(element([s * a for s, a in zip(signs, allowances)]).detach() - plain.detach())
    assert adversarial == pytest.approx(worst, rel=1e-4)
    generator = torch.Generator().manual_seed(0)
    for _ in range(20):
        pattern = [(torch.rand(a.shape, generator=generator, dtype=torch.float64) * 2 - 1) * a for a in allowances]
        assert abs(float(element(pattern).detach() - plain.detach())) <= worst * (1 + 1e-4)


def oracle_session(case: Case):
    return Session(implementation("loop" if case.family == "RNN" else f"loop-{case.family.lower()}"), case, DEFAULT_MODEL)


HOISTED_CANCELLING_CASE = Case(
    family="RNN", input_size=29, hidden_size=5, layout="packed_unsorted", seq_len=9, batch=17,
    lengths=(9, 1, 1, 1, 1, 1, 1, 1, 1, 1, 3, 1, 1, 2, 3, 3, 3), noncontiguous="offset", input_scale=5.0, weight_gain=3.0, seed=15,
)
"""Found by the mutation statistics (seed 1): 29 input features x5 against weights x3,
whose products cancel to 0.5 from terms summing to about 78. A hoisted input GEMM,
summed in another order than torch's, lands 4.2e-6 from float64 where torch's own
float32 error is 1.8e-7."""


def test_another_summation_order_of_a_cancelling_input_product_is_within_the_bound(monkeypatch):
    hoisted = next(v for v in CORRECT_VARIANTS if v.name == "correct-hoisted-pretransposed")
    assert check(hoisted, HOISTED_CANCELLING_CASE).worst() < 1
    # The order probe (torch with the input's features reversed) is what makes room:
    # without it the same case is flagged. (The activation adjoint's allowance for a
    # tanh off by its budget, 1.4e-6 at the element, would also cover the 0.6e-6 the
    # bound lacks there; it is taken out too, so that the order probe is measured alone.)
    monkeypatch.setattr(Session, "order_probe", lambda self: None)
    monkeypatch.setattr(Session, "activation_adjoint", lambda self: lambda name, index: torch.zeros(len(index), dtype=torch.float64))
    with pytest.raises(Discrepancy, match="output differs"):
        check(hoisted, HOISTED_CANCELLING_CASE)
    # And the room it makes is not enough for a tanh 100 units off on the same case.
    monkeypatch.undo()
    tanh_off = next(m for m in MUTANTS if m.name == "mutant-tanh-off-100-ulps")
    with pytest.raises(Discrepancy):
        check(tanh_off, HOISTED_CANCELLING_CASE)
