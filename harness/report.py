"""What a campaign tells people: progress, a summary table, failures, a JSON report."""

from __future__ import annotations

import json
import platform
import time
from pathlib import Path

import torch


class Progress:
    """One status line per implementation on stderr; redrawn in place on a terminal."""

    def __init__(self, stream):
        self.stream = stream
        self.live = hasattr(stream, "isatty") and stream.isatty()
        self.name = ""
        self.started = 0.0
        self.count = 0

    def start(self, name: str) -> None:
        self.name, self.started, self.count = name, time.perf_counter(), 0
        if not self.live:
            print(f"fuzzing {name} ...", file=self.stream, flush=True)

    def example(self, count: int) -> None:
        self.count = count
        if self.live and (count < 10 or count % 5 == 0):
            rate = count / max(time.perf_counter() - self.started, 1e-9)
            self.stream.write(f"\r  {self.name}: {count} examples ({rate:.1f}/s)   ")
            self.stream.flush()

    def done(self, result) -> None:
        if self.live:
            self.stream.write("\r" + " " * 60 + "\r")
        print(f"  {result.name}: {result.verdict} after {result.examples} examples in {result.seconds:.1f}s", file=self.stream, flush=True)


def summary_table(results) -> str:
    rows = [("implementation", "verdict", "examples", "seconds", "examples/s", "finding")]
    for result in results:
        rate = f"{result.examples / result.seconds:.1f}" if result.seconds > 0 else "-"
        finding = ""
        if result.failure is not None:
            finding = f"{result.failure.kind}: {result.failure.subject}"
        elif result.reason:
            finding = result.reason.strip().splitlines()[-1][:60]
        examples = str(result.examples)
        if getattr(result, "budget_capped", False):
            examples += f" (capped at {result.example_budget})"
        rows.append((result.name, result.verdict.upper() if result.verdict != "pass" else "pass", examples, f"{result.seconds:.1f}", rate, finding))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(lines)


def failure_text(result) -> str:
    header = f"\n=== {result.name}: {result.verdict.upper()}"
    if result.examples_to_failure is not None:
        header += f" (first failing example: #{result.examples_to_failure}, after {result.seconds_to_failure:.1f}s; minimal case below)"
    body = result.failure.summary if result.failure is not None else result.reason
    replay = f"\n  replay the campaign: python -m harness fuzz --impl {result.name} --seed {result.seed} --profile {result.profile}"
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
