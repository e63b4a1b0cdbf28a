"""A fuzzing campaign: Hypothesis drives `oracle.check` over `strategies.cases`.

`fuzz_implementation` runs one implementation and returns an `ImplementationResult`
(verdict, examples, seconds, and the minimal failure with its explanation and repro
script). `run_command` is the ``python -m harness fuzz`` front end over it (with
``--scheduler``, `harness.cluster` runs it on a Dask cluster). Failures are stored in
a per-implementation Hypothesis database (`harness.database`) and replayed first next time.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import math
import os
import random
import sys
import statistics
import threading
import time
import traceback
from pathlib import Path
from typing import Callable

import torch
from hypothesis import HealthCheck, Phase, event, given, reject, seed as hypothesis_seed, settings, target
from hypothesis.errors import Flaky

from harness import coverage as coverage_account, covering, database as examples_database, isolation, locate, oracle, report, strategies
from harness.cases import Case
from harness.database import slug as _slug
from harness.implementation import DEFAULT_PROFILE_EXAMPLES, Implementation, KnownFailure
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
TIME_BUDGETS = {"default": 100.0}
"""Seconds of campaigns the bare command may spend (``--time-budget``; everything
registered, no ``--max-examples``): ``python -m harness fuzz`` promises two minutes
on 2 cores, imports and the examples already running included. Each campaign gets a
fair share of what is left when it starts (the lanes' time over the campaigns not yet
done) and stops before its next example once that is spent (never before its first,
nor while shrinking a failure); past the budget, those not yet started are not run
(one that compiles per shape needs `SLOW_START_MARGIN` left to start). The report
says what was cut, and each replay command runs the same cases first."""
SLOW_START_MARGIN = 25.0
PRIOR_PACE = {False: 2.0, True: 8.0}
"""Seconds a campaign is expected to take before any of its kind has finished (quick;
compiling or exporting per shape), under a time budget. Quick: the bare command's mean
on a quiet 2-core box, 1.8-1.9 s (docs/benchmarks.md). Per shape: 3.6 s there, 11-15 s
on an earlier box with a cold Inductor cache; between the two. A loaded machine shows
itself as soon as the first campaign of a kind finishes: from then on its mean counts."""
"""Under a time budget, a campaign that compiles or exports per shape (``example_timeout``)
starts only with this many seconds left: its one example cannot be cut (15-60 s here)."""
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


@dataclasses.dataclass
class Failure:
    kind: str
    subject: str
    summary: str  # what differs, where; the explanation a person reads
    case: Case
    repro_path: Path | None
    layer: int | None = None
    explainer_errors: list[str] = dataclasses.field(default_factory=list)
    """What went wrong while localising the finding or writing its repro: the finding stands."""

    def to_json(self) -> dict:
        return {
            "kind": self.kind,
            "subject": self.subject,
            "summary": self.summary,
            "case": dataclasses.asdict(self.case),
            "case_text": self.case.describe(),
            "first_divergent_layer": self.layer,
            "repro": None if self.repro_path is None else str(self.repro_path),
            "explainer_errors": self.explainer_errors,
        }

    @classmethod
    def from_json(cls, document: dict) -> "Failure":
        case = dict(document["case"])
        if case.get("lengths") is not None:
            case["lengths"] = tuple(case["lengths"])
        return cls(
            document["kind"], document["subject"], document["summary"], Case(**case),
            None if document["repro"] is None else Path(document["repro"]),
            document.get("first_divergent_layer"), list(document.get("explainer_errors", [])),
        )


@dataclasses.dataclass
class ImplementationResult:
    name: str
    verdict: str  # pass | fail | error | skipped
    examples: int
    seconds: float
    seed: int | None
    profile: str
    examples_to_failure: int | None = None
    seconds_to_failure: float | None = None
    failure: Failure | None = None
    reason: str = ""  # why skipped or errored
    error_budget: float = 1.0
    known_failure_cases: dict[str, int] = dataclasses.field(default_factory=dict)  # reason -> cases set aside
    isolated: bool = True
    worker_restarts: int = 0
    slow_cases: list[float] = dataclasses.field(default_factory=list)
    """Seconds of each case that exceeded the timeout, then finished when run again: slow, not hung."""
    family: str | None = None  # torch's class name; None when the plugin could not load
    example_budget: int | None = None  # examples asked of Hypothesis
    budget_capped: bool = False  # the implementation's default_examples lowered the profile's count
    coverage: dict | None = None
    """What the campaign's cases held (`harness.coverage.Coverage.to_json`): feasible
    value pairs covered, per-dimension counts, what is left uncovered."""
    cut: str = ""  # what the command's time budget cut from this campaign, if anything

    def to_json(self) -> dict:
        return {
            "verdict": self.verdict,
            "family": self.family,
            "approximate": self.error_budget != 1.0,
            "error_budget": self.error_budget,
            "known_failure_cases": self.known_failure_cases,
            "isolated": self.isolated,
            "worker_restarts": self.worker_restarts,
            "slow_cases": [round(seconds, 3) for seconds in self.slow_cases],
            "examples": self.examples,
            "example_budget": self.example_budget,
            "budget_capped": self.budget_capped,
            "cut": self.cut,
            "seconds": round(self.seconds, 3),
            "seed": self.seed,
            "profile": self.profile,
            "examples_to_failure": self.examples_to_failure,
            "seconds_to_failure": None if self.seconds_to_failure is None else round(self.seconds_to_failure, 3),
            "reason": self.reason,
            "failure": None if self.failure is None else self.failure.to_json(),
            "coverage": self.coverage,
            "replay": self.replay_command(),
        }

    def replay_command(self) -> str:
        """The command that runs this campaign again."""
        return f"python -m harness fuzz --impl {self.name} --seed {self.seed} --profile {self.profile}"

    @classmethod
    def from_json(cls, name: str, document: dict) -> "ImplementationResult":
        """The result `to_json` wrote (as a report, or sent from a pytest-xdist worker):
        every field `to_json` writes under its own name, and the failure rebuilt."""
        fields = {field.name for field in dataclasses.fields(cls)} - {"name", "failure"}
        values = {key: value for key, value in document.items() if key in fields}
        failure = None if document.get("failure") is None else Failure.from_json(document["failure"])
        return cls(name=name, failure=failure, **values)



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
    examples = examples_database.open_database(location, implementation.name, devices or strategies.available_devices())
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


# -- command line --------------------------------------------------------------------


def add_arguments(parser) -> None:
    parser.add_argument("--impl", action="append", metavar="NAME", help="implementation to fuzz (repeatable; default: all)")
    parser.add_argument("--profile", choices=list(PROFILES), default="default", help="how many examples: " + "; ".join(f"{k}={v[0]}" for k, v in PROFILES.items()))
    parser.add_argument("--max-examples", type=int, metavar="N", help="override the profile's example count")
    parser.add_argument("--seed", type=int, metavar="S", help="seed for the campaign (printed, so any run can be replayed)")
    parser.add_argument("--device", action="append", metavar="DEV", help="cpu or cuda (repeatable; default: all present)")
    parser.add_argument("--report", type=Path, metavar="PATH", help="write a JSON report here")
    parser.add_argument("--repro-dir", type=Path, default=DEFAULT_REPRO_DIR, metavar="DIR", help="where repro scripts go (default: %(default)s)")
    parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT, metavar="SECONDS", help="per-example limit before a candidate counts as hung (default: %(default)s)")
    parser.add_argument("--no-isolation", action="store_true", help="run candidates in this process (faster to debug; a crash ends the campaign)")
    parser.add_argument(
        "--time-budget", type=float, metavar="SECONDS",
        help="stop each campaign before its next example once the command has run this long (never before its first "
        "example or while shrinking a failure; the report says what was cut); 0 for none. Default: "
        + ", ".join(f"{seconds:g} s for the {name} profile" for name, seconds in TIME_BUDGETS.items())
        + " when fuzzing everything registered without --max-examples, none otherwise",
    )
    parser.add_argument(
        "--jobs", type=int, metavar="N",
        help=f"implementations fuzzed at once, each in its own worker process with one thread (default: the CPUs available, {default_jobs()} here)",
    )
    parser.add_argument("--coverage", action="store_true", help="print each campaign's per-dimension counts of the values its cases held, and the value pairs left uncovered")
    parser.add_argument("--database", metavar="URL", help=f"where failures are kept and replayed first: {examples_database.ACCEPTED} (default: {DEFAULT_DATABASE})")
    from harness import cluster

    cluster.add_arguments(parser)


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


def default_jobs() -> int:
    """The CPUs this process may run on: one campaign each, every worker one thread."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def run_command(args, registry, names: list[str]) -> int:
    if args.scheduler is not None or args.shards is not None:
        from harness import cluster

        if args.jobs is not None:
            raise UsageError("--jobs is for a run on this machine; on a cluster, its workers' threads decide how many units run at once")
        if getattr(args, "time_budget", None) is not None:
            raise UsageError("--time-budget is for a run on this machine; on a cluster, give --max-examples or --shards")
        return cluster.run_command(args, registry, names)
    location = check_arguments(args)
    devices = args.device or strategies.available_devices()
    for device in devices:
        if device not in ("cpu", "cuda"):
            raise UsageError(f"unknown device {device!r}; expected cpu or cuda")
        if device == "cuda" and not torch.cuda.is_available():
            raise UsageError("--device cuda was asked for, but torch.cuda.is_available() is False on this machine")
    jobs = _jobs(args, len(names))
    seed = random.randrange(2**31) if args.seed is None else args.seed
    print(
        f"rnn-harness fuzz: profile {args.profile}, seed {seed}, devices {','.join(devices)}"
        + (f", {jobs} implementations at a time" if jobs > 1 else ""),
        file=sys.stderr,
    )
    runs = _Runs(args, registry, seed, location, devices)
    if not args.no_isolation:
        isolation.share_imports(registry.implementation(name) for name in names if name not in runs.broken)
    results = runs.one_at_a_time(names) if jobs == 1 else runs.concurrently(names, jobs)
    return finish(args, results, seed=seed, devices=devices)


