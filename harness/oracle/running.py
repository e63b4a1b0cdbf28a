"""Running one module on a case: the forward in the case's layout (and the backward
of a random linear functional, when the case asks for gradients), with the results
brought to one canonical layout so that any two runs compare element by element."""

from __future__ import annotations

import contextlib
from typing import Any

import torch
from torch import Tensor
from torch.nn.utils.rnn import PackedSequence, pad_packed_sequence

from harness.cases import Case, Materialized
from harness.oracle.results import Discrepancy, RunResult
from harness.oracle.structure import check_structure, returned_tensors


def _leaf(tensor: Tensor) -> Tensor:
    return tensor.detach().requires_grad_()


def run_module(module, case: Case, tensors: Materialized, dtype, device, who: str) -> RunResult:
    """One forward (and backward, if the case asks) in the case's layout."""
    family = case.family_record
    x, hx = tensors.module_input(case, dtype, device)
    want_grad = case.backward and not case.no_grad
    if want_grad and case.input_grad:
        if isinstance(x, PackedSequence):
            x = PackedSequence(_leaf(x.data), x.batch_sizes, x.sorted_indices, x.unsorted_indices)
        else:
            x = _leaf(x)
        if hx is not None:
            hx = tuple(_leaf(state) for state in hx) if family.cell_state else _leaf(hx)
    initial = None if hx is None else (tuple(hx) if family.cell_state else (hx,))
    grad_mode = torch.no_grad() if case.no_grad else contextlib.nullcontext()
    with grad_mode:
        raw = module(x, hx)
    if who == "candidate":
        check_structure(case, raw, x)
    flat = canonical_results(case, raw)
    gradients: dict[str, Tensor] = {}
    if want_grad:
        functional = sum((value.double() * tensors.cotangents[name].to(value.device)).sum() for name, value in flat.items())
        parameters = module.state_dict(keep_vars=True)
        state_names = list(family.initial_state_names[: len(initial)]) if initial is not None else []
        if case.input_grad:
            names = ["input"] + state_names + list(tensors.weights)
            leaves = [x.data if isinstance(x, PackedSequence) else x] + list(initial or ()) + [parameters[k] for k in tensors.weights]
        else:
            names, leaves = list(tensors.weights), [parameters[k] for k in tensors.weights]
        if not functional.requires_grad:
            cut = f"the input, {', '.join(family.initial_state_names)} and parameters" if case.input_grad else "the parameters (the input and states do not require grad here)"
            raise Discrepancy(
                "gradient", family.result_names[0],
                f"the results ({', '.join(flat)}) do not require grad: the graph to {cut} is cut (a .detach() or torch.no_grad() inside forward?)",
            )
        grads = torch.autograd.grad(functional, leaves, allow_unused=True)
        for name, grad in zip(names, grads):
            if grad is None:
                if who == "candidate":
                    raise Discrepancy("gradient", name, f"no gradient reaches {name}: it is not connected to the results in the candidate's graph")
                continue
            gradients[name] = grad.detach().double().cpu()
    values = {name: value.detach().double().cpu() for name, value in value_layout(case, flat).items()}
    return RunResult(raw, values, gradients, x, initial)


def value_layout(case: Case, flat: dict[str, Tensor]) -> dict[str, Tensor]:
    """`canonical_results` in the layout of `RunResult.values` (still on the graph)."""
    values = {}
    for name, value in flat.items():
        if name == "output":
            value = value.reshape(value.shape[0], value.shape[1], case.num_directions, case.state_width)
        else:  # a state, or a cell's one-step result
            value = value.unsqueeze(2)
        values[name] = value
    return values


def canonical_results(case: Case, raw: Any) -> dict[str, Tensor]:
    """The results in the canonical shapes of `harness.cases.result_shapes`."""
    family = case.family_record
    unbatched = case.layout == "unbatched"
    flat = {}
    for name, value in returned_tensors(case, raw).items():
        if family.cell:
            value = value.unsqueeze(0).unsqueeze(0) if unbatched else value.unsqueeze(0)
        elif name == "output":
            if isinstance(value, PackedSequence):
                value, _ = pad_packed_sequence(value, total_length=case.seq_len)
            elif unbatched:
                value = value.unsqueeze(1)
            elif case.batch_first:
                value = value.transpose(0, 1)
        elif unbatched:
            value = value.unsqueeze(1)
        flat[name] = value
    return flat
