"""The declarations that set a whole case aside, as the covering phase routes around
them (`harness.routing`) and the strategy redraws a covering row's sizes to avoid
them: an implementation's `KnownFailure`s without ``kinds``, and the invalid inputs on
which torch itself is undefined (`harness.torch_undefined`)."""

from __future__ import annotations

import dataclasses

from harness import torch_undefined
from harness.cases import Case
from harness.implementation import Implementation, known_failures_covering


@dataclasses.dataclass(frozen=True)
class WholeCaseKnownFailures:
    """The implementation's known failures that set a whole case aside (``kinds=None``),
    as one `harness.routing.SetAside`. A predicate that raises raises
    `harness.implementation.KnownFailurePredicateError`."""

    implementation: Implementation

    def __call__(self, case: Case) -> bool:
        return any(known.kinds is None for known in known_failures_covering(self.implementation, case))


@dataclasses.dataclass(frozen=True)
class TorchUndefined:
    """torch's undefined behaviour on an invalid input (`harness.torch_undefined`), as
    one `harness.routing.SetAside`: it sets the case aside for every implementation."""

    def __call__(self, case: Case) -> bool:
        return torch_undefined.covering(case) is not None


def set_aside_declarations(implementation: Implementation) -> tuple:
    """The declarations that can set a whole case of this implementation aside (none
    when neither its known failures nor torch's undefined behaviour reach its family).
    Hashable, so a routing is cached."""
    declarations: list = []
    if implementation.family in torch_undefined.families():
        declarations.append(TorchUndefined())
    if any(known.kinds is None for known in implementation.known_failures):
        declarations.append(WholeCaseKnownFailures(implementation))
    return tuple(declarations)
