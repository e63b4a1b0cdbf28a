"""Where a failure starts in a stack of layers: the case re-checked with the stack
cut after each layer."""

from __future__ import annotations

import dataclasses

from harness.cases import Case
from harness.implementation import Implementation
from harness.oracle.results import Discrepancy
from harness.oracle.verdict import check
from harness.tolerance import DEFAULT_MODEL, ErrorModel


def localize_layer(implementation: Implementation, case: Case, model: ErrorModel = DEFAULT_MODEL) -> int | None:
    """The first layer whose output already differs: rerun with the stack cut after
    each layer (weights of the kept layers only). None if the cut stacks all agree."""
    if case.family_record.cell or case.num_layers == 1 or case.defect is not None:
        return None
    for layers in range(1, case.num_layers):
        shorter = dataclasses.replace(case, num_layers=layers, second_call="none", backward=False)
        try:
            check(implementation, shorter, model)
        except Discrepancy:
            return layers - 1
        except Exception:  # noqa: BLE001 - localisation is best effort
            return None
    return case.num_layers - 1
