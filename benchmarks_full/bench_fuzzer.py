"""How much a fuzzing campaign covers per second: examples/s per implementation.

A campaign is worth what it covers per minute. Each measurement fuzzes a fixed
number of examples of the default profile's distribution (forward and backward
included, fixed seed, no example database), with the candidate isolated in a worker
process as `python -m harness fuzz` runs it, and in-process for the overhead of
isolation; the RNN implementations and one of each other family. Issue target:
>= 50 examples/s for `vectorized` on 2 cores.
"""

from __future__ import annotations

import torch

from benchmarks_full.common import IMPLEMENTATIONS
from harness.bench.asv import load

EXAMPLES = 150
SEED = 20261121
OTHER_FAMILIES = ["vectorized-lstm", "vectorized-gru", "loop-rnncell", "loop-lstmcell", "loop-grucell"]
"""One implementation of each family but RNN's, whose oracle runs other torch modules."""


def _fuzz_seconds(name: str, isolate: bool) -> float:
    from harness.campaign import fuzz_implementation

    result = fuzz_implementation(
        load(name), profile="default", max_examples=EXAMPLES, seed=SEED,
        repro_dir=None, database_dir=None, isolate=isolate,
    )
    if result.verdict != "pass":
        raise RuntimeError(f"{name} did not pass the fuzzer ({result.verdict}); its throughput is not comparable")
    return result.examples / result.seconds


class FuzzerThroughput:
    params = ([name for name in IMPLEMENTATIONS if name != "compiled"] + OTHER_FAMILIES, ["isolated", "in-process"])
    param_names = ["implementation", "isolation"]
    timeout = 900
    number = 1
    repeat = 1

    def setup(self, name: str, isolation: str) -> None:
        candidate = load(name)  # NotImplementedError (a skip) when not installed
        self.threads_before = torch.get_num_threads()
        torch.set_num_threads(1)
        if isolation == "isolated":
            # Start the forkserver (it imports torch once) outside the measurement.
            from harness import protocol
            from harness.isolation import Worker
            from harness.tolerance import DEFAULT_MODEL

            with Worker(candidate, DEFAULT_MODEL, timeout=60) as worker:
                worker.request(protocol.Available())

    def teardown(self, name: str, isolation: str) -> None:
        torch.set_num_threads(self.threads_before)

    def track_examples_per_second(self, name: str, isolation: str) -> float:
        return _fuzz_seconds(name, isolation == "isolated")

    track_examples_per_second.unit = "examples/s"
