"""One case's verdict (`check`): every call the case makes, run on the reference,
the probes and the candidate, held to the contract, then to the bounds; the lazy
probes run only where the narrower bounds would fail the candidate."""

from __future__ import annotations

import math
from typing import Callable

import torch

from harness.cases import Case
from harness.implementation import Implementation
from harness.oracle.comparison import compare_gradients, compare_values
from harness.oracle.invalid import NOT_GIVEN, check_invalid
from harness.oracle.margins import Margins
from harness.oracle.results import Discrepancy, RunResult, exception_line, short_traceback
from harness.oracle.running import run_module
from harness.oracle.session import Session, probe_tensors
from harness.oracle.structure import alias_view, input_snapshot, shared_storages
from harness.oracle.widening import sampled_probes, sampled_widenings, with_lazy_probes
from harness.tolerance import DEFAULT_MODEL, ErrorModel


def check(
    implementation: Implementation, case: Case, model: ErrorModel = DEFAULT_MODEL,
    expected: str | None | object = NOT_GIVEN, waive: frozenset[str] = frozenset(), lazy_probes: bool = True,
    exact_margins_from: float = math.inf,
) -> Margins:
    """Raise `Discrepancy` if the candidate differs from torch on this case (for an
    invalid case, ``expected`` may carry torch's outcome, see `check_invalid`).
    ``waive``: kinds of finding a declared `KnownFailure` sets aside on this case
    (`harness.implementation.WAIVABLE_KINDS`); every other check holds.

    Returns the margin of every compared value and gradient (none for an invalid case),
    under the bounds that judged it: the narrowest ones the candidate was within. With
    ``lazy_probes`` False every probe that widens a bound (the float32 probe of a float64
    case, the sensitivity and kink pairs, the activation, order and tipping probes) runs
    on every case, and the margins are under the bounds they give; the verdict is the same.

    A margin under a narrower bound is larger than under the wider one, never smaller.
    ``exact_margins_from``: where a call's worst margin under the probe alone reaches
    it, the float32 probe and the sensitivity and kink pairs run anyway and the call's
    margins are under their bounds, as if they ran on every case. So a worst margin
    that reaches it is the one those probes give, and one below it is no smaller. A
    campaign passes the best worst margin its search has seen: whatever could match or
    beat it is exact, and below it a larger, cheaper value tells the search the same."""
    if case.defect is not None:
        check_invalid(implementation, case, expected)
        return Margins()
    session = Session(implementation, case, model)
    margins = _check_call(session, "", waive, lazy_probes, exact_margins_from)
    if case.second_call != "none":
        session.update_weights()
        try:
            margins += _check_call(session, f" on the second call, after {case.second_call.replace('_', ' ')}", waive, lazy_probes, exact_margins_from)
        except Discrepancy as discrepancy:
            discrepancy.evidence["second_call"] = True
            raise
    return margins


def _check_call(session: Session, call: str, waive: frozenset[str] = frozenset(), lazy_probes: bool = True, exact_margins_from: float = math.inf) -> Margins:
    case = session.case
    reference = run_module(session.reference, case, session.materialized, torch.float64, "cpu", "reference")
    probe = run_module(session.probe, case, session.probe_input if call == "" else probe_tensors(session), session.dtype, case.device, "probe")
    x, hx = session.materialized.module_input(case, session.dtype, case.device)
    before = input_snapshot(x, hx)
    weights_before = {k: v.detach().clone() for k, v in session.candidate.state_dict().items()}
    try:
        candidate = run_module(session.candidate, case, session.materialized, session.dtype, case.device, "candidate")
    except Discrepancy:
        raise
    except Exception as error:  # noqa: BLE001 - the candidate's exception is the finding
        raise Discrepancy("exception", "forward", f"the candidate raised {exception_line(error)} on a valid input{call} (torch returns normally)", {"traceback": short_traceback(error)}) from error
    after = input_snapshot(candidate.input, candidate.initial)
    for name, old, new in zip(("input", *case.family_record.initial_state_names), before, after):
        if "mutation" not in waive and not torch.equal(old.nan_to_num(), new.nan_to_num()):
            raise Discrepancy("mutation", name, f"the candidate modified its {name} in place{call}: max change {float((old.double() - new.double()).abs().max()):.3g}")
    for key, value in session.candidate.state_dict().items():
        if "mutation" not in waive and not torch.equal(weights_before[key].nan_to_num(), value.nan_to_num()):
            raise Discrepancy("mutation", key, f"forward modified the parameter {key} in place{call}")
    new_aliases = shared_storages(alias_view(case, candidate)) - shared_storages(alias_view(case, probe))
    if new_aliases and "aliasing" not in waive:
        pairs = ", ".join(" and ".join(sorted(pair)) for pair in sorted(new_aliases, key=sorted))
        raise Discrepancy("aliasing", pairs, f"{pairs} share memory in the candidate's result{call}, but not in torch's: writing to one changes the other")

    def judge(probe: RunResult, rounding: RunResult | None = None) -> Margins:
        adjoint = _lazy(session.activation_adjoint) if rounding is not None and session.activation_factories else None
        margins = compare_values(case, reference, probe, candidate, session.model, call, rounding, adjoint)
        if candidate.gradients or reference.gradients:
            margins += compare_gradients(case, reference, probe, candidate, session.model, call)
        return margins

    # Every other probe can only widen the bounds (or stop a comparison at the
    # horizon), so running them only where the candidate is out of the narrower
    # bounds gives the same verdict at a fraction of the cost: first the probe alone,
    # then sampled more than once (`sampled_probes`), then the activation, order and
    # tipping probes (`with_lazy_probes`). What counts is the verdict of the widest
    # bounds tried; a case that holds under narrower ones holds under them.
    if lazy_probes and session.sampling_only_relaxes:
        try:
            margins = judge(probe)
        except Discrepancy:
            pass
        else:
            # The candidate holds, and each sampled run can only lower its margins: the
            # runs go on only while the worst could still reach exact_margins_from.
            widenings = sampled_widenings(session, reference, probe)
            while True:
                worst = margins.worst()
                wider = None if worst is None or worst < exact_margins_from else next(widenings, None)
                if wider is None:
                    return margins
                margins = judge(wider)
    probe = sampled_probes(session, reference, probe)
    if not session.activation_factories and session.tipping_ulps is None:
        return judge(probe)
    if not lazy_probes:
        return judge(*with_lazy_probes(session, reference, probe))
    try:
        return judge(probe)
    except Discrepancy:
        return judge(*with_lazy_probes(session, reference, probe))


def _lazy(make: Callable[[], Callable]) -> Callable:
    """A callable that calls ``make()`` the first time it is called, and what that
    returned from then on."""
    made: list[Callable] = []

    def call(*args):
        if not made:
            made.append(make())
        return made[0](*args)

    return call
