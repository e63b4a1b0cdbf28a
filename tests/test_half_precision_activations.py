"""Half precision has an activation budget (issue 24): a port whose sigmoid and tanh are
computed op by op in float16 or bfloat16, as onnx's reference evaluator computes them,
is correct and passes; a tanh off by several times the budget is still flagged."""

from __future__ import annotations

import warnings

import pytest
import torch

from harness import Implementation
from harness.campaign import fuzz_implementation
from harness.cases import Case
from harness.oracle import Discrepancy, check
from harness.tolerance import ACTIVATION_ROUNDING_FLOOR, DEFAULT_MODEL, UNIT_ROUNDOFF
from mutants.correct_families import sigmoid_by_formula, tanh_by_formula
from mutants.family_catalogue import FAMILY_CORRECT_VARIANTS
from mutants.numerics import TanhOff100Ulps

HALF_PRECISION = (torch.float16, torch.bfloat16)
HALF_PORTS = [v for v in FAMILY_CORRECT_VARIANTS if v.dtypes is not None and set(v.dtypes) == set(HALF_PRECISION)]


def every_value_in(dtype: torch.dtype, low: float, high: float) -> torch.Tensor:
    """Every number of ``dtype`` in [low, high] (float16 has about 22,000 there, bfloat16 3,500)."""
    return torch.linspace(low, high, 2_000_001, dtype=torch.float32).to(dtype).unique()


@pytest.mark.parametrize("dtype", HALF_PRECISION, ids=str)
def test_half_precision_has_the_budget_float32_has(dtype):
    assert DEFAULT_MODEL.activation_budget("sigmoid", dtype) == DEFAULT_MODEL.activation_budget("sigmoid", torch.float32)
    assert DEFAULT_MODEL.activation_budget("tanh", dtype) == DEFAULT_MODEL.activation_budget("tanh", torch.float32)
    assert DEFAULT_MODEL.activation_budget("relu", dtype) is None


@pytest.mark.parametrize("dtype", HALF_PRECISION, ids=str)
@pytest.mark.parametrize("name, formula", [("sigmoid", sigmoid_by_formula), ("tanh", tanh_by_formula)])
def test_the_budget_is_one_and_a_half_times_the_formulas_in_the_half_type(dtype, name, formula):
    # The rule float32's budget follows: 8 units is at least 1.5 times the least
    # accurate library measured (here in units of the half type's own roundoff, with
    # the rounding floor; tools/activation_accuracy.py prints the full table).
    x = every_value_in(dtype, -10.0, 10.0)
    exact = (torch.tanh if name == "tanh" else torch.sigmoid)(x.double())
    units = (formula(x).double() - exact).abs() / (UNIT_ROUNDOFF[dtype] * exact.abs().clamp_min(ACTIVATION_ROUNDING_FLOOR[name]))
    assert 1.0 < units.max() <= DEFAULT_MODEL.activation_ulps / 1.5


@pytest.mark.parametrize("port", HALF_PORTS, ids=lambda port: port.name)
def test_a_port_with_activations_computed_in_the_half_type_passes_a_ci_campaign(port, tmp_path):
    result = fuzz_implementation(port, profile="ci", seed=3, repro_dir=tmp_path, database=None)
    summary = result.failure.summary if result.failure else result.reason
    assert result.verdict == "pass", f"false alarm on a correct half-precision port ({port.description}):\n{summary}"


TAME_HALF_CASES = [
    Case(input_size=4, hidden_size=8, dtype=dtype, seq_len=5, batch=3, seed=1) for dtype in ("float16", "bfloat16")
]


def tanh_off_in_half_precision(units: float) -> Implementation:
    factory = type("TanhOffInHalfPrecision", (TanhOff100Ulps,), {"UNITS": units, "DTYPES": HALF_PRECISION})
    return Implementation(name=f"tanh-off-{units:g}-units-in-half-precision", factory=factory, family="RNN")


@pytest.mark.parametrize("case", TAME_HALF_CASES, ids=lambda case: case.dtype)
def test_a_tanh_within_the_budget_passes_in_half_precision(case):
    # One unit of the budget goes to the final rounding to the half type.
    check(tanh_off_in_half_precision(DEFAULT_MODEL.activation_ulps - 1), case)


@pytest.mark.parametrize("case", TAME_HALF_CASES, ids=lambda case: case.dtype)
def test_a_tanh_eight_times_the_budget_is_flagged_in_half_precision(case):
    with warnings.catch_warnings(), pytest.raises(Discrepancy, match="output differs"):
        warnings.simplefilter("ignore")
        check(tanh_off_in_half_precision(8 * DEFAULT_MODEL.activation_ulps), case)
