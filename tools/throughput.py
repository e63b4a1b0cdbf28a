"""Compare the fuzzer's examples per second of several checkouts, side by side.

For each seed and implementation, runs each checkout's ``python -m harness fuzz``
(isolated, ``--jobs 1``, a fresh example database, ``OMP_NUM_THREADS=1``), the
checkouts alternating so that the load they see is the same, and prints one row per
run, then each checkout's examples / seconds over all its runs. The seconds are the
campaign's, from its report. docs/benchmarks.md ("Fuzzer throughput") holds the
tables this printed.

    python tools/throughput.py --checkout before=../old --checkout after=. \\
        --seeds 1 2 3 --impl vectorized --impl vectorized-lstm
    python tools/throughput.py ... -- --max-examples 300   # options passed to fuzz
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def parse_arguments(argv: list[str] | None) -> tuple[argparse.Namespace, list[str]]:
    argv = sys.argv[1:] if argv is None else argv
    extra: list[str] = []
    if "--" in argv:
        extra = argv[argv.index("--") + 1 :]
        argv = argv[: argv.index("--")]
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkout", action="append", required=True, metavar="LABEL=PATH", help="a checkout to run (repeatable)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3], help="campaign seeds (default: 1 2 3)")
    parser.add_argument("--impl", action="append", required=True, help="implementation to fuzz (repeatable)")
    return parser.parse_args(argv), extra


def run_once(path: Path, implementation: str, seed: int, extra: list[str], folder: Path) -> tuple[dict, float]:
    """One campaign in ``path``'s checkout: its report entry and the command's wall time."""
    report = folder / "report.json"
    environment = dict(os.environ, PYTHONPATH=str(path), OMP_NUM_THREADS="1")
    command = [sys.executable, "-m", "harness", "fuzz", "--impl", implementation, "--seed", str(seed), "--jobs", "1",
               "--database", str(folder / "database"), "--report", str(report), *extra]
    started = time.perf_counter()
    finished = subprocess.run(command, cwd=path, env=environment, capture_output=True, text=True)
    wall = time.perf_counter() - started
    if not report.exists():
        raise SystemExit(f"{path}: {' '.join(command)} wrote no report (exit {finished.returncode}):\n{finished.stderr[-2000:]}")
    return json.loads(report.read_text())["implementations"][implementation], wall


def main(argv: list[str] | None = None) -> int:
    arguments, extra = parse_arguments(argv)
    checkouts = {label: Path(path).resolve() for label, path in (entry.split("=", 1) for entry in arguments.checkout)}
    totals: dict[tuple[str, str], list[float]] = {}
    print("| checkout | implementation | seed | verdict | examples | seconds | examples/s | wall s |")
    print("|---|---|---|---|---|---|---|---|")
    for seed in arguments.seeds:
        for implementation in arguments.impl:
            for label, path in checkouts.items():
                with tempfile.TemporaryDirectory(prefix="rnn-harness-throughput-") as folder:
                    entry, wall = run_once(path, implementation, seed, extra, Path(folder))
                examples, seconds = entry["examples"], entry["seconds"]
                total = totals.setdefault((label, implementation), [0, 0.0, 0.0])
                total[0] += examples
                total[1] += seconds
                total[2] += wall
                print(f"| {label} | {implementation} | {seed} | {entry['verdict']} | {examples} | {seconds:.2f} | {examples / seconds:.1f} | {wall:.1f} |", flush=True)
    print("\n| implementation | " + " | ".join(checkouts) + " |")
    print("|---|" + "---|" * len(checkouts))
    for implementation in arguments.impl:
        cells = []
        for label in checkouts:
            examples, seconds, wall = totals[(label, implementation)]
            cells.append(f"{examples} / {seconds:.1f} s = {examples / seconds:.1f} examples/s (wall {wall:.0f} s)")
        print(f"| {implementation} | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
