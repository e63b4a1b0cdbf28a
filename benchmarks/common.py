"""What the asv suites share: the fixed parameter grid and the setup/teardown.

Parameters never depend on what is installed (asv compares results across
commits by parameter): the implementations are a fixed list of built-in base
names (``vectorized``; in the LSTM suites that means ``vectorized-lstm``), and one
that is not installed here raises NotImplementedError, which asv records as a
skip, as it does for a case an implementation declares unsupported.

Each family has its own suites (RNNForward, LSTMForward, GRUForward, ...), so adding
a family never changes the parameters, and with them the history, of another's.
"""

from __future__ import annotations

import functools

import torch

from harness.registry import discover
from harness.bench.workload import Shape, build_workload, builtin_name, worst_error

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


@functools.cache
def installed_implementations():
    return discover().loaded


def implementation(name: str):
    loaded = installed_implementations()
    if name not in loaded:
        raise NotImplementedError(f"implementation {name!r} is not installed in this environment")
    return loaded[name].implementation


class RNNBenchmark:
    """Base of the suites: ``mode`` is "forward" or "backward" (see harness.bench.workload);
    ``family`` picks the built-ins of that family by their base names."""

    mode = "forward"
    family = "RNN"
    params = (IMPLEMENTATIONS, list(SHAPES), THREADS)
    param_names = ["implementation", "shape", "threads"]
    # loop and linear at the compute-bound shape take a while per call, and compiled
    # compiles a 100-step unrolled graph in setup (many minutes on 2 cores).
    timeout = 1800

    def setup(self, name: str, shape: str, threads: int) -> None:
        self.threads_before = torch.get_num_threads()
        torch.set_num_threads(threads)
        try:
            # Builds, loads torch's seeded weights, and warms up: compiling
            # implementations compile here, not in the timed call.
            self.workload = build_workload(implementation(builtin_name(name, self.family)), SHAPES[shape], self.mode)
        except BaseException:
            torch.set_num_threads(self.threads_before)  # asv skips teardown after a failed setup
            raise

    def teardown(self, name: str, shape: str, threads: int) -> None:
        torch.set_num_threads(self.threads_before)

    def worst_error(self, name: str, shape: str) -> float:
        return worst_error(implementation(builtin_name(name, self.family)), SHAPES[shape], self.mode)
