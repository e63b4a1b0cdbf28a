"""Timing implementations against torch: ``python -m harness bench``, the asv suites
and the pytest-benchmark A/B file all time the same workloads.

- `workload`: one implementation, one shape, one mode (forward, or forward and
  backward) as a zero-argument call, with its first-call time and worst error.
- `roofline`: this machine's matmul GFLOP/s at the current thread count, the ceiling
  a table's fractions are taken against.
- `runner`: the ``bench`` command: interleaved timing rounds over a shape grid, the
  table, the JSON.
- `plot`: the optional PNG of a run.
- `asv`: the asv suites, of this repository's benchmarks/ and of a plugin's: any
  implementation by name against torch's module of its family.

The command's names are re-exported here, so ``from harness import bench`` reads as
the command it is.
"""

from harness.bench.runner import (
    BASELINE,
    BENCH_FAMILIES,
    COMPUTE_BOUND,
    GRIDS,
    LATENCY_BOUND,
    BenchResult,
    add_arguments,
    measure,
    parse_shape,
    run_command,
)
from harness.bench.workload import LAYER_FAMILIES, builtin_name

__all__ = [
    "BASELINE", "BENCH_FAMILIES", "COMPUTE_BOUND", "GRIDS", "LATENCY_BOUND", "LAYER_FAMILIES", "BenchResult",
    "add_arguments", "builtin_name", "measure", "parse_shape", "run_command",
]
