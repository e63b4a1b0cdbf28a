"""The packed form of `DropInRNN.run_direction` to padded ``(T, B, F)`` and back.

`run_direction` receives every input layout reduced to one packed form: ``data`` holds
the time steps one after another, ``batch_sizes[t]`` rows at step t (the sequences
still running, longest first). Backends that want a padded batch plus each sequence's
length (cuDNN-style kernels, a ``scan`` over a dense tensor) convert with these; all
three are differentiable, so gradients flow back to the packed data.

    padded, lengths = padded_from_packed(data, batch_sizes)   # (T, B, F), (B,)
    if direction == 1:
        padded = reverse_padded(padded, lengths)              # each sequence's steps, last first
    ...
    output = packed_from_padded(padded_output, batch_sizes)   # (sum(batch_sizes), H)
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor


def _running(batch_sizes: Sequence[int], device) -> Tensor:
    """(T, B) bool: True where sequence b is still running at step t."""
    sizes = torch.as_tensor(list(batch_sizes), dtype=torch.int64, device=device)
    batch = int(sizes[0]) if len(sizes) else 0
    return torch.arange(batch, device=device).unsqueeze(0) < sizes.unsqueeze(1)


def padded_from_packed(data: Tensor, batch_sizes: Sequence[int]) -> tuple[Tensor, Tensor]:
    """``(T, B, F)`` with zeros past each sequence's end, and the lengths ``(B,)``
    (int64, on data's device, longest first as the packed form orders them)."""
    running = _running(batch_sizes, data.device)
    steps, batch = running.shape
    padded = data.new_zeros(steps, batch, data.shape[-1]).masked_scatter(running.unsqueeze(-1), data)
    return padded, running.sum(0)


def packed_from_padded(padded: Tensor, batch_sizes: Sequence[int]) -> Tensor:
    """The packed form ``(sum(batch_sizes), F)`` of a padded ``(T, B, F)``; values past
    each sequence's end are dropped."""
    running = _running(batch_sizes, padded.device)
    return padded[running]


def reverse_padded(padded: Tensor, lengths: Tensor) -> Tensor:
    """Each sequence's own steps in reverse order (step ``length - 1`` first), padding
    left where it was: the input order of a reverse direction. Its own inverse."""
    steps = torch.arange(padded.shape[0], device=padded.device).unsqueeze(1)
    lengths = lengths.to(padded.device).unsqueeze(0)
    source = torch.where(steps < lengths, lengths - 1 - steps, steps)
    return padded.gather(0, source.unsqueeze(-1).expand_as(padded))
