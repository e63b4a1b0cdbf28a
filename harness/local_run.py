"""The campaigns of one ``fuzz`` command on this machine: one at a time, or several
at once in lanes (each campaign drives its own worker process), every campaign's
covering stage before any campaign's random stage, under the bare command's time
budget. A run on a Dask cluster is `harness.cluster`'s."""

from __future__ import annotations

import collections
import os
import random
import statistics
import sys
import threading
import time
import traceback

import torch

from harness import cases, report, worker_process
from harness.campaign import COVERING, PROFILES, RANDOM, Campaign, TimeBudgetSpent, check_arguments
from harness.campaign_result import ImplementationResult
from harness.usage import UsageError

TIME_BUDGETS = {"default": 100.0}
"""Seconds of campaigns the bare command may spend (``--time-budget``; everything
registered, no ``--max-examples``): ``python -m harness fuzz`` promises two minutes
on 2 cores, imports and the examples already running included. Coverage is the last
thing it cuts: every campaign's covering stage runs first, whatever the budget (up to
`COVERING_CAP` times it). What is left goes to the random stages: each gets a fair
share of what is left when it starts (the lanes' time over the random stages not yet
done) and stops before its next example once that is spent (never before its first,
nor while shrinking a failure); past the budget, those not yet started are not run
(one that compiles per shape needs `SLOW_START_MARGIN` left to start). The report
says what was cut, and each replay command runs the same cases first."""
COVERING_CAP = 3.0
"""Under a time budget, the covering stages stop before their next example once the
command has run this many times its budget (a machine too loaded to finish them):
the summary's last line says which covering sets did not finish, and the command
exits with `EXIT_INCOMPLETE` instead of 0."""
SLOW_START_MARGIN = 25.0
"""Under a time budget, a campaign that compiles or exports per shape (``example_timeout``)
starts only with this many seconds left: its one example cannot be cut (15-60 s here)."""
PRIOR_PACE = {False: 2.0, True: 8.0}
"""Seconds a random stage is expected to take before any of its kind has finished
(quick; compiling or exporting per shape), under a time budget. A loaded machine shows
itself as soon as the first random stage of a kind finishes: from then on its mean counts."""


