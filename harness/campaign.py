"""A fuzzing campaign: Hypothesis drives `oracle.check` over `strategies.cases`.

A `Campaign` runs one implementation in two stages, each a Hypothesis run of its own:
the covering stage (the rows that cover every feasible pair and every invalid input)
and the random stage (sampled rows, then Hypothesis' generation). `fuzz_implementation`
runs both and returns the `ImplementationResult` (`harness.campaign_result`: verdict, examples,
seconds, and the minimal failure, confirmed from scratch by `harness.findings`, with
its explanation and repro script). Failures are stored in a per-implementation
Hypothesis database (`harness.database`) and replayed first next time. The ``fuzz``
command runs campaigns on this machine (`harness.local_run`, every covering stage
before any random one) or on a cluster (`harness.cluster`); both come here, and this
module reaches neither.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import math
import random
import threading
import time
from pathlib import Path
from typing import Callable

from hypothesis import Phase, event, given, reject, seed as hypothesis_seed, settings, target
from hypothesis.errors import Unsatisfiable

from harness import case_space, cases, coverage_report, covering_stage, database as examples_database, findings, locate, oracle, protocol, routing, strategies, torch_undefined, worker_process
from harness.cases import Case
from harness.declarations import set_aside_declarations
from harness.implementation import Implementation, KnownFailurePredicateError, known_failures_covering
from harness.isolation import HarnessError, InProcess, Worker
from harness.campaign_result import ImplementationResult
from harness.tolerance import DEFAULT_MODEL, ErrorModel
from harness.profiles import DEFAULT_DATABASE, DEFAULT_REPRO_DIR, DEFAULT_TIMEOUT, PROFILES, check_arguments, register_profiles, replay_arguments

__all__ = [  # the profiles and defaults are `harness.profiles`'; named here too, where campaigns are
    "COVERING", "DEFAULT_DATABASE", "DEFAULT_REPRO_DIR", "DEFAULT_TIMEOUT", "PROFILES", "RANDOM", "Campaign", "TimeBudgetSpent",
    "check_arguments", "fuzz_implementation", "register_profiles", "replay_arguments",
]
TORCH_CRASHES = "torch itself crashed on this invalid input (a torch bug: docs/found-bugs.md), so nothing was asked of the candidate"
_UNSET = object()

COVERING, RANDOM = "covering", "random"
"""A campaign's two stages. The covering stage runs the covering rows and the invalid
inputs (what a campaign guarantees: every feasible pair, every invalid input); the
random stage runs the sampled rows, then Hypothesis' own generation. Each stage is a
Hypothesis run of its own, so a command can run every campaign's covering stage before
any campaign's random stage (`harness.local_run`), and a time budget cuts random
examples first."""
TORCH_RETRIES = 3
"""Minimal cases on which torch disagreed with itself that one stage sets aside and goes
on from; a stage that meets more stops there, cut, and says so."""


def fuzz_implementation(implementation: Implementation, *, on_example: Callable[[int], None] | None = None, **options) -> ImplementationResult:
    """Fuzz one implementation against torch and return its verdict: both stages of a
    `Campaign`, one after the other. The options are `Campaign`'s."""
    campaign = Campaign(implementation, **options)
    for stage in (COVERING, RANDOM):
        campaign.run(stage, on_example)
    return campaign.result


