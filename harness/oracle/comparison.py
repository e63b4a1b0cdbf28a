"""Values and gradients held to the error model's bounds, and a failure explained:
the worst element, where it sits (time step, batch row, direction, layer), how many
are out, torch's own error there, and where each direction first diverged."""

from __future__ import annotations

import math
from typing import Callable

import torch
from torch import Tensor

from harness.cases import Case
from harness.oracle.margins import Margin, Margins
from harness.oracle.results import Discrepancy, RunResult
from harness.probes import ADJOINT_CHUNK, ADJOINT_FIRST_CHUNK, ADJOINT_LIMIT
from harness.tolerance import ErrorModel


def _margin(kind: str, name: str, error: Tensor, bound: Tensor | float, compared: Tensor) -> Margins:
    """The tensor's worst |error| / bound over its compared elements; none if nothing was compared."""
    if not bool(compared.any()):
        return Margins()
    ratio = (error / bound).nan_to_num(nan=math.inf)
    return Margins((Margin(kind, name, float(torch.where(compared, ratio, torch.zeros_like(ratio)).max())),))


def compare_values(
    case: Case, reference: RunResult, probe: RunResult, candidate: RunResult, model: ErrorModel, call: str,
    rounding: RunResult | None = None, adjoint: Callable[[str, Tensor], Tensor] | None = None,
) -> Margins:
    """Every returned tensor within the error model; NaN/Inf only where torch has them.
    Returns each compared tensor's margin; raises `Discrepancy` at the first out of bound.

    Step-by-step results (a layer's output, a cell's h' and c') get a bound that
    grows along each direction's time order; final states (h_n, c_n) one per batch
    row, which borrows the error the row's outputs showed at every step, and are not
    compared in a row whose outputs went past the horizon.

    With ``rounding`` (the probe without the activation probes) and ``adjoint``
    (`harness.oracle.session.Session.activation_adjoint`), an element out of its bound is held instead to
    the bound ``rounding`` gives plus the most that activation errors within the
    budget can move it (`_worst_case_bounds`), where that is larger.
    """
    family = case.family_record
    first = family.result_names[0]
    steps, batch = reference.values[first].shape[:2]
    valid = torch.zeros(steps, batch, dtype=torch.bool)
    if case.lengths is not None:
        for row, length in enumerate(case.lengths):
            valid[:length, row] = True
    else:
        valid[:] = True
    causal = case.num_layers == 1 or not case.bidirectional
    row_error = _row_error(reference.values[first], probe.values[first], valid)
    rows_past = model.rows_past_horizon(reference.values[first], row_error, valid) if row_error is not None and not family.cell else None
    margins = Margins()
    for name in family.result_names:
        want, near, got = reference.values[name], probe.values[name], candidate.values[name]
        rounding_bound = None
        if family.cell or name == "output":
            bound, compare = model.value_bound(want, near, valid, case.torch_dtype, causal)
            if rounding is not None:
                rounding_bound, _ = model.value_bound(want, rounding.values[name], valid, case.torch_dtype, causal)
            margins += _check_elements(case, name, want, near, got, bound, compare, call, valid, rounding_bound, adjoint)
        else:
            state_valid = torch.ones(want.shape[0], want.shape[1], dtype=torch.bool)
            bound, compare = model.value_bound(want, near, state_valid, case.torch_dtype, causal=False, row_error=row_error)
            if rounding is not None:
                rounding_row_error = _row_error(reference.values[first], rounding.values[first], valid)
                rounding_bound, _ = model.value_bound(want, rounding.values[name], state_valid, case.torch_dtype, causal=False, row_error=rounding_row_error)
            if rows_past is not None:
                compare = compare & ~rows_past.reshape(1, -1, 1, 1)
            margins += _check_elements(case, name, want, near, got, bound, compare, call, state_valid, rounding_bound, adjoint)
    return margins


def _row_error(reference: Tensor, probe: Tensor, valid: Tensor) -> Tensor | None:
    """(B,): the probe's largest error on each batch row's valid steps of a layer output."""
    error = (probe - reference).abs().nan_to_num(nan=math.inf)
    error = torch.where(valid.reshape(*valid.shape, 1, 1), error, torch.zeros_like(error))
    return error.amax(dim=(0, 2, 3)) if error.numel() else None


