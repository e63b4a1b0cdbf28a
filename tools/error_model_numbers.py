"""Print the measurements behind docs/error-model.md.

For a few regimes: how far torch float32 (and float16) drifts from the float64
reference step by step, how far a correct re-implementation (`loop`, another GEMM
order) drifts, the bound the error model gives at those steps, and where the
comparison horizon falls. Run: python tools/error_model_numbers.py
"""

from __future__ import annotations

import dataclasses

import torch

from harness.cases import Case, materialize
from harness.oracle.session import perturbed as perturbed_tensor
from harness.probes import activation_probe_factory
from harness.tolerance import DEFAULT_MODEL
from impls.loop import LoopRNN

STEPS_SHOWN = (0, 9, 24, 49, 99, 199)


def outputs(factory, case: Case, dtype, tensors):
    module = factory(**case.constructor(), dtype=dtype)
    module.load_state_dict({k: v.to(dtype) for k, v in tensors.weights.items()})
    with torch.no_grad():
        output, _ = module(tensors.padded_input.to(dtype))
    return output.double()


def probe(case: Case, tensors, dtype):
    """What the oracle measures amplification with: the largest error of torch in the
    case's dtype and two runs perturbed by +/-1 ulp; for float64 the larger of the
    reference perturbed by 64 ulps and torch float32's error scaled to float64."""
    if dtype != torch.float64:
        # float32 and half precision: also the two sensitivity probes, +/-1 ulp.
        reference = outputs(torch.nn.RNN, case, torch.float64, tensors)
        error = (outputs(torch.nn.RNN, case, dtype, tensors) - reference).abs()
        relative = DEFAULT_MODEL.sensitivity_perturbation_ulps * DEFAULT_MODEL.unit_roundoff(dtype)
        for sign in (1.0, -1.0):
            generator = torch.Generator().manual_seed(case.seed + 3)
            perturbed = dataclasses.replace(
                tensors,
                weights={k: perturbed_tensor(w, generator, sign * relative) for k, w in tensors.weights.items()},
                padded_input=perturbed_tensor(tensors.padded_input, generator, sign * relative),
            )
            error = torch.maximum(error, (outputs(torch.nn.RNN, case, dtype, perturbed) - reference).abs())
        return reference + error
    generator = torch.Generator().manual_seed(case.seed + 1)
    relative = DEFAULT_MODEL.probe_perturbation_ulps * DEFAULT_MODEL.unit_roundoff(torch.float64)
    perturbed = dataclasses.replace(
        tensors,
        weights={k: perturbed_tensor(w, generator, relative) for k, w in tensors.weights.items()},
        padded_input=perturbed_tensor(tensors.padded_input, generator, relative),
    )
    reference = outputs(torch.nn.RNN, case, torch.float64, tensors)
    perturbed_error = (outputs(torch.nn.RNN, case, dtype, perturbed) - reference).abs()
    scale = DEFAULT_MODEL.unit_roundoff(torch.float64) / DEFAULT_MODEL.unit_roundoff(torch.float32)
    scaled_error = (outputs(torch.nn.RNN, case, torch.float32, tensors) - reference).abs() * scale
    return reference + torch.maximum(perturbed_error, scaled_error)


def with_activation_probes(case: Case, tensors, dtype, reference, probe_output):
    """The probe widened by the activation probes (the random and the systematic +/-
    pair on every tanh output), each deviation granted activation_amplification
    instead of amplification times, as the oracle widens it when the narrower bound
    is exceeded (harness.oracle.widening)."""
    if DEFAULT_MODEL.activation_budget(case.nonlinearity, dtype) is None:
        return probe_output
    scale = DEFAULT_MODEL.activation_amplification / DEFAULT_MODEL.amplification
    error = (probe_output - reference).abs()
    for sign, systematic in ((1.0, False), (-1.0, False), (1.0, True), (-1.0, True)):
        factory = activation_probe_factory(DEFAULT_MODEL, case.seed * 1000 + 1, sign, systematic=systematic)
        deviation = (outputs(factory, case, dtype, tensors) - reference).abs() * scale
        error = torch.maximum(error, deviation.nan_to_num(nan=float("inf")))
    return reference + error


def report(title: str, case: Case) -> None:
    tensors = materialize(case)
    dtype = case.torch_dtype
    reference = outputs(torch.nn.RNN, case, torch.float64, tensors)
    torch_low = probe(case, tensors, dtype)
    loop_low = outputs(LoopRNN, case, dtype, tensors)
    T, B, F = reference.shape
    shape = (T, B, 1, F)
    valid = torch.ones(T, B, dtype=torch.bool)
    bound, compare = DEFAULT_MODEL.value_bound(reference.reshape(shape), torch_low.reshape(shape), valid, dtype, causal=True)
    widened = with_activation_probes(case, tensors, dtype, reference, torch_low)
    wide_bound, wide_compare = DEFAULT_MODEL.value_bound(reference.reshape(shape), widened.reshape(shape), valid, dtype, causal=True)
    print(f"\n{title}: {case.dtype}, H={case.hidden_size}, weights x{case.weight_gain}, {T} steps")
    print(f"{'step':>5} {'|probe-ref|':>12} {'|loop-ref|':>12} {'bound':>10} {'compared':>9} {'with activation probe':>22}")
    for t in STEPS_SHOWN:
        if t >= T:
            continue
        torch_error = float((torch_low[t] - reference[t]).abs().max())
        loop_error = float((loop_low[t] - reference[t]).abs().max())
        wide = f"{float(wide_bound[t].max()):.3g}" if bool(wide_compare[t].all()) else "not compared"
        print(f"{t:>5} {torch_error:>12.3g} {loop_error:>12.3g} {float(bound[t].max()):>10.3g} {str(bool(compare[t].all())):>9} {wide:>22}")
    horizon = int(compare.reshape(T, -1).all(dim=1).sum())
    wide_horizon = int(wide_compare.reshape(T, -1).all(dim=1).sum())
    print(f"  compared steps: {horizon} of {T} ({wide_horizon} with the activation probe)")


def main() -> None:
    torch.set_num_threads(1)
    base = Case(input_size=64, hidden_size=64, seq_len=200, batch=4, backward=False, seed=1)
    report("tame (default init)", base)
    report("chaotic (the issue's case)", dataclasses.replace(base, weight_gain=8.0))
    report("chaotic, float64", dataclasses.replace(base, weight_gain=8.0, dtype="float64"))
    report("tame, float16", dataclasses.replace(base, dtype="float16"))
    report("chaotic, bfloat16", dataclasses.replace(base, weight_gain=3.0, dtype="bfloat16"))


if __name__ == "__main__":
    main()


