"""A fuzzing campaign: Hypothesis drives `oracle.check` over `strategies.cases`.

`fuzz_implementation` runs one implementation and returns an `ImplementationResult`
(`harness.outcome`: verdict, examples, seconds, and the minimal failure with its
explanation and repro script). Failures are stored in a per-implementation
Hypothesis database (`harness.database`) and replayed first next time. The ``fuzz``
command runs campaigns on this machine (`harness.local_run`) or on a cluster
(`harness.cluster`); both come here, and this module reaches neither.
"""

from __future__ import annotations

import contextlib
import math
import random
import threading
import time
import traceback
from pathlib import Path
from typing import Callable

import torch
from hypothesis import HealthCheck, Phase, event, given, reject, seed as hypothesis_seed, settings, target
from hypothesis.errors import Flaky

from harness import cases, coverage as coverage_account, covering, database as examples_database, locate, oracle, strategies, torch_undefined
from harness.cases import Case
from harness.database import slug as _slug
from harness.implementation import DEFAULT_PROFILE_EXAMPLES, Implementation, KnownFailure
from harness.outcome import Failure, ImplementationResult
from harness.isolation import SLOW_CONFIRM_FACTOR, HarnessError, InProcess, Worker
from harness.usage import UsageError
from harness.repro import write_repro
from harness.tolerance import DEFAULT_MODEL, ErrorModel

PROFILES = {
    # name: (max_examples, what it is for)
    "ci": (40, "the pytest run in CI: every built-in, a couple of minutes in all"),
    "quick": (100, "a smoke test while developing"),
    "default": (DEFAULT_PROFILE_EXAMPLES, "python -m harness fuzz: every built-in within two minutes on 2 cores"),
    "long": (5000, "campaigns: the zero-false-alarm run"),
}
DEFAULT_DATABASE = Path(".hypothesis") / "rnn-harness"
DEFAULT_REPRO_DIR = Path("rnn-harness-repros")
TORCH_CRASHES = "torch itself crashed on this invalid input (a torch bug: docs/found-bugs.md), so nothing was asked of the candidate"
DEFAULT_TIMEOUT = 30.0
"""Seconds one example may take in the worker before the candidate counts as hung."""
_UNSET = object()


def register_profiles() -> None:
    """Register our Hypothesis settings profiles (called by the CLI and conftest)."""
    for name, (max_examples, _) in PROFILES.items():
        settings.register_profile(
            f"rnn-harness-{name}",
            max_examples=max_examples,
            deadline=None,  # example cost varies 100x with the shape; time is not a bug
            # filter_too_much: an implementation's known failures may set many cases aside.
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
            print_blob=False,
            report_multiple_bugs=False,  # one minimal failure per implementation, then stop
            # No explain phase: it reruns variations of the minimal example after
            # shrinking, and the last failing call must be the minimal one we report.
            phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.target, Phase.shrink],
        )





@contextlib.contextmanager
def _exact_cuda_math(runner):
    """TF32 would make CUDA float32 results differ from float32 arithmetic. A worker
    switches it off for itself (`harness.isolation`); in this process it is switched
    off for the campaign only."""
    if not isinstance(runner, InProcess) or not torch.cuda.is_available():
        yield
        return
    matmul, cudnn = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = matmul, cudnn


