"""What the project's asv suites share: the fixed parameter grid and how a parameter
names a built-in.

The suites themselves are `harness.bench.asv`'s, the module a plugin's benchmarks
use too: setup builds the workload and sets the threads, teardown restores them.

Parameters never depend on what is installed (asv compares results across
commits by parameter): the implementations are a fixed list of built-in base
names (``vectorized``; in the LSTM suites that means ``vectorized-lstm``), and one
that is not installed here raises NotImplementedError, which asv records as a
skip, as it does for a case an implementation declares unsupported.

Each family has its own suites (RNNForward, LSTMForward, GRUForward, ...), so adding
a family never changes the parameters, and with them the history, of another's.
"""

from __future__ import annotations

from harness.bench.workload import Shape, builtin_name

IMPLEMENTATIONS = [
    "torch", "torch-aten", "loop", "linear", "vectorized", "torchscript", "native",
    # torch's own execution paths; compiled and exported compile/export in setup (minutes).
    "torch-decomp", "compiled", "exported", "onnxruntime",
]

SHAPES = {
    "latency L50 N1 I32 H32": Shape(50, 1, 32, 32),
    "medium L100 N8 I128 H128": Shape(100, 8, 128, 128),
    "compute L100 N32 I256 H256": Shape(100, 32, 256, 256),
    "2 layers L50 N8 I64 H64": Shape(50, 8, 64, 64, num_layers=2),
    "bidirectional L50 N8 I64 H64": Shape(50, 8, 64, 64, bidirectional=True),
}

THREADS = [1]
"""torch threads while timing; a parameter so that asv records it with each result."""


class BuiltinSuite:
    """Mixed in before `harness.bench.asv.ForwardSuite` or `BackwardSuite`: the
    parameter is a built-in's base name, taken in the suite's ``family``."""

    family = "RNN"
    shapes = SHAPES
    params = (IMPLEMENTATIONS, list(SHAPES), THREADS)
    # loop and linear at the compute-bound shape take a while per call, and compiled
    # compiles a 100-step unrolled graph in setup (many minutes on 2 cores).
    timeout = 1800

    def implementation_name(self, name: str) -> str:
        return builtin_name(name, self.family)
