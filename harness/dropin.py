"""The torch-compatible shell around a single-direction recurrence.

`DropInRNN` does everything about ``torch.nn.RNN`` that is not the recurrence itself:
constructor checks, parameters under torch's names, input layouts (time-major,
batch_first, unbatched, PackedSequence), validation with torch's exception types,
layer and direction stacking, dropout between layers, and putting the results back
into torch's shapes. A subclass supplies `run_direction`; the built-ins do, and
an outside plugin may too.

Every layout is reduced to torch's packed form before the recurrence runs: a
``(sum(batch_sizes), features)`` matrix holding time step after time step, with
``batch_sizes[t]`` active rows at step t (a prefix, because packed batches are sorted
by decreasing length). A plain batch is the special case where every step has all
rows, so one code path serves both.
"""

from __future__ import annotations

import math
import numbers
import warnings
from collections.abc import Sequence
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.rnn import PackedSequence


ELEMENTWISE = {"tanh": torch.tanh, "relu": torch.relu, "sigmoid": torch.sigmoid}
"""The functions `DropInRNN.elementwise` knows, by name."""


class DirectionWeights(NamedTuple):
    """The parameters of one layer in one direction, ``b_ih``/``b_hh`` None without bias."""

    w_ih: Tensor
    w_hh: Tensor
    b_ih: Tensor | None
    b_hh: Tensor | None


def parameter_names(layer: int, direction: int) -> tuple[str, str, str, str]:
    """torch's state_dict keys for (w_ih, w_hh, b_ih, b_hh) of one layer and direction."""
    suffix = f"l{layer}" + ("_reverse" if direction == 1 else "")
    return (f"weight_ih_{suffix}", f"weight_hh_{suffix}", f"bias_ih_{suffix}", f"bias_hh_{suffix}")


def step_offsets(batch_sizes: Sequence[int]) -> list[int]:
    """Row where each time step starts in the packed data matrix."""
    offsets, start = [], 0
    for rows in batch_sizes:
        offsets.append(start)
        start += rows
    return offsets


def check_constructor_arguments(
    input_size, hidden_size, num_layers, nonlinearity, bias, batch_first, dropout
) -> None:
    """Reject what torch.nn.RNN's constructor rejects, with the same exception types."""
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
            stacklevel=3,
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


class _PreparedInput(NamedTuple):
    data: Tensor  # (sum(batch_sizes), input_size), time step after time step
    batch_sizes: tuple[int, ...]
    hx: Tensor  # (num_layers * num_directions, batch, hidden), in data's row order
    packed: PackedSequence | None
    unbatched: bool


