"""This machine's matrix-multiply speed, the ceiling the benchmark numbers are read against.

An RNN is almost all matrix products, so "what fraction of a plain matmul's
GFLOP/s does it reach, at the same thread count" says how much an implementation
leaves on the table, independently of how fast the machine is.
"""

from __future__ import annotations

import contextlib

import torch


@contextlib.contextmanager
def thread_count(threads: int):
    """Run the block with torch using ``threads`` threads, then restore the old count."""
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def matmul_call(size: int = 1024, device: str = "cpu"):
    """A ready-to-time square float32 matmul and its FLOPs (2·size³)."""
    generator = torch.Generator().manual_seed(0)
    a = torch.randn(size, size, generator=generator).to(device)
    b = torch.randn(size, size, generator=generator).to(device)
    out = torch.empty(size, size, device=device)

    def matmul() -> None:
        torch.mm(a, b, out=out)

    return matmul, 2.0 * size**3
