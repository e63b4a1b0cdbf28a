"""The error model: how far a correct implementation may be from the float64 reference.

A fixed atol is wrong in both directions: too loose for float64 in a tame regime, and
too tight once a chaotic recurrence amplifies rounding until float32 and float64 torch
disagree by O(1). So the bound is built from the case itself:

* a rounding floor: a few units of roundoff of the candidate's dtype, scaled by the
  reference's magnitude (what another correct summation order, or a few more
  roundings per step, may cost before any amplification);
* measured amplification: a probe — torch in the candidate's dtype or, for float64,
  the float64 reference with weights and inputs perturbed by a few ulps — is compared
  with the reference; its error, as a running maximum along the direction the
  recurrence runs, shows how much this very case amplifies rounding up to each step;
* a horizon: where the probe's own error exceeds a fraction of the signal, nothing
  more can be said about any implementation, so those elements are not compared.

The constants are data (`ErrorModel`) and are justified in docs/error-model.md.
"""

from __future__ import annotations

import dataclasses
import math

import torch
from torch import Tensor

UNIT_ROUNDOFF = {
    torch.float16: 2.0**-11,
    torch.bfloat16: 2.0**-8,
    torch.float32: 2.0**-24,
    torch.float64: 2.0**-53,
}


ACTIVATION_ULP_FLOOR = {"tanh": 0.0, "sigmoid": 0.5}
"""Elementwise functions with an accuracy budget, and the magnitude below which their
error stops having to shrink, for an error that keeps its sign along the recurrence
(a smooth approximation's, where the arguments stay close; the systematic activation
probes). tanh is held to relative accuracy: every approximation measured is
(MLAS, the Tanh operator of onnxruntime: 5.2 units). sigmoid, a gate in [0, 1], to
absolute accuracy below 1/2: onnxruntime's sigmoid(-10) is 42,000 units of roundoff
off relative to itself, but within 4.7 of 1/2."""
ACTIVATION_ROUNDING_FLOOR = {"tanh": 0.5, "sigmoid": 0.5}
"""The same for an error that changes from element to element and step to step, as
rounding does (the random activation probes). Here tanh too is held to absolute
accuracy below 1/2: onnxruntime's RNN operator computes it as 2 sigmoid(2x) - 1
(rnn_activation_functors.h), and near x = 0 the sigmoid's rounding, a few units of
roundoff of 1/2, survives the subtraction as an absolute error: up to 2.7 units where
|tanh| < 1/2, unbounded relative to a small result, 4.7 units of the budget with
this floor. With a relative budget that correct arithmetic was flagged in a long
campaign (issue 21; docs/error-model.md). Its error is rounding, not an
approximation's bias, so the systematic probes keep tanh relative: an absolute
floor there (tried in a first version) delayed the detection of a tanh 32 units off
on one seed in six from the 18th example to the 161st. Below the floor the move
keeps y's sign (harness/probes.py), so outputs above it move as without a floor."""
ACTIVATION_DTYPES = (torch.float32, torch.float64, torch.float16, torch.bfloat16)
"""Every floating dtype has the same budget, in units of its own roundoff. Half
precision too: libraries that evaluate the formula in the half type itself (onnx's
reference evaluator: 1/(1 + exp(-x)) in float16, three roundings) reach 1.9 units for
sigmoid and, for tanh as 2 sigmoid(2x) - 1, 4.5 units with the rounding floor, within
float32's worst library (tools/activation_accuracy.py, docs/error-model.md)."""


