"""The default asv suite's grid (asv.conf.json) and how a parameter names a built-in.

The default suite is what a change is checked with: per layer family, torch's
module and the implementations worth tracking over commits (`IMPLEMENTATIONS`) at
the latency-bound and the compute-bound shape (`SHAPES`), time and peak memory.
The full suite (benchmarks_full/, asv.full.conf.json) is opt-in: every built-in
(the compiling paths included) at every shape, with the worst error beside the
timings, and the fuzzer's throughput. asv imports each benchmark directory as a
package of its own, so neither imports the other. docs/benchmarks.md says what
each costs.

The suites themselves are `harness.bench.asv`'s, the module a plugin's benchmarks
use too: setup builds the workload and sets the threads, teardown restores them.
This suite imports only names that module has had since the suites moved there,
so `asv continuous` can run it at older commits.

Parameters never depend on what is installed (asv compares results across
commits by parameter): the implementations are a fixed list of built-in base
names (``vectorized``; in the LSTM suites that means ``vectorized-lstm``), and one
that is not installed here raises NotImplementedError, which asv records as a
skip, as it does for a case an implementation declares unsupported.

Each family has its own suites (RNNForward, LSTMForward, GRUForward, ...), so adding
a family never changes the parameters, and with them the history, of another's.
"""

from __future__ import annotations

import time

from harness.bench.workload import Shape, builtin_name

IMPLEMENTATIONS = ["torch", "native", "vectorized", "torchscript"]
"""torch's module of the family and the fast eager paths a change is most likely to move."""

SHAPES = {
    "latency L50 N1 I32 H32": Shape(50, 1, 32, 32),
    "compute L100 N32 I256 H256": Shape(100, 32, 256, 256),
}
"""The two cases the speed targets are stated for (`harness.bench.LATENCY_BOUND`,
`COMPUTE_BOUND`), by the label asv shows; the full suite has them under the same labels."""

THREADS = [1]
"""torch threads while timing; a parameter so that asv records it with each result."""


class BuiltinSuite:
    """Mixed in before `harness.bench.asv.ForwardSuite` or `BackwardSuite`: the
    parameter is a built-in's base name, taken in the suite's ``family``."""

    family = "RNN"
    shapes = SHAPES
    params = (IMPLEMENTATIONS, list(SHAPES), THREADS)
    timeout = 300
    # The time_ benchmarks count this process's CPU time, as `bench --clock cpu`
    # does: with one thread that is the work of the call, without the time other
    # processes on a shared machine hold the cores, which wall-clock time counts
    # and which made `asv continuous` flag unchanged benchmarks here.
    timer = time.process_time
    # Four processes per benchmark (asv's default is two), interleaved between the
    # commits by `asv continuous`: a process can settle into a slower or faster state
    # of its own (allocator, TorchScript's executor), and the samples of two did not
    # outvote it.
    rounds = 4

    def implementation_name(self, name: str) -> str:
        return builtin_name(name, self.family)
