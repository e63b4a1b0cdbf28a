"""Measure what a hang costs and that a slow first call is not one, with the default limits.

Two plugins from tests/faulty, fuzzed as ``python -m harness fuzz`` fuzzes one (the
default profile and the default 30 s ``--timeout``, isolated, no database):

- ``faulty-hangs-when-wide`` spins forever once ``hidden_size > 3``: reported as a
  timeout, with how long until the report and the minimal case's hidden_size (4 is minimal);
- ``slow-first-call``, correct, whose first call on this machine takes ``--slow-seconds``
  longer (45 s by default: a kernel compiled on first use and cached): must pass.

    python tools/hang_timing.py --seeds 0 1 2
    python tools/hang_timing.py --seeds 0 --slow-seconds 45 --skip-hang
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from faulty import HANGS_WHEN_WIDE  # noqa: E402
from harness import Implementation  # noqa: E402
from harness.campaign import DEFAULT_TIMEOUT, fuzz_implementation  # noqa: E402
from impls.loop import LoopRNN  # noqa: E402

SLOW_MARKER = Path(tempfile.gettempdir()) / "rnn-harness-hang-timing-slow-first-call"


class SlowFirstCall(LoopRNN):
    """Correct; until one call on this machine has run RNN_HARNESS_SLOW_SECONDS to the
    end, every call takes that long (a kernel compiled on first use, cached once the
    compile finishes: a call killed before that leaves nothing cached)."""

    def forward(self, input, hx=None):
        if not SLOW_MARKER.exists():
            time.sleep(float(os.environ["RNN_HARNESS_SLOW_SECONDS"]))
            SLOW_MARKER.touch()
        return super().forward(input, hx)


SLOW_FIRST_CALL = Implementation(name="slow-first-call", factory=SlowFirstCall)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--slow-seconds", type=float, default=45.0)
    parser.add_argument("--skip-hang", action="store_true")
    parser.add_argument("--skip-slow", action="store_true")
    args = parser.parse_args()
    # Before the first worker: they fork from a server that keeps the environment it started with.
    os.environ["RNN_HARNESS_SLOW_SECONDS"] = str(args.slow_seconds)
    print(f"timeout {DEFAULT_TIMEOUT:g}s, load {os.getloadavg()[0]:.1f} at start")
    for seed in args.seeds:
        if not args.skip_hang:
            result = fuzz_implementation(HANGS_WHEN_WIDE, seed=seed, repro_dir=None, database=None)
            failure = result.failure
            print(
                f"hang, seed {seed}: {result.verdict} ({failure.kind if failure else '-'}) after {result.seconds:.1f}s in all, "
                f"first failing example #{result.examples_to_failure} at {result.seconds_to_failure or 0:.1f}s, "
                f"minimal hidden_size {failure.case.hidden_size if failure else '-'}, {result.worker_restarts} worker restarts, "
                f"load {os.getloadavg()[0]:.1f}"
            )
            if failure:
                print("  " + failure.summary.splitlines()[-1][:300])
        if not args.skip_slow:
            SLOW_MARKER.unlink(missing_ok=True)
            try:
                result = fuzz_implementation(SLOW_FIRST_CALL, seed=seed, repro_dir=None, database=None)
            finally:
                SLOW_MARKER.unlink(missing_ok=True)
            print(
                f"slow first call ({args.slow_seconds:g}s), seed {seed}: {result.verdict} after {result.seconds:.1f}s, "
                f"{result.examples} examples, slow cases {[round(s, 1) for s in result.slow_cases]}, load {os.getloadavg()[0]:.1f}"
            )


if __name__ == "__main__":
    main()
