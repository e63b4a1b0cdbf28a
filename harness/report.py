"""What a campaign tells people: progress, a summary table, failures, a JSON report."""

from __future__ import annotations

import json
import platform
import time
from pathlib import Path

import torch
from tqdm import tqdm

from harness.usage import EXIT_DISCREPANCY, EXIT_INCOMPLETE, EXIT_OK

PROGRESS_FORMAT = "{n_fmt}/{total_fmt} examples [{elapsed}<{remaining}, {rate_fmt}]"


class Progress:
    """Progress of each implementation's campaign on ``stream`` (stderr): a tqdm bar
    with rate and ETA on a terminal; elsewhere (CI logs) one plain line every
    ``interval`` seconds. Shrinking runs past the planned count; the count goes on."""

    def __init__(self, stream, *, interval: float = 5.0, position: int | None = None):
        self.stream = stream
        self.position = position  # the bar's line when several campaigns run at once
        self.live = hasattr(stream, "isatty") and stream.isatty()
        self.interval = interval
        self.name = ""
        self.started = 0.0
        self.count = 0
        self.total: int | None = None
        self.bar = None
        self.last_line = 0.0

    def start(self, name: str, total: int | None = None, *, stage: str = "", count: int = 0) -> None:
        """A campaign (or one ``stage`` of it) starts, ``count`` examples already run."""
        self.name, self.started, self.count, self.total = name, time.perf_counter(), count, total
        self.last_line = self.started
        what = f"{name} ({stage} stage)" if stage else name
        if self.live:
            self.bar = tqdm(
                total=total, initial=count, desc=f"  {what}", unit="ex", file=self.stream, leave=False, dynamic_ncols=True,
                mininterval=0.2, position=self.position,
            )
        else:
            print(f"fuzzing {what} ...", file=self.stream, flush=True)

    def example(self, count: int) -> None:
        self.count = count
        if self.bar is not None:
            self.bar.update(count - self.bar.n)
            return
        now = time.perf_counter()
        if now - self.last_line >= self.interval:
            self.last_line = now
            meter = tqdm.format_meter(count, self.total, now - self.started, unit="ex", bar_format=PROGRESS_FORMAT)
            print(f"  {self.name}: {meter}", file=self.stream, flush=True)

    def done(self, result) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
        line = f"  {result.name}: {result.verdict} after {result.examples} examples in {result.seconds:.1f}s"
        if self.live:
            tqdm.write(line, file=self.stream)  # above any other campaign's bar
        else:
            print(line, file=self.stream, flush=True)


def summary_table(results) -> str:
    rows = [("implementation", "family", "verdict", "examples", "seconds", "examples/s", "finding")]
    for result in results:
        rate = "-" if result.examples_per_second is None else f"{result.examples_per_second:.1f}"
        finding = ""
        if result.failure is not None:
            finding = f"{result.failure.kind}: {result.failure.subject}"
        elif result.reason:
            finding = result.reason.strip().splitlines()[-1][:60]
        examples = str(result.examples)
        if getattr(result, "budget_capped", False):
            examples += f" (capped at {result.example_budget})"
        rows.append((result.name, result.family or "?", result.verdict.upper() if result.verdict != "pass" else "pass", examples, f"{result.seconds:.1f}", rate, finding))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(lines + declarations(results))


def declarations(results) -> list[str]:
    """What changes what a verdict means: cases set aside as known failures, an
    approximate implementation's looser bound, and cases that were slow, not hung."""
    lines = []
    for result in results:
        if result.error_budget != 1.0:
            lines.append(
                f"  {result.name}: approximate (error_budget={result.error_budget:g}): compared under "
                f"{result.error_budget:g}x the error model's bound, not torch's own"
            )
        for reason, count in result.known_failure_cases.items():
            lines.append(f"  {result.name}: {count} case{'s' if count != 1 else ''} set aside as a known failure: {reason}")
        if getattr(result, "cut", ""):
            lines.append(f"  {result.name}: {result.cut}")
        slow = getattr(result, "slow_cases", None)
        if slow:
            lines.append(
                f"  {result.name}: {len(slow)} case{'s' if len(slow) != 1 else ''} exceeded the time limit and then "
                f"finished when run again (longest {max(slow):.1f}s): slow, maybe a loaded machine, not hung"
            )
    return ["", "declared by the implementations, and noticed:", *lines] if lines else []


def coverage_lines(results, *, table: bool = False) -> str:
    """What each campaign covered: one line per implementation, or with ``table``
    (``fuzz --coverage``) the per-dimension counts as well."""
    from harness.coverage_report import dimension_table, summary_line

    measured = [result for result in results if getattr(result, "coverage", None)]
    if not measured:
        return ""
    if table:
        return "\ncoverage:\n" + "\n".join(dimension_table(result.name, result.coverage) for result in measured)
    width = max(len(result.name) for result in measured)
    return "\ncoverage:\n" + "\n".join(f"  {result.name:<{width}}  {summary_line(result.coverage)}" for result in measured)


def failure_text(result) -> str:
    header = f"\n=== {result.name}: {result.verdict.upper()}"
    if result.examples_to_failure is not None:
        header += f" (first failing example: #{result.examples_to_failure}, after {result.seconds_to_failure:.1f}s; minimal case below)"
    body = result.failure.summary if result.failure is not None else result.reason
    replay = f"\n  replay the campaign: {result.replay_command()}"
    return header + "\n" + body + replay


def write_json(path: Path, results, *, seed: int, profile: str, devices: list[str]) -> None:
    document = {
        "tool": "rnn-harness",
        "seed": seed,
        "profile": profile,
        "devices": devices,
        "environment": {"torch": torch.__version__, "python": platform.python_version(), "machine": platform.machine()},
        "implementations": {result.name: result.to_json() for result in results},
    }
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=2) + "\n")


def finish(args, results: list, *, seed: int, devices: list[str]) -> int:
    """Print the summary and the failures, write the report, and return the exit code."""
    print(summary_table(results))
    print(coverage_lines(results, table=getattr(args, "coverage", False)))
    for result in results:
        if result.failure is not None or result.verdict == "error":
            print(failure_text(result))
    if args.report is not None:
        write_json(args.report, results, seed=seed, profile=args.profile, devices=devices)
    if not all(r.verdict in ("pass", "skipped") for r in results):
        return EXIT_DISCREPANCY
    incomplete = [r.name for r in results if r.coverage_incomplete]
    if incomplete:
        print(
            f"\ncoverage incomplete: the covering set of {', '.join(incomplete)} did not finish (see `cut` above); "
            f"nothing failed in what ran, but the run proves less than it promises (exit {EXIT_INCOMPLETE})"
        )
        return EXIT_INCOMPLETE
    return EXIT_OK