def _worst_case_bounds(name: str, error: Tensor, bound: Tensor, rounding_bound: Tensor, violation: Tensor, adjoint) -> tuple[Tensor, dict]:
    """``bound`` raised, at the out-of-bound elements, to ``rounding_bound`` plus the
    activation adjoint's worst case there, where that is larger. The elements go worst
    first (by |error| / bound), 8 and then 64 per batched backward; the first batch with an
    element still out of bound ends the search (one is enough for a verdict; a real
    bug rarely costs more than the first batch, of 8), as do 512 elements. Returns the new bound
    and {index: worst case} for the elements searched."""
    ratio = (error / bound).nan_to_num(nan=math.inf, posinf=math.inf)
    candidates = (violation & torch.isfinite(error)).nonzero()
    if not len(candidates):
        return bound, {}
    order = ratio[tuple(candidates.T)].argsort(descending=True)
    candidates = candidates[order][:ADJOINT_LIMIT]
    bound = bound.clone()
    searched = {}
    start = 0
    while start < len(candidates):
        # 8 first: a real bug is nearly always still out of bound at its worst element,
        # and a batch of 8 costs a tenth of a batch of 64 on a large LSTM.
        size = ADJOINT_FIRST_CHUNK if start == 0 else ADJOINT_CHUNK
        index = candidates[start : start + size]
        start += size
        where = tuple(index.T)
        worst = adjoint(name, index)
        bound[where] = torch.maximum(bound[where], rounding_bound[where] + worst)
        searched.update({tuple(int(i) for i in row): float(w) for row, w in zip(index, worst)})
        if bool((error[where] > bound[where]).any()):
            break
    return bound, searched


def _check_elements(case, name, reference, probe, candidate, bound, compare, call, valid, rounding_bound=None, adjoint=None) -> Margins:
    # Non-finite values: where the reference and the probe agree on a non-finite value,
    # the candidate must have it too; where both are finite, it must be finite.
    both_finite = torch.isfinite(reference) & torch.isfinite(probe) & valid.reshape(*valid.shape, *([1] * (reference.dim() - valid.dim())))
    bad_nonfinite = both_finite & ~torch.isfinite(candidate)
    error = (candidate - reference).abs()
    violation = compare & ~(error <= bound)  # NaN error counts as a violation
    searched: dict = {}
    if adjoint is not None and rounding_bound is not None and bool(violation.any()):
        bound, searched = _worst_case_bounds(name, error, bound, rounding_bound, violation, adjoint)
        violation = compare & ~(error <= bound)
    margin = _margin("value", name, error, bound, compare)
    if bool(bad_nonfinite.any()):
        violation = violation | bad_nonfinite
    if not bool(violation.any()):
        return margin
    ratio = torch.where(violation, (error / bound).nan_to_num(nan=math.inf, posinf=math.inf), torch.zeros_like(error))
    shown = violation.clone()
    if searched:
        # Report an element whose worst case was computed and is still exceeded.
        tried = torch.zeros_like(violation)
        tried[tuple(torch.tensor(list(searched)).T)] = True
        if bool((violation & tried).any()):
            shown = violation & tried
    ratio = torch.where(shown, ratio, torch.zeros_like(ratio))
    worst = tuple(int(i) for i in divmod_index(int(ratio.flatten().argmax()), ratio.shape))
    where = _where(case, name, worst)
    finite_error = torch.where(compare, error, torch.zeros_like(error)).nan_to_num(nan=math.inf)
    # A relative error means something only where the reference is larger than the bound
    # (at an exact zero it is infinite, near one it is noise).
    magnitude = abs(float(reference[worst]))
    relative = f" (relative {float(error[worst]) / magnitude:.3g})" if magnitude > float(bound[worst]) else ""
    lines = [
        f"{name} differs{call}: worst at {where}: candidate {float(candidate[worst]):.9g}, reference {float(reference[worst]):.9g}, "
        f"|error| {float(error[worst]):.3g}{relative} > bound {float(bound[worst]):.3g}",
        f"  {int(violation.sum())} of {int(compare.sum())} compared elements out of bound; max |error| {float(finite_error.max()):.3g}; "
        f"torch's own {case.dtype} error there {float((probe - reference).abs()[worst]):.3g}",
    ]
    if worst in searched:
        lines.append(
            f"  tanh and sigmoid off by their whole budget (`ErrorModel.activation_ulps`), in the worst pattern for this element, move it by {searched[worst]:.3g} "
            f"(first order); the bound is at least torch's rounding bound plus that"
        )
    if name == "output":
        lines.extend(_first_divergence(case, violation))
    raise Discrepancy(
        "value", name, "\n".join(lines),
        {"index": list(worst), "bound": float(bound[worst]), "reference": float(reference[worst]), "candidate": float(candidate[worst])},
    )