def default_jobs() -> int:
    """The CPUs this process may run on: one campaign each, every worker one thread."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def run_command(args, registry, names: list[str]) -> int:
    """``python -m harness fuzz`` on this machine: the campaigns, the summary, the exit code."""
    location = check_arguments(args)
    devices = args.device or cases.available_devices()
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
    runs = Runs(args, registry, seed, location, devices)
    if not args.no_isolation:
        worker_process.share_imports(registry.implementation(name) for name in names if name not in runs.broken)
        worker_process.start_server()  # started by `python -m harness fuzz` already; else it imports torch while the campaigns are planned
    results = runs.campaigns(names, jobs)
    return report.finish(args, results, seed=seed, devices=devices)


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


class Runs:
    """The campaigns of one ``fuzz`` command, one at a time or several at once, in two
    passes: every campaign's covering stage, then every campaign's random stage. Each
    campaign drives its own worker process, so running several at once is several
    Hypothesis runs in threads of this process (Hypothesis is thread-safe since 6.136)
    while torch runs in the workers, one thread each."""

    def __init__(self, args, registry, seed: int, location, devices: list[str]):
        self.args, self.registry, self.seed, self.location, self.devices = args, registry, seed, location, devices
        self.broken = {plugin.name: plugin for plugin in registry.broken}
        self.stop = threading.Event()
        self.time_budget = time_budget(args)
        self.deadline = None if self.time_budget is None else time.monotonic() + self.time_budget
        self.unstarted, self.lanes = 0, 1  # set before the random pass
        self.waiting: set[str] = set()  # random stages not started yet (under a time budget)
        self.took: dict[bool, list[float]] = {False: [], True: []}  # finished random stages' seconds, by "compiles per shape"
        self.counting = threading.Lock()
        self.started: dict[str, Campaign] = {}
        self.results: dict[str, ImplementationResult] = {}  # campaigns that ended with a verdict, or never started

    def slow(self, name: str) -> bool:
        return self.registry.implementation(name).example_timeout is not None

    def reserve(self) -> float:
        """Lane-seconds the random stages not started yet are expected to need: each at
        the mean pace of the finished ones of its kind (quick, or compiling per shape),
        `PRIOR_PACE` before any has finished."""
        with self.counting:
            paces = {kind: (statistics.fmean(took) if took else PRIOR_PACE[kind]) for kind, took in self.took.items()}
            return sum(paces[self.slow(name)] for name in self.waiting)

    def budget(self, name: str) -> int:
        if self.args.max_examples is not None:
            return self.args.max_examples
        return self.registry.implementation(name).example_budget(PROFILES[self.args.profile][0])

    def campaigns(self, names: list[str], jobs: int) -> list[ImplementationResult]:
        """Every campaign's covering stage, then every campaign's random stage; the
        results in the order asked (what never started is not reported)."""
        order = self.lane_order(names)
        if not self.run_lanes(order, jobs, self.covering):
            self.run_lanes(order, jobs, self.random, before=self._before_random)
        for name, campaign in self.started.items():
            if name not in self.results and not campaign.finished:  # interrupted between its stages
                result = campaign.result
                result.verdict, result.reason = "skipped", f"interrupted by the user after {result.examples} examples (its covering stage), before its random stage"
            self.results.setdefault(name, campaign.result)
        return [self.results[name] for name in names if name in self.results]

    def lane_order(self, names: list[str]) -> list[str]:
        # One lane works through the paths that are slow per example (they compile or
        # export per shape) from the front, the others through the quick ones from the
        # back; they meet in the middle. So the quick results come early, and two
        # compilers never pay their one-time setup side by side. The cheaper of them
        # first (their declared limits: exported 600 s, compiled 900 s), so that a time
        # budget leaves out the fewest.
        slow = [name for name in names if name not in self.broken and self.slow(name)]
        slow.sort(key=lambda name: self.registry.implementation(name).example_timeout)
        return slow + [name for name in names if name not in slow]

    def covering(self, name: str, progress: report.Progress) -> None:
        """Start one campaign and run its covering stage; a harness bug becomes its `error`."""
        if name in self.broken:
            self.results[name] = ImplementationResult.error(name, self.seed, self.args.profile, self.broken[name].error)
            return
        try:
            campaign = Campaign(
                self.registry.implementation(name), profile=self.args.profile, max_examples=self.args.max_examples,
                seed=self.seed, repro_dir=self.args.repro_dir, database=self.location, devices=self.devices,
                isolate=not self.args.no_isolation, timeout=self.args.timeout, cancel=self.stop,
            )
        except Exception as error:  # noqa: BLE001 - a harness bug must not cost the other results or the report
            self.results[name] = self._harness_failed(name, error, progress)
            return
        self.started[name] = campaign
        if not campaign.pending(COVERING):
            return
        progress.start(name, total=campaign.plan.covering + campaign.plan.invalid, stage=COVERING)
        cap = None if self.deadline is None else self.deadline + (COVERING_CAP - 1) * self.time_budget

        def on_example(count: int) -> None:
            if self.stop.is_set():
                raise KeyboardInterrupt  # another thread's Ctrl-C: stop before the next example
            if cap is not None and count > 1 and time.monotonic() > cap:
                raise TimeBudgetSpent(self.time_budget * COVERING_CAP)
            progress.example(count)

        self._run(campaign, COVERING, on_example, progress)
        if campaign.finished:
            progress.done(campaign.result)

    def _before_random(self, order: list[str], jobs: int) -> list[str]:
        """The campaigns still without a verdict; the time budget is shared among those
        with random examples to run."""
        unfinished = [name for name in order if name in self.started and not self.started[name].finished]
        pending = [name for name in unfinished if self.started[name].pending(RANDOM)]
        self.unstarted, self.lanes, self.waiting = len(pending), jobs, set(pending)
        return unfinished

    def random(self, name: str, progress: report.Progress) -> None:
        """One campaign's random stage, under the command's time budget."""
        campaign = self.started[name]
        if not campaign.pending(RANDOM):  # its budget was all covering cases: its verdict is in
            campaign.run(RANDOM)
            progress.done(campaign.result)
            return
        share = None
        if self.deadline is not None:
            with self.counting:
                self.unstarted -= 1
                self.waiting.discard(name)
                waiting = max(self.unstarted, 0)
            left = self.deadline - time.monotonic()
            # One example of a path that compiles per shape cannot be cut, and takes tens of seconds.
            if left <= 0 or (self.slow(name) and left < SLOW_START_MARGIN):
                campaign.cut_before(RANDOM, self.not_run_text(campaign))
                progress.done(campaign.result)
                return
            # A fair share of what is left, so that the campaigns at the end of the queue
            # are not the ones cut whole: the lanes' time over the campaigns not yet done.
            share = min(left, left * self.lanes / (waiting + 1))
        progress.start(name, total=campaign.result.example_budget + campaign.plan.invalid, stage=RANDOM, count=campaign.result.examples)
        own_deadline: list[float] = []  # the share runs from the first example on: a worker's start is not the campaign's
        first = campaign.result.examples + 1

        def on_example(count: int) -> None:
            if self.stop.is_set():
                raise KeyboardInterrupt  # another thread's Ctrl-C: stop before the next example
            if share is not None and count > first:
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

        before = campaign.seconds()
        self._run(campaign, RANDOM, on_example, progress)
        progress.done(campaign.result)
        if share is not None and not campaign.result.cut:
            with self.counting:
                self.took[self.slow(name)].append(campaign.seconds() - before)

    def _run(self, campaign: Campaign, stage: str, on_example, progress: report.Progress) -> None:
        try:
            campaign.run(stage, on_example)
        except KeyboardInterrupt:
            raise
        except Exception as error:  # noqa: BLE001 - a harness bug must not cost the other results or the report
            self.results[campaign.implementation.name] = self._harness_failed(campaign.implementation.name, error, progress)
            campaign.finished = True

    def _harness_failed(self, name: str, error: Exception, progress: report.Progress) -> ImplementationResult:
        reason = "the harness itself failed:\n" + "".join(traceback.format_exception(type(error), error, error.__traceback__)[-8:])
        result = ImplementationResult.error(name, self.seed, self.args.profile, reason, examples=progress.count, seconds=time.perf_counter() - progress.started)
        progress.done(result)
        return result

    def not_run_text(self, campaign: Campaign) -> str:
        result = campaign.result
        ran = f"after its covering stage ({result.examples} examples, none failing), before its random examples" if result.examples else "before it could start"
        return (
            f"stopped by the command's time budget ({self.time_budget:g}s, shared among the campaigns) {ran}"
            f"; `{result.replay_command()} --time-budget 0` runs the same cases first, then the rest"
        )

    def interrupted(self, name: str, progress: report.Progress, interrupt: KeyboardInterrupt | None = None) -> ImplementationResult:
        return ImplementationResult.skipped(
            name, self.seed, self.args.profile, f"interrupted by the user after {progress.count} examples",
            examples=progress.count, seconds=time.perf_counter() - progress.started,
            family=self.registry.implementation(name).family, coverage=getattr(interrupt, "coverage", None),
        )

    def run_lanes(self, order: list[str], jobs: int, work, before=None) -> bool:
        """``work(name, progress)`` for each name, in ``jobs`` lanes: lane 0 from the front of
        ``order``, the others from the back. Returns whether the user interrupted."""
        pending = collections.deque(order if before is None else before(order, jobs))
        lock = threading.Lock()
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
                    progress = report.Progress(sys.stderr, position=slot if jobs > 1 else None)
                    try:
                        work(name, progress)
                    except KeyboardInterrupt as interrupt:
                        self.results[name] = self.interrupted(name, progress, interrupt)
                        self.stop.set()
                        return
            finally:
                finished[slot].set()

        if jobs == 1:
            try:
                lane(0)
            except KeyboardInterrupt:
                self.stop.set()
        else:
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
        if self.stop.is_set():
            if jobs == 1:
                print("\ninterrupted: reporting what finished", file=sys.stderr)
            return True
        return False
