"""One result per implementation from its units' outcomes, merged as the last of
them comes in, with the smallest minimal failure among them and its repro script
written here."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from harness import coverage_report
from harness.cluster.units import Outcome, Unit
from harness.database import slug
from harness.campaign_result import ImplementationResult

@dataclasses.dataclass(kw_only=True)
class ClusterResult(ImplementationResult):
    """An `ImplementationResult` merged from an implementation's units, saying where they ran."""

    worker: str = ""  # the worker whose unit decided the verdict: the failure shown, the error, the first pass
    workers: list[str] = dataclasses.field(default_factory=list)  # every worker that ran one of its units
    worker_deaths: list[str] = dataclasses.field(default_factory=list)
    shards: list[dict] = dataclasses.field(default_factory=list)  # one entry per unit
    replay: str = ""

    def to_json(self) -> dict:
        return {**super().to_json(), "worker": self.worker, "workers": self.workers, "worker_deaths": self.worker_deaths, "shards": self.shards}

    def replay_command(self) -> str:
        return self.replay


def _case_size(outcome: Outcome) -> tuple:
    case = outcome.result.failure.case
    directions = 2 if case.bidirectional else 1
    elements = case.seq_len * case.batch * case.input_size
    weights = case.num_layers * directions * case.hidden_size * (case.input_size + case.hidden_size)
    return (elements + weights, outcome.unit.device, outcome.unit.shard)


def merge(name: str, outcomes: list[Outcome], unfinished: list[Unit], *, seed: int, profile: str, repro_dir: Path | None, replay: str) -> ClusterResult:
    """One implementation's result from its units: fail if any unit failed (with the
    smallest minimal case among them), else error if any broke, else pass if any
    passed, else skipped; examples, known-failure cases and isolation restarts are
    summed, and seconds is the wall time from the first unit's start to the last's end."""
    outcomes = sorted(outcomes, key=lambda o: (o.unit.device, o.unit.shard))
    known_failure_cases: dict[str, int] = {}
    for outcome in outcomes:
        for label, count in outcome.result.known_failure_cases.items():
            known_failure_cases[label] = known_failure_cases.get(label, 0) + count
    spans = [(o.started, o.finished) for o in outcomes if o.started is not None and o.finished is not None]
    by_verdict = {verdict: [o for o in outcomes if o.result.verdict == verdict] for verdict in ("fail", "error", "pass", "skipped")}
    verdict, reason, failure, to_failure = "skipped", "", None, {}
    if by_verdict["fail"]:
        with_case = [o for o in by_verdict["fail"] if o.result.failure is not None]
        chosen = min(with_case, key=_case_size) if with_case else by_verdict["fail"][0]
        shown = chosen.result
        verdict, reason, failure = "fail", shown.reason, shown.failure
        to_failure = {"examples_to_failure": shown.examples_to_failure, "seconds_to_failure": shown.seconds_to_failure}
        if chosen.repro_text is not None and shown.failure is not None and repro_dir is not None:
            failure = _local_repro(shown.failure, chosen.repro_text, Path(repro_dir), name)
        replay = chosen.unit.replay_command()
    elif by_verdict["error"]:
        chosen = by_verdict["error"][0]
        verdict, reason, failure = "error", f"{chosen.unit.label}: {chosen.result.reason}", chosen.result.failure
        replay = chosen.unit.replay_command()
    elif unfinished:
        chosen = None
        reason = f"interrupted by the user: {len(outcomes)} of {len(outcomes) + len(unfinished)} units finished"
    elif by_verdict["pass"]:
        chosen = by_verdict["pass"][0]
        verdict = "pass"
    else:
        chosen = outcomes[0] if outcomes else None
        reason = chosen.result.reason if chosen else ""
    return ClusterResult(
        name=name, verdict=verdict, seed=seed, profile=profile, reason=reason, failure=failure, **to_failure,
        examples=sum(o.result.examples for o in outcomes),
        seconds=max(end for _, end in spans) - min(start for start, _ in spans) if spans else 0.0,
        error_budget=outcomes[0].result.error_budget if outcomes else 1.0,
        known_failure_cases=known_failure_cases,
        family=next((o.result.family for o in outcomes if o.result.family), None),
        isolated=all(o.result.isolated for o in outcomes),
        worker_restarts=sum(o.result.worker_restarts for o in outcomes),
        slow_cases=[seconds for o in outcomes for seconds in getattr(o.result, "slow_cases", ())],
        coverage=coverage_report.merge([o.result.coverage for o in outcomes if o.result.coverage is not None]),
        worker="" if chosen is None else chosen.worker,
        workers=sorted({o.worker for o in outcomes if o.worker}),
        worker_deaths=[dead for o in outcomes for dead in o.worker_deaths],
        shards=[o.to_json() for o in outcomes] + [_unfinished_json(unit) for unit in unfinished],
        replay=replay,
    )


def _unfinished_json(unit: Unit) -> dict:
    return {
        "device": unit.device, "shard": unit.shard, "shards": unit.shards, "seed": unit.seed,
        "max_examples": unit.max_examples, "verdict": "skipped", "examples": 0, "seconds": 0.0, "worker": "",
        "attempts": 0, "worker_deaths": [], "reason": "interrupted by the user before it finished", "replay": unit.replay_command(),
    }


def _local_repro(failure, text: str, repro_dir: Path, name: str):
    """Write the worker's repro script here and point the failure at it."""
    path = repro_dir / f"repro_{slug(name)}.py"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    summary = failure.summary
    if failure.repro_path is not None:
        summary = summary.replace(str(failure.repro_path), str(path))
    return dataclasses.replace(failure, repro_path=path, summary=summary)


class Collector:
    """Gathers outcomes as they come, says so on stderr, and merges an implementation
    as soon as its last unit is in."""

    def __init__(self, units: list[Unit], seed: int, profile: str, repro_dir: Path | None, replay_options: str, progress):
        self.expected = {unit.name: 0 for unit in units}
        for unit in units:
            self.expected[unit.name] += 1
        self.outcomes: dict[str, list[Outcome]] = {name: [] for name in self.expected}
        self.merged: dict[str, ClusterResult] = {}
        self.seed, self.profile, self.repro_dir = seed, profile, repro_dir
        self.replay_options = replay_options
        self.progress = progress

    def add(self, outcome: Outcome) -> None:
        result, name = outcome.result, outcome.unit.name
        print(
            f"  {outcome.unit.label} on {outcome.worker or '?'}: {result.verdict} after {result.examples} examples in {result.seconds:.1f}s",
            file=self.progress.stream, flush=True,
        )
        self.outcomes[name].append(outcome)
        if len(self.outcomes[name]) == self.expected[name]:
            self.merged[name] = self.result(name, [])
            self.progress.done(self.merged[name])

    def result(self, name: str, unfinished: list[Unit]) -> ClusterResult:
        if name in self.merged:
            return self.merged[name]
        replay = f"python -m harness fuzz --impl {name} --seed {self.seed}{self.replay_options}"
        return merge(name, self.outcomes[name], unfinished, seed=self.seed, profile=self.profile, repro_dir=self.repro_dir, replay=replay)