def time_budget(args) -> float | None:
    """Seconds the command's campaigns may run: --time-budget (0: none), else the
    profile's for the bare command (everything registered, no --max-examples)."""
    budget = getattr(args, "time_budget", None)
    if budget is None:
        chosen = args.max_examples is not None or args.impl or getattr(args, "family", None)
        return None if chosen else TIME_BUDGETS.get(args.profile)
    return budget or None


def _jobs(args, implementations: int) -> int:
    if args.jobs is not None:
        if args.jobs < 1:
            raise UsageError("--jobs must be at least 1")
        if args.jobs > 1 and args.no_isolation:
            raise UsageError("--jobs above 1 needs the worker processes: drop --no-isolation, or run one implementation at a time")
        return min(args.jobs, max(implementations, 1))
    if args.no_isolation:
        return 1
    return max(1, min(default_jobs(), implementations))


class _Runs:
    """The campaigns of one ``fuzz`` command, one at a time or several at once. Each
    campaign drives its own worker process, so running several at once is several
    Hypothesis runs in threads of this process (Hypothesis is thread-safe since 6.136)
    while torch runs in the workers, one thread each."""

    def __init__(self, args, registry, seed: int, location, devices: list[str]):
        self.args, self.registry, self.seed, self.location, self.devices = args, registry, seed, location, devices
        self.broken = {plugin.name: plugin for plugin in registry.broken}
        self.stop = threading.Event()
        self.time_budget = time_budget(args)
        self.deadline = None if self.time_budget is None else time.monotonic() + self.time_budget
        self.unstarted, self.lanes = 0, 1  # set by one_at_a_time / concurrently
        self.waiting: set[str] = set()  # campaigns not started yet (under a time budget)
        self.took: dict[bool, list[float]] = {False: [], True: []}  # finished campaigns' seconds, by "compiles per shape"
        self.counting = threading.Lock()

    def slow(self, name: str) -> bool:
        return self.registry.implementation(name).example_timeout is not None

    def reserve(self) -> float:
        """Lane-seconds the campaigns not started yet are expected to need: each at the
        mean pace of the finished campaigns of its kind (quick, or compiling per shape),
        `PRIOR_PACE` before any has finished."""
        with self.counting:
            paces = {kind: (statistics.fmean(took) if took else PRIOR_PACE[kind]) for kind, took in self.took.items()}
            return sum(paces[self.slow(name)] for name in self.waiting)

    def budget(self, name: str) -> int:
        if self.args.max_examples is not None:
            return self.args.max_examples
        return self.registry.implementation(name).example_budget(PROFILES[self.args.profile][0])

    def fuzz(self, name: str, progress: report.Progress) -> ImplementationResult:
        """One implementation's campaign; a harness bug becomes its `error`, never the run's end."""
        if name in self.broken:
            return ImplementationResult(name, "error", 0, 0.0, self.seed, self.args.profile, reason=self.broken[name].error)
        share = None
        if self.deadline is not None:
            with self.counting:
                self.unstarted -= 1
                self.waiting.discard(name)
                waiting = max(self.unstarted, 0)
            left = self.deadline - time.monotonic()
            # One example of a path that compiles per shape cannot be cut, and takes tens of seconds.
            if left <= 0 or (self.slow(name) and left < SLOW_START_MARGIN):
                return self.not_run(name)
            # A fair share of what is left, so that the campaigns at the end of the queue
            # are not the ones cut whole: the lanes' time over the campaigns not yet done.
            share = min(left, left * self.lanes / (waiting + 1))
        progress.start(name, total=self.budget(name))
        own_deadline: list[float] = []  # the share runs from the first example on: a worker's start is not the campaign's

        def on_example(count: int) -> None:
            if self.stop.is_set():
                raise KeyboardInterrupt  # another thread's Ctrl-C: stop before the next example
            if share is not None and count > 1:
                now = time.monotonic()
                if not own_deadline:
                    own_deadline.append(now + share)
                # Past its share a campaign goes on while what is left still holds the
                # campaigns not started at the pace the finished ones set: on a quiet
                # machine the first campaigns are not cut for the sake of a tail that
                # takes a second each, on a loaded one the pace says so and the share holds.
                if now > self.deadline or (now > own_deadline[0] and (self.deadline - now) * self.lanes < self.reserve()):
                    raise TimeBudgetSpent(self.time_budget)
            progress.example(count)

        try:
            result = fuzz_implementation(
                self.registry.implementation(name), profile=self.args.profile, max_examples=self.args.max_examples,
                seed=self.seed, repro_dir=self.args.repro_dir, database=self.location, devices=self.devices,
                on_example=on_example, isolate=not self.args.no_isolation, timeout=self.args.timeout, cancel=self.stop,
            )
        except Exception as error:  # noqa: BLE001 - a harness bug must not cost the other results or the report
            result = ImplementationResult(
                name, "error", progress.count, time.perf_counter() - progress.started, self.seed, self.args.profile,
                reason="the harness itself failed:\n" + "".join(traceback.format_exception(type(error), error, error.__traceback__)[-8:]),
            )
        progress.done(result)
        if share is not None and not result.cut:
            with self.counting:
                self.took[self.slow(name)].append(result.seconds)
        return result

    def not_run(self, name: str) -> ImplementationResult:
        replay = ImplementationResult(name, "skipped", 0, 0.0, self.seed, self.args.profile).replay_command()
        cut = (
            f"not run: the command's time budget ({self.time_budget:g}s) was spent before it could start"
            f"; `{replay} --time-budget 0` runs it"
        )
        return ImplementationResult(
            name, "skipped", 0, 0.0, self.seed, self.args.profile, reason=cut, cut=cut,
            family=self.registry.implementation(name).family,
        )

    def interrupted(self, progress: report.Progress, interrupt: KeyboardInterrupt | None = None) -> ImplementationResult:
        return ImplementationResult(
            progress.name, "skipped", progress.count, time.perf_counter() - progress.started, self.seed, self.args.profile,
            reason=f"interrupted by the user after {progress.count} examples", family=self.registry.implementation(progress.name).family,
            coverage=getattr(interrupt, "coverage", None),
        )

    def one_at_a_time(self, names: list[str]) -> list[ImplementationResult]:
        results: list[ImplementationResult] = []
        progress = report.Progress(sys.stderr)
        self.unstarted, self.lanes, self.waiting = len(names), 1, set(names)
        try:
            for name in names:
                results.append(self.fuzz(name, progress))
        except KeyboardInterrupt as interrupt:
            print("\ninterrupted: reporting what finished", file=sys.stderr)
            if progress.name and progress.name not in {r.name for r in results}:
                results.append(self.interrupted(progress, interrupt))
        return results

    def concurrently(self, names: list[str], jobs: int) -> list[ImplementationResult]:
        # One lane works through the paths that are slow per example (they compile or
        # export per shape) from the front, the others through the quick ones from the
        # back; they meet in the middle. So the quick results come early, and two
        # compilers never pay their one-time setup side by side.
        slow = [name for name in names if name not in self.broken and self.registry.implementation(name).example_timeout is not None]
        # The cheaper of them first (their declared limits: exported 600 s, compiled 900 s),
        # so that a time budget leaves out the fewest.
        slow.sort(key=lambda name: self.registry.implementation(name).example_timeout)
        pending = collections.deque(slow + [name for name in names if name not in slow])
        self.unstarted, self.lanes, self.waiting = len(pending), jobs, set(pending)
        lock = threading.Lock()
        results: dict[str, ImplementationResult] = {}
        # Each lane says it is done through its own event, never through Thread.join:
        # a join interrupted by Ctrl-C can mark a running thread dead (CPython
        # gh-90882, up to 3.11), and the main thread then read the results before
        # that lane had stored its interrupted campaign.
        finished = [threading.Event() for _ in range(jobs)]

        def lane(slot: int) -> None:
            try:
                while not self.stop.is_set():
                    with lock:
                        if not pending:
                            return
                        name = pending.popleft() if slot == 0 else pending.pop()
                    progress = report.Progress(sys.stderr, position=slot)
                    try:
                        results[name] = self.fuzz(name, progress)
                    except KeyboardInterrupt as interrupt:
                        results[name] = self.interrupted(progress, interrupt)
                        return
            finally:
                finished[slot].set()

        for slot in range(jobs):
            threading.Thread(target=lane, args=(slot,), name=f"rnn-harness-fuzz-{slot}", daemon=True).start()
        try:
            for event in finished:
                while not event.wait(0.2):  # a timed wait, so Ctrl-C reaches this thread
                    pass
        except KeyboardInterrupt:
            self.stop.set()  # each lane's campaign stops within a fraction of a second
            print("\ninterrupted: stopping the running examples, then reporting what finished", file=sys.stderr)
            for event in finished:
                event.wait()
        # The order asked; what never started is not reported, as when one at a time.
        return [results[name] for name in names if name in results]


def finish(args, results: list[ImplementationResult], *, seed: int, devices: list[str]) -> int:
    """Print the summary and the failures, write the report, and return the exit code."""
    from harness.usage import EXIT_DISCREPANCY, EXIT_OK

    print(report.summary_table(results))
    print(report.coverage_lines(results, table=getattr(args, "coverage", False)))
    for result in results:
        if result.failure is not None or result.verdict == "error":
            print(report.failure_text(result))
    if args.report is not None:
        report.write_json(args.report, results, seed=seed, profile=args.profile, devices=devices)
    return EXIT_OK if all(r.verdict in ("pass", "skipped") for r in results) else EXIT_DISCREPANCY
