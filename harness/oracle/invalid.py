"""Invalid input: break one thing about a valid input the way a user's mistake would,
ask torch what it raises, and demand the same exception type of the candidate."""

from __future__ import annotations

import dataclasses

import torch
from torch.nn.utils.rnn import PackedSequence

from harness.cases import Case, materialize
from harness.implementation import Implementation
from harness.oracle.results import Discrepancy, exception_line, short_traceback
from harness.oracle.session import construct, load_weights, reference_factory


NOT_GIVEN = object()  # "torch's outcome on an invalid input is not known yet"


def _with_defect(case: Case, x, hx, dtype):
    """Break one thing about a valid input, the way a user's mistake would.

    ``hx`` is the initial state in the case's layout (None, a Tensor, or (h_0, c_0));
    a defect in the state needs one, so pass the state of ``h0_given=True``.
    """
    family = case.family_record
    defect = case.defect
    packed = isinstance(x, PackedSequence)
    data = x.data if packed else x

    def with_data(new):
        return PackedSequence(new, x.batch_sizes, x.sorted_indices, x.unsorted_indices) if packed else new

    if defect == "wrong_width":
        return with_data(torch.cat([data, data[..., :1]], dim=-1)), hx
    if defect == "input_one_feature":
        return with_data(data[..., :1]), hx
    if defect == "dtype_mismatch":
        other = torch.float64 if dtype != torch.float64 else torch.float32
        return with_data(data.to(other)), hx
    if defect == "input_1d":
        return data.reshape(-1), hx
    if defect == "input_4d":
        return data.reshape(1, *([1] * (3 - data.dim())), *data.shape), hx
    if defect == "input_0d":
        return data.new_zeros(()), hx  # a scalar: even an empty batch has one
    if defect == "input_3d":
        return data.reshape(1, -1, data.shape[-1]), hx
    if defect == "empty_sequence":  # generated for plain tensor layouts only
        time_dim = 1 if case.batch_first and data.dim() == 3 else 0
        return data.narrow(time_dim, 0, 0), hx
    states = list(hx) if family.cell_state else [hx]
    if defect == "c0_missing":
        return x, (states[0],)
    if defect == "state_not_tuple":
        return x, states[0]
    target, change = defect.split("_", 1)
    index = 1 if target == "c0" else 0
    state = states[index]
    # the batch dimension of a state in the caller's layout (None when unbatched)
    batch_dim = (0 if state.dim() == 2 else None) if family.cell else (1 if state.dim() == 3 else None)
    if change == "wrong_batch":
        state = torch.cat([state, state.sum(batch_dim, keepdim=True)], dim=batch_dim)
    elif change == "wrong_hidden":
        state = torch.cat([state, state[..., :1]], dim=-1)
    elif change == "wrong_rank":
        state = state.unsqueeze(0)
    elif change == "one_layer":
        state = state[:1]
    elif change == "one_row":
        state = state.narrow(batch_dim, 0, 1)
    elif change == "one_feature":
        state = state[..., :1]
    else:
        raise ValueError(f"unknown defect {defect!r}")
    states[index] = state
    return x, (tuple(states) if family.cell_state else states[0])


def defective_input(case: Case, dtype):
    """The case's (input, state) with its defect applied, in dtype on the case's device."""
    materialized = materialize(dataclasses.replace(case, h0_given=True)) if _state_defect(case) and not case.h0_given else materialize(case)
    x, hx = materialized.module_input(case, dtype, case.device)
    return _with_defect(case, x, hx, dtype)


def _state_defect(case: Case) -> bool:
    return case.defect is not None and (case.defect.startswith(("h0", "c0")) or case.defect in ("c0_missing", "state_not_tuple"))


def reference_outcome(case: Case) -> str | None:
    """The exception type torch's reference raises on the case's invalid input, or None
    if it returns. The campaign asks for this on its own, before the candidate runs,
    so that when torch itself crashes on an input the crash is torch's finding (see
    campaign.py), not the candidate's."""
    module = construct(reference_factory(case.family), case, case.torch_dtype, case.device)
    load_weights(module, materialize(case).weights, "reference")
    x, hx = defective_input(case, case.torch_dtype)
    try:
        module(x, hx)
    except Exception as error:  # noqa: BLE001
        return type(error).__name__
    return None


def check_invalid(implementation: Implementation, case: Case, expected: str | None | object = NOT_GIVEN) -> None:
    """On an invalid input the candidate must raise the same exception type as torch.

    ``expected`` is torch's outcome when already known (`reference_outcome`: an
    exception type's name, or None for "returns normally"); the campaign passes it so
    that torch does not run a second time on an input where it may misbehave.
    """
    if expected is NOT_GIVEN:
        expected = reference_outcome(case)
    if expected is None:
        return  # torch accepts this variant; nothing to demand
    materialized = materialize(case)
    try:
        candidate = construct(implementation.factory, case, case.torch_dtype, case.device)
    except Discrepancy:
        raise
    except Exception as error:
        raise Discrepancy("exception", "constructor", f"constructing the candidate raised {exception_line(error)}", {"traceback": short_traceback(error)}) from error
    load_weights(candidate, materialized.weights, "candidate")
    x, hx = defective_input(case, case.torch_dtype)
    try:
        candidate(x, hx)
        got = None
    except Exception as error:  # noqa: BLE001
        got = error
    what = case.defect.replace("_", " ")
    if got is None:
        raise Discrepancy("exception_type", "forward", f"torch raises {expected} on this invalid input ({what}), but the candidate returned normally", {"expected": expected, "got": None})
    if expected not in [cls.__name__ for cls in type(got).__mro__]:
        raise Discrepancy(
            "exception_type", "forward",
            f"on this invalid input ({what}) torch raises {expected}\n  but the candidate raises {exception_line(got)}",
            {"expected": expected, "got": type(got).__name__},
        )