class DropInRNN(nn.Module):
    """Base class for drop-in replacements of ``torch.nn.RNN``.

    Subclasses implement `run_direction`. Those that keep their parameters somewhere
    other than torch-named attributes also override `_create_parameters` and
    `direction_weights` (see ``impls/linear.py``).
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        nonlinearity: str = "tanh",
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
        device=None,
        dtype=None,
    ) -> None:
        super().__init__()
        check_constructor_arguments(
            input_size, hidden_size, num_layers, nonlinearity, bias, batch_first, dropout
        )
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.nonlinearity = nonlinearity
        self.bias = bias
        self.batch_first = batch_first
        self.dropout = float(dropout)
        self.bidirectional = bidirectional
        self._create_parameters({"device": device, "dtype": dtype})
        self.reset_parameters()

    # -- parameters ---------------------------------------------------------------

    @property
    def num_directions(self) -> int:
        return 2 if self.bidirectional else 1

    def layer_input_size(self, layer: int) -> int:
        return self.input_size if layer == 0 else self.hidden_size * self.num_directions

    def _create_parameters(self, factory_kwargs: dict) -> None:
        """Register torch-named parameters, in torch's order (so state_dicts line up)."""
        for layer in range(self.num_layers):
            for direction in range(self.num_directions):
                w_ih, w_hh, b_ih, b_hh = parameter_names(layer, direction)
                H = self.hidden_size
                self.register_parameter(w_ih, nn.Parameter(torch.empty(H, self.layer_input_size(layer), **factory_kwargs)))
                self.register_parameter(w_hh, nn.Parameter(torch.empty(H, H, **factory_kwargs)))
                if self.bias:
                    self.register_parameter(b_ih, nn.Parameter(torch.empty(H, **factory_kwargs)))
                    self.register_parameter(b_hh, nn.Parameter(torch.empty(H, **factory_kwargs)))

    def reset_parameters(self) -> None:
        """torch's init: every parameter uniform in ±1/sqrt(hidden_size)."""
        bound = 1.0 / math.sqrt(self.hidden_size)
        with torch.no_grad():
            for parameter in self.parameters():
                parameter.uniform_(-bound, bound)

    def direction_weights(self, layer: int, direction: int) -> DirectionWeights:
        w_ih, w_hh, b_ih, b_hh = parameter_names(layer, direction)
        if self.bias:
            return DirectionWeights(getattr(self, w_ih), getattr(self, w_hh), getattr(self, b_ih), getattr(self, b_hh))
        return DirectionWeights(getattr(self, w_ih), getattr(self, w_hh), None, None)

    def activation(self, pre_activation: Tensor) -> Tensor:
        return self.elementwise(self.nonlinearity, pre_activation)

    def elementwise(self, name: str, x: Tensor) -> Tensor:
        """The elementwise function ``name`` ("tanh", "relu" or "sigmoid") of ``x``.

        Every nonlinearity of the recurrence goes through here, so one override swaps
        them all: the error model's activation probe (harness/probes.py) perturbs
        their outputs by the declared accuracy budget this way.
        """
        return ELEMENTWISE[name](x)

    def extra_repr(self) -> str:
        text = f"{self.input_size}, {self.hidden_size}"
        if self.num_layers != 1:
            text += f", num_layers={self.num_layers}"
        if self.nonlinearity != "tanh":
            text += f", nonlinearity={self.nonlinearity!r}"
        if not self.bias:
            text += ", bias=False"
        if self.batch_first:
            text += ", batch_first=True"
        if self.dropout:
            text += f", dropout={self.dropout}"
        if self.bidirectional:
            text += ", bidirectional=True"
        return text

    # -- the one thing a subclass must provide ---------------------------------------

    def run_direction(
        self,
        data: Tensor,
        batch_sizes: tuple[int, ...],
        h0: Tensor,
        layer: int,
        direction: int,
    ) -> tuple[Tensor, Tensor]:
        """Run one layer in one direction (1 = reverse) over packed-form ``data``.

        ``data`` is ``(sum(batch_sizes), layer_input_size)``; ``h0`` is ``(batch_sizes[0],
        hidden)``. Return the packed-form output ``(sum(batch_sizes), hidden)`` and the
        final state ``(batch_sizes[0], hidden)``: for the forward direction each row's
        state after its own last step, for the reverse direction after step 0.
        """
        raise NotImplementedError

    # -- forward ------------------------------------------------------------------

    def forward(self, input, hx: Tensor | None = None):
        prepared = self._prepare(input, hx)
        layer_input = prepared.data
        final_states = []
        for layer in range(self.num_layers):
            direction_outputs = []
            for direction in range(self.num_directions):
                h0 = prepared.hx[layer * self.num_directions + direction]
                output, h_last = self.run_direction(layer_input, prepared.batch_sizes, h0, layer, direction)
                direction_outputs.append(output)
                final_states.append(h_last)
            layer_input = torch.cat(direction_outputs, dim=1) if self.bidirectional else direction_outputs[0]
            if self.dropout > 0 and self.training and layer < self.num_layers - 1:
                layer_input = F.dropout(layer_input, self.dropout, training=True)
        return self._restore(prepared, layer_input, torch.stack(final_states))

    def _expected_hidden_size(self, batch: int) -> tuple[int, int, int]:
        return (self.num_layers * self.num_directions, batch, self.hidden_size)

    def _prepare(self, input, hx: Tensor | None) -> _PreparedInput:
        """Bring any accepted layout to packed form, checking it the way torch does."""
        weight_dtype = self.direction_weights(0, 0).w_ih.dtype
        if isinstance(input, PackedSequence):
            data, batch_sizes_tensor, sorted_indices, _ = input
            batch_sizes = tuple(int(b) for b in batch_sizes_tensor.tolist())
            batch = batch_sizes[0]
            if hx is not None:
                hx = hx.index_select(1, sorted_indices) if sorted_indices is not None else hx
            self._check_input(data, weight_dtype, expected_dim=2)
            packed, unbatched = input, False
        else:
            if not isinstance(input, Tensor):
                raise TypeError(f"input must be a Tensor or a PackedSequence, got {type(input).__name__}")
            if input.dim() not in (2, 3):
                raise ValueError(f"RNN: Expected input to be 2D or 3D, got {input.dim()}D tensor instead")
            unbatched = input.dim() == 2
            if unbatched:
                input = input.unsqueeze(0 if self.batch_first else 1)
                if hx is not None:
                    if hx.dim() != 2:
                        raise RuntimeError(f"For unbatched 2-D input, hx should also be 2-D but got {hx.dim()}-D tensor")
                    hx = hx.unsqueeze(1)
            elif hx is not None and hx.dim() != 3:
                raise RuntimeError(f"For batched 3-D input, hx should also be 3-D but got {hx.dim()}-D tensor")
            self._check_input(input, weight_dtype, expected_dim=3)
            time_major = input.transpose(0, 1) if self.batch_first else input
            steps, batch = time_major.shape[0], time_major.shape[1]
            if steps == 0:
                raise RuntimeError("Expected sequence length to be larger than 0 in RNN (got an input with 0 time steps)")
            data = time_major.reshape(steps * batch, self.input_size)
            batch_sizes = (batch,) * steps
            packed = None
        expected = self._expected_hidden_size(batch)
        if hx is None:
            hx = torch.zeros(expected, dtype=data.dtype, device=data.device)
        elif tuple(hx.shape) != expected:
            raise RuntimeError(f"Expected hidden size {expected}, got {list(hx.shape)}")
        elif hx.dtype != data.dtype:
            raise RuntimeError(f"hx dtype ({hx.dtype}) does not match input dtype ({data.dtype})")
        elif hx.device != data.device:
            raise RuntimeError(f"hx is on {hx.device} but input is on {data.device}; move both to one device")
        return _PreparedInput(data, batch_sizes, hx, packed, unbatched)

    def _check_input(self, input: Tensor, weight_dtype: torch.dtype, expected_dim: int) -> None:
        if input.dtype != weight_dtype and not torch.is_autocast_enabled():
            raise ValueError(
                f"RNN input dtype ({input.dtype}) does not match weight dtype ({weight_dtype}). "
                f"Convert input: input.to({weight_dtype}), or convert model: model.to({input.dtype})"
            )
        if input.dim() != expected_dim:
            raise RuntimeError(f"input must have {expected_dim} dimensions, got {input.dim()}")
        if input.size(-1) != self.input_size:
            raise RuntimeError(
                f"input.size(-1) must be equal to input_size. Expected {self.input_size}, got {input.size(-1)}"
            )

    def _restore(self, prepared: _PreparedInput, output: Tensor, h_n: Tensor):
        """Put packed-form results back into the layout the caller gave."""
        if prepared.packed is not None:
            packed = prepared.packed
            if packed.unsorted_indices is not None:
                h_n = h_n.index_select(1, packed.unsorted_indices)
            return PackedSequence(output, packed.batch_sizes, packed.sorted_indices, packed.unsorted_indices), h_n
        steps = len(prepared.batch_sizes)
        output = output.view(steps, prepared.hx.shape[1], output.shape[-1])
        if self.batch_first:
            output = output.transpose(0, 1)
        if prepared.unbatched:
            output = output.squeeze(0 if self.batch_first else 1)
            h_n = h_n.squeeze(1)
        return output, h_n