@dataclasses.dataclass(frozen=True)
class ErrorModel:
    floor_ulps: float = 8.0
    """Units of roundoff allowed per element before amplification (values: times 1 + |ref|;
    whole tensors such as gradients: times sqrt(reduction length) (1 + max |ref|))."""
    amplification: float = 16.0
    """How many times the probe's measured error a correct candidate may reach."""
    horizon: float = 0.05
    """Stop comparing where the probe's error exceeds this fraction of (1 + |signal|)."""
    probe_perturbation_ulps: float = 64.0
    """Relative size of the float64 probe's perturbation, in float64 ulps."""
    sensitivity_perturbation_ulps: float = 1.0
    """float32 and half precision: relative perturbation of the two sensitivity probes
    that widen value and gradient bounds, in ulps of the candidate's dtype
    (docs/error-model.md)."""
    tipping_perturbation_ulps: float = 4.0
    """float32 and half precision, run only where a candidate is out of the narrower
    bounds: a +/- pair of torch runs with weights and input moved by this many ulps.
    Where one moves an element past the horizon, the case sits at a tipping point
    there (the +/-1 ulp pair can miss it: in one bfloat16 case +1 and -1 left an h_n
    element at -0.891, +2 moved it to 0.482) and that element and what follows it
    are not compared. Elsewhere the bounds are unchanged (docs/error-model.md)."""
    kink_perturbation_ulps: float = 16.0
    """relu with gradients: relative perturbation of the two kink probes, in ulps of
    the candidate's dtype."""
    activation_ulps: float = 8.0
    """Accuracy granted to elementwise functions (tanh, sigmoid): |y' - y| may reach
    this many units of roundoff of the candidate's dtype times max(|y|, floor), the
    floor of ACTIVATION_ULP_FLOOR or ACTIVATION_ROUNDING_FLOOR. Real libraries' float32
    tanh reaches 1.0 (torch) to 5.2 (onnxruntime's Tanh operator, MLAS) and 4.7
    (onnxruntime's RNN operator); in half precision, sigmoid as 1/(1 + exp(-x)) in
    float16 reaches 1.9 and tanh as 2 sigmoid(2x) - 1 in the half type 4.5
    (tools/activation_accuracy.py). The activation probe
    (harness/probes.py) turns it into a bound through the case's own amplification."""
    activation_amplification: float = 4.0
    """How many times the activation probes' deviation a correct candidate may reach
    (the probes already move every output by the whole budget, so this factor is
    smaller than `amplification`, which multiplies a sample of torch's own error): a
    smooth few-ulp approximation was measured at up to 3.2 times the systematic
    probe's deviation (docs/error-model.md), while a tanh 100 units off moves
    outputs about 12 times as far as the probes do."""

    def scaled(self, budget: float) -> "ErrorModel":
        """The model for an implementation that declares an error budget (1 = none)."""
        if budget == 1.0:
            return self
        return dataclasses.replace(
            self,
            floor_ulps=self.floor_ulps * budget,
            amplification=self.amplification * budget,
            activation_ulps=self.activation_ulps * budget,
        )

    def activation_budget(self, name: str, dtype: torch.dtype, systematic: bool = True) -> tuple[float, float] | None:
        """(ulps, floor): ``name``'s outputs may be off by ulps * unit roundoff of
        ``dtype`` * max(|y|, floor), floor from ACTIVATION_ULP_FLOOR for an error of one
        sign (``systematic``), from ACTIVATION_ROUNDING_FLOOR for rounding noise. None
        where the function has no budget (relu is exact everywhere) or the model grants
        none (``activation_ulps`` 0)."""
        if name not in ACTIVATION_ULP_FLOOR or dtype not in ACTIVATION_DTYPES or self.activation_ulps == 0:
            return None
        return self.activation_ulps, (ACTIVATION_ULP_FLOOR if systematic else ACTIVATION_ROUNDING_FLOOR)[name]

    def unit_roundoff(self, dtype: torch.dtype) -> float:
        return UNIT_ROUNDOFF[dtype]

    def value_bound(
        self,
        reference: Tensor,
        probe: Tensor,
        valid: Tensor,
        dtype: torch.dtype,
        causal: bool,
        row_error: Tensor | None = None,
    ) -> tuple[Tensor, Tensor]:
        """Allowed |candidate - reference| for a layer output, and where to compare.

        ``reference``/``probe`` are float64 ``(T, B, D, H)``; ``valid`` is ``(T, B)``,
        False past a packed sequence's end. With ``causal`` the probe error is a running
        maximum along each direction's own time order (step t only depends on steps the
        recurrence already saw); otherwise the maximum over the whole row, raised to
        ``row_error`` (per batch row) where given: h_n is one sample per row, so it
        borrows the probe error the row's outputs showed at every step.
        Returns (bound with the shape of reference, compare-mask of the same shape).
        """
        probe_error = (probe - reference).abs().nan_to_num(nan=math.inf).amax(dim=-1)  # (T, B, D)
        probe_error = torch.where(valid.unsqueeze(-1), probe_error, torch.zeros_like(probe_error))
        if causal:
            forward = probe_error[..., :1].cummax(dim=0).values
            reverse = probe_error[..., 1:].flip(0).cummax(dim=0).values.flip(0)
            amplified = torch.cat([forward, reverse], dim=-1)
        else:
            amplified = probe_error.amax(dim=(0, 2), keepdim=True)
            if row_error is not None:
                amplified = torch.maximum(amplified, row_error.reshape(1, -1, 1))
            amplified = amplified.expand_as(probe_error)
        magnitude = reference.abs()
        row_scale = 1 + magnitude.amax(dim=(0, 2, 3), keepdim=True)  # (1, B, 1, 1)
        floor = self.floor_ulps * self.unit_roundoff(dtype) * (1 + magnitude)
        bound = floor + self.amplification * amplified.unsqueeze(-1)
        meaningful = amplified.unsqueeze(-1) <= self.horizon * row_scale
        compare = meaningful & valid.unsqueeze(-1).unsqueeze(-1) & torch.isfinite(reference) & torch.isfinite(probe)
        return bound, compare.expand_as(reference)

    def rows_past_horizon(self, reference: Tensor, row_error: Tensor, valid: Tensor) -> Tensor:
        """(B,) bool: the batch rows whose step-by-step results (a layer's output,
        ``reference`` ``(T, B, D, H)``, the probe's largest error on each row's valid
        steps ``row_error`` ``(B,)``) went past the horizon at some valid step. A row's
        final states (h_n, c_n) end that trajectory, so nothing can be said about them
        either, however large their own magnitude: c is an unbounded sum, and at 5.5
        times the output's scale its own horizon would still compare a row whose h was
        19% off."""
        magnitude = reference.abs().nan_to_num(nan=0.0).amax(dim=(2, 3))  # (T, B)
        magnitude = torch.where(valid, magnitude, torch.zeros_like(magnitude))
        return row_error > self.horizon * (1 + magnitude.amax(dim=0))

    def tensor_bound(
        self, reference: Tensor, probe: Tensor, dtype: torch.dtype, reduction_length: int
    ) -> tuple[float, bool]:
        """Allowed max |candidate - reference| over a whole tensor (gradients, h_n rows),
        and whether comparing it means anything at all."""
        finite = torch.isfinite(reference) & torch.isfinite(probe)
        if not bool(finite.any()):
            return math.inf, False
        scale = float(reference[finite].abs().max())
        probe_error = float((probe - reference)[finite].abs().max())
        floor = self.floor_ulps * self.unit_roundoff(dtype) * math.sqrt(reduction_length) * (1 + scale)
        bound = floor + self.amplification * probe_error
        return bound, probe_error <= self.horizon * (1 + scale)


DEFAULT_MODEL = ErrorModel()
