"""The full suite's grid: every built-in at every shape, and how a parameter names a
built-in.

asv imports a benchmark directory as a package of its own, with nothing else of the
checkout importable, so this package does not import benchmarks/ (the default
suite, whose grid is a subset of this one: the same labels, the same classes).
"""

from __future__ import annotations

import time

from harness.bench.workload import Shape, builtin_name

IMPLEMENTATIONS = [
    "torch", "torch-aten", "loop", "linear", "vectorized", "torchscript", "native",
    # torch's own execution paths; compiled and exported compile/export in setup (minutes).
    "torch-decomp", "compiled", "exported", "onnxruntime",
]
"""Every built-in, by base name (``vectorized`` is ``vectorized-lstm`` in the LSTM suites)."""

SHAPES = {
    "latency L50 N1 I32 H32": Shape(50, 1, 32, 32),
    "medium L100 N8 I128 H128": Shape(100, 8, 128, 128),
    "compute L100 N32 I256 H256": Shape(100, 32, 256, 256),
    "2 layers L50 N8 I64 H64": Shape(50, 8, 64, 64, num_layers=2),
    "bidirectional L50 N8 I64 H64": Shape(50, 8, 64, 64, bidirectional=True),
}
"""The shapes, by the label asv shows."""

THREADS = [1]
"""torch threads while timing; a parameter so that asv records it with each result."""


class FullSuite:
    """Mixed in before `harness.bench.asv.ForwardSuite` or `BackwardSuite`: the
    parameter is a built-in's base name, taken in the suite's ``family``; timed as
    the default suite times (benchmarks/common.py says why)."""

    family = "RNN"
    shapes = SHAPES
    params = (IMPLEMENTATIONS, list(SHAPES), THREADS)
    # loop and linear at the compute-bound shape take a while per call, and compiled
    # compiles a 100-step unrolled graph in setup (many minutes on 2 cores).
    timeout = 1800
    timer = time.process_time
    rounds = 4

    def implementation_name(self, name: str) -> str:
        return builtin_name(name, self.family)
