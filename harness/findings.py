"""What ends a campaign's stage comes to, and a failure is reported only once it is sure.

Before a finding on a minimal case is reported, torch's own outcome on that case is
asked twice more, each time in a worker process of its own (`protocol.ReferenceDigest`):
a reference that disagrees with itself (values, the exception type on an invalid input,
a crash) is never the candidate's fault, so the case is set aside as "torch is not
deterministic here", with what torch did each time, and the stage goes on without it.
Then the finding is confirmed from scratch: the minimal case alone, in a fresh worker.
A finding that does not come back stays a failure, reported as a nondeterministic
candidate (its outcome depends on what ran before it, or varies). Then it is localised
and written as a repro script.
"""

from __future__ import annotations

import dataclasses
import traceback
from pathlib import Path

from hypothesis.errors import Flaky

from harness import locate, oracle, protocol
from harness.cases import Case
from harness.database import slug
from harness.isolation import SLOW_CONFIRM_FACTOR, HarnessError, Worker
from harness.campaign_result import Failure
from harness.repro import write_repro

REFERENCE_RUNS = 2
"""Fresh worker processes that run torch's side of a minimal case before it is reported."""
TORCH_NOT_DETERMINISTIC = "torch is not deterministic here (its outcome changed between runs of the same case), so nothing was asked of the candidate"


@dataclasses.dataclass(frozen=True)
class Conclusion:
    """What a stage that an error ended comes to: a difference from torch (``fail``) or
    the harness or the reference broken (``error``)."""

    verdict: str  # fail | error
    failure: Failure | None
    reason: str = ""  # the harness's traceback, or why the candidate is called nondeterministic


def conclude(campaign, error: BaseException) -> Conclusion | None:
    """The verdict of a stage that ``error`` ended. None, with nothing reported, when
    torch disagreed with itself on the minimal case: it is then in ``campaign.skipped``
    and the stage runs again without it."""
    runner = campaign.runner
    case, found = campaign.last_failure.get("case"), campaign.last_failure.get("error")
    request = campaign.last_failure.get("request")
    flaky = isinstance(error, Flaky) or "Flaky" in type(error).__name__
    if getattr(runner, "first_hang", None) is not None and flaky:
        # A case that exceeded a shortened limit once and finished on replay was slow
        # under load, not nondeterministic: report the case that exceeded the full timeout.
        case, found, flaky = runner.first_hang, full_timeout(runner), False
    if case is None or not (flaky or isinstance(found, oracle.Discrepancy)):
        # Not a difference from torch: the harness or the reference itself broke.
        detail = "".join(traceback.format_exception(type(error), error, error.__traceback__)[-8:])
        failure = None if case is None else Failure("error", "", case.describe() + "\n" + detail, case, None)
        return Conclusion("error", failure, detail)
    if isinstance(found, oracle.Discrepancy) and found.kind == "timeout" and not found.evidence.get("confirmed", True):
        case, found = confirm_hang(runner, case, found)
    # The request that failed, on the case reported (a hang's may be another case).
    request = protocol.Check(case) if request is None else dataclasses.replace(request, case=case)
    outcomes = torch_outcomes(campaign, request)
    if len(set(outcomes)) > 1:
        campaign.skipped[case] = f"{TORCH_NOT_DETERMINISTIC}: {case.describe().splitlines()[0]}; torch: " + " / ".join(outcomes)
        return None
    if flaky:
        detail = "".join(traceback.format_exception(type(error), error, error.__traceback__)[-8:])
        reason = "the candidate is nondeterministic: the same case passed and failed\n" + detail
        return Conclusion("fail", Failure("nondeterministic", "", case.describe() + "\n" + reason, case, None, confirmed=False), reason)
    return Conclusion("fail", _report(campaign, found, request))


def torch_outcomes(campaign, request: protocol.Request) -> list[str]:
    """What torch did on the request's case: in the campaign, where that is known (the
    exception type on an invalid input), then in `REFERENCE_RUNS` fresh worker processes."""
    outcomes = []
    if isinstance(request, protocol.CheckExpecting):
        outcomes.append("returns normally" if request.expected is None else f"raises {request.expected}")
    for _ in range(REFERENCE_RUNS):
        try:
            outcomes.append(alone(campaign, protocol.ReferenceDigest(request.case)))
        except oracle.Discrepancy as found:
            outcomes.append("the process crashed" if found.kind == "crash" else f"did not finish ({found.kind})")
        except HarnessError as error:
            outcomes.append(f"the harness failed: {str(error).strip().splitlines()[-1]}")
    return outcomes