def fuzz_implementation(
    implementation: Implementation,
    *,
    profile: str = "default",
    max_examples: int | None = None,
    seed: int | None = None,
    repro_dir: Path | None = DEFAULT_REPRO_DIR,
    database: str | Path | examples_database.Location | None = DEFAULT_DATABASE,
    database_dir: Path | None | object = _UNSET,
    devices: list[str] | None = None,
    on_example: Callable[[int], None] | None = None,
    isolate: bool = True,
    timeout: float = DEFAULT_TIMEOUT,
    model: ErrorModel = DEFAULT_MODEL,
    cancel: threading.Event | None = None,
    covering_phase: bool = True,
) -> ImplementationResult:
    """Fuzz one implementation against torch and return its verdict.

    With ``isolate`` (the default) the candidate runs in a worker process, so a crash
    or a hang (longer than ``timeout`` seconds on one example) is reported as a
    finding on that case and the campaign goes on. ``database`` is where failures are
    kept and replayed from: a directory, a ``redis://HOST:PORT/DB`` URL, a parsed
    `harness.database.Location`, or None for none (``database_dir`` is its former name).
    ``cancel`` (a `threading.Event`), once set, stops the campaign within a fraction
    of a second, even in the middle of a long example: KeyboardInterrupt, as Ctrl-C.
    ``covering_phase``: start with the cases that cover every feasible pair of the
    space's values and every invalid input (`harness.coverage`); a campaign split into
    seed shards runs it in one shard only.
    """
    if database_dir is not _UNSET:
        database = database_dir
    location = database if database is None or isinstance(database, examples_database.Location) else examples_database.parse(database)
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}; expected one of {', '.join(PROFILES)}")
    locate.refuse_campaign_in_worker()
    register_profiles()
    seed = random.randrange(2**31) if seed is None else seed
    model = model.scaled(implementation.error_budget)
    started = time.perf_counter()
    if implementation.example_timeout is not None:
        timeout = max(timeout, implementation.example_timeout)
    runner = Worker(implementation, model, timeout, cancel) if isolate else InProcess(implementation, model)
    with runner:
        result = ImplementationResult(
            implementation.name, "skipped", 0, 0.0, seed, profile,
            error_budget=implementation.error_budget, isolated=isolate, family=implementation.family,
        )
        try:
            unavailable = runner.request("available")
        except oracle.Discrepancy:
            unavailable = None  # it crashed or hung while being built: the fuzzer will show it
        except HarnessError as error:
            result.verdict, result.reason = "error", str(error)
            result.seconds = time.perf_counter() - started
            return result
        result.reason = unavailable or ""
        if not unavailable:
            try:
                _campaign(implementation, runner, result, profile, max_examples, seed, repro_dir, location, devices, on_example, started, covering_phase)
            except KeyboardInterrupt as interrupt:
                # What it covered by then goes with the interruption to whoever reports it.
                interrupt.coverage = result.coverage
                raise
        result.worker_restarts = runner.restarts
        result.slow_cases = list(getattr(runner, "slow_cases", ()))
    result.seconds = time.perf_counter() - started
    return result


def _campaign(implementation, runner, result, profile, max_examples, seed, repro_dir, location, devices, on_example, started, covering_phase=True) -> None:
    counter = {"first_failure": None, "first_failure_seconds": None}
    last_failure: dict = {}
    examples = examples_database.open_database(location, implementation.name, devices or cases.available_devices())
    # A slow implementation's own smaller budget applies to every profile;
    # an explicit --max-examples applies as given.
    budget = max_examples if max_examples is not None else implementation.example_budget(PROFILES[profile][0])
    result.example_budget = budget
    result.budget_capped = max_examples is None and result.example_budget < PROFILES[profile][0]
    # The covering phase: rows handed to Hypothesis as if stored, so it runs them
    # first and shrinks a failing one like any other (harness/coverage.py).
    space = covering.space_for(implementation, tuple(devices) if devices else None)
    plan = coverage_account.plan(space, budget, profile, covering_phase, seed)
    account = coverage_account.Coverage(space, plan)
    result.coverage = account.to_json()
    overrides = {"database": coverage_account.CoveringDatabase(examples, plan.prefixes), "max_examples": plan.max_examples}
    # Guided search: Hypothesis' target phase spends up to half its examples climbing
    # from the case closest to its bound (in practice, a long sequence). With a few
    # dozen (a built-in's share of the bare command, all of it sampled rows) that is a
    # handful of variations of one case at several times the cost; it runs when
    # Hypothesis' own generation has room for it.
    if plan.generated < coverage_account.TARGET_MIN_RANDOM // 2:
        overrides["phases"] = [phase for phase in settings.get_profile(f"rnn-harness-{profile}").phases if phase != Phase.target]

    # settings outside seed: @seed alone switches the database off (for an exactly
    # repeatable run), and stored failures must be replayed first whatever the seed.
    @settings(settings.get_profile(f"rnn-harness-{profile}"), **overrides)
    @hypothesis_seed(seed)
    @given(case=strategies.cases(implementation, devices=devices))
    def differential_test(case: Case) -> None:
        case_profile = space.profile_of(case)
        for name, value in case_profile.items():
            event(f"{name}={coverage_account.label(value)}")
        # What the campaign covered: its cases up to the first failure (after it, the
        # calls are shrinking's).
        counting = counter["first_failure"] is None

        def set_aside() -> None:
            if counting:
                account.record(case_profile, set_aside=True)
                result.coverage = account.to_json()
            reject()

        undefined = torch_undefined.covering(case)
        if undefined is not None:
            # Before torch runs: there, torch may crash, raise or return, by accident.
            label = undefined.label()
            result.known_failure_cases[label] = result.known_failure_cases.get(label, 0) + 1
            set_aside()
        waived: set[str] = set()
        for known in _known_failures(implementation, case):
            label = known.label()
            result.known_failure_cases[label] = result.known_failure_cases.get(label, 0) + 1
            if known.kinds is None:
                set_aside()
            waived |= known.kinds
        request = "check" if not waived or case.defect is not None else f"check_waiving:{','.join(sorted(waived))}"
        if case.defect is not None and isinstance(runner, Worker):
            # torch's reference runs first, on its own: a process that dies here died
            # in torch, and the case says so instead of counting against the candidate.
            # Its outcome goes with the check, so torch does not run twice on an input
            # where it may misbehave.
            try:
                request = f"check_expecting:{runner.request('reference_outcome', case)}"
            except oracle.Discrepancy as found:
                if found.kind != "crash":
                    raise
                reason = f"{TORCH_CRASHES}: {case.family} with {case.defect.replace('_', ' ')}{' (packed input)' if case.packed else ''}"
                result.known_failure_cases[reason] = result.known_failure_cases.get(reason, 0) + 1
                set_aside()
        result.examples += 1
        if on_example is not None:
            try:
                on_example(result.examples)
            except TimeBudgetSpent:
                if counter["first_failure"] is None:  # a failure being shrunk is finished first
                    result.examples -= 1  # this one never ran
                    raise
        if counting:
            account.record(case_profile)
            result.coverage = account.to_json()
        try:
            margin = runner.request(request, case)
            if isinstance(margin, float) and math.isfinite(margin):
                # Guided search: Hypothesis' target phase climbs towards the cases
                # whose worst error comes closest to its bound.
                target(margin, label="worst |error| / bound")
        except BaseException as error:
            if counter["first_failure"] is None:
                counter["first_failure"] = result.examples
                counter["first_failure_seconds"] = time.perf_counter() - started
            last_failure["case"], last_failure["error"] = case, error
            raise

    try:
        with _exact_cuda_math(runner):
            differential_test()
    except KeyboardInterrupt:
        raise
    except TimeBudgetSpent as spent:
        result.verdict = "pass"
        result.cut = (
            f"stopped by the command's time budget ({spent.budget:g}s, shared among the campaigns) after {result.examples} of {result.example_budget} examples, "
            f"none failing; `{result.replay_command()} --time-budget 0` runs the same cases first, then the rest"
        )
        return
    except BaseException as error:  # noqa: BLE001 - every failure is classified below
        _failed(implementation, runner, result, last_failure, error, repro_dir)
        result.examples_to_failure = counter["first_failure"]
        result.seconds_to_failure = counter["first_failure_seconds"]
        return
    result.verdict = "pass"


