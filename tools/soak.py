"""Soak the fuzzer's verdicts: the bare command, or every eager built-in's long profile,
under several seeds, on a quiet machine or beside CPU hogs, each run in a fresh folder
(no stored examples). Prints one markdown row per run: seed, wall time, exit code,
verdicts, false alarms (a built-in that failed: every built-in is correct), and whether
every eager built-in (one that does not compile per shape) covered all its feasible
pairs and invalid inputs. docs/reliability.md holds the tables.

    python tools/soak.py bare --seeds 1 2 3                  # python -m harness fuzz --seed S
    python tools/soak.py bare --seeds 4 5 --hogs 2           # beside two busy CPU hogs
    python tools/soak.py long --seeds 20261207 --jobs 2      # --profile long, eager built-ins
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HOG = "while True: pass"


def eager_builtins() -> list[str]:
    from harness.registry import discover

    registry = discover()
    return [name for name in registry.names if registry.implementation(name).example_timeout is None]


def coverage_complete(entry: dict) -> bool:
    """Every covering case ran, and judged every pair and invalid input that a judged
    case can hold (the rest only set-aside cases reach: docs/what-is-checked.md)."""
    coverage = entry.get("coverage") or {}
    return (
        entry.get("covering_stage") == "complete"
        and coverage.get("pairs_covered", 0) + len(coverage.get("pairs_set_aside_only", ())) == coverage.get("pairs_feasible")
        and coverage.get("invalid_inputs_covered", 0) + len(coverage.get("invalid_inputs_set_aside_only", ())) == coverage.get("invalid_inputs_feasible")
    )


def one_run(command: list[str], seed: int) -> dict:
    with tempfile.TemporaryDirectory(prefix=f"rnn-harness-soak-{seed}-") as folder:
        report = Path(folder) / "report.json"
        started = time.perf_counter()
        finished = subprocess.run([*command, "--seed", str(seed), "--report", str(report)], cwd=folder, capture_output=True, text=True)
        seconds = time.perf_counter() - started
        entries = json.loads(report.read_text())["implementations"] if report.exists() else {}
    eager = set(eager_builtins())
    verdicts: dict[str, int] = {}
    for entry in entries.values():
        verdicts[entry["verdict"]] = verdicts.get(entry["verdict"], 0) + 1
    return {
        "seed": seed,
        "seconds": seconds,
        "exit": finished.returncode,
        "verdicts": verdicts,
        "false_alarms": sorted(name for name, entry in entries.items() if entry["verdict"] in ("fail", "error")),
        "incomplete": sorted(name for name, entry in entries.items() if name in eager and not coverage_complete(entry)),
        "examples": sum(entry["examples"] for entry in entries.values()),
        "tail": finished.stdout.strip().splitlines()[-1:] if finished.returncode else [],
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", choices=["bare", "long"])
    parser.add_argument("--seeds", type=int, nargs="+", required=True)
    parser.add_argument("--hogs", type=int, default=0, help="busy CPU hogs running beside each run")
    parser.add_argument("--jobs", type=int, help="passed to fuzz (default: its own)")
    args = parser.parse_args(argv)
    command = [sys.executable, "-m", "harness", "fuzz"]
    if args.what == "long":
        command += ["--profile", "long", *(f"--impl={name}" for name in eager_builtins())]
    if args.jobs:
        command += ["--jobs", str(args.jobs)]
    hogs = [subprocess.Popen([sys.executable, "-c", HOG]) for _ in range(args.hogs)]
    print("| seed | wall s | exit | verdicts | examples | false alarms | eager built-ins not fully covered |")
    print("|---|---|---|---|---|---|---|")
    failures = 0
    try:
        for seed in args.seeds:
            row = one_run(command, seed)
            failures += bool(row["exit"] or row["false_alarms"] or row["incomplete"])
            verdicts = ", ".join(f"{count} {verdict}" for verdict, count in sorted(row["verdicts"].items()))
            print(
                f"| {seed} | {row['seconds']:.0f} | {row['exit']} | {verdicts} | {row['examples']} | "
                f"{len(row['false_alarms'])}{': ' + ', '.join(row['false_alarms']) if row['false_alarms'] else ''} | "
                f"{', '.join(row['incomplete']) or 'none'} |",
                flush=True,
            )
            for line in row["tail"]:
                print(f"  seed {seed}: {line}", file=sys.stderr)
    finally:
        for hog in hogs:
            hog.kill()
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
