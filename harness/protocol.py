"""What a campaign asks of the process that runs a candidate: one frozen dataclass per
kind of request, and `answer`, the one function that carries a request out.

The worker process (`harness.worker_process`) and the in-process runner
(`harness.isolation.InProcess`) both call `answer`; `harness.isolation.Worker` only
sends the request and waits. A request is a plain value: it pickles across the
worker's pipe, its case with it.
"""

from __future__ import annotations

import dataclasses
import math
from typing import ClassVar, Union

from harness import oracle
from harness.cases import Case
from harness.implementation import Implementation, Unavailable
from harness.tolerance import ErrorModel


@dataclasses.dataclass(frozen=True)
class Available:
    """Can the implementation be built here? Answers the reason it cannot (its
    `Unavailable`'s text), or None: it was built, or it failed in a way the fuzzer
    reports on the first case."""

    case: ClassVar[None] = None


@dataclasses.dataclass(frozen=True)
class Check:
    """Run the candidate and torch on ``case`` and compare (`oracle.check`). Answers the
    case's `oracle.Margins`; raises `Discrepancy`. Where the worst margin reaches
    ``exact_margins_from``, the margins are the ones a check that samples torch's rounding
    on every case would give (`oracle.check`'s argument of that name)."""

    case: Case
    exact_margins_from: float = math.inf


@dataclasses.dataclass(frozen=True)
class CheckWaiving:
    """`Check`, with the kinds of finding in ``waived`` set aside: what the implementation's
    declared known failures waive on this case (`harness.implementation.WAIVABLE_KINDS`)."""

    case: Case
    waived: frozenset[str]
    exact_margins_from: float = math.inf


@dataclasses.dataclass(frozen=True)
class CheckExpecting:
    """`Check` of an invalid case whose reference outcome is already known (`ReferenceOutcome`,
    asked first in a process of its own), so torch does not run again on an input where it
    may misbehave. ``expected``: the name of the exception type torch raises, or None when
    torch returns normally."""

    case: Case
    expected: str | None


@dataclasses.dataclass(frozen=True)
class Localize:
    """The first layer whose output already differs from torch's on ``case`` (`oracle.localize_layer`)."""

    case: Case


@dataclasses.dataclass(frozen=True)
class ReferenceOutcome:
    """What torch's reference does on the invalid ``case``: the name of the exception type
    it raises, or None when it returns (`oracle.reference_outcome`)."""

    case: Case


@dataclasses.dataclass(frozen=True)
class ReferenceDigest:
    """What torch computes or raises on ``case``, as a short text to compare between runs
    (`oracle.reference_digest`)."""

    case: Case


REQUESTS = (Available, Check, CheckWaiving, CheckExpecting, Localize, ReferenceOutcome, ReferenceDigest)
"""Every kind of request; `answer` carries out these and nothing else."""
Request = Union[Available, Check, CheckWaiving, CheckExpecting, Localize, ReferenceOutcome, ReferenceDigest]
CANDIDATE_CHECKS = (Check, CheckWaiving, CheckExpecting)
"""The requests that run the candidate on a case: the ones whose time predicts a hang."""


class NotARequest(TypeError):
    """Something other than one of `REQUESTS` was asked of a runner."""

    def __init__(self, value: object):
        super().__init__(
            f"{value!r} is not a request: a runner carries out only the dataclasses of harness.protocol "
            f"({', '.join(kind.__name__ for kind in REQUESTS)}); build one of those instead"
        )


def require_request(value: object) -> None:
    """Raise `NotARequest` unless ``value`` is one of `REQUESTS`."""
    if not isinstance(value, REQUESTS):
        raise NotARequest(value)


def answer(request: Request, implementation: Implementation, model: ErrorModel, *, lazy_probes: bool = True):
    """Carry ``request`` out here, on ``implementation`` under ``model``, and return its
    answer; a finding is raised as `Discrepancy`. ``lazy_probes=False`` runs every
    probe that widens a bound on every checked case (`oracle.check`)."""
    require_request(request)
    if isinstance(request, Available):
        return _unavailable_reason(implementation)
    if isinstance(request, Check):
        return oracle.check(implementation, request.case, model, lazy_probes=lazy_probes, exact_margins_from=request.exact_margins_from)
    if isinstance(request, CheckWaiving):
        return oracle.check(
            implementation, request.case, model, waive=request.waived, lazy_probes=lazy_probes, exact_margins_from=request.exact_margins_from,
        )
    if isinstance(request, CheckExpecting):
        return oracle.check(implementation, request.case, model, request.expected, lazy_probes=lazy_probes)
    if isinstance(request, Localize):
        return oracle.localize_layer(implementation, request.case, model)
    if isinstance(request, ReferenceOutcome):
        return oracle.reference_outcome(request.case)
    if isinstance(request, ReferenceDigest):
        return oracle.reference_digest(request.case)
    raise NotARequest(request)  # a kind in REQUESTS that this function does not carry out yet


def _unavailable_reason(implementation: Implementation) -> str | None:
    try:
        implementation.factory(input_size=1, hidden_size=1)
    except Unavailable as error:
        return str(error)
    except Exception:  # noqa: BLE001 - a broken factory is the fuzzer's finding, on the first case
        return None
    return None