class TimeBudgetSpent(BaseException):
    """The command's time budget is spent: raised before an example, stops the campaign
    there. A BaseException, so Hypothesis stops instead of calling it a failure."""

    def __init__(self, budget: float):
        super().__init__(f"time budget of {budget:g}s spent")
        self.budget = budget


class KnownFailurePredicateError(BaseException):
    """A `KnownFailure.when` raised. A BaseException, so Hypothesis does not shrink
    it: the mistake is in the plugin's declaration, not in a case; the campaign stops."""

    def __init__(self, implementation: Implementation, index: int, known: KnownFailure, error: Exception):
        frames = traceback.format_exception(type(error), error, error.__traceback__)
        text = (
            f"{implementation.name}: known_failures[{index}] (reason {known.reason!r}): its `when` predicate raised "
            "on a case instead of returning True or False. `when` receives a harness.Case; "
            "docs/plugins.md lists its fields.\n" + "".join(frames[1:]).rstrip()
        )
        super().__init__(text)
        self.text = text


def _known_failures(implementation: Implementation, case: Case) -> list[KnownFailure]:
    """The declared known failures covering this case, with a predicate that raises
    named as such."""
    covering = []
    for index, known in enumerate(implementation.known_failures):
        try:
            if known.when(case):
                covering.append(known)
        except Exception as error:  # noqa: BLE001 - the plugin's predicate; reported as its error
            raise KnownFailurePredicateError(implementation, index, known, error) from None
    return covering


