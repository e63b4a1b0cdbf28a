"""How the probes' runs become one probe: each widens the error the bound is taken
from, elementwise, where it moved further from the reference (the float32 probe of a
float64 case, the sensitivity, activation and order probes), or stops a comparison
where a perturbation tipped the trajectory past the horizon."""

from __future__ import annotations

import dataclasses
import math
from typing import Iterator

import torch
from torch import Tensor

from harness.oracle.results import RunResult
from harness.oracle.running import run_module
from harness.oracle.session import Session
from harness.tolerance import ErrorModel


def sampled_probes(session: Session, reference: RunResult, probe: RunResult) -> RunResult:
    """The probe widened by the float32 probe of a float64 case and by the sensitivity
    and kink pairs: what torch's rounding costs in this case, sampled more than once."""
    for probe in sampled_widenings(session, reference, probe):
        pass
    return probe


def sampled_widenings(session: Session, reference: RunResult, probe: RunResult) -> Iterator[RunResult]:
    """`sampled_probes` one run at a time: the probe as widened so far, after each of
    the float32 probe and the sensitivity and kink probes that apply (each runs, and is
    built, only when the next one is asked for)."""
    case = session.case
    low_probe = session.low_probe()
    if low_probe is not None:
        low = run_module(low_probe, case, session.materialized, torch.float32, case.device, "probe")
        probe = combined_probe(reference, probe, low, session.model.unit_roundoff(torch.float64) / session.model.unit_roundoff(torch.float32))
        yield probe
    for index in range(len(session.sensitivity_plans)):
        module, ulps, values = session.sensitivity_probe(index)
        perturbed = run_module(module, case, session.sensitivity_inputs(ulps), session.dtype, case.device, "probe")
        probe = widened(reference, probe, perturbed, values=values)
        yield probe


def with_lazy_probes(session: Session, reference: RunResult, probe: RunResult) -> tuple[RunResult, RunResult]:
    """The probe widened by every lazy probe, and the same without the activation
    probes (what rounding alone costs, which the activation adjoint adds to)."""
    full = _with_activation_probes(session, reference, probe)
    rounding = probe
    order = session.order_probe()
    if order is not None:
        reordered = run_module(order, session.case, session.order_inputs(), session.dtype, session.case.device, "probe")
        # Values only: its gradients with respect to the input and W_ih are in the
        # reversed feature order, and what they would add is not measured yet.
        reordered = dataclasses.replace(reordered, gradients=reference.gradients)
        full, rounding = (widened(reference, run, reordered, values=True) for run in (full, rounding))
    if session.tipping_ulps is not None:
        for module, ulps in session.tipping_probes():
            perturbed = run_module(module, session.case, session.sensitivity_inputs(ulps), session.dtype, session.case.device, "probe")
            full, rounding = (_past_horizon_where_tipped(reference, run, perturbed, session.model) for run in (full, rounding))
    return full, rounding


def _past_horizon_where_tipped(reference: RunResult, probe: RunResult, perturbed: RunResult, model: ErrorModel) -> RunResult:
    """The probe, with its values taken from ``perturbed`` only at the elements that
    run moved past the horizon (error over ``horizon`` times 1 + the row's largest
    reference magnitude, as `ErrorModel.value_bound` judges): those elements, and by
    the running maximum what follows them, are then not compared. Gradients and every
    other element keep their bounds."""

    def mark(ref: Tensor, current: Tensor, other: Tensor) -> Tensor:
        error = (other - ref).abs().nan_to_num(nan=math.inf)
        row_scale = 1 + ref.abs().nan_to_num(nan=0.0, posinf=0.0, neginf=0.0).amax(dim=tuple(d for d in range(ref.dim()) if d != 1), keepdim=True)
        tipped = (error > model.horizon * row_scale) & (error > (current - ref).abs().nan_to_num(nan=math.inf))
        return torch.where(tipped, other, current)

    values = {name: mark(reference.values[name], value, perturbed.values[name]) for name, value in probe.values.items()}
    return dataclasses.replace(probe, values=values)


def _with_activation_probes(session: Session, reference: RunResult, probe: RunResult) -> RunResult:
    # The bound multiplies the probe's error by `amplification`; an activation probe's
    # deviation is granted `activation_amplification` times instead, so it is scaled
    # by their ratio before it widens the probe.
    model = session.model
    scale = model.activation_amplification / model.amplification
    for module in session.activation_probes():
        perturbed = run_module(module, session.case, session.materialized, session.dtype, session.case.device, "probe")
        probe = widened(reference, probe, _scaled_deviation(reference, perturbed, scale), values=True)
    return probe


def _scaled_deviation(reference: RunResult, perturbed: RunResult, scale: float) -> RunResult:
    """``perturbed`` with its distance from the reference multiplied by ``scale``."""
    values = {name: reference.values[name] + (value - reference.values[name]) * scale for name, value in perturbed.values.items()}
    gradients = {name: reference.gradients[name] + (grad - reference.gradients[name]) * scale for name, grad in perturbed.gradients.items() if name in reference.gradients}
    return dataclasses.replace(perturbed, values=values, gradients=gradients)


def combined_probe(reference: RunResult, probe: RunResult, low: RunResult, scale: float) -> RunResult:
    """A probe whose error is the larger of the perturbed float64 probe's and the
    float32 probe's scaled to float64 roundoff (elementwise)."""

    def combine(ref: Tensor, high: Tensor, low_precision: Tensor) -> Tensor:
        scaled = (low_precision - ref).abs() * scale
        return ref + torch.maximum((high - ref).abs(), scaled.nan_to_num(nan=math.inf))

    gradients = {name: combine(reference.gradients[name], probe.gradients[name], low.gradients[name]) for name in probe.gradients}
    values = {name: combine(reference.values[name], probe.values[name], low.values[name]) for name in probe.values}
    return dataclasses.replace(probe, values=values, gradients=gradients)


def widened(reference: RunResult, probe: RunResult, perturbed: RunResult, values: bool) -> RunResult:
    """The probe, with its error raised elementwise to a sensitivity probe's where that
    is larger: always for gradients, for the returned values only when ``values``."""

    def widen(ref: Tensor, current: Tensor, other: Tensor) -> Tensor:
        return ref + torch.maximum((current - ref).abs(), (other - ref).abs().nan_to_num(nan=math.inf))

    gradients = {name: widen(reference.gradients[name], grad, perturbed.gradients[name]) for name, grad in probe.gradients.items()}
    if not values:
        return dataclasses.replace(probe, gradients=gradients)
    widened = {name: widen(reference.values[name], value, perturbed.values[name]) for name, value in probe.values.items()}
    return dataclasses.replace(probe, values=widened, gradients=gradients)
