"""The declarations that set a whole case aside, as the covering phase routes around
them (`harness.routing`) and the strategy redraws a covering row's sizes to avoid
them: today an implementation's `KnownFailure`s without ``kinds``."""

from __future__ import annotations

import dataclasses

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


def set_aside_declarations(implementation: Implementation) -> tuple:
    """The declarations that can set a whole case of this implementation aside (none
    when it declares no such known failure). Hashable, so a routing is cached."""
    if any(known.kinds is None for known in implementation.known_failures):
        return (WholeCaseKnownFailures(implementation),)
    return ()