def _failed(implementation, runner, result, last_failure, error, repro_dir) -> None:
    if isinstance(error, KnownFailurePredicateError):
        result.verdict, result.reason = "error", error.text
        return
    case = last_failure.get("case")
    found = last_failure.get("error")
    if getattr(runner, "first_hang", None) is not None and (isinstance(error, Flaky) or "Flaky" in type(error).__name__):
        # A case that exceeded a shortened limit once and finished on replay was slow
        # under load, not nondeterministic: report the case that exceeded the full timeout.
        case, found = runner.first_hang, _full_timeout(runner)
    if isinstance(found, oracle.Discrepancy) and case is not None:
        # Everything after this point explains the finding; nothing that goes wrong
        # while explaining may lose it, so each step's own error is kept beside it.
        explainer_errors: list[str] = []
        if found.kind == "timeout" and not found.evidence.get("confirmed", True):
            case, found = _confirm_hang(runner, case, found)
        layer = None
        if found.kind == "value":
            try:
                layer = runner.request("localize", case)
            except Exception as localize_error:  # noqa: BLE001 - localisation is best effort
                explainer_errors.append(f"localising the first divergent layer failed: {type(localize_error).__name__}: {localize_error}")
        summary = case.describe() + "\n" + found.summary
        if layer is not None:
            summary += f"\n  first layer whose output already differs: layer {layer} (stack cut after each layer and re-checked)"
        repro_path = None
        if repro_dir is not None:
            path = Path(repro_dir) / f"repro_{_slug(implementation.name)}.py"
            try:
                repro_path = write_repro(path, implementation.name, implementation.factory, case, found, factory_import=_factory_import(implementation))
                summary += f"\n  repro: python {repro_path}"
            except Exception as repro_error:  # noqa: BLE001 - the finding stands without its script
                explainer_errors.append("writing the repro script failed: " + "".join(traceback.format_exception_only(type(repro_error), repro_error)).strip())
        for text in explainer_errors:
            summary += f"\n  (harness: {text}; the finding above stands)"
        result.failure = Failure(found.kind, found.subject, summary, case, repro_path, layer, explainer_errors)
        result.verdict = "fail"
        return
    # Not a difference from torch: the harness or the reference itself broke, or
    # Hypothesis saw the candidate behave differently on the same input (Flaky).
    detail = "".join(traceback.format_exception(type(error), error, error.__traceback__)[-8:])
    flaky = isinstance(error, Flaky) or "Flaky" in type(error).__name__
    result.verdict = "fail" if flaky else "error"
    result.reason = ("the candidate is nondeterministic: the same case passed and failed\n" if flaky else "") + detail
    if case is not None:
        result.failure = Failure("nondeterministic" if flaky else "error", "", case.describe() + "\n" + result.reason, case, None)


def _confirm_hang(runner, case: Case, found: oracle.Discrepancy) -> tuple[Case, oracle.Discrepancy]:
    """A minimal case that exceeded a shortened limit is run again with a longer one.
    If it still hangs, it is reported; if it finishes, it was only slow, and the case
    that exceeded the full timeout is reported instead."""
    longer = runner.confirm_hang(case, found.evidence["limit"])
    if longer is not None:
        summary = found.summary + f"\n  run again with a {longer:.3g}s limit, it still did not finish"
        return case, oracle.Discrepancy(found.kind, found.subject, summary, {**found.evidence, "confirmed_limit": longer})
    return runner.first_hang or case, _full_timeout(runner)


def _full_timeout(runner) -> oracle.Discrepancy:
    limit, longer = runner.first_hang_limits or (runner.timeout, SLOW_CONFIRM_FACTOR * runner.timeout)
    summary = (
        f"the candidate did not finish within {limit:.3g}s on this case, nor within "
        f"{longer:.3g}s when run again in a fresh worker (a hang or an infinite loop). "
        "Shrinking it found smaller cases that exceeded their shortened limits, but the smallest of them finished "
        "when given longer, so this is the first case that exceeded its limit twice, not a minimal one."
    )
    return oracle.Discrepancy("timeout", "forward", summary, {"limit": limit, "confirm_limit": longer, "full_timeout": limit >= runner.timeout, "confirmed": True})


def _factory_import(implementation: Implementation) -> str | None:
    """The repro script's line that imports the factory, by the name a worker uses."""
    try:
        return locate.import_source(locate.address_of(implementation), implementation.factory)
    except locate.Unreachable:
        return None


def check_arguments(args) -> examples_database.Location:
    """The checks a local and a cluster run share; returns the database location."""
    if args.max_examples is not None and args.max_examples < 1:
        raise UsageError("--max-examples must be at least 1")
    if not args.timeout > 0:
        raise UsageError("--timeout must be a positive number of seconds")
    if getattr(args, "time_budget", None) is not None and args.time_budget < 0:
        raise UsageError("--time-budget must be a number of seconds, or 0 for none")
    try:
        location = examples_database.parse(DEFAULT_DATABASE if args.database is None else args.database)
        examples_database.check_reachable(location)
    except examples_database.DatabaseError as error:
        raise UsageError(str(error)) from None
    return location