def alone(campaign, request: protocol.Request):
    """``request`` in a worker process of its own, started for it and stopped after it:
    nothing that ran before can have left state behind. Without isolation, in this process."""
    runner = campaign.runner
    if not isinstance(runner, Worker):
        return runner.request(request)
    with Worker(campaign.implementation, campaign.model, campaign.timeout, runner.cancel) as fresh:
        fresh.calibrated = True  # the case alone: no calibration call before it
        return fresh.request(request, again=True)


def replayed(campaign, request: protocol.Request) -> str:
    """What the candidate does on the minimal case alone, from scratch: the finding's
    kind, ``passed``, or what else happened."""
    try:
        alone(campaign, request)
    except oracle.Discrepancy as found:
        return found.kind
    except HarnessError as error:
        return f"the harness failed ({str(error).strip().splitlines()[-1]})"
    return "passed"


def _report(campaign, found: oracle.Discrepancy, request: protocol.Request) -> Failure:
    """The failure of the request's case as the report shows it. Everything here explains
    the finding; nothing that goes wrong while explaining may lose it, so each step's own
    error is kept beside it."""
    implementation, runner, case = campaign.implementation, campaign.runner, request.case
    explainer_errors: list[str] = []
    summary = case.describe() + "\n" + found.summary
    # A hang was run again in a fresh worker already, with a longer limit.
    again = found.kind if found.kind == "timeout" else replayed(campaign, request)
    confirmed = again == found.kind
    if confirmed:
        summary += "\n  confirmed: the minimal case alone, in a fresh worker process, fails the same way"
    else:
        summary += (
            f"\n  NOT confirmed: run again alone in a fresh worker process, the candidate {again if again == 'passed' else 'gave: ' + again}. "
            "Its outcome depends on what ran before it in the same process (state kept between calls or cases) or varies "
            "from run to run: a nondeterministic candidate. The campaign's replay command runs the same cases in the same "
            "order; the repro script runs the minimal case alone"
        )
    layer = None
    if found.kind == "value":
        try:
            layer = runner.request(protocol.Localize(case))
        except Exception as localize_error:  # noqa: BLE001 - localisation is best effort
            explainer_errors.append(f"localising the first divergent layer failed: {type(localize_error).__name__}: {localize_error}")
    if layer is not None:
        summary += f"\n  first layer whose output already differs: layer {layer} (stack cut after each layer and re-checked)"
    repro_path = None
    if campaign.repro_dir is not None:
        path = Path(campaign.repro_dir) / f"repro_{slug(implementation.name)}.py"
        try:
            repro_path = write_repro(path, implementation.name, implementation.factory, case, found, factory_import=_factory_import(implementation))
            summary += f"\n  repro: python {repro_path}"
        except Exception as repro_error:  # noqa: BLE001 - the finding stands without its script
            explainer_errors.append("writing the repro script failed: " + "".join(traceback.format_exception_only(type(repro_error), repro_error)).strip())
    for text in explainer_errors:
        summary += f"\n  (harness: {text}; the finding above stands)"
    return Failure(found.kind, found.subject, summary, case, repro_path, layer, explainer_errors, confirmed=confirmed)


def confirm_hang(runner, case: Case, found: oracle.Discrepancy) -> tuple[Case, oracle.Discrepancy]:
    """A minimal case that exceeded a shortened limit is run again with a longer one.
    If it still hangs, it is reported; if it finishes, it was only slow, and the case
    that exceeded the full timeout is reported instead."""
    longer = runner.confirm_hang(case, found.evidence["limit"])
    if longer is not None:
        summary = found.summary + f"\n  run again with a {longer:.3g}s limit, it still did not finish"
        return case, oracle.Discrepancy(found.kind, found.subject, summary, {**found.evidence, "confirmed_limit": longer})
    return runner.first_hang or case, full_timeout(runner)


def full_timeout(runner) -> oracle.Discrepancy:
    """The first case that exceeded its limit twice, as the finding."""
    limit, longer = runner.first_hang_limits or (runner.timeout, SLOW_CONFIRM_FACTOR * runner.timeout)
    summary = (
        f"the candidate did not finish within {limit:.3g}s on this case, nor within "
        f"{longer:.3g}s when run again in a fresh worker (a hang or an infinite loop). "
        "Shrinking it found smaller cases that exceeded their shortened limits, but the smallest of them finished "
        "when given longer, so this is the first case that exceeded its limit twice, not a minimal one."
    )
    return oracle.Discrepancy("timeout", "forward", summary, {"limit": limit, "confirm_limit": longer, "full_timeout": limit >= runner.timeout, "confirmed": True})


def _factory_import(implementation) -> str | None:
    """The repro script's line that imports the factory, by the name a worker uses."""
    try:
        return locate.import_source(locate.address_of(implementation), implementation.factory)
    except locate.Unreachable:
        return None
