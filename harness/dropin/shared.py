"""What the layer and cell shells share: a direction's weights, the packed form's
step offsets, torch's constructor checks, and parameters created and initialised
under torch's names and shapes."""

from __future__ import annotations

import math
import numbers
import warnings
from collections.abc import Sequence
from typing import NamedTuple

import torch
from torch import Tensor, nn

State = Tensor | tuple[Tensor, Tensor]
"""A recurrent state: ``h``, or ``(h, c)`` for the LSTM family."""


class DirectionWeights(NamedTuple):
    """The parameters of one layer in one direction, ``b_ih``/``b_hh`` None without bias.

    Gate blocks are stacked in the rows as torch stacks them (LSTM i,f,g,o; GRU r,z,n).
    """

    w_ih: Tensor
    w_hh: Tensor
    b_ih: Tensor | None
    b_hh: Tensor | None


def step_offsets(batch_sizes: Sequence[int]) -> list[int]:
    """Row where each time step starts in the packed data matrix."""
    offsets, start = [], 0
    for rows in batch_sizes:
        offsets.append(start)
        start += rows
    return offsets


def check_constructor_arguments(
    input_size, hidden_size, num_layers, nonlinearity, bias, batch_first, dropout, proj_size=0
) -> None:
    """Reject what torch's constructors reject, with the same exception types."""
    if nonlinearity not in ("tanh", "relu"):
        raise ValueError(f"Unknown nonlinearity '{nonlinearity}'. Select from 'tanh' or 'relu'.")
    if not isinstance(dropout, numbers.Number) or isinstance(dropout, bool) or not 0 <= dropout <= 1:
        raise ValueError(
            "dropout should be a number in range [0, 1] representing the probability "
            f"of an element being zeroed, got {dropout!r}"
        )
    if dropout > 0 and num_layers == 1:
        warnings.warn(
            "dropout option adds dropout after all but last recurrent layer, so non-zero "
            f"dropout expects num_layers greater than 1, but got dropout={dropout} and "
            f"num_layers={num_layers}",
            stacklevel=4,
        )
    for name, value in (("bias", bias), ("batch_first", batch_first)):
        if not isinstance(value, bool):
            raise TypeError(f"{name} should be of type bool, got: {type(value).__name__}")
    for name, value in (("input_size", input_size), ("hidden_size", hidden_size)):
        if not isinstance(value, int):
            raise TypeError(f"{name} should be of type int, got: {type(value).__name__}")
        if value <= 0:
            raise ValueError(f"{name} must be greater than zero, got {value}")
    if num_layers <= 0:
        raise ValueError(f"num_layers must be greater than zero, got {num_layers}")
    if proj_size < 0:
        raise ValueError("proj_size should be a positive integer or zero to disable projections")
    if proj_size >= hidden_size:
        raise ValueError("proj_size has to be smaller than hidden_size")


def torch_parameters(module: nn.Module, shapes: dict[str, tuple[int, ...]], factory_kwargs: dict) -> None:
    for name, shape in shapes.items():
        module.register_parameter(name, nn.Parameter(torch.empty(shape, **factory_kwargs)))


def uniform_init(module: nn.Module, hidden_size: int) -> None:
    """torch's init: every parameter uniform in ±1/sqrt(hidden_size)."""
    bound = 1.0 / math.sqrt(hidden_size)
    with torch.no_grad():
        for parameter in module.parameters():
            parameter.uniform_(-bound, bound)
