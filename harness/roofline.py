"""This machine's matrix-multiply speed, the ceiling the benchmark numbers are read against.

An RNN is almost all matrix products, so "what fraction of a plain matmul's
GFLOP/s does it reach, at the same thread count" says how much an implementation
leaves on the table, independently of how fast the machine is.
"""

from __future__ import annotations

import contextlib
import dataclasses

import torch
import torch.utils.benchmark


@dataclasses.dataclass(frozen=True)
class Roofline:
    size: int  # a (size x size) @ (size x size) float32 product
    threads: int
    gflops: float  # median over blocked autorange


@contextlib.contextmanager
def thread_count(threads: int):
    """Run the block with torch using ``threads`` threads, then restore the old count."""
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def measure_matmul(size: int = 1024, threads: int = 1, min_run_time: float = 0.5) -> Roofline:
    """GFLOP/s of one square float32 matmul, 2·size³ FLOPs per call."""
    generator = torch.Generator().manual_seed(0)
    a = torch.randn(size, size, generator=generator)
    b = torch.randn(size, size, generator=generator)
    out = torch.empty(size, size)
    with thread_count(threads):
        timer = torch.utils.benchmark.Timer(
            "torch.mm(a, b, out=out)", globals={"torch": torch, "a": a, "b": b, "out": out}, num_threads=threads
        )
        measurement = timer.blocked_autorange(min_run_time=min_run_time)
    return Roofline(size, threads, 2.0 * size**3 / measurement.median / 1e9)