class Campaign:
    """One implementation's campaign, run stage by stage.

    With ``isolate`` (the default) the candidate runs in a worker process, so a crash
    or a hang (longer than ``timeout`` seconds on one example) is reported as a
    finding on that case and the campaign goes on; the process lives for one stage.
    ``database`` is where failures are kept and replayed from: a directory, a
    ``redis://HOST:PORT/DB`` URL, a parsed `harness.database.Location`, or None for
    none (``database_dir`` is its former name). ``cancel`` (a `threading.Event`),
    once set, stops the campaign within a fraction of a second, even in the middle of
    a long example: KeyboardInterrupt, as Ctrl-C. ``covering_phase``: start with the
    cases that cover every feasible pair of the space's values and every invalid
    input (`harness.covering_stage`); a campaign split into seed shards runs it in one
    shard only. ``replay_options``: the ``fuzz`` options beyond the profile and seed
    that shaped this campaign, for the command that replays it. ``on_margins`` is
    called with each case that held and its `oracle.Margins`; ``lazy_probes=False``
    (in this process only) runs every probe that widens a bound on every case (`oracle.check`).
    """

    def __init__(
        self,
        implementation: Implementation,
        *,
        profile: str = "default",
        max_examples: int | None = None,
        seed: int | None = None,
        repro_dir: Path | None = DEFAULT_REPRO_DIR,
        database: str | Path | examples_database.Location | None = DEFAULT_DATABASE,
        database_dir: Path | None | object = _UNSET,
        devices: list[str] | None = None,
        isolate: bool = True,
        timeout: float = DEFAULT_TIMEOUT,
        model: ErrorModel = DEFAULT_MODEL,
        cancel: threading.Event | None = None,
        covering_phase: bool = True,
        replay_options: tuple[str, ...] | None = None,
        on_margins: Callable[[Case, oracle.Margins], None] | None = None,
        lazy_probes: bool = True,
    ):
        if database_dir is not _UNSET:
            database = database_dir
        location = database if database is None or isinstance(database, examples_database.Location) else examples_database.parse(database)
        if profile not in PROFILES:
            raise ValueError(f"unknown profile {profile!r}; expected one of {', '.join(PROFILES)}")
        locate.refuse_campaign_in_worker()
        register_profiles()
        self.implementation = implementation
        self.profile = profile
        self.seed = random.randrange(2**31) if seed is None else seed
        self.repro_dir = repro_dir
        self.devices = devices
        self.model = model.scaled(implementation.error_budget)
        if replay_options is None:
            replay_options = replay_arguments(max_examples=max_examples, timeout=timeout, isolate=isolate, devices=devices, database=database)
        if implementation.example_timeout is not None:
            timeout = max(timeout, implementation.example_timeout)
        self.timeout = timeout
        if isolate and not lazy_probes:
            raise ValueError("lazy_probes=False runs the candidate in this process: pass isolate=False with it")
        self.runner = Worker(implementation, self.model, timeout, cancel) if isolate else InProcess(implementation, self.model, lazy_probes)
        self.on_margins = on_margins
        self.result = ImplementationResult.pending(
            implementation.name, self.seed, profile, error_budget=implementation.error_budget, isolated=isolate,
            family=implementation.family, replay_options=tuple(replay_options),
        )
        self.finished = False  # a verdict is in: no stage runs any more
        self.available: bool | None = None  # asked of the worker before the first stage
        self.elapsed = 0.0  # seconds spent in this campaign's stages
        self.stage_started: float | None = None
        self.first_failure: int | None = None  # the example that first failed; the calls after it are shrinking's
        self.first_failure_seconds: float | None = None
        self.last_failure: dict = {}
        self.skipped: dict[Case, str] = {}  # minimal cases on which torch disagreed with itself, and what it did
        self.examples = examples_database.open_database(location, implementation.name, devices or cases.available_devices())
        # A slow implementation's own smaller budget applies to every profile;
        # an explicit --max-examples applies as given.
        budget = max_examples if max_examples is not None else implementation.example_budget(PROFILES[profile][0])
        self.result.example_budget = budget
        self.result.budget_capped = max_examples is None and budget < PROFILES[profile][0]
        # The covering stage: rows handed to Hypothesis as if stored, so it runs them
        # first and shrinks a failing one like any other (harness/covering_stage.py).
        self.space = case_space.space_for(implementation, tuple(devices) if devices else None)
        # Its rows are routed around the cases a declaration sets aside: those cover nothing.
        self.declarations = set_aside_declarations(implementation)
        routed = functools.partial(routing.routing_for, self.space, strategies.cases(implementation, devices=devices), self.declarations)
        try:
            self.plan = covering_stage.plan(self.space, budget, profile, covering_phase, self.seed, routed)
        except KnownFailurePredicateError as error:
            self.plan = covering_stage.plan(self.space, budget, profile, covering_phase, self.seed)
            self.result.reason = error.text
            self._finish("error")
        self.account = coverage_report.Coverage(self.space, self.plan)
        self.result.coverage = self.account.to_json()
        if not self.pending(COVERING):
            self.result.covering_stage = "deferred"

    def seconds(self) -> float:
        """Seconds this campaign has spent in its stages so far."""
        running = 0.0 if self.stage_started is None else time.perf_counter() - self.stage_started
        return self.elapsed + running

    def pending(self, stage: str) -> bool:
        """Whether ``stage`` has examples to run: no verdict yet, and rows or a budget for it."""
        if self.finished or self.available is False:
            return False
        if stage == COVERING:
            return self.plan.covering + self.plan.invalid > 0
        return self.plan.max_examples - self.plan.covering - self.plan.invalid > 0

    def run(self, stage: str, on_example: Callable[[int], None] | None = None) -> None:
        """Run one stage; a stage with nothing to run, or a campaign with a verdict, does nothing.
        After the random stage the campaign has its verdict."""
        if self.finished:
            return
        self.stage_started = time.perf_counter()
        try:
            with self.runner:  # the worker process lives for one stage
                if self.available is None and not self._ask_available():
                    return
                if self.available and self.pending(stage):
                    self._stage(stage, on_example)
                if stage == RANDOM and not self.finished:
                    self._finish("pass")
            self.result.worker_restarts = self.runner.restarts
            self.result.slow_cases = list(getattr(self.runner, "slow_cases", ()))
        except KeyboardInterrupt as interrupt:
            # What it covered by then goes with the interruption to whoever reports it.
            interrupt.coverage = self.result.coverage
            if stage == COVERING and not self.result.covering_stage:
                self.result.covering_stage = "incomplete"
            raise
        finally:
            self.elapsed += time.perf_counter() - self.stage_started
            self.stage_started = None
            self.result.seconds = self.elapsed

    def cut_before(self, stage: str, text: str) -> None:
        """The command's time budget ends this campaign before ``stage`` runs: what ran
        stands (a pass so far), and the report says what was cut."""
        if self.finished:
            return
        self.result.cut = text
        self._finish("pass" if self.available is not False else self.result.verdict)

    def _finish(self, verdict: str) -> None:
        self.result.verdict = verdict
        self.finished = True

    def _ask_available(self) -> bool:
        try:
            unavailable = self.runner.request(protocol.Available())
        except oracle.Discrepancy:
            unavailable = None  # it crashed or hung while being built: the fuzzer will show it
        except HarnessError as error:
            self.available = False
            self.result.reason = str(error)
            self._finish("error")
            return False
        self.available = not unavailable
        self.result.reason = unavailable or ""
        if unavailable:
            self._finish("skipped")
        return self.available

    def _stage(self, stage: str, on_example) -> None:
        first = self.plan.covering + self.plan.invalid
        prefixes = self.plan.prefixes
        profile_settings = settings.get_profile(f"rnn-harness-{self.profile}")
        if stage == COVERING:
            overrides = {
                "database": covering_stage.CoveringDatabase(self.examples, prefixes[:first]),
                "max_examples": first,
                "phases": [phase for phase in profile_settings.phases if phase in (Phase.explicit, Phase.reuse, Phase.shrink)],
            }
        else:
            overrides = {
                "database": covering_stage.CoveringDatabase(self.examples, prefixes[first:]),
                "max_examples": self.plan.max_examples - first,
            }
            # Guided search: Hypothesis' target phase spends up to half its examples climbing
            # from the case closest to its bound (in practice, a long sequence). With a few
            # dozen (a built-in's share of the bare command, all of it sampled rows) that is a
            # handful of variations of one case at several times the cost; it runs when
            # Hypothesis' own generation has room for it.
            if self.plan.generated < covering_stage.TARGET_MIN_RANDOM // 2:
                overrides["phases"] = [phase for phase in profile_settings.phases if phase != Phase.target]
        for attempt in range(TORCH_RETRIES + 1):
            # What a stage set aside for torch's sake starts it again from the same state.
            shared = {id(self.account.space): self.account.space, id(self.account.plan): self.account.plan}  # not copied
            before = (self.result.examples, dict(self.result.known_failure_cases), copy.deepcopy(self.account, shared))
            try:
                with worker_process.exact_float32_math_within() if isinstance(self.runner, InProcess) else contextlib.nullcontext():
                    self._test(profile_settings, overrides, on_example)()
            except KeyboardInterrupt:
                raise
            except TimeBudgetSpent as spent:
                self.result.cut = (
                    f"stopped by the command's time budget ({spent.budget:g}s, shared among the campaigns) after {self.result.examples} of "
                    f"{self.result.example_budget} examples{' (in its covering stage)' if stage == COVERING else ''}, "
                    f"none failing; `{self.result.replay_command()} --time-budget 0` runs the same cases first, then the rest"
                )
                if stage == COVERING:
                    self.result.covering_stage = "incomplete"
                self._finish("pass")
                return
            except Unsatisfiable:
                pass  # every case of the stage was set aside: nothing failed, nothing to shrink
            except KnownFailurePredicateError as error:
                self.result.reason = error.text
                self._finish("error")
                return
            except BaseException as error:  # noqa: BLE001 - every failure is classified in harness.findings
                conclusion = findings.conclude(self, error)
                if conclusion is not None:
                    self.result.failure, self.result.reason = conclusion.failure, conclusion.reason
                    self.result.examples_to_failure = self.first_failure
                    self.result.seconds_to_failure = self.first_failure_seconds
                    self._finish(conclusion.verdict)
                    return
                if attempt == TORCH_RETRIES:
                    self.result.cut = (
                        f"stopped after torch disagreed with itself on {len(self.skipped)} minimal cases (each set aside; "
                        "see known_failure_cases): an undeclared class of torch's undefined behaviour, worth a report"
                    )
                    if stage == COVERING:
                        self.result.covering_stage = "incomplete"
                    self._finish("pass")
                    return
                examples, known, self.account = before
                self.result.examples, self.result.known_failure_cases = examples, {**known, **self._torch_reasons()}
                self.result.coverage = self.account.to_json()
                self.first_failure = self.first_failure_seconds = None
                self.last_failure = {}
                continue
            if stage == COVERING:
                self.result.covering_stage = "complete"
            return

    def _torch_reasons(self) -> dict[str, int]:
        return {reason: 1 for reason in self.skipped.values()}

    def _test(self, profile_settings, overrides: dict, on_example):
        implementation, runner, result, account, space = self.implementation, self.runner, self.result, self.account, self.space
        # Guided search (a target phase) climbs towards the worst |error| / bound; only a case
        # that ties or beats the best so far moves it, so only such a case is scored, on exact
        # margins (`oracle.check`'s exact_margins_from). Without a target phase nothing is, and
        # the cases drawn do not hang on margins (Hypothesis' Pareto front draws on its random).
        guided = Phase.target in overrides.get("phases", profile_settings.phases)
        best_margin = [-math.inf if guided else math.inf]  # per Hypothesis run

        # settings outside seed: @seed alone switches the database off (for an exactly
        # repeatable run), and stored failures must be replayed first whatever the seed.
        @settings(profile_settings, **overrides)
        @hypothesis_seed(self.seed)
        @given(case=strategies.cases(implementation, devices=self.devices, avoid=self.declarations))
        def differential_test(case: Case) -> None:
            case_profile = space.profile_of(case)
            for name, value in case_profile.items():
                event(f"{name}={coverage_report.label(value)}")
            # What the campaign covered: its cases up to the first failure (after it, the
            # calls are shrinking's).
            counting = self.first_failure is None

            def set_aside(reason: str | None = None) -> None:
                if reason is not None:
                    result.known_failure_cases[reason] = result.known_failure_cases.get(reason, 0) + 1
                if counting:
                    account.record(case_profile, set_aside=True)
                    result.coverage = account.to_json()
                reject()

            if case in self.skipped:
                set_aside()
            undefined = torch_undefined.covering(case)
            if undefined is not None:  # before torch runs: there, torch may crash, raise or return, by accident
                set_aside(undefined.label())
            waived: set[str] = set()
            for known in known_failures_covering(implementation, case):
                label = known.label()
                result.known_failure_cases[label] = result.known_failure_cases.get(label, 0) + 1
                if known.kinds is None:
                    set_aside()
                waived |= known.kinds
            request = protocol.Check(case, best_margin[0]) if not waived or case.defect is not None else protocol.CheckWaiving(case, frozenset(waived), best_margin[0])
            if case.defect is not None and isinstance(runner, Worker):
                # torch's reference runs first, on its own: a process that dies here died
                # in torch, and the case says so instead of counting against the candidate.
                # Its outcome goes with the check, so torch does not run twice on an input
                # where it may misbehave.
                try:
                    request = protocol.CheckExpecting(case, runner.request(protocol.ReferenceOutcome(case)))
                except oracle.Discrepancy as found:
                    if found.kind != "crash":
                        raise
                    set_aside(f"{TORCH_CRASHES}: {case.family} with {case.defect.replace('_', ' ')}{' (packed input)' if case.packed else ''}")
            result.examples += 1
            if on_example is not None:
                try:
                    on_example(result.examples)
                except TimeBudgetSpent:
                    if self.first_failure is None:  # a failure being shrunk is finished first
                        result.examples -= 1  # this one never ran
                        raise
            if counting:
                account.record(case_profile)
                result.coverage = account.to_json()
            try:
                margins = runner.request(request)
                worst = margins.worst()
                if guided and worst is not None and math.isfinite(worst) and worst >= best_margin[0]:
                    best_margin[0] = worst
                    target(worst, label="worst |error| / bound")
                if self.on_margins is not None:
                    self.on_margins(case, margins)
            except BaseException as error:
                if self.first_failure is None:
                    self.first_failure = result.examples
                    self.first_failure_seconds = self.seconds()
                self.last_failure.update(case=case, error=error, request=request)
                raise

        return differential_test


class TimeBudgetSpent(BaseException):
    """The command's time budget is spent: raised before an example, stops the campaign
    there. A BaseException, so Hypothesis stops instead of calling it a failure."""

    def __init__(self, budget: float):
        super().__init__(f"time budget of {budget:g}s spent")
        self.budget = budget


