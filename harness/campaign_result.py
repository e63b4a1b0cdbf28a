"""What one implementation's campaign came to: its verdict, counts and times, and the
minimal failure with its explanation and repro script (`ImplementationResult`,
`Failure`), as the console, the JSON report, pytest-xdist and the cluster pass it on."""

from __future__ import annotations

import dataclasses
import shlex
from pathlib import Path

from harness.cases import Case


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
    confirmed: bool = True
    """The minimal case alone, in a fresh worker process, failed the same way
    (`harness.findings`); False for a nondeterministic candidate."""

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
            "confirmed": self.confirmed,
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
            document.get("confirmed", True),
        )


@dataclasses.dataclass(kw_only=True)
class ImplementationResult:
    """One implementation's campaign: built by keyword, or by the named constructor of
    its verdict (`passed`, `failed`, `error`, `skipped`; `pending` before it has one)."""

    name: str
    verdict: str  # pass | fail | error | skipped
    examples: int = 0
    seconds: float = 0.0
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
    """What the campaign's cases held (`harness.coverage_report.Coverage.to_json`): feasible
    value pairs covered, per-dimension counts, what is left uncovered."""
    cut: str = ""  # what the command's time budget cut from this campaign, if anything
    covering_stage: str = ""
    """How the covering stage ended: ``complete``, ``deferred`` (the profile's budget is
    smaller than the covering set, or it was switched off), ``incomplete`` (cut, or
    interrupted: the command exits with EXIT_INCOMPLETE), or empty (it never ran: the
    implementation was unavailable, or failed before or during it)."""
    replay_options: tuple[str, ...] = ()
    """The ``fuzz`` options beyond --profile and --seed that shaped the campaign
    (--max-examples, --timeout, --device, ...), for `replay_command`."""

    @property
    def examples_per_second(self) -> float | None:
        """The campaign's throughput: examples over its wall time (None before it ran)."""
        return self.examples / self.seconds if self.seconds > 0 else None

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
            "covering_stage": self.covering_stage,
            "seconds": round(self.seconds, 3),
            "examples_per_second": None if self.examples_per_second is None else round(self.examples_per_second, 2),
            "seed": self.seed,
            "profile": self.profile,
            "examples_to_failure": self.examples_to_failure,
            "seconds_to_failure": None if self.seconds_to_failure is None else round(self.seconds_to_failure, 3),
            "reason": self.reason,
            "failure": None if self.failure is None else self.failure.to_json(),
            "coverage": self.coverage,
            "replay": self.replay_command(),
            "replay_options": list(self.replay_options),
        }

    @classmethod
    def pending(cls, name: str, seed: int | None, profile: str, **fields) -> "ImplementationResult":
        """A campaign with no verdict yet (``skipped``, with no reason), which
        `harness.campaign.Campaign` fills in as it runs."""
        return cls(name=name, verdict="skipped", seed=seed, profile=profile, **fields)

    @classmethod
    def passed(cls, name: str, seed: int | None, profile: str, **fields) -> "ImplementationResult":
        """A campaign whose every example held: nothing found."""
        return cls(name=name, verdict="pass", seed=seed, profile=profile, **fields)

    @classmethod
    def failed(cls, name: str, seed: int | None, profile: str, failure: Failure | None, **fields) -> "ImplementationResult":
        """A campaign that found a difference from torch: ``failure`` is its minimal case."""
        return cls(name=name, verdict="fail", seed=seed, profile=profile, failure=failure, **fields)

    @classmethod
    def error(cls, name: str, seed: int | None, profile: str, reason: str, **fields) -> "ImplementationResult":
        """A campaign the harness could not run (a plugin that failed to load, a harness bug)."""
        return cls(name=name, verdict="error", seed=seed, profile=profile, reason=reason, **fields)

    @classmethod
    def skipped(cls, name: str, seed: int | None, profile: str, reason: str, **fields) -> "ImplementationResult":
        """A campaign that did not run to its verdict: unavailable here, interrupted, or cancelled."""
        return cls(name=name, verdict="skipped", seed=seed, profile=profile, reason=reason, **fields)

    @property
    def coverage_incomplete(self) -> bool:
        """A campaign that passed on what ran, but whose promised covering set did not all run."""
        return self.verdict == "pass" and self.covering_stage == "incomplete"

    def replay_command(self) -> str:
        """The command that runs exactly this campaign again: the same cases, in the same order."""
        words = ["python", "-m", "harness", "fuzz", "--impl", self.name, "--seed", str(self.seed), "--profile", self.profile, *self.replay_options]
        return shlex.join(words)

    @classmethod
    def from_json(cls, name: str, document: dict) -> "ImplementationResult":
        """The result `to_json` wrote (as a report, or sent from a pytest-xdist worker):
        every field `to_json` writes under its own name, and the failure rebuilt."""
        fields = {field.name for field in dataclasses.fields(cls)} - {"name", "failure"}
        values = {key: value for key, value in document.items() if key in fields}
        values["replay_options"] = tuple(values.get("replay_options", ()))
        failure = None if document.get("failure") is None else Failure.from_json(document["failure"])
        return cls(name=name, failure=failure, **values)