def divmod_index(flat: int, shape) -> tuple[int, ...]:
    index = []
    for size in reversed(shape):
        flat, rest = divmod(flat, size)
        index.append(rest)
    return tuple(reversed(index))


def _where(case: Case, name: str, index: tuple[int, ...]) -> str:
    if case.family_record.cell:
        _, row, _, feature = index
        return f"batch row {row}, feature {feature}" if case.layout != "unbatched" else f"feature {feature}"
    if name == "output":
        step, row, direction, feature = index
        text = f"time step {step}, batch row {row}, feature {feature}"
        if case.bidirectional:
            text += f" ({'reverse' if direction else 'forward'} half, output feature {direction * case.state_width + feature})"
        return text
    layer_direction, row, _, feature = index
    layer, direction = divmod(layer_direction, case.num_directions)
    return f"{name}[{layer_direction}] (layer {layer}, {'reverse' if direction else 'forward'} direction), batch row {row}, feature {feature}"


def _first_divergence(case: Case, violation: Tensor) -> list[str]:
    """Where each direction first leaves the reference, in its own processing order."""
    lines = []
    for direction in range(case.num_directions):
        steps = violation[:, :, direction].flatten(1).any(dim=1).nonzero().flatten().tolist()
        if not steps:
            continue
        first = max(steps) if direction == 1 else min(steps)
        label = "reverse" if direction == 1 else "forward"
        lines.append(f"  first divergent step of the last layer's {label} direction: t={first}")
    return lines


def compare_gradients(case: Case, reference: RunResult, probe: RunResult, candidate: RunResult, model: ErrorModel, call: str) -> Margins:
    """Every gradient within the error model's bound for the longest dot product behind it.
    Returns each compared gradient's margin; raises `Discrepancy` at the first out of bound."""
    # The longest dot product behind one gradient element: a layer input row, the
    # recurrent row of every gate, over every step and batch row.
    gates = case.family_record.gate_count
    K = (max(case.input_size, case.num_directions * case.state_width) + gates * case.hidden_size) * case.seq_len * max(case.batch, 1)
    margins = Margins()
    if _backward_overflowed(case, reference, probe):
        return margins
    for name, expected in reference.gradients.items():
        got = candidate.gradients.get(name)
        if got is None:
            raise Discrepancy("gradient", name, f"no gradient for {name}{call}")
        if got.shape != expected.shape:
            raise Discrepancy("gradient", name, f"gradient of {name} has shape {tuple(got.shape)}, but torch's has {tuple(expected.shape)}")
        bound, meaningful = model.tensor_bound(expected, probe.gradients[name], case.torch_dtype, K)
        if not meaningful:
            continue
        finite = torch.isfinite(expected) & torch.isfinite(probe.gradients[name])
        error = (got - expected).abs()
        margins += _margin("gradient", name, error, bound, finite)
        bad = finite & ~(error <= bound)
        if bool(bad.any()):
            masked = torch.where(bad, error.nan_to_num(nan=math.inf), torch.zeros_like(error))
            worst = divmod_index(int(masked.flatten().argmax()), masked.shape)
            raise Discrepancy(
                "gradient", name,
                f"gradient of the random functional w.r.t. {name} differs{call}: worst at index {list(worst)}: "
                f"candidate {float(got[worst]):.9g}, reference {float(expected[worst]):.9g}, |error| {float(error[worst]):.3g} > bound {bound:.3g}\n"
                f"  {int(bad.sum())} of {bad.numel()} elements out of bound; max |reference| {float(expected[finite].abs().max()) if bool(finite.any()) else 0:.3g}",
                {"index": list(worst), "bound": bound, "reference": float(expected[worst]), "candidate": float(got[worst])},
            )
    return margins


def _backward_overflowed(case: Case, reference: RunResult, probe: RunResult) -> bool:
    """Whether torch's own backward in the case's half or single precision overflowed:
    a gradient non-finite where float64's is finite. Past that, every gradient hangs on
    the order of operations on infinities (inf * 0 is NaN, a masked inf is 0): one
    float16 relu case gave torch 0 and another correct implementation NaN for the
    same input gradient, whose float64 value is 0. No gradient is compared there, as
    past the horizon."""
    if case.torch_dtype == torch.float64:
        return False  # its probes are float64 itself and float32 scaled down: no overflow to read
    return any(
        bool((torch.isfinite(expected) & ~torch.isfinite(probe.gradients[name])).any())
        for name, expected in reference.gradients.items() if name in probe.gradients
    )
